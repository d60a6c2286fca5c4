"""Async client for Prometheus' HTTP API `/api/v1/query_range`, and the answer's parser.

The envelope is `{"status": "success"|"error", "data": {"resultType", "result"},
"warnings", "errorType", "error"}`. Some proxies (and Jaeger's fixtures) use
`status: "warning"` with data: that is a success with warnings. Errors come as
4xx/5xx with the same envelope. Every failure raises a `PrometheusError` subclass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import numpy as np

__all__ = [
    "PrometheusClient",
    "PrometheusError",
    "PrometheusFormatError",
    "PrometheusQueryError",
    "PrometheusTimeout",
    "PrometheusUnavailable",
    "RangeResult",
    "RangeSeries",
    "parse_range_answer",
]


class PrometheusError(Exception):
    """Prometheus did not give a usable answer; the message says what to check."""


class PrometheusUnavailable(PrometheusError):
    """Unreachable, or answered 5xx/503 (overloaded, shutting down)."""


class PrometheusTimeout(PrometheusError):
    """No answer within the client's timeout, or the query timed out inside Prometheus."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused or failed the query (bad_data, execution, ...): fix the PromQL."""

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


class PrometheusFormatError(PrometheusError):
    """The answer is not the documented envelope (wrong URL, a proxy's HTML page)."""


@dataclass(frozen=True, slots=True)
class RangeSeries:
    labels: dict[str, str]
    ts_s: np.ndarray  # float64 unix seconds
    values: np.ndarray  # float64; NaN where Prometheus wrote "NaN"


@dataclass(frozen=True, slots=True)
class RangeResult:
    series: list[RangeSeries]
    warnings: list[str] = field(default_factory=list)


def _values(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(raw, list):
        raise PrometheusFormatError(f"series values: expected a list, got {raw!r:.60}")
    ts = np.empty(len(raw))
    vals = np.empty(len(raw))
    for i, pair in enumerate(raw):
        try:
            ts[i], vals[i] = float(pair[0]), float(pair[1])  # "NaN", "+Inf" parse as floats
        except (TypeError, ValueError, IndexError):
            raise PrometheusFormatError(f"sample {pair!r:.60} is not [time, \"value\"]") from None
    return ts, vals


def parse_range_answer(body: Any) -> RangeResult:
    """A `query_range` answer as series; raises for error envelopes and other shapes."""
    if not isinstance(body, dict) or "status" not in body:
        raise PrometheusFormatError(f"expected a Prometheus API envelope, got {body!r:.80}")
    warnings = [str(w)[:200] for w in body.get("warnings") or [] if w]
    if body["status"] == "error":
        kind = str(body.get("errorType") or "error")
        raise PrometheusQueryError(f"Prometheus {kind}: {str(body.get('error'))[:300]}", kind)
    if body["status"] not in ("success", "warning"):
        raise PrometheusFormatError(f"unknown status {body['status']!r:.40}")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise PrometheusFormatError(f"data.result missing in {body!r:.80}")
    if data.get("resultType", "matrix") != "matrix":
        raise PrometheusFormatError(f"expected a matrix, got resultType {data['resultType']!r}")
    series = []
    for item in data["result"]:
        if not isinstance(item, dict):
            raise PrometheusFormatError(f"result item {item!r:.60} is not an object")
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        ts, vals = _values(item.get("values", []))
        series.append(RangeSeries(labels, ts, vals))
    return RangeResult(series, warnings)


class PrometheusClient:
    """`PrometheusClient("http://prometheus:9090")`; one shared httpx client, closed by aclose."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s,
                                       transport=transport,
                                       headers={"Accept": "application/json"})

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def query_range(self, query: str, start_s: float, end_s: float, step_s: float
                          ) -> RangeResult:
        if not (math.isfinite(start_s) and end_s > start_s and step_s > 0):
            raise PrometheusQueryError(f"bad range: start {start_s}, end {end_s}, step {step_s}")
        params = {"query": query, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}",
                  "step": f"{step_s:g}", "timeout": f"{self.timeout_s:g}s"}
        url = f"{self.base_url}/api/v1/query_range"
        try:
            response = await self._http.post("/api/v1/query_range", data=params)
        except httpx.TimeoutException:
            raise PrometheusTimeout(f"Prometheus at {url} did not answer within "
                                    f"{self.timeout_s:g} s; narrow the window") from None
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"Prometheus at {url} is unreachable ({exc}); check "
                                        "OPSBOT_PROMETHEUS_URL and that it is running") from None
        return self._decode(response, url)

    @staticmethod
    def _decode(response: httpx.Response, url: str) -> RangeResult:
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if isinstance(body, dict) and body.get("status") == "error":
            kind = str(body.get("errorType") or "")
            if kind == "timeout":
                raise PrometheusTimeout(f"Prometheus timed out the query: {body.get('error')}")
            if status == 503 or kind == "unavailable":
                raise PrometheusUnavailable(f"Prometheus at {url} is unavailable: "
                                            f"{body.get('error')}")
            return parse_range_answer(body)  # raises PrometheusQueryError
        if status >= 500:
            raise PrometheusUnavailable(f"Prometheus at {url} answered {status}: "
                                        f"{response.text[:200]!r}")
        if body is None or status >= 400:
            raise PrometheusFormatError(
                f"Prometheus at {url} answered {status} with {response.text[:120]!r}; is "
                "OPSBOT_PROMETHEUS_URL the Prometheus base URL (e.g. http://prometheus:9090)?")
        return parse_range_answer(body)
