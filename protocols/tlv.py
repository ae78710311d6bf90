"""BER-TLV (ISO/IEC 7816-4 §5.2, X.690 §8.1): tags of one to three bytes, definite lengths.

Portable (DESIGN §6). Every decoding failure is a `ProtocolError`, so a parser fed garbage never
escapes with an IndexError.
"""
from protocols.errors import ProtocolError


def read_tag(data, pos):
    """Return (tag as int, constructed?, position after the tag)."""
    if pos >= len(data):
        raise ProtocolError("TLV: missing tag")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:  # high tag number form: more bytes while bit 8 is set
        for _ in range(3):
            if pos >= len(data):
                raise ProtocolError("TLV: truncated tag")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
        else:
            raise ProtocolError("TLV: tag longer than 4 bytes")
    return tag, bool(first & 0x20), pos


def read_length(data, pos):
    """Return (length, position after the length)."""
    if pos >= len(data):
        raise ProtocolError("TLV: missing length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ProtocolError("TLV: unsupported length form 0x%02X" % first)
    if pos + count > len(data):
        raise ProtocolError("TLV: truncated length")
    return int.from_bytes(bytes(data[pos:pos + count]), "big"), pos + count


def read_tlv(data, pos=0):
    """Decode one TLV at `pos`: (tag, value bytes, position after it)."""
    tag, _, pos = read_tag(data, pos)
    length, pos = read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("TLV: value of tag %X needs %d bytes, %d left" % (tag, length, len(data) - pos))
    return tag, bytes(data[pos:end]), end


def parse(data):
    """Every TLV in `data`, in order: a list of (tag, value)."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        tag, value, pos = read_tlv(data, pos)
        out.append((tag, value))
    return out


def parse_raw(data):
    """Every TLV in `data` as (tag, value, raw encoding): MACs cover the bytes as sent."""
    out = []
    pos = 0
    while pos < len(data):
        start = pos
        tag, value, pos = read_tlv(data, pos)
        out.append((tag, value, bytes(data[start:pos])))
    return out


def parse_one(data, expected_tag=None):
    """The single TLV that `data` must be (trailing bytes are an error)."""
    tag, value, end = read_tlv(data, 0)
    if end != len(data):
        raise ProtocolError("TLV: %d trailing bytes after tag %X" % (len(data) - end, tag))
    if expected_tag is not None and tag != expected_tag:
        raise ProtocolError("TLV: expected tag %X, found %X" % (expected_tag, tag))
    return value


def unwrap(data, expected_tag):
    """The value of the first TLV of `data` (trailing bytes allowed: files are often padded)."""
    tag, value, _ = read_tlv(data, 0)
    if tag != expected_tag:
        raise ProtocolError("TLV: expected tag %X, found %X" % (expected_tag, tag))
    return value


def find(items, tag):
    """The value of the first (tag, value) with this tag, or None."""
    for t, v in items:
        if t == tag:
            return v
    return None


def encode_tag(tag):
    if tag < 0x100:
        return bytes((tag,))
    if tag < 0x10000:
        return bytes(((tag >> 8) & 0xFF, tag & 0xFF))
    if tag < 0x1000000:
        return bytes(((tag >> 16) & 0xFF, (tag >> 8) & 0xFF, tag & 0xFF))
    return bytes(((tag >> 24) & 0xFF, (tag >> 16) & 0xFF, (tag >> 8) & 0xFF, tag & 0xFF))


def encode_length(n):
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    if n < 0x1000000:
        return bytes((0x83, n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    raise ProtocolError("TLV: value too long")


def encode(tag, value):
    """One TLV: tag, DER length, value."""
    value = bytes(value)
    return encode_tag(tag) + encode_length(len(value)) + value


def total_length(header):
    """Size of a whole TLV from its first bytes (tag + length), or None if more are needed.

    Lets a reader learn a file's size from its first few bytes."""
    try:
        _, _, pos = read_tag(header, 0)
        length, pos = read_length(header, pos)
    except ProtocolError:
        if len(header) >= 8:
            raise
        return None
    return pos + length
