"""PACE v2 with the generic mapping over ECDH (ICAO 9303-11 §4.4, Appendix G.1), terminal and
chip halves, with the CAN or the MRZ as password and 3DES or AES session keys.

Steps (all GENERAL AUTHENTICATE, chained except the last):
  MSE:Set AT (protocol OID, password reference) →
  1: encrypted nonce z  (s = D(Kπ, z))
  2: mapping keys exchanged, G' = s·G + SKmap·PKmap
  3: ephemeral keys on G' exchanged, K = x(SK·PK)
  4: authentication tokens (MAC over the other side's public key) → SM with KSenc/KSmac, SSC 0
"""
from protocols import iso7816, tlv
from protocols.emrtd import asn1
from protocols.emrtd import ec
from protocols.emrtd import primitives as P
from protocols.emrtd.sm import SecureMessaging
from protocols.errors import ProtocolError

PASSWORD_MRZ = 1
PASSWORD_CAN = 2

_PACE_PREFIX = "0.4.0.127.0.7.2.2.4."
# id-PACE-ECDH-GM-*: cipher and key length per OID
PROTOCOLS = {
    _PACE_PREFIX + "2.1": (P.CIPHER_3DES, 16),
    _PACE_PREFIX + "2.2": (P.CIPHER_AES, 16),
    _PACE_PREFIX + "2.3": (P.CIPHER_AES, 24),
    _PACE_PREFIX + "2.4": (P.CIPHER_AES, 32),
}


def is_pace_oid(oid):
    return oid.startswith(_PACE_PREFIX)


def supported(oid, parameter_id):
    return oid in PROTOCOLS and parameter_id in ec.PARAMETER_IDS


def password_key(crypto, password, password_ref, oid):
    """Kπ = KDF(f(π), 3): f is SHA-1 of the MRZ_information, or the CAN's characters."""
    cipher, key_len = PROTOCOLS[oid]
    if password_ref == PASSWORD_MRZ:
        secret = crypto.digest("sha1", password.encode())
    else:
        secret = password.encode()
    return P.kdf(crypto, secret, P.KDF_PACE, cipher, key_len)


def _dynamic(data):
    """The inside of a 7C dynamic authentication data object as [(tag, value)]."""
    return tlv.parse(tlv.parse_one(data, 0x7C))


def _dynamic_field(data, tag, step):
    value = tlv.find(_dynamic(data), tag)
    if value is None:
        raise ProtocolError("PACE step %d: answer lacks tag %X" % (step, tag))
    return value


def general_authenticate(tag, value, last=False):
    data = tlv.encode(0x7C, tlv.encode(tag, value) if tag else b"")
    return iso7816.CommandAPDU(0x00 if last else 0x10, iso7816.INS_GENERAL_AUTHENTICATE, 0, 0, data, le=256)


def token_input(oid, curve, public_point):
    """The public-key data object the tokens are computed over (9303-11 §4.4.3.4)."""
    return tlv.encode(0x7F49, asn1.oid_tlv(oid) + tlv.encode(0x86, curve.encode_point(public_point)))


def _token(crypto, oid, cipher, ks_mac, curve, point):
    data = token_input(oid, curve, point)
    if cipher == P.CIPHER_3DES:
        return P.retail_mac(crypto, ks_mac, P.pad(data))
    return P.aes_cmac(crypto, ks_mac, data)[:8]  # CMAC pads by itself (unlike SM, 9303-11 §9.8)


def _session_keys(crypto, oid, shared_x):
    cipher, key_len = PROTOCOLS[oid]
    return (cipher, P.kdf(crypto, shared_x, P.KDF_ENC, cipher, key_len),
            P.kdf(crypto, shared_x, P.KDF_MAC, cipher, key_len))


