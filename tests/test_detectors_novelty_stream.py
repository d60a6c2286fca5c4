"""detectors.novelty_stream: the streaming scorer equals the batch one row for row, bit for bit.

Every series is scored twice, by `novelty_scores` over the whole array and by feeding
`NoveltyStream` one sample at a time, and the two must be identical floats (not close):
synthetic daily series, gaps, a clock that steps back, flatlines, frozen runs, minute
and hour steps, overflowing values, and every file of the real NAB corpus. Saved and
restored streams must continue as if never stopped.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from bench.nab.corpus import NabCorpus
from bench.nab.harness import default_detectors
from bench.nab.opsbot import NAB_NOVELTY, OpsbotNoveltyDetector, OpsbotStreamDetector
from detectors.novelty import (
    DAY_NS,
    NoveltyConfig,
    novelty_scores,
    range_max,
    series_clock,
    stuck_runs,
)
from detectors.novelty_stream import NoveltyStream, _SlidingMax
from tests.conftest import shared_path

MINUTE_NS = 60 * 10**9
FIVE_MIN_NS = 5 * MINUTE_NS
HOUR_NS = 60 * MINUTE_NS
T0_NS = int(np.datetime64("2014-01-06T00:00:00", "ns").astype(np.int64))
# short windows and holds, so eviction, warm-ups and holds all happen within a few days
SHORT = NoveltyConfig(
    history_s=2 * 86400.0,
    warmup_s=3 * 3600.0,
    seasonal_smooth_s=2 * 3600.0,
    seasonal_history_s=3 * 86400.0,
    spread_window_s=6 * 3600.0,
    spread_history_s=2 * 86400.0,
    hold_s=5 * 3600.0,
    stuck_min_samples=6,
    stuck_weight=0.3,
)
CONFIGS = [NoveltyConfig(), SHORT, NoveltyConfig(hold_s=0.0, stuck_weight=0.0, warmup_s=0.0)]


def _stream(ts: np.ndarray, values: np.ndarray, config: NoveltyConfig) -> np.ndarray:
    stream = NoveltyStream(config)
    return np.array([stream.update(int(t), float(v)) for t, v in zip(ts, values, strict=True)])


def _assert_same(ts: np.ndarray, values: np.ndarray, config: NoveltyConfig) -> np.ndarray:
    """The batch scores, after checking the stream gives the same floats (signed zeros too)."""
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow case warns in the batch
        want = novelty_scores(ts, values, config)
    got = _stream(ts, values, config)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    return want


def _daily(n: int, seed: int = 0, step_ns: int = FIVE_MIN_NS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0_NS + np.arange(n, dtype=np.int64) * step_ns
    phase = 2 * np.pi * (ts - T0_NS) / DAY_NS
    return ts, 50 + 10 * np.sin(phase) + rng.normal(0, 1, n)


def _frozen(n: int = 3000, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A coarse gauge (plateaus of a few samples) whose exporter freezes twice."""
    ts, values = _daily(n, seed)
    values = np.round(values / 3)
    values[1500:1560] = values[1500]
    values[2400:2600] = values[2400]
    return ts, values


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "short", "no-hold"])
def test_a_daily_series_with_a_step_scores_the_same_streamed(config: NoveltyConfig) -> None:
    ts, values = _daily(4000)
    values[3000:3100] += 40
    scores = _assert_same(ts, values, config)
    assert np.count_nonzero(scores) >= 3  # the series exercises more than warm-up zeros


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "short", "no-hold"])
def test_gaps_repeats_and_a_clock_stepping_back_score_the_same(config: NoveltyConfig) -> None:
    ts, values = _daily(3000, seed=1)
    ts[800:] += 2 * DAY_NS  # two days without data
    ts[1500:] -= HOUR_NS  # an hour repeated, as NAB's DST artefacts
    ts[2000:2010] = ts[2000]  # one timestamp for ten rows
    ts[2500] = ts[2499] - 3 * DAY_NS  # one sample far in the past
    values[1600] = 90.0
    _assert_same(ts, values, config)


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "short", "no-hold"])
def test_a_flatline_and_a_step_off_it_score_the_same(config: NoveltyConfig) -> None:
    ts = T0_NS + np.arange(2000, dtype=np.int64) * FIVE_MIN_NS
    flat = np.full(2000, 5.0)
    assert not _assert_same(ts, flat, config).any()
    flat[1200] = 6.0
    flat[1700:] = 0.0  # a flatline at zero: the flat-past span is its 1e-9 floor
    assert _assert_same(ts, flat, config)[1200] > 0.99


