"""The protobuf column path: keys, ids and errors read from the span bytes equal the full parse."""

from __future__ import annotations

import random

import pytest

import bot.ingest.otlp as otlp
from bot.ingest import _otlp_columns
from bot.ingest.otlp import decode_traces_pb
from bot.spans import RejectCounter
from tests._otlp_builders import T0, body, raw_request, span


def _names(rng: random.Random) -> list[str]:
    long = "prepareOrderItemsAndShippingQuoteFromCart"
    base = ["GET /", "GET /a", "GET /a\x00", "SELECT products", "x" * 127, "é" * 40, long,
            long[:-1] + "T"]
    return [rng.choice(base) for _ in range(300)]


@pytest.mark.parametrize("extra", ["", "long", "state"])
def test_keys_from_bytes_equal_the_name_column(extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names differing in one byte, a trailing NUL, multi-byte UTF-8, one scope per service
    twice over; `long` (a 200-byte name) and `state` (trace_state) take the name column."""
    rng = random.Random(len(extra))
    names = _names(rng)
    spans = [span(n, parent=rng.randbytes(8) if rng.random() < 0.5 else b"",
                  code=rng.choice((0, 0, 1, 2)), flags=rng.choice((0, 0x100))) for n in names]
    if extra == "long":
        spans[7].name = "y" * 200
    if extra == "state":
        spans[3].trace_state = "k=v"
    resources = [("api", spans[:100]), ("db", spans[100:150]), ("api", spans[150:])]
    used_bytes: list[object] = []
    real = _otlp_columns.name_groups
    monkeypatch.setattr(otlp, "name_groups",
                        lambda *a: used_bytes.append(r := real(*a)) or r)  # type: ignore[func-returns-value]
    batch = decode_traces_pb(body(*resources), RejectCounter())
    assert batch.keys == [f"{svc}:{s.name}" for svc, part in resources for s in part]
    assert batch.error.tolist() == [s.status.code == 2 for _, part in resources for s in part]
    assert batch.trace_ids == [s.trace_id.hex() for _, part in resources for s in part]
    names_, codes = batch.key_codes()
    assert len(names_) == len(set(batch.keys))  # one code per key, across both api scopes
    assert (used_bytes[0] is not None) == (extra == "")


@pytest.mark.parametrize(("tail", "rejected"), [(b"\x22\x04abcd", {"bad_id": 1}),
                                                (b"\x22\x08" + bytes(range(1, 9)), {})])
def test_a_parent_id_out_of_field_order_is_still_checked(tail: bytes,
                                                         rejected: dict[str, int]) -> None:
    """A parent id after the other fields (the last one counts) is not where the column path
    looks; the parent column's length tells, and the request is checked span by span."""
    spans = [span(f"op{i}", parent=bytes(range(8)) if i % 2 else b"") for i in range(6)]
    raws = [s.SerializeToString() for s in spans]
    raws[2] += tail  # span 2 had no parent; now it has one, out of order
    req = raw_request(raws)
    rejects = RejectCounter()
    batch = decode_traces_pb(req, rejects)
    assert rejects.as_dict() == rejected
    assert len(batch) == 6 - len(rejected)
    assert batch.keys == [f"unknown_service:op{i}" for i in range(6) if i != 2 or not rejected]


@pytest.mark.parametrize("parent", [b"", bytes(range(1, 9))])
def test_a_last_span_ending_after_its_head_is_decoded_span_by_span(parent: bytes) -> None:
    """The last span is only its ids (and parent id): no name, no times. The columns still
    count one per span because span 0 has each field twice (the last one counts), so the
    name column would be misaligned: the request is decoded span by span, not indexed past
    the buffer's end."""
    spans = [span(f"op{i}", parent=bytes(range(8)) if i else b"") for i in range(3)]
    raws = [s.SerializeToString() for s in spans]
    raws[0] += b"\x2a\x03dup" + b"\x39" + (T0 + 1).to_bytes(8, "little") + b"\x41" + (
        T0 + 2).to_bytes(8, "little")
    last = spans[2]
    raws[2] = b"\x0a\x10" + last.trace_id + b"\x12\x08" + last.span_id + (
        b"\x22\x08" + parent if parent else b"")
    req = raw_request(raws)
    rejects = RejectCounter()
    batch = decode_traces_pb(req, rejects)
    assert rejects.as_dict() == {"missing_field": 1}
    assert batch.keys == ["unknown_service:dup", "unknown_service:op1"]
    assert batch.start_ns.tolist() == [T0 + 1, T0]
    assert batch.duration_ns.tolist() == [1, spans[1].end_time_unix_nano - T0]


def test_error_rows_equal_the_official_parse_for_odd_status_encodings() -> None:
    """Error candidates are confirmed in one parse with sentinels between them; spans whose
    tail only looks like an error (an unknown field ending 18 02), codes written twice, an
    explicit code 0 after a 2, and a status after the flags all read as the official parse."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

    rng = random.Random(5)
    spans = [span(f"op{i % 4}", code=rng.choice((0, 0, 1, 2)), flags=rng.choice((0, 0x100)))
             for i in range(60)]
    raws = [s.SerializeToString() for s in spans]
    fake_tail = b"\xa2\x06\x02\x18\x02"  # field 100, 2 bytes: 18 02
    for i, extra in ((3, fake_tail), (11, fake_tail), (20, b"\x7a\x02\x18\x02"),
                     (30, b"\x7a\x02\x18\x00"), (41, b"\x7a\x02\x18\x02\x85\x01\x00\x01\x00\x00")):
        raws[i] += extra
    req = raw_request(raws)
    batch = decode_traces_pb(req, RejectCounter())
    assert batch.error.tolist() == [PbSpan.FromString(r).status.code == 2 for r in raws]


@pytest.mark.parametrize("codes", [[2, 2, 0, 2], [0, 0], [2], [1, 2, 1]])
def test_status_codes_of_candidates(codes: list[int]) -> None:
    """The sentinel parse gives each span's own code, also for spans with no status."""
    raws = [span("x", code=c).SerializeToString() for c in codes]
    spans = _otlp_columns.SpanBytes.of(raws)
    got = _otlp_columns._status_codes(spans, list(range(len(raws))))
    assert got.tolist() == codes


def test_slot_collisions_fall_back_to_the_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 2-slot table every request has names sharing a slot: the check catches it
    and the sort groups them, so keys are still exact and the bytes path is still used."""
    import numpy as np

    monkeypatch.setattr(_otlp_columns, "_SLOT_SHIFT", np.uint64(63))
    rng = random.Random(9)
    names = _names(rng)
    spans = [span(n, parent=rng.randbytes(8) if rng.random() < 0.5 else b"") for n in names]
    sorted_calls: list[int] = []
    real = _otlp_columns._by_sort
    monkeypatch.setattr(_otlp_columns, "_by_sort",
                        lambda h: sorted_calls.append(1) or real(h))  # type: ignore[func-returns-value]
    batch = decode_traces_pb(body(("api", spans[:120]), ("db", spans[120:])), RejectCounter())
    assert batch.keys == [f"{svc}:{s.name}" for svc, part in (("api", spans[:120]),
                                                              ("db", spans[120:])) for s in part]
    names_, _ = batch.key_codes()
    assert len(names_) == len(set(batch.keys)) and sorted_calls == [1]