class PaceTerminal:
    """The inspection system's half. Call the `step*` methods in order, each with the data of
    the card's previous answer; private keys may be given for test vectors, else random."""

    def __init__(self, crypto, password, password_ref, oid, parameter_id):
        if oid not in PROTOCOLS:
            raise ProtocolError("PACE: unsupported protocol %s" % oid, "not_supported")
        self.crypto = crypto
        self.oid = oid
        self.password_ref = password_ref
        self.parameter_id = parameter_id
        self.curve = ec.curve_for_parameter_id(parameter_id)
        self.cipher = PROTOCOLS[oid][0]
        self.k_pi = password_key(crypto, password, password_ref, oid)
        self.nonce = None
        self.map_private = None
        self.generator = None
        self.private = None
        self.public = None
        self.chip_public = None
        self.ks_enc = None
        self.ks_mac = None

    def mse_set_at(self, with_parameter_id=False):
        data = tlv.encode(0x80, asn1.encode_oid(self.oid)) + tlv.encode(0x83, bytes((self.password_ref,)))
        if with_parameter_id:
            data += tlv.encode(0x84, bytes((self.parameter_id,)))
        return iso7816.CommandAPDU(0x00, iso7816.INS_MSE, 0xC1, 0xA4, data)

    def step1(self):
        return general_authenticate(0, b"")

    def step2(self, answer1, map_private=None):
        z = _dynamic_field(answer1, 0x80, 1)
        if not z or len(z) % P.block_size(self.cipher):
            raise ProtocolError("PACE: encrypted nonce of %d bytes" % len(z))
        iv = P.DES_ZERO_IV if self.cipher == P.CIPHER_3DES else P.AES_ZERO_IV
        self.nonce = P.decrypt(self.crypto, self.cipher, self.k_pi, iv, z)
        c = self.curve
        self.map_private = c.scalar_from_bytes(map_private) if map_private else c.random_scalar(self.crypto)
        return general_authenticate(0x81, c.encode_point(c.public_key(self.map_private)))

    def step3(self, answer2, private=None):
        c = self.curve
        chip_map_public = c.decode_point(_dynamic_field(answer2, 0x82, 2))
        h = c.multiply(self.map_private, chip_map_public)
        if h is None:
            raise ProtocolError("PACE: mapping gave the point at infinity")
        self.generator = c.mul_add(int.from_bytes(bytes(self.nonce or b""), "big"), c.g, h)
        if self.generator is None:
            raise ProtocolError("PACE: mapped generator is infinity")
        self.map_private = None
        self.nonce = None
        self.private = c.scalar_from_bytes(private) if private else c.random_scalar(self.crypto)
        self.public = c.multiply(self.private, self.generator)
        return general_authenticate(0x83, c.encode_point(self.public))

    def step4(self, answer3):
        c = self.curve
        self.chip_public = c.decode_point(_dynamic_field(answer3, 0x84, 3))
        if self.chip_public == self.public:
            raise ProtocolError("PACE: card echoed our public key")
        shared = c.multiply(self.private, self.chip_public)
        if shared is None:
            raise ProtocolError("PACE: shared secret is infinity")
        self.private = None
        self.cipher, self.ks_enc, self.ks_mac = _session_keys(self.crypto, self.oid, c.x_bytes(shared))
        token = _token(self.crypto, self.oid, self.cipher, self.ks_mac, c, self.chip_public)
        return general_authenticate(0x85, token, last=True)

    def finish(self, answer4):
        """Check the card's token; a wrong one means the card derived other keys."""
        token = _dynamic_field(answer4, 0x86, 4)
        expected = _token(self.crypto, self.oid, self.cipher, self.ks_mac, self.curve, self.public)
        if not P.constant_time_equal(token, expected):
            raise ProtocolError("PACE: card token does not verify", "wrong_access_key")
        sm = SecureMessaging(self.crypto, self.cipher, self.ks_enc, self.ks_mac, 0)
        self.ks_enc = self.ks_mac = self.k_pi = b""
        return sm


