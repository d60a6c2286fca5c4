"""Alert-storm control (pure, clock passed in): a per-channel cap on new top-level alerts.

Within any `window_s`, a channel gets at most `max_posts` new alert messages; the rest
are folded into one digest message per storm, edited in place as the storm grows.
`state`/`restore` turn a channel's posts and storm into JSON-able values and back, so
the notifier can persist them and a restart mid-storm keeps capping into the same digest.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bot.slack.blocks import DigestEntry, DigestView

__all__ = ["ChannelRateCap", "Storm"]


@dataclass(slots=True)
class Storm:
    """The alerts folded into one digest: `started_ns` names its message."""

    channel: str
    started_ns: int
    window_s: float
    counts: dict[str, int] = field(default_factory=dict)
    worst: dict[str, int] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"digest:{self.channel}:{self.started_ns}"

    def add(self, key: str, severity: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.worst[key] = min(self.worst.get(key, 5), severity)

    def view(self, top: int = 10) -> DigestView:
        ranked = sorted(self.counts, key=lambda k: (self.worst[k], -self.counts[k], k))
        return DigestView(
            total=sum(self.counts.values()), keys=len(self.counts),
            window_minutes=max(1, round(self.window_s / 60)),
            top=[DigestEntry(k, self.counts[k], self.worst[k]) for k in ranked[:top]])


class ChannelRateCap:
    """Admit at most `max_posts` alerts per channel per sliding `window_s`."""

    def __init__(self, max_posts: int = 10, window_s: float = 300.0) -> None:
        if max_posts < 1 or window_s <= 0:
            raise ValueError("the alert rate cap needs max_posts >= 1 and window_s > 0")
        self.max_posts, self.window_s = max_posts, window_s
        self._posts: dict[str, deque[int]] = {}
        self._storms: dict[str, Storm] = {}

    def admit(self, channel: str, now_ns: int) -> bool:
        """True: post the alert now (and count it). False: fold it into the storm digest."""
        window_ns = int(self.window_s * 1e9)
        posts = self._posts.setdefault(channel, deque())
        while posts and posts[0] <= now_ns - window_ns:
            posts.popleft()
        if len(posts) < self.max_posts:
            posts.append(now_ns)
            return True
        return False

    def state(self, channel: str) -> dict[str, Any]:
        """The channel's recent posts and current storm, as JSON-able values."""
        storm = self._storms.get(channel)
        return {"posts": list(self._posts.get(channel, ())),
                "storm": None if storm is None else {
                    "started_ns": storm.started_ns, "counts": dict(storm.counts),
                    "worst": dict(storm.worst)}}

    def restore(self, channel: str, state: dict[str, Any]) -> None:
        """Take back what `state` returned (e.g. before the process restarted)."""
        self._posts[channel] = deque(sorted(int(t) for t in state.get("posts") or ()))
        saved = state.get("storm")
        if saved:
            self._storms[channel] = Storm(
                channel, int(saved["started_ns"]), self.window_s,
                {str(k): int(v) for k, v in saved["counts"].items()},
                {str(k): int(v) for k, v in saved["worst"].items()})
        else:
            self._storms.pop(channel, None)

    def fold(self, channel: str, key: str, severity: int, now_ns: int) -> tuple[Storm, bool]:
        """Add a capped alert to the channel's storm: (storm, whether the storm is new)."""
        storm = self._storms.get(channel)
        fresh = storm is None or now_ns - storm.started_ns >= int(self.window_s * 1e9)
        if fresh:
            storm = self._storms[channel] = Storm(channel, now_ns, self.window_s)
        assert storm is not None
        storm.add(key, severity)
        return storm, fresh
