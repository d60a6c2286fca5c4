"""Questions: a placeholder at once, edited as the answer streams (at most ~1 edit/s), the
thread's alert as context, history from received events, and 'not available' without agent."""

from __future__ import annotations

from pathlib import Path

from bot.slack.agent_port import AGENT_UNAVAILABLE
from bot.slack.conversation import PLACEHOLDER
from tests.slack_app_support import USER, FakeAgent, anomaly_record, running_bot, slack_payload
from tests.slack_standin import SlackStandIn


def _message(text: str, ts: str, thread_ts: str | None = None,
             channel: str = "C0ALERTS", channel_type: str = "channel") -> dict[str, object]:
    event: dict[str, object] = slack_payload("test_message__message_body")["event"]
    event.update(text=text, user=USER, ts=ts, event_ts=ts, channel=channel,
                 channel_type=channel_type)
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


async def test_thread_question_uses_the_alert_as_context(tmp_path: Path,
                                                         standin: SlackStandIn) -> None:
    agent = FakeAgent(delay_s=0.6)
    async with running_bot(tmp_path / "c.db", standin, agent=agent) as h:
        record = await anomaly_record(h.store)
        await h.bot.notifier.on_event("opened", record)
        await h.settle()
        alert_ts = standin.posted()[0]["ts"]
        await h.send_event(_message("we deployed at 14:00", "1700000500.000100", alert_ts),
                           base="test_message__message_body")
        await h.send_event(_message("why is it slow?", "1700000501.000100", alert_ts),
                           base="test_message__message_body")
        await h.settle()
    [context] = agent.contexts
    assert list(context.anomaly_ids) == [record.id] and context.thread_ts == alert_ts
    assert context.history == ((USER, "we deployed at 14:00"),)
    [answer] = [m for m in standin.posted() if m.get("thread_ts") == alert_ts]
    assert answer["text"] == ("The p99 of pg-pool.connect rose after the deploy."
                              f" (anomalies [{record.id}])")
    posts = [c for c in standin.calls("chat.postMessage") if c.params.get("thread_ts") == alert_ts]
    assert [c.params["text"] for c in posts] == [PLACEHOLDER]
    edits = standin.calls("chat.update")
    assert 2 <= len(edits) <= 3  # 3 chunks 0.6 s apart: at most one edit a second, plus the final
    gaps = [b.at - a.at for a, b in zip(edits, edits[1:-1], strict=False)]
    assert all(g >= 0.9 for g in gaps)


async def test_placeholder_comes_before_the_agent_speaks(tmp_path: Path,
                                                        standin: SlackStandIn) -> None:
    agent = FakeAgent(delay_s=1.0)
    async with running_bot(tmp_path / "p.db", standin, agent=agent) as h:
        standin.add_channel("dm", "D0DM")
        event = _message("hi?", "1700000600.000100", channel="D0DM", channel_type="im")
        await h.send_event(event, base="test_message__message_body")
        await h.settle()
    [placeholder] = standin.calls("chat.postMessage")
    assert placeholder.params["text"] == PLACEHOLDER
    assert placeholder.at < agent.chunk_times[0]  # Slack shows something before any answer
    [answer] = standin.posted("D0DM")
    assert "thread_ts" not in answer and answer["text"].startswith("The p99")


async def test_without_agent_the_reply_says_so(tmp_path: Path, standin: SlackStandIn) -> None:
    async with running_bot(tmp_path / "n.db", standin) as h:
        mention = slack_payload("test_events__valid_event_body")["event"]
        mention.update(text="<@U0OPSBOT> what broke?", user=USER, channel="C0ALERTS",
                       ts="1700000700.000100")
        await h.send_event(mention)
        await h.settle()
    [reply] = standin.posted()
    assert reply["text"] == AGENT_UNAVAILABLE and reply["thread_ts"] == "1700000700.000100"


async def test_thread_questions_without_a_question_mark(tmp_path: Path,
                                                        standin: SlackStandIn) -> None:
    """A question word first, or an @-mention of the bot, asks; other replies are history."""
    agent = FakeAgent()
    async with running_bot(tmp_path / "q.db", standin, agent=agent) as h:
        await h.bot.notifier.on_event("opened", await anomaly_record(h.store))
        await h.settle()
        alert_ts = standin.posted()[0]["ts"]
        for i, text in enumerate(["thanks, looking", "why is it slow", "Is the pool exhausted"]):
            await h.send_event(_message(text, f"1700000800.00010{i}", alert_ts),
                               base="test_message__message_body")
        # Slack sends a mention in a thread twice: as a message and as app_mention
        mention = _message("<@U0OPSBOT> check the db pool", "1700000801.000100", alert_ts)
        await h.send_event(mention, base="test_message__message_body")
        await h.send_event({**mention, "type": "app_mention"})
        await h.settle()
    assert sorted(agent.questions) == ["Is the pool exhausted", "check the db pool",
                                       "why is it slow"]
    contexts = dict(zip(agent.questions, agent.contexts, strict=True))
    assert contexts["why is it slow"].history[0] == (USER, "thanks, looking")
    answers = [m for m in standin.posted() if m.get("thread_ts") == alert_ts]
    assert len(answers) == 3 and all(m["text"].startswith("The p99") for m in answers)
