"""A bounds-checked reader for Universal Binary JSON (UBJSON), as XGBoost writes it.

Values map to Python as JSON would, except that strongly typed numeric arrays
(``[$<type>#<count>`` followed by raw big-endian data) become 1-D NumPy arrays in
native byte order. Every length and count is checked against the remaining
buffer, nesting is limited, and any malformed input raises ``ValueError``.
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional

import numpy as np

MAX_DEPTH = 64

_SCALARS: Dict[int, struct.Struct] = {
    ord(m): struct.Struct(fmt)
    for m, fmt in (("i", ">b"), ("U", ">B"), ("I", ">h"), ("l", ">i"), ("L", ">q"),
                   ("d", ">f"), ("D", ">d"))
}
_DTYPES: Dict[int, np.dtype] = {
    ord(m): np.dtype(dt)
    for m, dt in (("i", ">i1"), ("U", ">u1"), ("I", ">i2"), ("l", ">i4"), ("L", ">i8"),
                  ("d", ">f4"), ("D", ">f8"))
}
_INTEGERS = frozenset(ord(c) for c in "iUIlL")
_CONSTANTS = {ord("Z"): None, ord("T"): True, ord("F"): False}
_NOOP = ord("N")
_STRING, _CHAR, _HIGH_PRECISION = ord("S"), ord("C"), ord("H")
_ARRAY, _ARRAY_END, _OBJECT, _OBJECT_END = ord("["), ord("]"), ord("{"), ord("}")
_TYPE, _COUNT = ord("$"), ord("#")


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Parse one UBJSON document.

    Args:
        data: the encoded document (no-op markers around the value are allowed).

    Returns:
        dict / list / str / int / float / bool / None, with typed numeric arrays
        as NumPy arrays of shape [count].

    Raises:
        ValueError: truncated or malformed input, or nesting deeper than MAX_DEPTH.
    """
    reader = _Reader(bytes(data))
    value = reader.value(0)
    reader.skip_noops()
    if reader.pos != reader.end:
        raise reader.error(f"{reader.end - reader.pos} unexpected trailing bytes")
    return value


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.end = len(buf)
        self.pos = 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"UBJSON: {what} at offset {self.pos}")

    def marker(self) -> int:
        if self.pos >= self.end:
            raise self.error("unexpected end of data")
        m = self.buf[self.pos]
        self.pos += 1
        return m

    def skip_noops(self) -> None:
        while self.pos < self.end and self.buf[self.pos] == _NOOP:
            self.pos += 1

    def scalar(self, m: int) -> Any:
        st = _SCALARS[m]
        if self.pos + st.size > self.end:
            raise self.error("number runs past the end of data")
        value = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return value

    def length(self) -> int:
        m = self.marker()
        if m not in _INTEGERS:
            raise self.error(f"expected an integer length, found marker {chr(m)!r}")
        n = self.scalar(m)
        if n < 0:
            raise self.error(f"negative length {n}")
        return n

    def raw(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise self.error(f"need {n} bytes but only {self.end - self.pos} remain")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        try:
            return self.raw(self.length()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error("string is not valid UTF-8") from exc

    def value(self, depth: int) -> Any:
        self.skip_noops()
        return self.typed(self.marker(), depth)

    def typed(self, m: int, depth: int) -> Any:
        if m in _SCALARS:
            return self.scalar(m)
        if m == _STRING:
            return self.string()
        if m == _ARRAY or m == _OBJECT:
            if depth >= MAX_DEPTH:
                raise self.error(f"containers nested deeper than {MAX_DEPTH}")
            return self.container(m == _ARRAY, depth + 1)
        if m in _CONSTANTS:
            return _CONSTANTS[m]
        if m == _CHAR:
            return self.raw(1).decode("latin-1")
        if m == _HIGH_PRECISION:
            return self.high_precision()
        self.pos -= 1
        raise self.error(f"unknown marker {chr(m)!r}")

    def high_precision(self) -> Any:
        text = self.string()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError as exc:
                raise self.error(f"bad high-precision number {text!r}") from exc

    def container(self, is_array: bool, depth: int) -> Any:
        elem_type: Optional[int] = None
        count: Optional[int] = None
        nxt = self.buf[self.pos] if self.pos < self.end else -1
        if nxt == _TYPE:
            self.pos += 1
            elem_type = self.marker()
            if self.marker() != _COUNT:
                raise self.error("typed container without a count")
            count = self.length()
        elif nxt == _COUNT:
            self.pos += 1
            count = self.length()
        if is_array and elem_type in _DTYPES:
            return self.numeric_array(_DTYPES[elem_type], count)
        if count is not None and count > self.end - self.pos:
            # Every element takes at least one byte; payload-free typed elements are
            # capped the same way to keep memory bounded.
            raise self.error(f"count {count} exceeds the {self.end - self.pos} remaining bytes")
        if is_array:
            return self.array_items(depth, elem_type, count)
        return self.object_items(depth, elem_type, count)

    def numeric_array(self, dtype: np.dtype, count: int) -> np.ndarray:
        nbytes = count * dtype.itemsize
        if nbytes > self.end - self.pos:
            raise self.error(f"array of {count} x {dtype.itemsize} bytes runs past the end")
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += nbytes
        return out.astype(dtype.newbyteorder("="))

    def array_items(self, depth: int, elem_type: Optional[int], count: Optional[int]) -> list:
        if count is None:
            out: List[Any] = []
            self.skip_noops()
            while self.pos < self.end and self.buf[self.pos] != _ARRAY_END:
                out.append(self.value(depth))
                self.skip_noops()
            self.marker()
            return out
        if elem_type is None:
            return [self.value(depth) for _ in range(count)]
        return [self.typed(elem_type, depth) for _ in range(count)]

    def object_items(self, depth: int, elem_type: Optional[int],
                     count: Optional[int]) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if count is None:
            self.skip_noops()
            while self.pos < self.end and self.buf[self.pos] != _OBJECT_END:
                key = self.string()
                out[key] = self.value(depth)
                self.skip_noops()
            self.marker()
            return out
        for _ in range(count):
            self.skip_noops()
            key = self.string()
            out[key] = self.value(depth) if elem_type is None else self.typed(elem_type, depth)
        return out