@pytest.mark.parametrize("min_samples", [1, 6, 24])
def test_frozen_runs_score_the_same(min_samples: int) -> None:
    ts, values = _frozen()
    unheld = NoveltyConfig(stuck_min_samples=min_samples, stuck_weight=0.4, hold_s=0.0)
    hits = np.flatnonzero(stuck_runs(values, min_samples))
    assert hits.size and np.all(_assert_same(ts, values, unheld)[hits] >= 0.4)
    _assert_same(ts, values, NoveltyConfig(stuck_min_samples=min_samples, stuck_weight=0.4))


@pytest.mark.parametrize("step_ns", [MINUTE_NS, HOUR_NS])
def test_minute_and_hour_steps_score_the_same(step_ns: int) -> None:
    n = 6000 if step_ns == MINUTE_NS else 2500  # four days of minutes, about 100 days of hours
    ts, values = _daily(n, seed=2, step_ns=step_ns)
    values[n - 500 :] += np.linspace(0, 30, 500)
    for config in CONFIGS:
        _assert_same(ts, values, config)


def test_a_random_walk_scores_the_same() -> None:
    rng = np.random.default_rng(7)
    ts = T0_NS + np.cumsum(rng.integers(1, 10 * MINUTE_NS, 5000))  # irregular steps
    values = 1e6 + np.cumsum(rng.normal(0, 1, 5000))  # a level that dwarfs the steps
    for config in CONFIGS:
        _assert_same(ts, values, config)


def test_values_whose_sums_overflow_score_the_same() -> None:
    """A finite value near float64's limit turns the batch's running sums into inf, then NaN."""
    ts, values = _daily(3000, seed=3)
    values[2000] = 1e200  # its square overflows the spread sums
    values[2500] = -1.5e308  # its residual overflows the seasonal sums
    scores = _assert_same(ts, values, SHORT)
    assert scores[2000] == 1.0 and np.count_nonzero(scores[2001:]) > 0


def test_the_sliding_maximum_equals_the_batch_range_max_with_nan_and_inf() -> None:
    """The monotonic deque against `range_max` over the same time windows; NaN wins, as there."""
    rng = np.random.default_rng(11)
    clock = series_clock(rng.integers(0, 40, 3000).cumsum() - rng.integers(0, 60, 3000))
    x = rng.normal(0, 1, 3000)
    x[rng.integers(0, 3000, 40)] = np.nan
    x[rng.integers(0, 3000, 40)] = np.inf
    x[rng.integers(0, 3000, 40)] = -np.inf
    for span in (0, 1, 50, 400):
        want = range_max(x, np.searchsorted(clock, clock - span, side="left"), np.arange(x.size))
        window, got = _SlidingMax(), []
        for c, v in zip(clock.tolist(), x.tolist(), strict=True):
            got.append(window.peek(c - span))
            window.push(c, v)
        np.testing.assert_array_equal(np.array(got), want)


def test_every_file_of_the_nab_corpus_scores_the_same_in_the_harness() -> None:
    """NAB's "opsbot_stream" row (NoveltyStream, NAB_NOVELTY) equals "opsbot" file by file."""
    names = [d.name for d in default_detectors()]
    assert names[names.index("opsbot") + 1] == "opsbot_stream"
    batch, stream = OpsbotNoveltyDetector(), OpsbotStreamDetector()
    assert batch.config is stream.config is None  # both mean NAB_NOVELTY
    corpus = NabCorpus.open(shared_path("nab"))
    for key in corpus.keys:
        f = corpus.load(key)
        want = batch.score_series(f.timestamps_ns, f.values)
        got = stream.score_series(f.timestamps_ns, f.values)
        np.testing.assert_array_equal(got, want, err_msg=key)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64), err_msg=key)


# ---- persistence ---------------------------------------------------------------------------


def _resumed(ts: np.ndarray, values: np.ndarray, config: NoveltyConfig, cuts: list[int]) -> None:
    """Save and restore at every cut; the scores and final state equal an unbroken run."""
    unbroken = NoveltyStream(config)
    want = [unbroken.update(int(t), float(v)) for t, v in zip(ts, values, strict=True)]
    stream, got = NoveltyStream(config), []
    for i, (t, v) in enumerate(zip(ts, values, strict=True)):
        if i in cuts:
            saved = stream.to_bytes()
            stream = NoveltyStream.from_bytes(config, saved)
            assert stream.to_bytes() == saved
        got.append(stream.update(int(t), float(v)))
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert stream.to_bytes() == unbroken.to_bytes()


