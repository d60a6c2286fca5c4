"""The byte format of a saved `NoveltyStream`: no pickle, versioned, checksummed.

Layout (little-endian): magic b"NVST", a format byte, the config as JSON (u32 length
first), the fields in the order the stream writes them (int64, float64, optional int64
as a flag byte and an int64, series as a u32 row count then an int64 clock column and
float64 columns), and a CRC-32 of everything before it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from detectors.novelty import NoveltyConfig

__all__ = ["StateReader", "StateWriter", "config_fields"]

MAGIC = b"NVST"
_I64, _F64 = np.dtype("<i8"), np.dtype("<f8")
_U32 = struct.Struct("<I")
_FLAG = struct.Struct("<B")
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

    def series(self, clocks: Iterable[int], columns: Sequence[Iterable[float]]) -> None:
        """A clock column and float columns of the same length."""
        packed_clocks = np.fromiter(clocks, dtype=_I64)
        self._parts += [_U32.pack(packed_clocks.size), packed_clocks.tobytes()]
        for column in columns:
            packed = np.fromiter(column, dtype=_F64)
            if packed.size != packed_clocks.size:
                raise AssertionError("a saved series has columns of different lengths")
            self._parts.append(packed.tobytes())

    def finish(self) -> bytes:
        body = b"".join(self._parts)
        return body + _CRC.pack(zlib.crc32(body))


class StateReader:
    """Reads what `StateWriter` wrote, in the same order; ValueError on anything else."""

    def __init__(self, data: bytes, version: int, config: NoveltyConfig) -> None:
        data = bytes(data)
        if len(data) < len(MAGIC) + _FLAG.size + _U32.size + _CRC.size or not data.startswith(
            MAGIC
        ):
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

    def series(self, width: int) -> tuple[deque[int], list[deque[float]]]:
        (rows,) = self._unpack(_U32)
        clocks: deque[int] = deque(np.frombuffer(self._take(8 * rows), dtype=_I64).tolist())
        columns = [
            deque[float](np.frombuffer(self._take(8 * rows), dtype=_F64).tolist())
            for _ in range(width)
        ]
        return clocks, columns

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
