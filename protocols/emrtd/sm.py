"""Secure messaging (ICAO 9303-11 §9.8): DO85/DO87 (encrypted data), DO97 (Le), DO99 (status),
DO8E (MAC) and the send sequence counter, for 3DES (retail MAC) and AES (CMAC) sessions.

One class serves both ends: the terminal protects commands and unprotects responses; the chip
(our simulator) does the reverse. A wrong MAC is a ProtocolError with reason "sm_error": the
session is then dead (9303-11 requires aborting it), never retried.
"""
from protocols import iso7816, tlv
from protocols.emrtd import primitives as P
from protocols.errors import ProtocolError


class SecureMessaging:
    def __init__(self, crypto, cipher, ks_enc, ks_mac, ssc):
        self.crypto = crypto
        self.cipher = cipher
        self.ks_enc = bytes(ks_enc)
        self.ks_mac = bytes(ks_mac)
        self.block = P.block_size(cipher)
        self.ssc = ssc if isinstance(ssc, int) else int.from_bytes(bytes(ssc), "big")

    def _ssc_bytes(self):
        return (self.ssc & ((1 << (8 * self.block)) - 1)).to_bytes(self.block, "big")

    def _iv(self):
        if self.cipher == P.CIPHER_3DES:
            return P.DES_ZERO_IV
        # AES: IV = E(KSenc, SSC) (9303-11 §9.8.6.1)
        return self.crypto.aes_cbc_encrypt(self.ks_enc, P.AES_ZERO_IV, self._ssc_bytes())

    def _mac(self, data):
        return P.mac8(self.crypto, self.cipher, self.ks_mac, P.pad(self._ssc_bytes() + data, self.block))

    def _encrypt(self, data):
        return P.encrypt(self.crypto, self.cipher, self.ks_enc, self._iv(), P.pad(data, self.block))

    def _decrypt(self, data):
        return P.unpad(P.decrypt(self.crypto, self.cipher, self.ks_enc, self._iv(), data))

    def close(self):
        """Forget the session keys (DESIGN §4: keys dropped right after use)."""
        self.ks_enc = b""
        self.ks_mac = b""

    # --- terminal side ---------------------------------------------------------------------
    def protect(self, command):
        """Wrap a plain CommandAPDU; returns the protected CommandAPDU."""
        self.ssc += 1
        cla = command.cla | 0x0C
        header = P.pad(bytes((cla, command.ins, command.p1, command.p2)), self.block)
        do_data = b""
        if command.data:
            enc = self._encrypt(command.data)
            if command.ins & 1:
                do_data = tlv.encode(0x85, enc)
            else:
                do_data = tlv.encode(0x87, b"\x01" + enc)
        do97 = b""
        if command.le:
            if command.extended:
                do97 = tlv.encode(0x97, bytes(((command.le >> 8) & 0xFF, command.le & 0xFF)))
            else:
                do97 = tlv.encode(0x97, bytes((command.le & 0xFF,)))
        mac = self._mac(header + do_data + do97)
        body = do_data + do97 + tlv.encode(0x8E, mac)
        extended = command.extended or len(body) > iso7816.SHORT_MAX_LC
        return iso7816.CommandAPDU(cla, command.ins, command.p1, command.p2, body,
                                   le=iso7816.EXTENDED_MAX_LE if extended else iso7816.SHORT_MAX_LE,
                                   extended=extended)

    def unprotect(self, response):
        """Unwrap a response APDU: (plain data, status word). A plain error status without SM
        objects is passed through as (b"", sw); the caller decides whether the session lives."""
        data, sw = iso7816.split_response(response)
        if not data:
            self.ssc += 1
            return b"", sw
        items = tlv.parse_raw(data)
        self.ssc += 1
        covered = b""
        enc = None
        odd = False
        status = None
        mac = None
        for tag, value, raw in items:
            if tag == 0x87 or tag == 0x85:
                enc = value
                odd = tag == 0x85
                covered += raw
            elif tag == 0x99:
                status = value
                covered += raw
            elif tag == 0x8E:
                mac = value
            else:
                raise ProtocolError("SM: unexpected data object %X in response" % tag, "sm_error")
        if mac is None:
            raise ProtocolError("SM: response without a MAC", "sm_error")
        if not P.constant_time_equal(self._mac(covered), mac):
            raise ProtocolError("SM: response MAC does not verify", "sm_error")
        plain = b""
        if enc is not None:
            if not odd:
                if not enc or enc[0] != 0x01:
                    raise ProtocolError("SM: unknown padding indicator", "sm_error")
                enc = enc[1:]
            plain = self._decrypt(enc)
        if status is not None:
            if len(status) != 2:
                raise ProtocolError("SM: DO99 is not a status word", "sm_error")
            sw = (status[0] << 8) | status[1]
        return plain, sw

    # --- chip side -------------------------------------------------------------------------
    def unprotect_command(self, apdu):
        """Unwrap a protected command (the card side); returns the plain CommandAPDU."""
        cmd = apdu if isinstance(apdu, iso7816.CommandAPDU) else iso7816.parse_command(apdu)
        if cmd.cla & 0x0C != 0x0C:
            raise ProtocolError("SM: command not protected", "sm_missing")
        self.ssc += 1
        items = tlv.parse_raw(cmd.data)
        covered = b""
        enc = None
        odd = False
        le_bytes = None
        mac = None
        for tag, value, raw in items:
            if tag == 0x87 or tag == 0x85:
                enc, odd = value, tag == 0x85
                covered += raw
            elif tag == 0x97:
                le_bytes = value
                covered += raw
            elif tag == 0x8E:
                mac = value
            else:
                raise ProtocolError("SM: unexpected data object %X in command" % tag, "sm_error")
        if mac is None:
            raise ProtocolError("SM: command without a MAC", "sm_missing")
        header = P.pad(cmd.header(), self.block)
        if not P.constant_time_equal(self._mac(header + covered), mac):
            raise ProtocolError("SM: command MAC does not verify", "sm_error")
        data = b""
        if enc is not None:
            if not odd:
                if not enc or enc[0] != 0x01:
                    raise ProtocolError("SM: unknown padding indicator", "sm_error")
                enc = enc[1:]
            data = self._decrypt(enc)
        le = 0
        extended = False
        if le_bytes is not None:
            if len(le_bytes) == 1:
                le = le_bytes[0] or 256
            elif len(le_bytes) == 2:
                le = ((le_bytes[0] << 8) | le_bytes[1]) or 65536
                extended = True
            else:
                raise ProtocolError("SM: DO97 of %d bytes" % len(le_bytes), "sm_error")
        return iso7816.CommandAPDU(cmd.cla & 0xF3, cmd.ins, cmd.p1, cmd.p2, data, le=le,
                                   extended=extended or len(data) > 255)

    def protect_response(self, data, sw):
        """Wrap a plain response (the card side)."""
        self.ssc += 1
        do87 = tlv.encode(0x87, b"\x01" + self._encrypt(data)) if data else b""
        do99 = tlv.encode(0x99, bytes(((sw >> 8) & 0xFF, sw & 0xFF)))
        mac = self._mac(do87 + do99)
        return do87 + do99 + tlv.encode(0x8E, mac) + bytes(((sw >> 8) & 0xFF, sw & 0xFF))
