"""`/opsbot ...` text to a typed command (pure): bad arguments become usage help, not errors.

Grammar: recalc [key|service|all] [--dry-run] | status | mute <key|service> <duration>
| unmute <key|service> | anomalies | help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["USAGE", "SlashCommand", "SlashUsageError", "parse_duration", "parse_slash"]

Verb = Literal["recalc", "status", "mute", "unmute", "anomalies", "help"]
ADMIN_VERBS: frozenset[str] = frozenset({"recalc", "mute", "unmute"})

USAGE = "\n".join([
    "*Usage:* `/opsbot <command>`",
    "• `recalc [key|service|all] [--dry-run]`: recalculate baselines and thresholds"
    " (admins; `--dry-run` shows the alert diff only)",
    "• `status`: detector health, keys tracked, open incidents, backends, model",
    "• `mute <key|service> <duration>`: silence alerts, e.g. `mute checkout 2h` (admins)",
    "• `unmute <key|service>`: lift a mute (admins)",
    "• `anomalies`: the open anomalies",
    "• `help`: this text",
])
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_MUTE_S = 30 * 86_400


class SlashUsageError(ValueError):
    """The text is not a valid command; the message says why, followed by USAGE."""


@dataclass(frozen=True, slots=True)
class SlashCommand:
    verb: Verb
    target: str | None = None  # recalc: None means all; mute/unmute: key or service
    dry_run: bool = False
    duration_s: int = 0  # mute only

    @property
    def admin_only(self) -> bool:
        return self.verb in ADMIN_VERBS


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '2h30m', '1d' -> seconds; at most 30 days."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise SlashUsageError(f"`{text}` is not a duration; use e.g. `30m`, `1h`, `2h30m`, `1d`")
    seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if not 0 < seconds <= _MAX_MUTE_S:
        raise SlashUsageError("a mute lasts between 1 second and 30 days")
    return seconds


def parse_slash(text: str) -> SlashCommand:
    """Parse the text after `/opsbot`; empty text is `help`."""
    words = text.split()
    if not words:
        return SlashCommand("help")
    verb, args = words[0].lower(), words[1:]
    if verb == "recalc":
        return _recalc(args)
    if verb in ("status", "anomalies", "help"):
        if args:
            raise SlashUsageError(f"`{verb}` takes no arguments")
        return SlashCommand(verb)  # type: ignore[arg-type]
    if verb == "mute":
        if len(args) < 2:
            raise SlashUsageError("`mute` needs a key or service and a duration:"
                                  " `mute checkout:POST /pay 1h`")
        return SlashCommand("mute", target=_target(" ".join(args[:-1])),
                            duration_s=parse_duration(args[-1]))
    if verb == "unmute":
        if not args:
            raise SlashUsageError("`unmute` needs the key or service that was muted")
        return SlashCommand("unmute", target=_target(" ".join(args)))
    raise SlashUsageError(f"unknown command `{verb}`")


def _recalc(args: list[str]) -> SlashCommand:
    dry_run = "--dry-run" in args
    rest = [a for a in args if a != "--dry-run"]
    flags = [a for a in rest if a.startswith("-")]
    if flags:
        raise SlashUsageError(f"unknown option `{flags[0]}`; the only option is `--dry-run`")
    joined = " ".join(rest)
    target = None if not rest or joined.lower() == "all" else _target(joined)
    return SlashCommand("recalc", target=target, dry_run=dry_run)


def _target(word: str) -> str:
    # Keys are service:operation and an operation may hold spaces ("POST /pay"), so the
    # target is every word between the verb and the duration; quotes people add are dropped.
    target = word.strip("`'\"")
    if not target or target.startswith(":") or target.endswith(":"):
        raise SlashUsageError(f"`{word}` is neither a service nor a key (service:operation)")
    return target
