"""Little-endian field reading and writing shared by the health profiles, and DateTime."""
from protocols.errors import ProtocolError
from protocols.gatt_health import ieee11073


class Reader:
    """Reads little-endian fields off a characteristic value; running short is a ProtocolError
    naming the characteristic, never an IndexError."""

    def __init__(self, data, what):
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolError("%s: value too short (%d bytes, need %d)"
                                % (self.what, len(self.data), self.pos + n), "invalid_reading")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        b = self.take(2)
        return b[0] | (b[1] << 8)

    def u24(self):
        b = self.take(3)
        return b[0] | (b[1] << 8) | (b[2] << 16)

    def sfloat(self):
        return ieee11073.decode_sfloat(self.u16())

    def float32(self):
        b = self.take(4)
        return ieee11073.decode_float(b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24))

    def date_time(self):
        return decode_date_time(self.take(7), self.what)

    def rest(self):
        return len(self.data) - self.pos


def u16_bytes(value):
    return bytes((value & 0xFF, (value >> 8) & 0xFF))


def u24_bytes(value):
    return bytes((value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF))


def decode_date_time(raw, what="DateTime"):
    """7 bytes -> (year, month, day, hours, minutes, seconds). Zero year/month/day mean
    "not known" in the spec; they are kept as 0 and the caller decides."""
    if len(raw) != 7:
        raise ProtocolError("%s: DateTime needs 7 bytes" % what, "invalid_reading")
    year = raw[0] | (raw[1] << 8)
    month, day, hours, minutes, seconds = raw[2], raw[3], raw[4], raw[5], raw[6]
    if (year and not 1582 <= year <= 9999) or month > 12 or day > 31 or hours > 23 \
            or minutes > 59 or seconds > 59:
        raise ProtocolError("%s: impossible DateTime %d-%d-%d %d:%d:%d"
                            % (what, year, month, day, hours, minutes, seconds), "invalid_reading")
    return (year, month, day, hours, minutes, seconds)


def encode_date_time(dt):
    year, month, day, hours, minutes, seconds = dt
    return u16_bytes(year) + bytes((month, day, hours, minutes, seconds))


def iso_date_time(dt):
    """(y, m, d, h, mi, s) -> "2024-05-01T08:30:00" (the device's local time, no zone), or None
    when the device does not know the date."""
    if dt is None or not dt[0] or not dt[1] or not dt[2]:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % dt


def flag_words(bits, names):
    """Status bits -> the words for the bits set, in bit order (names: [(mask, word), ...])."""
    return [word for mask, word in names if bits & mask]
