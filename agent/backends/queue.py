"""One model, one call at a time: a FIFO slot that tells waiting callers their place.

llama.cpp is not re-entrant. Calls run in worker threads under one lock; a caller
that has to wait is told its place (1 = next) so Slack can say so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["ModelQueue", "OnWait"]

T = TypeVar("T")
OnWait = Callable[[int], Awaitable[None]]


class ModelQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self._queued = 0  # running + waiting

    @property
    def queued(self) -> int:
        return self._queued

    def _enter(self) -> int:
        with self._count:
            ahead = self._queued
            self._queued += 1
            return ahead

    def _leave(self) -> None:
        with self._count:
            self._queued -= 1

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    def run_sync(self, fn: Callable[[], T]) -> T:
        self._enter()
        try:
            return self._locked(fn)
        finally:
            self._leave()

    async def run(self, fn: Callable[[], T], on_wait: OnWait | None = None) -> T:
        """Run `fn` in a thread when the model is free; tell `on_wait` our place first."""
        ahead = self._enter()  # counted before any await: the next caller sees us
        try:
            if ahead and on_wait is not None:
                await on_wait(ahead)
            return await asyncio.to_thread(self._locked, fn)
        finally:
            self._leave()
