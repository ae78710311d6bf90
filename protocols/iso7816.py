"""ISO/IEC 7816-4 command and response APDUs, short and extended length.

Portable (DESIGN §6). `Le` is the number of bytes expected: 0 means none, 256 (short) or 65536
(extended) mean "as many as there are", encoded as 00 / 0000.
"""
from protocols.errors import ProtocolError

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_FAILED = 0x6300
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_SM_DATA_MISSING = 0x6987
SW_SM_DATA_WRONG = 0x6988
SW_END_OF_FILE = 0x6282
SW_CONDITIONS = 0x6985

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_INTERNAL_AUTHENTICATE = 0x88
INS_MSE = 0x22
INS_GENERAL_AUTHENTICATE = 0x86

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LE = 65536


class CommandAPDU:
    """One command: header, data and expected length. `extended` forces extended encoding."""

    def __init__(self, cla, ins, p1, p2, data=b"", le=0, extended=None):
        self.cla = cla & 0xFF
        self.ins = ins & 0xFF
        self.p1 = p1 & 0xFF
        self.p2 = p2 & 0xFF
        self.data = bytes(data)
        if le < 0 or le > EXTENDED_MAX_LE:
            raise ProtocolError("APDU: Le %d out of range" % le)
        if len(self.data) > 65535:
            raise ProtocolError("APDU: data too long")
        self.le = le
        if extended is None:
            extended = len(self.data) > SHORT_MAX_LC or le > SHORT_MAX_LE
        self.extended = extended

    def header(self):
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def to_bytes(self):
        out = self.header()
        nc = len(self.data)
        if not self.extended:
            if nc:
                out += bytes((nc,)) + self.data
            if self.le:
                out += bytes((self.le & 0xFF,))  # 256 -> 00
            return out
        if nc:
            out += bytes((0, nc >> 8, nc & 0xFF)) + self.data
            if self.le:
                out += bytes(((self.le >> 8) & 0xFF, self.le & 0xFF))  # 65536 -> 0000
        elif self.le:
            out += bytes((0, (self.le >> 8) & 0xFF, self.le & 0xFF))
        return out

    def __repr__(self):
        return "CommandAPDU(%02X %02X %02X %02X, %d bytes, Le=%d%s)" % (
            self.cla, self.ins, self.p1, self.p2, len(self.data), self.le, ", ext" if self.extended else "")


def parse_command(apdu):
    """Decode a command APDU (the card side). Raises ProtocolError on a malformed one."""
    apdu = bytes(apdu)
    n = len(apdu)
    if n < 4:
        raise ProtocolError("APDU: shorter than a header")
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    if n == 4:
        return CommandAPDU(cla, ins, p1, p2)
    if n == 5:
        return CommandAPDU(cla, ins, p1, p2, le=apdu[4] or 256, extended=False)
    if apdu[4] != 0:  # short Lc
        nc = apdu[4]
        if n == 5 + nc:
            return CommandAPDU(cla, ins, p1, p2, apdu[5:], extended=False)
        if n == 6 + nc:
            return CommandAPDU(cla, ins, p1, p2, apdu[5:5 + nc], le=apdu[5 + nc] or 256, extended=False)
        raise ProtocolError("APDU: short Lc %d does not match %d bytes" % (nc, n))
    # extended: 00 then two bytes
    if n == 7:
        le = (apdu[5] << 8) | apdu[6]
        return CommandAPDU(cla, ins, p1, p2, le=le or 65536, extended=True)
    if n < 7:
        raise ProtocolError("APDU: truncated extended length")
    nc = (apdu[5] << 8) | apdu[6]
    if nc == 0:
        raise ProtocolError("APDU: extended Lc of zero")
    if n == 7 + nc:
        return CommandAPDU(cla, ins, p1, p2, apdu[7:], extended=True)
    if n == 9 + nc:
        le = (apdu[7 + nc] << 8) | apdu[8 + nc]
        return CommandAPDU(cla, ins, p1, p2, apdu[7:7 + nc], le=le or 65536, extended=True)
    raise ProtocolError("APDU: extended Lc %d does not match %d bytes" % (nc, n))


def split_response(resp):
    """(data, sw) of a response APDU."""
    resp = bytes(resp)
    if len(resp) < 2:
        raise ProtocolError("APDU: response shorter than a status word")
    return resp[:-2], (resp[-2] << 8) | resp[-1]


def response(data, sw):
    return bytes(data) + bytes(((sw >> 8) & 0xFF, sw & 0xFF))


def select_by_fid(fid, cla=0x00):
    """SELECT EF under the current DF by file identifier, no response data (P2=0C)."""
    return CommandAPDU(cla, INS_SELECT, 0x02, 0x0C, bytes(((fid >> 8) & 0xFF, fid & 0xFF)))


def select_mf(cla=0x00):
    return CommandAPDU(cla, INS_SELECT, 0x00, 0x0C, b"\x3f\x00")


def select_aid(aid, cla=0x00):
    return CommandAPDU(cla, INS_SELECT, 0x04, 0x0C, aid)


def read_binary(offset, le, extended=None):
    """READ BINARY at a 15-bit offset of the current EF."""
    if offset < 0 or offset > 0x7FFF:
        raise ProtocolError("READ BINARY: offset %d beyond 15 bits" % offset)
    return CommandAPDU(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=le, extended=extended)


def get_challenge(n=8):
    return CommandAPDU(0x00, INS_GET_CHALLENGE, 0, 0, le=n)


def sw_text(sw):
    return "%04X" % sw
