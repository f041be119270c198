"""CityHash64 (version 1.0.2, the one CatBoost hashes categorical values with), in pure Python.

CatBoost's category hash is the low 32 bits of ``CityHash64`` of the value's string. Used only
on the distinct values of a column, so speed does not matter; verified against CatBoost's own
hashes in the tests.
"""
from __future__ import annotations

M = 0xFFFFFFFFFFFFFFFF
K0 = 0xC3A5C85C97CB3127
K1 = 0xB492B66FBE98F273
K2 = 0x9AE16A3B2F90404F
K3 = 0xC949D7C7509E6557
KMUL = 0x9DDFEA08EB382D69


def _f64(s, i):
    return int.from_bytes(s[i:i + 8], "little")


def _f32(s, i):
    return int.from_bytes(s[i:i + 4], "little")


def _rot(v, shift):
    return v if shift == 0 else ((v >> shift) | (v << (64 - shift))) & M


def _mix(v):
    return v ^ (v >> 47)


def _h16(u, v):
    a = ((u ^ v) * KMUL) & M
    a ^= a >> 47
    b = ((v ^ a) * KMUL) & M
    b ^= b >> 47
    return (b * KMUL) & M


def _0to16(s, n):
    if n > 8:
        a, b = _f64(s, 0), _f64(s, n - 8)
        return _h16(a, _rot((b + n) & M, n)) ^ b
    if n >= 4:
        return _h16((n + (_f32(s, 0) << 3)) & M, _f32(s, n - 4))
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_mix(((y * K2) ^ (z * K3)) & M) * K2) & M
    return K2


def _17to32(s, n):
    a = (_f64(s, 0) * K1) & M
    b = _f64(s, 8)
    c = (_f64(s, n - 8) * K2) & M
    d = (_f64(s, n - 16) * K0) & M
    return _h16((_rot((a - b) & M, 43) + _rot(c, 30) + d) & M,
                (a + _rot(b ^ K3, 20) - c + n) & M)


def _33to64(s, n):
    z = _f64(s, 24)
    a = (_f64(s, 0) + (n + _f64(s, n - 16)) * K0) & M
    b = _rot((a + z) & M, 52)
    c = _rot(a, 37)
    a = (a + _f64(s, 8)) & M
    c = (c + _rot(a, 7)) & M
    a = (a + _f64(s, 16)) & M
    vf = (a + z) & M
    vs = (b + _rot(a, 31) + c) & M
    a = (_f64(s, 16) + _f64(s, n - 32)) & M
    z = _f64(s, n - 8)
    b = _rot((a + z) & M, 52)
    c = _rot(a, 37)
    a = (a + _f64(s, n - 24)) & M
    c = (c + _rot(a, 7)) & M
    a = (a + _f64(s, n - 16)) & M
    wf = (a + z) & M
    ws = (b + _rot(a, 31) + c) & M
    r = _mix(((vf + ws) * K2 + (wf + vs) * K0) & M)
    return (_mix((r * K0 + vs) & M) * K2) & M


def _weak32(s, i, a, b):
    w, x, y, z = _f64(s, i), _f64(s, i + 8), _f64(s, i + 16), _f64(s, i + 24)
    a = (a + w) & M
    b = _rot((b + a + z) & M, 21)
    c = a
    a = (a + x + y) & M
    b = (b + _rot(a, 44)) & M
    return (a + z) & M, (b + c) & M


def city_hash64(s: bytes) -> int:
    """CityHash64 v1.0.2 of ``s`` (unsigned 64-bit)."""
    n = len(s)
    if n <= 16:
        return _0to16(s, n)
    if n <= 32:
        return _17to32(s, n)
    if n <= 64:
        return _33to64(s, n)
    x = _f64(s, 0)
    y = _f64(s, n - 16) ^ K1
    z = _f64(s, n - 56) ^ K0
    v = _weak32(s, n - 64, n, y)
    w = _weak32(s, n - 32, (n * K1) & M, K0)
    z = (z + _mix(v[1]) * K1) & M
    x = (_rot((z + x) & M, 39) * K1) & M
    y = (_rot(y, 33) * K1) & M
    i, left = 0, (n - 1) & ~63
    while True:
        x = (_rot((x + y + v[0] + _f64(s, i + 16)) & M, 37) * K1) & M
        y = (_rot((y + v[1] + _f64(s, i + 48)) & M, 42) * K1) & M
        x ^= w[1]
        y ^= v[0]
        z = _rot(z ^ w[0], 33)
        v = _weak32(s, i, (v[1] * K1) & M, (x + w[0]) & M)
        w = _weak32(s, i + 32, (z + w[1]) & M, y)
        z, x = x, z
        i += 64
        left -= 64
        if left == 0:
            break
    return _h16((_h16(v[0], w[0]) + _mix(y) * K1 + z) & M, (_h16(v[1], w[1]) + x) & M)