def test_a_restored_stream_continues_like_one_never_stopped() -> None:
    ts, values = _frozen()
    ts[2000:] -= HOUR_NS  # restore across a step back too
    values[1000] += 30
    held = novelty_scores(ts, values, SHORT)
    alert = int(np.flatnonzero(held > 0.3)[0])  # an alert, then its hold
    stuck = int(np.flatnonzero(stuck_runs(values, SHORT.stuck_min_samples))[0])
    cuts = [0, 1, 2, 287, 288, 289, alert + 1, alert + 2, stuck, stuck + 1, 2000, 2999]
    _resumed(ts, values, SHORT, cuts)
    _resumed(ts, values, NAB_NOVELTY, cuts)


def test_a_restored_irregular_series_continues_too() -> None:
    """Uneven steps, a jump of years and a spread window longer than the seasonal period
    (its sums are then saved in full, not rebuilt from the lag buffer)."""
    rng = np.random.default_rng(8)
    ts = T0_NS + np.cumsum(rng.integers(0, 7 * MINUTE_NS, 4000))
    ts[3000:] += 5 * 365 * DAY_NS
    ts[3500:] -= 3 * HOUR_NS
    values = 1e6 + np.cumsum(rng.normal(0, 1, 4000))
    long_spread = replace(SHORT, spread_window_s=2.5 * 86400.0)
    cuts = [0, 1, 5, 700, 1500, 2999, 3000, 3001, 3500, 3999]
    for config in (SHORT, long_spread):
        _resumed(ts, values, config, cuts)


def test_the_saved_state_of_a_minute_series_stays_compact() -> None:
    """Three days of minutes: about a day of values (the seasonal lag) and the smoothing sums,
    8 bytes each, with the clocks at a byte a row; packed raw it would be some 80 kB."""
    ts, values = _daily(3 * 1440, seed=5, step_ns=MINUTE_NS)
    stream = NoveltyStream(NAB_NOVELTY)
    for t, v in zip(ts, values, strict=True):
        stream.update(int(t), float(v))
    assert len(stream.to_bytes()) < 35_000


def test_restoring_under_another_config_is_refused_with_the_fields_named() -> None:
    stream = NoveltyStream(SHORT)
    ts, values = _daily(50)
    for t, v in zip(ts, values, strict=True):
        stream.update(int(t), float(v))
    other = replace(SHORT, hold_s=1.0)
    mismatch = r"another NoveltyConfig \(hold_s saved 18000.0, given 1.0"
    with pytest.raises(ValueError, match=mismatch):
        NoveltyStream.from_bytes(other, stream.to_bytes())
    same = replace(SHORT, history_s=172800)  # an int equal to the float
    restored = NoveltyStream.from_bytes(same, stream.to_bytes())
    assert restored.update(int(ts[-1] + FIVE_MIN_NS), 99.0) == stream.update(
        int(ts[-1] + FIVE_MIN_NS), 99.0
    )


def test_corrupt_truncated_or_foreign_bytes_are_refused() -> None:
    stream = NoveltyStream(SHORT)
    ts, values = _daily(500)
    for t, v in zip(ts, values, strict=True):
        stream.update(int(t), float(v))
    data = stream.to_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    cases = {
        "checksum": [bytes(flipped), data[:-1], data[: len(data) // 2], data + b"\0"],
        "does not start like": [b"", b"NVST", b"PK\x03\x04" + data[4:]],
        "format version 9": [_recrc(data[:4] + b"\x09" + data[5:-4])],
        "inconsistent": [_recrc(_with_rows(data[:-4], -5)), _recrc(_with_rows(data[:-4], 0))],
        "left over": [_recrc(data[:-4] + b"\0")],
    }
    for message, broken in cases.items():
        for blob in broken:
            with pytest.raises(ValueError, match=message):
                NoveltyStream.from_bytes(SHORT, blob)


def test_a_non_finite_value_is_refused_and_leaves_the_state_as_it_was() -> None:
    ts, values = _daily(400)
    stream, twin = NoveltyStream(SHORT), NoveltyStream(SHORT)
    for t, v in zip(ts[:300], values[:300], strict=True):
        stream.update(int(t), float(v))
        twin.update(int(t), float(v))
    before = stream.to_bytes()
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="finite value"):
            stream.update(int(ts[300]), bad)
    with pytest.raises(ValueError, match="outside int64"):
        stream.update(2**63, 1.0)
    assert stream.to_bytes() == before and stream.rows == 300
    for t, v in zip(ts[300:], values[300:], strict=True):
        assert stream.update(int(t), float(v)) == twin.update(int(t), float(v))
    with pytest.raises(ValueError, match="finite value"):
        NoveltyStream(SHORT).update(int(ts[0]), np.nan)  # also on an empty stream


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _with_rows(body: bytes, rows: int) -> bytes:
    """The body with its row count (the first int64 after the config) replaced."""
    (size,) = struct.unpack_from("<I", body, 5)
    at = 9 + size
    return body[:at] + struct.pack("<q", rows) + body[at + 8 :]
