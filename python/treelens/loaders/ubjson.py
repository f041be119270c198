"""A bounds-checked reader for Universal Binary JSON (UBJSON), as XGBoost writes it.

Values map to Python as JSON would, except that strongly typed numeric arrays
(``[$<type>#<count>`` followed by raw big-endian data) become 1-D NumPy arrays in
native byte order. Every length and count is checked against the remaining
buffer, nesting is limited, and any malformed input raises ``ValueError``.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

MAX_DEPTH = 64

# marker -> (struct format of a scalar, NumPy dtype of a typed array)
_NUMERIC: Dict[int, Tuple[str, str]] = {
    ord("i"): (">b", ">i1"),
    ord("U"): (">B", ">u1"),
    ord("I"): (">h", ">i2"),
    ord("l"): (">i", ">i4"),
    ord("L"): (">q", ">i8"),
    ord("d"): (">f", ">f4"),
    ord("D"): (">d", ">f8"),
}
_INTEGER = frozenset(ord(c) for c in "iUIlL")
_NO_PAYLOAD = {ord("Z"): None, ord("T"): True, ord("F"): False}
_NOOP = ord("N")


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Parse one UBJSON document.

    Args:
        data: the encoded document (trailing no-op markers are allowed).

    Returns:
        dict / list / str / int / float / bool / None, with typed numeric arrays
        as NumPy arrays of shape [count].

    Raises:
        ValueError: truncated or malformed input, or nesting deeper than MAX_DEPTH.
    """
    reader = _Reader(bytes(data))
    value = reader.value(0)
    reader.skip_noops()
    if reader.pos != len(reader.buf):
        raise ValueError(
            f"UBJSON: {len(reader.buf) - reader.pos} unexpected trailing bytes at offset {reader.pos}")
    return value


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _fail(self, what: str) -> ValueError:
        return ValueError(f"UBJSON: {what} at offset {self.pos}")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise self._fail(f"need {n} bytes but only {len(self.buf) - self.pos} remain")
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def marker(self) -> int:
        if self.pos >= len(self.buf):
            raise self._fail("unexpected end of data")
        m = self.buf[self.pos]
        self.pos += 1
        return m

    def skip_noops(self) -> None:
        while self.pos < len(self.buf) and self.buf[self.pos] == _NOOP:
            self.pos += 1

    def peek(self) -> int:
        self.skip_noops()
        if self.pos >= len(self.buf):
            raise self._fail("unexpected end of data")
        return self.buf[self.pos]

    def scalar(self, m: int) -> Any:
        fmt = _NUMERIC[m][0]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        m = self.marker()
        if m not in _INTEGER:
            raise self._fail(f"expected an integer length, found marker {chr(m)!r}")
        n = self.scalar(m)
        if n < 0:
            raise self._fail(f"negative length {n}")
        return n

    def string(self) -> str:
        raw = self.take(self.length())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail("string is not valid UTF-8") from exc

    def value(self, depth: int) -> Any:
        self.skip_noops()
        return self.typed(self.marker(), depth)

    def typed(self, m: int, depth: int) -> Any:
        if m in _NUMERIC:
            return self.scalar(m)
        if m in _NO_PAYLOAD:
            return _NO_PAYLOAD[m]
        if m == ord("S"):
            return self.string()
        if m == ord("C"):
            return self.take(1).decode("latin-1")
        if m == ord("H"):
            return self.high_precision()
        if m == ord("["):
            return self.container(depth, self.array_items)
        if m == ord("{"):
            return self.container(depth, self.object_items)
        self.pos -= 1
        raise self._fail(f"unknown marker {m!r}")

    def high_precision(self) -> Any:
        text = self.string()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError as exc:
                raise self._fail(f"bad high-precision number {text!r}") from exc

    def container(self, depth: int, items: Callable[[int, Optional[int], Optional[int]], Any]) -> Any:
        if depth >= MAX_DEPTH:
            raise self._fail(f"containers nested deeper than {MAX_DEPTH}")
        elem_type = None
        count = None
        if self.pos < len(self.buf) and self.buf[self.pos] == ord("$"):
            self.pos += 1
            elem_type = self.marker()
            if self.marker() != ord("#"):
                self.pos -= 1
                raise self._fail("typed container without a count")
            count = self.length()
        elif self.pos < len(self.buf) and self.buf[self.pos] == ord("#"):
            self.pos += 1
            count = self.length()
        if count is not None and count > len(self.buf) - self.pos and elem_type not in _NUMERIC:
            # Every element occupies at least one byte, except payload-free typed elements,
            # whose count is capped the same way to keep memory bounded.
            raise self._fail(f"count {count} exceeds the {len(self.buf) - self.pos} remaining bytes")
        return items(depth + 1, elem_type, count)

    def array_items(self, depth: int, elem_type: Optional[int], count: Optional[int]) -> Any:
        if elem_type in _NUMERIC:
            dtype = np.dtype(_NUMERIC[elem_type][1])
            raw = self.take(count * dtype.itemsize)
            return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        out: List[Any] = []
        if count is None:
            while self.peek() != ord("]"):
                out.append(self.value(depth))
            self.pos += 1
        elif elem_type is None:
            out = [self.value(depth) for _ in range(count)]
        else:
            out = [self.typed(elem_type, depth) for _ in range(count)]
        return out

    def object_items(self, depth: int, elem_type: Optional[int], count: Optional[int]) -> Any:
        out: Dict[str, Any] = {}
        if count is None:
            while self.peek() != ord("}"):
                key = self.string()
                out[key] = self.value(depth)
            self.pos += 1
            return out
        for _ in range(count):
            self.skip_noops()
            key = self.string()
            out[key] = self.value(depth) if elem_type is None else self.typed(elem_type, depth)
        return out
