"""What the Jaeger and Tempo clients share: the errors, one retrying JSON GET, and query rules.

Retries cover what a second try can fix: refused or timed-out connections and
5xx answers, with exponential backoff. A 4xx or a read timeout is raised at once.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "InvalidQueryError",
    "JsonGetter",
    "RetryPolicy",
    "TraceBackendError",
    "TraceBackendTimeout",
    "TraceBackendUnavailable",
    "TraceFormatError",
    "TraceNotFoundError",
    "check_trace_id",
    "check_window",
    "go_duration",
]

_HEX = re.compile(r"[0-9a-fA-F]{1,32}")


class TraceBackendError(Exception):
    """A trace backend did not give a usable answer; `url` and `status` say where and what."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class TraceNotFoundError(TraceBackendError):
    """The backend does not know this trace (wrong id, not sampled, or past retention)."""


class TraceBackendUnavailable(TraceBackendError):
    """The backend could not be reached, or kept failing with 5xx, after every retry."""


class TraceBackendTimeout(TraceBackendError):
    """The backend took longer than the client's timeout to answer."""


class TraceFormatError(TraceBackendError):
    """The backend answered 200 with a body that is not the documented shape."""


class InvalidQueryError(TraceBackendError):
    """The query itself is wrong (bad trace id, empty time window); nothing was sent."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed GET is tried again."""

    retries: int = 2
    backoff_s: float = 0.2
    max_backoff_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        return min(self.max_backoff_s, self.backoff_s * 2.0**attempt)


def go_duration(ns: int) -> str:
    """Nanoseconds as a Go duration string in the largest exact unit: `100ms`, `1500us`."""
    if ns < 0:
        raise InvalidQueryError(f"a minimum duration must not be negative, got {ns} ns")
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns and ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def check_trace_id(trace_id: str) -> str:
    """A trace id safe to put in a URL path: 1-32 hex digits, lowercased."""
    if not isinstance(trace_id, str) or not _HEX.fullmatch(trace_id.strip()):
        raise InvalidQueryError(
            f"trace id {str(trace_id)[:64]!r} is not 1-32 hex digits; copy it from a span or alert")
    return trace_id.strip().lower()


def check_window(start_ns: int, end_ns: int, limit: int) -> None:
    if end_ns <= start_ns:
        raise InvalidQueryError(f"end ({end_ns} ns) must be after start ({start_ns} ns)")
    if limit < 1:
        raise InvalidQueryError(f"limit must be at least 1, got {limit}")


class JsonGetter:
    """GETs JSON from one backend with retries; owns its httpx client unless given one."""

    def __init__(self, name: str, base_url: str, *, timeout_s: float, retry: RetryPolicy,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.retry = retry
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport,
                                        headers={"Accept": "application/json"})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON body of a 2xx answer; else raises a `TraceBackendError` subclass."""
        request = self.client.build_request("GET", path, params=params)
        url = str(request.url)
        for attempt in range(self.retry.retries + 1):
            last = attempt == self.retry.retries
            try:
                response = await self.client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise TraceBackendUnavailable(
                        f"{self.name} at {url} is unreachable after {attempt + 1} attempts "
                        f"({exc}); check the {self.name} URL setting and that it is running",
                        url=url) from None
            except httpx.TimeoutException:
                raise TraceBackendTimeout(
                    f"{self.name} at {url} did not answer within {self.timeout_s:g} s; "
                    "narrow the time window or the limit, or raise the timeout", url=url) from None
            except httpx.HTTPError as exc:
                raise TraceBackendError(f"{self.name} at {url} failed: {exc!r}", url=url) from None
            else:
                if response.status_code < 500 or last:
                    return self._decode(response, url, attempt + 1)
            await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _decode(self, response: httpx.Response, url: str, attempts: int) -> Any:
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise TraceFormatError(
                    f"{self.name} at {url} answered {status} with a body that is not JSON "
                    f"({response.text[:120]!r}); is the URL pointing at the {self.name} query API?",
                    url=url, status=status) from None
        detail = _error_detail(response.text)
        if status == 404:
            raise TraceNotFoundError(f"{self.name} at {url} answered 404: {detail}", url=url,
                                     status=status)
        if status >= 500:
            raise TraceBackendUnavailable(
                f"{self.name} at {url} answered {status} after {attempts} attempts: {detail}; "
                f"check {self.name}'s own logs and storage", url=url, status=status)
        raise TraceBackendError(f"{self.name} at {url} refused the query ({status}): {detail}",
                                url=url, status=status)


def _error_detail(text: str) -> str:
    """The backend's own error words: Jaeger's `errors[].msg`, a `message`, or the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e)
                             for e in errors)[:300]
        for key in ("message", "error", "msg"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return text.strip()[:300]
