"""Thread history kept from the events the bot receives (pure, bounded).

conversations.replies is limited to about one request a minute for many apps, so the
bot remembers each thread's turns as the events and its own answers go by instead.
"""

from __future__ import annotations

from collections import OrderedDict, deque

__all__ = ["ThreadHistory"]


class ThreadHistory:
    """The last `turns` messages of the `threads` most recently active threads."""

    def __init__(self, threads: int = 1000, turns: int = 20) -> None:
        self._threads: OrderedDict[tuple[str, str], deque[tuple[str, str]]] = OrderedDict()
        self._max_threads, self._turns = threads, turns

    def add(self, channel: str, thread_ts: str, who: str, text: str) -> None:
        key = (channel, thread_ts)
        turns = self._threads.pop(key, None) or deque(maxlen=self._turns)
        turns.append((who, text))
        self._threads[key] = turns
        while len(self._threads) > self._max_threads:
            self._threads.popitem(last=False)

    def turns(self, channel: str, thread_ts: str) -> tuple[tuple[str, str], ...]:
        return tuple(self._threads.get((channel, thread_ts), ()))