class PaceChip:
    """The card's half (for the simulator). `passwords` maps a password reference (1 MRZ,
    2 CAN) to the password text."""

    def __init__(self, crypto, passwords, oid, parameter_id):
        self.crypto = crypto
        self.passwords = passwords
        self.oid = oid
        self.parameter_id = parameter_id
        self.curve = ec.curve_for_parameter_id(parameter_id)
        self.cipher = PROTOCOLS[oid][0]
        self.reset()

    def reset(self):
        self.step = 0
        self.k_pi = None
        self.nonce = None
        self.map_private = None
        self.generator = None
        self.private = None
        self.public = None
        self.terminal_public = None
        self.ks_mac = None
        self.ks_enc = None

    def set_at(self, data):
        items = tlv.parse(data)
        oid = tlv.find(items, 0x80)
        ref = tlv.find(items, 0x83)
        if oid is None or ref is None or len(ref) != 1:
            raise ProtocolError("PACE: MSE:Set AT lacks protocol or password")
        if asn1.decode_oid(oid) != self.oid:
            raise ProtocolError("PACE: protocol not offered", "not_supported")
        password = self.passwords.get(ref[0])
        if password is None:
            raise ProtocolError("PACE: password type not offered", "not_supported")
        self.reset()
        self.k_pi = password_key(self.crypto, password, ref[0], self.oid)
        self.step = 1

    def general_authenticate(self, data, nonce=None, map_private=None, private=None):
        """Answer one GENERAL AUTHENTICATE: the response data (a 7C object), SecureMessaging
        after the last step, or ProtocolError("wrong_access_key") for a bad terminal token."""
        c = self.curve
        items = _dynamic(data)
        if self.step == 1:
            # a 16-byte nonce: one AES block, two 3DES blocks
            self.nonce = bytes(nonce) if nonce else self.crypto.random(16)
            iv = P.DES_ZERO_IV if self.cipher == P.CIPHER_3DES else P.AES_ZERO_IV
            z = P.encrypt(self.crypto, self.cipher, self.k_pi, iv, self.nonce)
            self.step = 2
            return tlv.encode(0x7C, tlv.encode(0x80, z)), None
        if self.step == 2:
            terminal_map = c.decode_point(tlv.find(items, 0x81) or b"")
            if map_private:
                self.map_private = c.scalar_from_bytes(map_private)
            else:
                self.map_private = c.random_scalar(self.crypto)
            h = c.multiply(self.map_private, terminal_map)
            if h is None:
                raise ProtocolError("PACE: mapping gave infinity")
            self.generator = c.mul_add(int.from_bytes(bytes(self.nonce or b""), "big"), c.g, h)
            self.step = 3
            mapping_public = c.encode_point(c.public_key(self.map_private))
            return tlv.encode(0x7C, tlv.encode(0x82, mapping_public)), None
        if self.step == 3:
            self.terminal_public = c.decode_point(tlv.find(items, 0x83) or b"")
            self.private = c.scalar_from_bytes(private) if private else c.random_scalar(self.crypto)
            self.public = c.multiply(self.private, self.generator)
            shared = c.multiply(self.private, self.terminal_public)
            if shared is None:
                raise ProtocolError("PACE: shared secret is infinity")
            self.cipher, self.ks_enc, self.ks_mac = _session_keys(self.crypto, self.oid, c.x_bytes(shared))
            self.step = 4
            return tlv.encode(0x7C, tlv.encode(0x84, c.encode_point(self.public))), None
        if self.step == 4:
            token = tlv.find(items, 0x85) or b""
            expected = _token(self.crypto, self.oid, self.cipher, self.ks_mac, c, self.public)
            if not P.constant_time_equal(token, expected):
                self.reset()
                raise ProtocolError("PACE: terminal token does not verify", "wrong_access_key")
            mine = _token(self.crypto, self.oid, self.cipher, self.ks_mac, c, self.terminal_public)
            sm = SecureMessaging(self.crypto, self.cipher, self.ks_enc, self.ks_mac, 0)
            self.reset()
            return tlv.encode(0x7C, tlv.encode(0x86, mine)), sm
        raise ProtocolError("PACE: GENERAL AUTHENTICATE out of sequence")
