"""Basic Access Control (ICAO 9303-11 §4.3, Appendix D): the MRZ-derived keys, the mutual
authentication (GET CHALLENGE, EXTERNAL AUTHENTICATE) and the 3DES session it yields."""
from protocols import iso7816
from protocols.emrtd import primitives as P
from protocols.emrtd.sm import SecureMessaging
from protocols.errors import ProtocolError


def key_seed(crypto, mrz_information):
    """Kseed = the first 16 bytes of SHA-1(MRZ_information)."""
    return crypto.digest("sha1", mrz_information.encode())[:16]


def document_keys(crypto, mrz_information):
    """(Kenc, Kmac) of the document: the BAC keys derived from the MRZ."""
    seed = key_seed(crypto, mrz_information)
    return P.kdf(crypto, seed, P.KDF_ENC), P.kdf(crypto, seed, P.KDF_MAC)


def session_from(crypto, k_ifd, k_ic, rnd_ic, rnd_ifd):
    seed = P.xor(k_ifd, k_ic)
    ks_enc = P.kdf(crypto, seed, P.KDF_ENC)
    ks_mac = P.kdf(crypto, seed, P.KDF_MAC)
    ssc = bytes(rnd_ic[-4:]) + bytes(rnd_ifd[-4:])
    return SecureMessaging(crypto, P.CIPHER_3DES, ks_enc, ks_mac, ssc)


class BacTerminal:
    """The inspection system's half. Feed it RND.IC from GET CHALLENGE, send the EXTERNAL
    AUTHENTICATE it builds, and give `finish` the card's answer."""

    def __init__(self, crypto, mrz_information):
        self.crypto = crypto
        self.k_enc, self.k_mac = document_keys(crypto, mrz_information)
        self.rnd_ic = None
        self.rnd_ifd = None
        self.k_ifd = None

    @staticmethod
    def challenge_command():
        return iso7816.get_challenge(8)

    def authenticate_command(self, rnd_ic, rnd_ifd=None, k_ifd=None):
        if len(rnd_ic) != 8:
            raise ProtocolError("BAC: challenge of %d bytes" % len(rnd_ic))
        self.rnd_ic = bytes(rnd_ic)
        self.rnd_ifd = bytes(rnd_ifd) if rnd_ifd is not None else self.crypto.random(8)
        self.k_ifd = bytes(k_ifd) if k_ifd is not None else self.crypto.random(16)
        s = self.rnd_ifd + self.rnd_ic + self.k_ifd
        e_ifd = self.crypto.des_cbc_encrypt(self.k_enc, P.DES_ZERO_IV, s)
        m_ifd = P.retail_mac(self.crypto, self.k_mac, P.pad(e_ifd))
        return iso7816.CommandAPDU(0x00, iso7816.INS_EXTERNAL_AUTHENTICATE, 0, 0, e_ifd + m_ifd, le=40)

    def finish(self, response_data):
        """Check the card's answer and open the session. A MAC or nonce mismatch means the card
        holds other keys: the access key was wrong."""
        if len(response_data) != 40:
            raise ProtocolError("BAC: answer of %d bytes" % len(response_data), "wrong_access_key")
        e_ic, m_ic = bytes(response_data[:32]), bytes(response_data[32:])
        if not P.constant_time_equal(P.retail_mac(self.crypto, self.k_mac, P.pad(e_ic)), m_ic):
            raise ProtocolError("BAC: card MAC does not verify", "wrong_access_key")
        r = self.crypto.des_cbc_decrypt(self.k_enc, P.DES_ZERO_IV, e_ic)
        if r[0:8] != self.rnd_ic or r[8:16] != self.rnd_ifd:
            raise ProtocolError("BAC: card answered another challenge", "wrong_access_key")
        sm = session_from(self.crypto, self.k_ifd, r[16:32], self.rnd_ic, self.rnd_ifd)
        self.k_enc = self.k_mac = self.k_ifd = b""
        return sm


class BacChip:
    """The card's half (for the simulator)."""

    def __init__(self, crypto, mrz_information):
        self.crypto = crypto
        self.k_enc, self.k_mac = document_keys(crypto, mrz_information)
        self.rnd_ic = None

    def challenge(self, rnd_ic=None):
        self.rnd_ic = bytes(rnd_ic) if rnd_ic is not None else self.crypto.random(8)
        return self.rnd_ic

    def external_authenticate(self, data, k_ic=None):
        """(response data, SecureMessaging) or ProtocolError("wrong_access_key")."""
        if self.rnd_ic is None or len(data) != 40:
            raise ProtocolError("BAC: no challenge or bad length", "wrong_access_key")
        e_ifd, m_ifd = bytes(data[:32]), bytes(data[32:])
        if not P.constant_time_equal(P.retail_mac(self.crypto, self.k_mac, P.pad(e_ifd)), m_ifd):
            raise ProtocolError("BAC: terminal MAC does not verify", "wrong_access_key")
        s = self.crypto.des_cbc_decrypt(self.k_enc, P.DES_ZERO_IV, e_ifd)
        rnd_ifd, rnd_ic, k_ifd = s[0:8], s[8:16], s[16:32]
        if rnd_ic != self.rnd_ic:
            raise ProtocolError("BAC: terminal answered another challenge", "wrong_access_key")
        self.rnd_ic = None
        k_ic = bytes(k_ic) if k_ic is not None else self.crypto.random(16)
        r = rnd_ic + rnd_ifd + k_ic
        e_ic = self.crypto.des_cbc_encrypt(self.k_enc, P.DES_ZERO_IV, r)
        m_ic = P.retail_mac(self.crypto, self.k_mac, P.pad(e_ic))
        return e_ic + m_ic, session_from(self.crypto, k_ifd, k_ic, rnd_ic, rnd_ifd)
