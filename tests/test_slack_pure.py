"""Pure parts of the bot: /opsbot parsing, the storm rate cap, thread history, chart data,
which thread replies are questions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bot.slack.chart import HOUR_NS, chart_data, render_png
from bot.slack.conversation import asks_question
from bot.slack.slash import SlashCommand, SlashUsageError, parse_duration, parse_slash
from bot.slack.storm import ChannelRateCap
from bot.slack.threads import ThreadHistory
from bot.store import AggregateRow, AnomalyRecord
from detectors.aggregate import LatencyAggregate

S = 10**9


@pytest.mark.parametrize(("text", "expected"), [
    ("", SlashCommand("help")),
    ("recalc", SlashCommand("recalc")),
    ("recalc all --dry-run", SlashCommand("recalc", dry_run=True)),
    ("recalc --dry-run checkout:POST /pay", SlashCommand("recalc", "checkout:POST /pay",
                                                         dry_run=True)),
    ("STATUS", SlashCommand("status")),
    ("mute checkout:POST /pay 1h30m", SlashCommand("mute", "checkout:POST /pay",
                                                   duration_s=5400)),
    ("unmute checkout", SlashCommand("unmute", "checkout")),
    ("anomalies", SlashCommand("anomalies")),
])
def test_parse_slash(text: str, expected: SlashCommand) -> None:
    assert parse_slash(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("mute checkout", "needs a key or service and a duration"),
    ("mute checkout soon", "not a duration"),
    ("mute checkout 0m", "between 1 second and 30 days"),
    ("mute checkout 31d", "between 1 second and 30 days"),
    ("recalc --force", "unknown option `--force`"),
    ("status now", "takes no arguments"),
    ("unmute", "needs the key or service"),
    ("mute :op 1h", "neither a service nor a key"),
    ("deploy", "unknown command `deploy`"),
])
def test_parse_slash_usage_errors(text: str, message: str) -> None:
    with pytest.raises(SlashUsageError, match=message):
        parse_slash(text)


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "1h", "2h30m", "1d", "1w")] == [
        90, 1800, 3600, 9000, 86_400, 604_800]
    assert parse_slash("mute checkout 1h").admin_only and not parse_slash("status").admin_only


def test_rate_cap_is_a_sliding_window_per_channel() -> None:
    cap = ChannelRateCap(max_posts=2, window_s=60)
    assert [cap.admit("a", t * S) for t in (0, 10, 20)] == [True, True, False]
    assert cap.admit("b", 20 * S)  # another channel has its own budget
    assert not cap.admit("a", 59 * S) and cap.admit("a", 60 * S)  # the t=0 post left the window
    storm, fresh = cap.fold("a", "x:y", 3, 20 * S)
    again, fresh2 = cap.fold("a", "x:y", 1, 30 * S)
    later, fresh3 = cap.fold("a", "x:z", 4, 81 * S)
    assert (fresh, fresh2, fresh3) == (True, False, True) and again is storm
    view = storm.view()
    assert (view.total, view.keys, view.top[0].count, view.top[0].worst_severity) == (2, 1, 2, 1)
    assert later.dedupe_key != storm.dedupe_key


def test_thread_history_is_bounded() -> None:
    history = ThreadHistory(threads=2, turns=2)
    for i in range(3):
        history.add("C", "1.0", "U", f"m{i}")
    history.add("C", "2.0", "U", "x")
    history.add("C", "3.0", "U", "y")  # evicts the least recently active thread (1.0)
    assert history.turns("C", "1.0") == ()
    history.add("C", "2.0", "U", "z")
    assert history.turns("C", "2.0") == (("U", "x"), ("U", "z"))


def _agg(samples: np.ndarray) -> LatencyAggregate:
    agg = LatencyAggregate()
    agg.add(samples)
    return agg


def test_chart_band_is_the_same_hour_of_the_previous_week() -> None:
    rng = np.random.default_rng(1)
    now = 1_710_252_000 * S + 1800 * S  # mid-hour
    last = now // HOUR_NS
    rows, raw = [], {}
    for h in range(last - 8 * 24, last + 1):
        samples = rng.lognormal(np.log(2 + (h % 24)), 0.2, 300)
        raw[h] = samples
        rows.append(AggregateRow(1, h // 24, h % 24, _agg(samples)))
    record = AnomalyRecord(uid="u", key="svc:op", service="svc", operation="op", state="open",
                           started_ns=now - 600 * S, updated_ns=now, peak_score=5.0,
                           peak_severity=2, series_id=1)
    data = chart_data(rows, record, now)
    assert len(data.hours) == 24 and data.hours[-1].timestamp() == last * 3600
    # observed p99 of the last hour vs numpy over the raw samples (histogram resolution)
    assert data.observed_p99[-1] == pytest.approx(np.quantile(raw[last], 0.99), rel=0.15)
    week = np.concatenate([raw[last - 24 * d] for d in range(1, 8)])
    assert data.band_low[-1] == pytest.approx(np.quantile(week, 0.5), rel=0.15)
    assert data.band_high[-1] == pytest.approx(np.quantile(week, 0.99), rel=0.15)
    assert data.has_data
    assert render_png(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_chart_without_history_has_no_data() -> None:
    record = AnomalyRecord(uid="u", key="svc:op", service="svc", operation="op", state="open",
                           started_ns=0, updated_ns=0, peak_score=5.0, peak_severity=2,
                           series_id=1)
    data = chart_data([], record, 1_710_252_000 * S)
    assert not data.has_data and all(math.isnan(v) for v in data.band_low)


@pytest.mark.parametrize(("text", "expected"), [
    ("why is it slow", True), ("What changed at 14:00", True), ("how come", True),
    ("when did it start", True), ("is the pool full", True), ("Are we paging?", True),
    ("can you check the db", True), ("which pod", True), ("who deployed", True),
    ("did it recover?", True), ("<@U0OPSBOT> check the db pool", True),
    ("<@U0OPSBOT|opsbot> check the db pool", True), ("<@UOTHER> why", True),
    ("thanks, looking", False), ("we deployed at 14:00", False), ("howdy all", False),
    ("this is fine", False), ("<@UOTHER> check the db pool", False), ("", False)])
def test_thread_reply_asks_a_question(text: str, expected: bool) -> None:
    assert asks_question(text, "U0OPSBOT") is expected


def test_rate_cap_state_round_trips() -> None:
    cap = ChannelRateCap(max_posts=2, window_s=300)
    assert cap.admit("C1", 1 * S) and cap.admit("C1", 2 * S) and not cap.admit("C1", 3 * S)
    storm, fresh = cap.fold("C1", "svc:op", 3, 3 * S)
    restored = ChannelRateCap(max_posts=2, window_s=300)
    restored.restore("C1", json.loads(json.dumps(cap.state("C1"))))
    assert not restored.admit("C1", 4 * S) and restored.admit("C1", 302 * S)
    again, fresh_again = restored.fold("C1", "svc:op", 2, 5 * S)
    assert fresh and not fresh_again and again.dedupe_key == storm.dedupe_key
    assert again.counts == {"svc:op": 2} and again.worst == {"svc:op": 2}
    assert restored.state("C2") == {"posts": [], "storm": None}


def test_a_metric_alert_is_in_the_metric_unit_not_ms() -> None:
    from bot.slack.blocks import alert_message
    from bot.slack.views import alert_view
    from detectors.transforms import unit_for_metric

    assert unit_for_metric('opsbot_sim_cpu_percent{service="kx-exchange"}') == "%"
    assert unit_for_metric("process_resident_memory_bytes") == "bytes"
    assert unit_for_metric("queue_depth") == ""

    def record(unit: str | None) -> AnomalyRecord:
        base: dict[str, object] = {"p50": 29.4, "p99": 35.3}
        if unit is not None:
            base["unit"] = unit
        return AnomalyRecord(
            uid="u", key="kx-exchange:opsbot_sim_cpu_percent", service="kx-exchange",
            operation="opsbot_sim_cpu_percent", state="open", started_ns=1, updated_ns=2,
            peak_score=7.4, peak_severity=2, series_id=1, observed=46.5, baseline=base,
            details={"signal": "metric"}, id=8)

    cpu = alert_view(record("%"), None, [], None)
    text = json.dumps(alert_message(cpu))
    assert cpu.unit == "%" and "46.5%" in text and " ms" not in text
    assert alert_view(record(None), None, [], None).unit == ""  # unknown, never "ms"
