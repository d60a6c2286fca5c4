"""One model, one call at a time: a FIFO slot that tells waiting callers their place.

llama.cpp is not re-entrant. Every call runs on one dedicated worker thread, which
serialises them and keeps llama.cpp's OpenMP thread team the same across calls
(a new calling thread per call makes a new team, and the old one's spinning threads
steal the cores: measured here, up to 4x slower generations on 2 cores). A caller
that has to wait is told its place (1 = next) so Slack can say so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ModelQueue", "OnWait"]

T = TypeVar("T")
OnWait = Callable[[int], Awaitable[None]]


class ModelQueue:
    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
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

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the model's thread and wait for it (from any thread but that one)."""
        self._enter()
        try:
            return self._worker.submit(fn).result()
        finally:
            self._leave()

    async def run(self, fn: Callable[[], T], on_wait: OnWait | None = None) -> T:
        """Run `fn` on the model's thread when it is free; tell `on_wait` our place first."""
        ahead = self._enter()  # counted before any await: the next caller sees us
        try:
            if ahead and on_wait is not None:
                await on_wait(ahead)
            return await asyncio.get_running_loop().run_in_executor(self._worker, fn)
        finally:
            self._leave()
