"""Ed25519 (RFC 8032) in pure Python: verification for update images, signing for tools and tests.

MicroPython-clean: big integers, `hashlib.sha256` only. MicroPython's hashlib has no
SHA-512, so `sha512()` falls back to a pure-Python FIPS 180-4 implementation (used for
the one or two blocks an image signature needs, see docs/storage-and-update.md).

Verification is the cofactorless check of RFC 8032 section 5.1.7: decode A (and
refuse non-canonical or off-curve encodings), refuse S >= L, compute
R' = [S]B - [k]A with k = SHA-512(R || A || M) mod L, and accept only if the
encoding of R' equals the R half of the signature byte for byte (so a non-canonical R
is refused too). This is what OpenSSL and libsodium do.

Not constant time: fine for verifying (public data), and `sign()` is only meant for
tests and for tools/image.py when the `cryptography` package is missing.
"""

from controller.steps import run_to_end

try:
    from hashlib import sha512 as _hl_sha512
except ImportError:
    _hl_sha512 = None

P = (1 << 255) - 19
L = (1 << 252) + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
D2 = (2 * D) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
_BY = (4 * pow(5, P - 2, P)) % P

# --- SHA-512 (FIPS 180-4), for interpreters without hashlib.sha512 ---------------------

_M64 = 0xFFFFFFFFFFFFFFFF
_K = (
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
)
_H0 = (0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
       0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179)


