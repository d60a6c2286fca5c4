"""score_windows' packed keys (detectors._window_keys): quanta of the raw durations give
exactly what the general path gives, where a transform clamps too, and each fallback."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import detectors.scoring as scoring
from detectors import _group_order, _window_keys
from detectors.config import ScoringConfig
from detectors.scoring import BaselineTable, score_windows
from detectors.transforms import LOG_MIN_MS, Transform
from tests.test_detectors_group_order import NOW, S, _assert_same_windows, _baseline

CHUNK = 1000


def _table() -> BaselineTable:
    """Rows 0-2: log, log1p, identity; row 3 cold."""
    rng = np.random.default_rng(11)
    return BaselineTable.from_baselines([
        _baseline(np.exp(rng.normal(0.0, 0.5, 3000))),
        _baseline(rng.exponential(10.0, 3000), Transform.LOG1P),
        _baseline(rng.normal(-5.0, 2.0, 3000), Transform.IDENTITY),
        _baseline(np.exp(rng.normal(1.0, 0.5, 3000)), warm=False),
    ])


def _packed_and_general(
    durs: np.ndarray, keys: np.ndarray, starts: np.ndarray, table: BaselineTable,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[scoring.WindowScores, scoring.WindowScores, int]:
    """score_windows through the packed path (asserted taken) and through the general path,
    and how many chunks went through ordered_bits (the rest took the one-shift path)."""
    monkeypatch.setattr(_group_order, "CHUNK", CHUNK)
    config = ScoringConfig(min_tail_count=5, min_window_count=2)
    general_chunks = []
    bits = _group_order.ordered_bits

    def counting(values: np.ndarray, n_bits: int) -> np.ndarray:
        general_chunks.append(values.size)
        return bits(values, n_bits)

    monkeypatch.setattr(_window_keys, "ordered_bits", counting)
    window_ns = config.window_s * S
    first = int(starts.min()) // window_ns
    n_windows = int(starts.max()) // window_ns - first + 1
    assert scoring._packed_order(durs, keys, starts, window_ns, first, n_windows, table)
    general_chunks.clear()
    with np.errstate(invalid="ignore"):  # inf - inf between two infinite order statistics
        packed = score_windows(durs, keys, starts, table, config)
        n_general = len(general_chunks)
        monkeypatch.setattr(scoring, "_packed_order", lambda *args: None)
        return packed, score_windows(durs, keys, starts, table, config), n_general


def _spans(
    n: int, n_keys: int, seed: int, minutes: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, n_keys, n)
    starts = NOW + rng.integers(0, minutes * 60 * S, n)
    return np.exp(rng.normal(0.0, 2.0, n)), keys, starts


@pytest.mark.parametrize(
    "clamped",
    [
        # log: everything at or below LOG_MIN_MS is one transformed value, raw values differ
        pytest.param(lambda r, n: r.uniform(-1.0, 2 * LOG_MIN_MS, n), id="log-clamp"),
        pytest.param(lambda r, n: r.choice([0.0, 5e-324, 1e-9, LOG_MIN_MS, 1e-3], n), id="tiny"),
        # log1p: every negative value is ln(1 + 0) = 0
        pytest.param(lambda r, n: r.normal(-1.0, 2.0, n).round(1), id="negatives"),
        pytest.param(lambda r, n: r.choice([-0.0, 0.0, -np.inf, np.inf, 1.0], n), id="signs-inf"),
    ],
)
def test_raw_quanta_give_the_general_paths_windows(
    clamped: Callable[[np.random.Generator, int], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    durs, keys, starts = _spans(12_000, 4, seed=1)
    rng = np.random.default_rng(2)
    some = rng.random(durs.size) < 0.6
    durs[some] = clamped(rng, int(some.sum()))
    packed, general, _ = _packed_and_general(durs, keys, starts, _table(), monkeypatch)
    _assert_same_windows(packed, general)
    assert np.isfinite(packed.median).sum() > 10


def test_one_shift_chunks_and_ordered_bits_chunks_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks without a sign bit or NaN take one shift, the rest ordered_bits: the same map."""
    durs, keys, starts = _spans(10 * CHUNK, 3, seed=3)
    durs[3 * CHUNK + 7] = -2.5  # log1p and identity rows order it below every positive value
    durs[6 * CHUNK + 1] = -0.0
    durs[9 * CHUNK :: 5] = -np.abs(durs[9 * CHUNK :: 5])
    packed, general, n_general = _packed_and_general(durs, keys, starts, _table(), monkeypatch)
    assert n_general == 3  # the other seven chunks took the one-shift path
    _assert_same_windows(packed, general)


@pytest.mark.parametrize("dense", [True, False])
def test_every_code_present_or_not(dense: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """All (key, window) codes present: a code is its own group; otherwise they are numbered."""
    durs, keys, starts = _spans(8000, 4, seed=4)
    if not dense:
        starts[keys == 1] = NOW + 4 * 60 * S  # key 1 in one window of five only
    packed, general, _ = _packed_and_general(durs, keys, starts, _table(), monkeypatch)
    _assert_same_windows(packed, general)
    assert (len(packed) == 4 * 5) is dense


@pytest.mark.parametrize(
    "nan_bits", [0x7FF8000000000000, 0x7FF0000000000001, 0xFFF8000000000000],
    ids=["quiet", "signalling-low-payload", "negative"],
)
def test_any_nan_goes_to_the_general_path(nan_bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_group_order, "CHUNK", CHUNK)
    durs, keys, starts = _spans(5 * CHUNK, 3, seed=5)
    durs[2 * CHUNK + 10] = np.array([nan_bits], np.uint64).view(np.float64)[0]
    keys[2 * CHUNK + 10] = 2  # identity: the NaN stays NaN, as the general path keeps it
    table, config = _table(), ScoringConfig()
    window_ns = config.window_s * S
    first = int(starts.min()) // window_ns
    n_windows = int(starts.max()) // window_ns - first + 1
    assert scoring._packed_order(durs, keys, starts, window_ns, first, n_windows, table) is None


@pytest.mark.parametrize("bad", [4, -1, 2**62])  # 2**62 * n_windows wraps to a valid code
def test_a_key_index_outside_the_table_goes_to_the_general_path(bad: int) -> None:
    durs, keys, starts = _spans(3000, 3, seed=6, minutes=4)
    keys[1234] = bad
    window_ns = 60 * S
    first = int(starts.min()) // window_ns
    n_windows = int(starts.max()) // window_ns - first + 1
    assert n_windows == 4
    assert scoring._packed_order(durs, keys, starts, window_ns, first, n_windows, _table()) is None
