"""Alert and digest Block Kit: structure, wording and what each state shows."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

from bot.slack.blocks import (
    ACTION_IDS,
    SEVERITY_STYLE,
    AlertView,
    DigestEntry,
    DigestView,
    FeedbackNote,
    ServiceMetrics,
    alert_message,
    digest_message,
    hour_of_week_label,
)

STARTED = datetime(2024, 3, 12, 14, 3, tzinfo=UTC)  # a Tuesday
VIEW = AlertView(
    anomaly_id=42, severity=2, service="checkout", operation="POST /pay", observed=286.94,
    baseline_p50=0.41, baseline_p99=3.1, baseline_bucket=hour_of_week_label(STARTED),
    score=7.43, percentile=99.9, started=STARTED, updated=STARTED + timedelta(minutes=12),
    peak_severity=1, incident_id=7,
    metrics=ServiceMetrics(cpu_pct=83.2, memory_pct=71.0, error_rate=0.024, request_rate=1240),
    origin_service="payments-db", exemplar_trace_ids=("4bf92f3577b34da6a3ce929d0e0e4736",),
    trace_url_template="http://jaeger:16686/trace/{trace_id}",
)


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return out


def test_alert_structure_snapshot() -> None:
    message = alert_message(VIEW)
    [attachment] = message["attachments"]
    assert [b["type"] for b in message["blocks"]] == ["section"]
    assert [b["type"] for b in attachment["blocks"]] == [
        "section", "context", "context", "section", "context", "context", "actions"]
    assert message["blocks"][0]["text"]["text"] == (
        ":large_orange_circle: *SEV2*  `checkout:POST /pay`")
    assert attachment["color"] == SEVERITY_STYLE[2][1]
    assert _texts(attachment["blocks"]) == [
        "*286.9 ms* vs p50 0.4 ms / p99 3.1 ms for Tue 14:00",
        "Score 7.4 · SEV2 set by the p99.9 of this key's history",
        "CPU 83% · memory 71% · errors 2.4% · 1,240 req/s",
        "Most likely origin: *payments-db*",
        "Exemplar traces: <http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736|4bf92f35…>",
        ":rotating_light: Open for 12 min · peak SEV1",
    ]
    assert message["text"] == (
        "SEV2 checkout:POST /pay: 286.9 ms vs p50 0.4 ms / p99 3.1 ms for Tue 14:00")
    assert message["metadata"] == {
        "event_type": "opsbot_alert",
        "event_payload": {"kind": "alert", "anomaly_id": 42, "incident_id": 7}}


def test_buttons_carry_the_action_ids_and_the_anomaly_id() -> None:
    actions = alert_message(VIEW)["attachments"][0]["blocks"][-1]
    assert actions["block_id"] == "alert:42"
    assert [b["action_id"] for b in actions["elements"]] == [
        "investigate", "false_positive", "acknowledge", "mute_1h"] == list(ACTION_IDS)
    assert {b["value"] for b in actions["elements"]} == {"42"}
    assert "confirm" in actions["elements"][-1]


def test_message_is_valid_block_kit_for_slack_sdk() -> None:
    message = alert_message(VIEW)
    for block in message["blocks"] + message["attachments"][0]["blocks"]:
        assert Block.parse(block) is not None
        assert Block.parse(block).to_dict() == block  # type: ignore[union-attr]
    attachment = BlockAttachment(blocks=message["attachments"][0]["blocks"],
                                 color=message["attachments"][0]["color"])
    attachment.validate_json()
    json.dumps(message)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_severity_comes_first_with_its_own_emoji_and_colour(severity: int) -> None:
    message = alert_message(replace(VIEW, severity=severity, peak_severity=severity))
    emoji, colour = SEVERITY_STYLE[severity]
    assert message["blocks"][0]["text"]["text"].startswith(f"{emoji} *SEV{severity}*")
    assert message["text"].startswith(f"SEV{severity} ")
    assert message["attachments"][0]["color"] == colour
    assert len({e for e, _ in SEVERITY_STYLE.values()}) == len(
        {c for _, c in SEVERITY_STYLE.values()}) == 5


def test_resolved_alert_is_edited_in_place_with_feedback() -> None:
    view = replace(VIEW, state="resolved", ended=STARTED + timedelta(hours=1, minutes=5),
                   feedback=(FeedbackNote("false_positive", "U123"),
                             FeedbackNote("acknowledged", "U456")))
    message = alert_message(view)
    blocks = message["attachments"][0]["blocks"]
    assert message["blocks"][0]["text"]["text"].endswith(":white_check_mark: resolved")
    assert _texts(blocks)[-2:] == [
        ":white_check_mark: Resolved after 1 h 5 min · peak SEV1",
        "Marked false positive by <@U123> · Acknowledged by <@U456>"]
    assert [b["action_id"] for b in blocks[-1]["elements"]] == ["investigate", "false_positive"]
    assert message["text"].endswith("(resolved)")


def test_unknown_parts_are_left_out_and_names_are_escaped() -> None:
    view = replace(VIEW, service="a<b>&c", metrics=ServiceMetrics(cpu_pct=12.0),
                   origin_service=None, exemplar_trace_ids=("abc123",), trace_url_template=None,
                   percentile=None, observed=12_345.0, unit="ms")
    message = alert_message(view)
    texts = _texts(message["blocks"] + message["attachments"][0]["blocks"])
    assert texts[0] == ":large_orange_circle: *SEV2*  `a&lt;b&gt;&amp;c:POST /pay`"
    assert texts[1].startswith("*12.35 s* vs")
    assert "Score 7.4" in texts and "CPU 12%" in texts
    assert "Exemplar traces: `abc123`" in texts
    assert not any(t.startswith("Most likely origin") for t in texts)


def test_severity_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="1..5"):
        replace(VIEW, severity=0)


def test_digest_lists_the_top_keys_with_the_worst_severity_first() -> None:
    view = DigestView(total=37, keys=12, window_minutes=5, top=(
        DigestEntry("checkout:POST /pay", 9, 1), DigestEntry("cart:GET /cart", 4, 3)))
    message = digest_message(view)
    attachment = message["attachments"][0]
    assert message["blocks"][0]["text"]["text"] == (
        ":red_circle: *Alert storm:* 37 anomalies on 12 keys in the last 5 min")
    assert attachment["color"] == SEVERITY_STYLE[1][1]
    assert _texts(attachment["blocks"]) == [
        "*Top keys*\n:red_circle: SEV1  `checkout:POST /pay` ×9\n"
        ":large_yellow_circle: SEV3  `cart:GET /cart` ×4",
        "and 24 more"]
    assert message["metadata"]["event_payload"] == {"kind": "digest"}
