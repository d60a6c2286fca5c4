"""`/opsbot`: parse, check admin rights, ack within Slack's 3 s, run the work in the background.

Usage errors, help and refusals are the ack's own (ephemeral) text. Status and anomalies
answer the asker alone; mute, unmute and recalc report in the channel for everyone.
"""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.slack.admins import REFUSAL
from bot.slack.blocks import plain_message
from bot.slack.deps import SlackDeps
from bot.slack.slash import USAGE, SlashCommand, SlashUsageError, parse_slash

__all__ = ["register"]

_WHAT = {"recalc": "recalculate baselines", "mute": "mute alerts", "unmute": "unmute alerts"}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command("/opsbot")
    async def opsbot(ack: AsyncAck, command: dict[str, Any]) -> None:
        user = str(command.get("user_id", ""))
        try:
            cmd = parse_slash(str(command.get("text") or ""))
        except SlashUsageError as exc:
            deps.metrics.commands.labels("?", "usage").inc()
            await ack(text=f"{exc}\n\n{USAGE}")
            return
        if cmd.verb == "help":
            deps.metrics.commands.labels("help", "ok").inc()
            await ack(text=USAGE)
            return
        if cmd.admin_only and not await deps.admins.allows(user):
            deps.metrics.commands.labels(cmd.verb, "refused").inc()
            await ack(text=REFUSAL.format(what=_WHAT[cmd.verb]))
            return
        await ack()
        request = str(command.get("trigger_id") or f"{user}:{time.time_ns()}")
        deps.tasks.spawn(_run(deps, cmd, user, str(command.get("channel_id")), request),
                         f"/opsbot {cmd.verb}")


async def _run(deps: SlackDeps, cmd: SlashCommand, user: str, channel: str,
               request: str) -> None:
    key = f"command:{request}"
    try:
        if cmd.verb == "recalc":
            await _recalc(deps, cmd, user, channel, key)
        elif cmd.verb in ("status", "anomalies"):
            text = await (deps.ops.status() if cmd.verb == "status" else deps.ops.anomalies())
            await deps.outbox.enqueue(key, "chat.postEphemeral",
                                      {"channel": channel, "user": user, "text": text,
                                       "blocks": plain_message(text)["blocks"]})
        else:
            assert cmd.target is not None
            text = (await deps.ops.mute(cmd.target, cmd.duration_s, user) if cmd.verb == "mute"
                    else await deps.ops.unmute(cmd.target))
            await deps.outbox.enqueue(key, "chat.postMessage", {"channel": channel, "text": text})
    except Exception as exc:  # the user gets a sentence, the log gets the trace
        deps.metrics.commands.labels(cmd.verb, "error").inc()
        await deps.outbox.enqueue(f"{key}:error", "chat.postEphemeral", {
            "channel": channel, "user": user,
            "text": f":warning: `/opsbot {cmd.verb}` failed: {type(exc).__name__}: {exc}"})
        raise
    deps.metrics.commands.labels(cmd.verb, "ok").inc()


async def _recalc(deps: SlackDeps, cmd: SlashCommand, user: str, channel: str,
                  key: str) -> None:
    scope = cmd.target or "all keys"
    title = f":gear: Recalculating baselines for `{scope}`" + (" (dry run)" if cmd.dry_run
                                                                else "")
    await deps.outbox.enqueue(key, "chat.postMessage",
                              {"channel": channel, "text": f"{title}, requested by <@{user}>..."})
    edits, last = [0], [0.0]

    async def progress(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:  # chat.update is rate limited: about one edit a second
            last[0] = now
            edits[0] += 1
            await deps.outbox.enqueue(f"{key}:edit:{edits[0]}", "chat.update",
                                      {"text": f"{title}: {line}"}, target=key)

    result = await deps.ops.recalc(cmd.target, cmd.dry_run, progress)
    await deps.outbox.enqueue(f"{key}:done", "chat.update",
                              {"text": f"{title}: done.\n{result}",
                               "blocks": plain_message(f"{title}: done.\n{result}")["blocks"]},
                              target=key)
