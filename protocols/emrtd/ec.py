"""Elliptic-curve arithmetic over prime fields for PACE's generic mapping (9303-11 §4.4.3.3.1):
G' = s·G + H needs point addition, which no common crypto API exposes. Pure integer code in
Jacobian coordinates, portable to MicroPython. Points are (x, y) tuples, None is infinity.

Scalars here are ephemeral (one PACE run); the code is not constant-time, which matters for a
long-term key on a shared machine, not for a kiosk's per-session mapping keys.
"""
from protocols.errors import ProtocolError


class Curve:
    def __init__(self, name, p, a, b, gx, gy, n):
        self.name = name
        self.p = p
        self.a = a % p
        self.b = b
        self.g = (gx, gy)
        self.n = n
        self.size = (len("%x" % p) + 1) // 2  # no int.bit_length on MicroPython

    def contains(self, point):
        if point is None:
            return False
        x, y = point
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % p == 0

    # --- Jacobian arithmetic ---------------------------------------------------------------
    def _double(self, P):
        X, Y, Z = P
        p = self.p
        if Y == 0 or Z == 0:
            return (1, 1, 0)
        YY = Y * Y % p
        S = 4 * X * YY % p
        ZZ = Z * Z % p
        M = (3 * X * X + self.a * ZZ * ZZ) % p
        X3 = (M * M - 2 * S) % p
        Y3 = (M * (S - X3) - 8 * YY * YY) % p
        Z3 = 2 * Y * Z % p
        return (X3, Y3, Z3)

    def _add(self, P, Q):
        if P[2] == 0:
            return Q
        if Q[2] == 0:
            return P
        p = self.p
        X1, Y1, Z1 = P
        X2, Y2, Z2 = Q
        Z1Z1 = Z1 * Z1 % p
        Z2Z2 = Z2 * Z2 % p
        U1 = X1 * Z2Z2 % p
        U2 = X2 * Z1Z1 % p
        S1 = Y1 * Z2 * Z2Z2 % p
        S2 = Y2 * Z1 * Z1Z1 % p
        if U1 == U2:
            if S1 != S2:
                return (1, 1, 0)
            return self._double(P)
        H = (U2 - U1) % p
        R = (S2 - S1) % p
        HH = H * H % p
        HHH = H * HH % p
        V = U1 * HH % p
        X3 = (R * R - HHH - 2 * V) % p
        Y3 = (R * (V - X3) - S1 * HHH) % p
        Z3 = H * Z1 * Z2 % p
        return (X3, Y3, Z3)

    def _to_affine(self, P):
        X, Y, Z = P
        if Z == 0:
            return None
        p = self.p
        zi = pow(Z, p - 2, p)
        zi2 = zi * zi % p
        return (X * zi2 % p, Y * zi2 * zi % p)

    def _mul_jacobian(self, k, point):
        # 4-bit fixed window: 64 additions instead of ~128 for a 256-bit scalar
        base = (point[0], point[1], 1)
        table = [(1, 1, 0), base]
        for _ in range(14):
            table.append(self._add(table[-1], base))
        R = (1, 1, 0)
        nibbles = []
        while k:
            nibbles.append(k & 15)
            k >>= 4
        for i in range(len(nibbles) - 1, -1, -1):
            if R[2] != 0:
                R = self._double(self._double(self._double(self._double(R))))
            d = nibbles[i]
            if d:
                R = self._add(R, table[d])
        return R

    def multiply(self, k, point):
        """k·point in affine coordinates (None for infinity)."""
        if point is None:
            return None
        k = k % self.n
        if k == 0:
            return None
        return self._to_affine(self._mul_jacobian(k, point))

    def add(self, P, Q):
        if P is None:
            return Q
        if Q is None:
            return P
        return self._to_affine(self._add((P[0], P[1], 1), (Q[0], Q[1], 1)))

    def mul_add(self, k, P, Q):
        """k·P + Q, the generic mapping's s·G + H."""
        if Q is None:
            return self.multiply(k, P)
        R = self._mul_jacobian(k % self.n, P)
        return self._to_affine(self._add(R, (Q[0], Q[1], 1)))

    # --- encoding --------------------------------------------------------------------------
    def encode_point(self, point):
        """Uncompressed SEC 1 encoding 04 || X || Y."""
        if point is None:
            raise ProtocolError("EC: cannot encode the point at infinity")
        return b"\x04" + point[0].to_bytes(self.size, "big") + point[1].to_bytes(self.size, "big")

    def decode_point(self, data):
        """Decode 04 || X || Y and check the point lies on the curve (an invalid-curve point
        from a hostile peer would leak the private key)."""
        data = bytes(data)
        if len(data) != 1 + 2 * self.size or data[0] != 0x04:
            raise ProtocolError("EC: not an uncompressed %s point" % self.name)
        point = (int.from_bytes(data[1:1 + self.size], "big"), int.from_bytes(data[1 + self.size:], "big"))
        if not self.contains(point):
            raise ProtocolError("EC: point not on %s" % self.name)
        return point

    def scalar_from_bytes(self, data):
        k = int.from_bytes(bytes(data), "big") % self.n
        if k == 0:
            raise ProtocolError("EC: zero scalar")
        return k

    def random_scalar(self, crypto):
        while True:
            k = int.from_bytes(crypto.random(self.size + 8), "big") % self.n
            if k:
                return k

    def public_key(self, private, generator=None):
        return self.multiply(private, generator or self.g)

    def x_bytes(self, point):
        return point[0].to_bytes(self.size, "big")


BRAINPOOL_P256R1 = Curve(
    "brainpoolP256r1",
    0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
    0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
    0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
    0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
    0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
    0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
)

NIST_P256 = Curve(
    "secp256r1",
    0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    -3,
    0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
)

# Standardized domain parameter ids of PACE (BSI TR-03110-3 / 9303-11 §9.5.1 Table 6)
PARAMETER_IDS = {12: NIST_P256, 13: BRAINPOOL_P256R1}


def curve_for_parameter_id(parameter_id):
    curve = PARAMETER_IDS.get(parameter_id)
    if curve is None:
        raise ProtocolError("PACE: unsupported domain parameters %r" % (parameter_id,), "not_supported")
    return curve
