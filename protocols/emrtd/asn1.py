"""The few DER pieces the LDS needs: object identifiers, integers, and typed TLV access."""
from protocols import tlv
from protocols.errors import ProtocolError

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
IA5_STRING = 0x16
BIT_STRING = 0x03


# The longest arc worth decoding: 140 bits (a UUID arc under 2.25 takes 19 bytes). A longer one
# is garbage, and its decimal spelling could pass CPython's int-to-str digit limit (ValueError).
MAX_OID_ARC_BYTES = 20


def decode_oid(value):
    """DER OID value -> dotted string."""
    value = bytes(value)
    if not value:
        raise ProtocolError("ASN.1: empty OID")
    parts = []
    n = 0
    size = 0
    for i in range(len(value)):
        b = value[i]
        n = (n << 7) | (b & 0x7F)
        size += 1
        if not b & 0x80:
            parts.append(n)
            n = 0
            size = 0
        elif i == len(value) - 1:
            raise ProtocolError("ASN.1: truncated OID")
        elif size >= MAX_OID_ARC_BYTES:
            raise ProtocolError("ASN.1: OID arc longer than %d bytes" % MAX_OID_ARC_BYTES)
    first = parts[0]
    if first < 40:
        head = [0, first]
    elif first < 80:
        head = [1, first - 40]
    else:
        head = [2, first - 80]
    return ".".join(str(x) for x in head + parts[1:])


def encode_oid(dotted):
    """Dotted string -> DER OID value (without tag and length)."""
    nums = [int(x) for x in dotted.split(".")]
    if len(nums) < 2:
        raise ProtocolError("ASN.1: OID needs two arcs")
    arcs = [nums[0] * 40 + nums[1]] + nums[2:]
    out = b""
    for a in arcs:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        chunk.reverse()
        out += bytes(chunk)
    return out


def oid_tlv(dotted):
    return tlv.encode(OID, encode_oid(dotted))


def decode_int(value):
    value = bytes(value)
    if not value:
        raise ProtocolError("ASN.1: empty INTEGER")
    n = int.from_bytes(value, "big")
    if value[0] & 0x80:
        n -= 1 << (8 * len(value))
    return n


def encode_int(n):
    length = 1
    while n >= (1 << (8 * length - 1)) or n < -(1 << (8 * length - 1)):
        length += 1
    if n < 0:
        n += 1 << (8 * length)
    return tlv.encode(INTEGER, n.to_bytes(length, "big"))


def children(value):
    """The TLVs inside a constructed value."""
    return tlv.parse(value)


def expect(item, tag, what):
    if item[0] != tag:
        raise ProtocolError("ASN.1: %s: expected tag %X, found %X" % (what, tag, item[0]))
    return item[1]


def text(item):
    """A UTF8String, PrintableString or IA5String as str."""
    tag, value = item
    if tag not in (UTF8_STRING, PRINTABLE_STRING, IA5_STRING, 0x14, 0x1E):
        raise ProtocolError("ASN.1: expected a string, found tag %X" % tag)
    try:
        if tag == 0x1E:  # BMPString: UTF-16BE
            return "".join(chr((value[i] << 8) | value[i + 1]) for i in range(0, len(value) - 1, 2))
        return bytes(value).decode("utf-8")
    except UnicodeError:
        raise ProtocolError("ASN.1: string is not valid UTF-8")
