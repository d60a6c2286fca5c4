"""The byte format of a saved `NoveltyStream`: no pickle, versioned, checksummed.

Layout (little-endian): magic b"NVST", a format byte, the config as JSON (u32 length
first), the fields in the order the stream writes them, and a CRC-32 of everything
before it. Fields: int64, float64, an optional int64 (a flag byte, then the value), a
float64 column (u32 count, values) and a clock column (u32 count; then the first clock,
the gcd of the steps and the steps divided by it, in the narrowest unsigned width that
holds them: a regular series' clocks take a byte each).
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from detectors.novelty import NoveltyConfig

__all__ = ["StateReader", "StateWriter", "config_fields"]

MAGIC = b"NVST"
_I64, _F64, _U64 = np.dtype("<i8"), np.dtype("<f8"), np.dtype("<u8")
_STEP_WIDTHS: dict[int, np.dtype[Any]] = {
    1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: _U64
}
_U32 = struct.Struct("<I")
_FLAG = struct.Struct("<B")
_CLOCK_HEAD = struct.Struct("<qQB")  # first clock, step unit, step width
_CRC = struct.Struct("<I")


def config_fields(config: NoveltyConfig) -> dict[str, Any]:
    """The config as plain JSON values; it is the saved state's fingerprint."""
    return dataclasses.asdict(config)


class StateWriter:
    """Collects the parts of a saved stream; `finish` adds the checksum."""

    def __init__(self, version: int, config: NoveltyConfig) -> None:
        text = json.dumps(config_fields(config), sort_keys=True).encode()
        self._parts: list[bytes] = [MAGIC, _FLAG.pack(version), _U32.pack(len(text)), text]

    def ints(self, *values: int) -> None:
        self._parts.append(np.array(values, dtype=_I64).tobytes())

    def floats(self, *values: float) -> None:
        self._parts.append(np.array(values, dtype=_F64).tobytes())

    def optional_int(self, value: int | None) -> None:
        self._parts.append(_FLAG.pack(value is not None))
        self.ints(0 if value is None else value)

    def column(self, values: Iterable[float]) -> None:
        packed = np.fromiter(values, dtype=_F64)
        self._parts += [_U32.pack(packed.size), packed.tobytes()]

    def clocks(self, clocks: Collection[int]) -> None:
        """Non-decreasing int64 clocks as steps of their common unit."""
        self._parts.append(_U32.pack(len(clocks)))
        if not clocks:
            return
        packed = np.fromiter(clocks, dtype=_I64, count=len(clocks))
        steps = np.diff(packed).view(_U64)  # exact mod 2**64: the true steps are >= 0
        unit = int(np.gcd.reduce(steps)) if steps.size else 0
        units = steps // max(unit, 1)
        biggest = int(units.max()) if units.size else 0
        width = next(w for w in (1, 2, 4, 8) if biggest < 1 << (8 * w))
        self._parts.append(_CLOCK_HEAD.pack(int(packed[0]), unit, width))
        self._parts.append(units.astype(_STEP_WIDTHS[width]).tobytes())

    def finish(self) -> bytes:
        body = b"".join(self._parts)
        return body + _CRC.pack(zlib.crc32(body))


class StateReader:
    """Reads what `StateWriter` wrote, in the same order; ValueError on anything else."""

    def __init__(self, data: bytes, version: int, config: NoveltyConfig) -> None:
        data = bytes(data)
        if len(data) < len(MAGIC) + _FLAG.size + _CRC.size or not data.startswith(MAGIC):
            raise _corrupt("it does not start like a saved NoveltyStream")
        body, (crc,) = data[: -_CRC.size], _CRC.unpack(data[-_CRC.size :])
        if zlib.crc32(body) != crc:
            raise _corrupt("the checksum does not match (truncated or altered)")
        (found,) = _FLAG.unpack_from(body, len(MAGIC))
        if found != version:
            raise ValueError(
                f"NoveltyStream.from_bytes: format version {found}, this code reads {version}; "
                "start a fresh NoveltyStream (its state rebuilds from the samples)"
            )
        self._data, self._at = body, len(MAGIC) + _FLAG.size
        (size,) = self._unpack(_U32)
        saved = json.loads(self._take(size).decode())
        given = config_fields(config)
        if saved != given:
            differ = sorted(k for k in saved.keys() | given.keys() if saved.get(k) != given.get(k))
            shown = ", ".join(f"{k} saved {saved.get(k)!r}, given {given.get(k)!r}" for k in differ)
            raise ValueError(
                f"NoveltyStream.from_bytes: the state was saved under another NoveltyConfig "
                f"({shown}); restore it with the config it was saved with, or start a fresh "
                "stream for the new config"
            )

    def ints(self, count: int) -> list[int]:
        return [int(v) for v in np.frombuffer(self._take(8 * count), dtype=_I64)]

    def floats(self, count: int) -> list[float]:
        return [float(v) for v in np.frombuffer(self._take(8 * count), dtype=_F64)]

    def optional_int(self) -> int | None:
        (present,) = self._unpack(_FLAG)
        (value,) = self.ints(1)
        if present not in (0, 1):
            raise _corrupt("an optional field has a bad flag")
        return value if present else None

    def column(self) -> list[float]:
        (rows,) = self._unpack(_U32)
        values: list[float] = np.frombuffer(self._take(8 * rows), dtype=_F64).tolist()
        return values

    def clocks(self) -> list[int]:
        (rows,) = self._unpack(_U32)
        if rows == 0:
            return []
        first, unit, width = self._unpack(_CLOCK_HEAD)
        if width not in _STEP_WIDTHS:
            raise _corrupt(f"a clock column has step width {width}")
        units = np.frombuffer(self._take(width * (rows - 1)), dtype=_STEP_WIDTHS[width])
        steps = (units.astype(_U64) * np.uint64(unit)).view(_I64)  # wraps back exactly
        clocks = np.empty(rows, dtype=_I64)
        clocks[0] = first
        np.cumsum(steps, out=clocks[1:])
        clocks[1:] += clocks[0]
        out: list[int] = clocks.tolist()
        return out

    def finish(self) -> None:
        if self._at != len(self._data):
            raise _corrupt(f"{len(self._data) - self._at} bytes left over after the state")

    def _unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        return fmt.unpack(self._take(fmt.size))

    def _take(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise _corrupt("it ends early (truncated)")
        chunk, self._at = self._data[self._at : end], end
        return chunk


def _corrupt(why: str) -> ValueError:
    return ValueError(
        f"NoveltyStream.from_bytes: not a valid saved stream, {why}; "
        "start a fresh NoveltyStream (its state rebuilds from the samples)"
    )