def _compress(h, block):
    w = [int.from_bytes(block[i:i + 8], "big") for i in range(0, 128, 8)]
    M = _M64
    for t in range(16, 80):
        x = w[t - 15]
        s0 = ((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7)
        x = w[t - 2]
        s1 = ((x >> 19) | (x << 45)) ^ ((x >> 61) | (x << 3)) ^ (x >> 6)
        w.append((w[t - 16] + (s0 & M) + w[t - 7] + (s1 & M)) & M)
    a, b, c, d, e, f, g, hh = h
    K = _K
    for t in range(80):
        S1 = (((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))) & M
        ch = (e & f) ^ ((e ^ M) & g)
        t1 = hh + S1 + ch + K[t] + w[t]
        S0 = (((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))) & M
        maj = (a & b) ^ (a & c) ^ (b & c)
        hh = g
        g = f
        f = e
        e = (d + t1) & M
        d = c
        c = b
        b = a
        a = (t1 + S0 + maj) & M
    return [(x + y) & M for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


class Sha512Pure:
    """Incremental SHA-512 (hashlib-like: update(), digest()); no copy of the whole input."""

    __slots__ = ("_h", "_buf", "_n")

    def __init__(self, data=b""):
        self._h = list(_H0)
        self._buf = b""
        self._n = 0
        if data:
            self.update(data)

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        self._n += n
        i = 0
        if self._buf:
            i = 128 - len(self._buf)
            if i > n:
                i = n
            self._buf += bytes(mv[:i])
            if len(self._buf) < 128:
                return
            self._h = _compress(self._h, self._buf)
            self._buf = b""
        while i + 128 <= n:
            self._h = _compress(self._h, bytes(mv[i:i + 128]))
            i += 128
        self._buf = bytes(mv[i:])

    def digest(self):
        n = self._n
        tail = self._buf + b"\x80" + bytes((111 - n) % 128) + (n * 8).to_bytes(16, "big")
        h = self._h
        for i in range(0, len(tail), 128):
            h = _compress(h, tail[i:i + 128])
        return b"".join(x.to_bytes(8, "big") for x in h)


def sha512_pure(data):
    """SHA-512 of `data` in pure Python."""
    return Sha512Pure(data).digest()


def sha512_new():
    """A SHA-512 hash object: hashlib's where the interpreter has it, else Sha512Pure."""
    if _hl_sha512 is not None:
        return _hl_sha512()
    return Sha512Pure()


def sha512(data):
    h = sha512_new()
    h.update(data)
    return h.digest()


# --- the curve: points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z --

def _add(p1, p2):
    X1, Y1, Z1, T1 = p1
    X2, Y2, Z2, T2 = p2
    A = (Y1 - X1) * (Y2 - X2) % P
    B = (Y1 + X1) * (Y2 + X2) % P
    C = T1 * D2 * T2 % P
    Dd = Z1 * 2 * Z2 % P
    E = B - A
    F = Dd - C
    G = Dd + C
    H = B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _double(p1):
    X1, Y1, Z1, _ = p1
    A = X1 * X1 % P
    B = Y1 * Y1 % P
    C = 2 * Z1 * Z1 % P
    H = A + B
    xy = X1 + Y1
    E = H - xy * xy % P
    G = A - B
    F = C + G
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _recover_x(y, sign):
    """x for y on the curve with the given sign bit, or None (RFC 8032 5.1.3)."""
    if y >= P:
        return None
    yy = y * y % P
    x2 = (yy - 1) * pow(D * yy + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
        if (x * x - x2) % P != 0:
            return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decode(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _encode(pt):
    X, Y, Z, _ = pt
    zi = pow(Z, P - 2, P)
    x = X * zi % P
    y = Y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BX = _recover_x(_BY, 0)
BASE = (_BX, _BY, 1, _BX * _BY % P)
_ZERO = (0, 1, 1, 0)


def _mul(k, pt):
    q = _ZERO
    while k:
        if k & 1:
            q = _add(q, pt)
        pt = _double(pt)
        k >>= 1
    return q


STEP_BITS = 4  # ladder bits per step of verify_steps (~64 steps a verification)
_HASH_STEP = 128  # message bytes hashed per step of verify_steps (one SHA-512 block)


def _mul2(a, pa, b, pb):
    """[a]pa + [b]pb with one shared doubling chain (Straus/Shamir); 0 <= a, b < 2**253.
    A generator (see controller.steps): yields every STEP_BITS bits, returns the point."""
    pab = _add(pa, pb)
    q = _ZERO
    n = 253  # both scalars are below L < 2**253 (MicroPython ints have no bit_length)
    while n and not ((a | b) >> (n - 1)):
        n -= 1
    add = _add
    dbl = _double
    for i in range(n - 1, -1, -1):
        q = dbl(q)
        ba = (a >> i) & 1
        bb = (b >> i) & 1
        if ba:
            q = add(q, pab if bb else pa)
        elif bb:
            q = add(q, pb)
        if not i % STEP_BITS:
            yield
    return q


def verify(public_key, message, signature):
    """True if `signature` (64 bytes) is a valid Ed25519 signature of `message` by
    `public_key` (32 bytes); False for every malformed input (never raises on bad data)."""
    return run_to_end(verify_steps(public_key, message, signature))


def verify_steps(public_key, message, signature):
    """verify() in bounded steps: a generator whose return value is the verdict."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    A = _decode(public_key)
    if A is None:
        return False
    yield
    Rs = bytes(signature[:32])
    S = int.from_bytes(signature[32:], "little")
    if S >= L:
        return False
    h = sha512_new()
    h.update(Rs)
    h.update(public_key)
    # the message is the image header and manifest (a few KB): hashed a step at a time,
    # since MicroPython's SHA-512 is the pure-Python one above
    for i in range(0, len(message), _HASH_STEP):
        h.update(message[i:i + _HASH_STEP])
        yield
    k = int.from_bytes(h.digest(), "little") % L
    X, Y, Z, T = A
    minus_a = ((P - X) % P, Y, Z, (P - T) % P)
    yield
    q = yield from _mul2(S, BASE, k, minus_a)
    return _encode(q) == Rs


def _expand(seed):
    if len(seed) != 32:
        raise ValueError("seed must be 32 bytes")
    h = sha512(seed)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def public_key(seed):
    """The 32-byte public key of a 32-byte private seed."""
    a, _ = _expand(seed)
    return _encode(_mul(a, BASE))


def sign(seed, message):
    """Ed25519 signature (64 bytes) of `message` with the 32-byte private `seed`."""
    a, prefix = _expand(seed)
    A = _encode(_mul(a, BASE))
    message = bytes(message)
    r = int.from_bytes(sha512(prefix + message), "little") % L
    R = _encode(_mul(r, BASE))
    k = int.from_bytes(sha512(R + A + message), "little") % L
    S = (r + k * a) % L
    return R + S.to_bytes(32, "little")
