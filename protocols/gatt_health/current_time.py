"""Current Time 0x2A2B (CTS 1.1): what a central writes so the device stamps readings right."""
from protocols.errors import ProtocolError
from protocols.gatt_health.codec import Reader, encode_date_time

ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02
ADJUST_TIME_ZONE = 0x04
ADJUST_DST = 0x08


def encode(date_time, day_of_week, fractions256=0, adjust_reason=ADJUST_EXTERNAL_REFERENCE):
    """date_time (y, m, d, h, mi, s) in the device's local time; day_of_week 1 = Monday … 7."""
    if not 0 <= day_of_week <= 7:
        raise ProtocolError("day of week %r out of range" % (day_of_week,))
    return encode_date_time(date_time) + bytes((day_of_week, fractions256 & 0xFF, adjust_reason & 0xFF))


def decode(data):
    r = Reader(data, "current time")
    dt = r.date_time()
    dow = r.u8()
    if dow > 7:
        raise ProtocolError("current time: day of week %d" % dow, "invalid_reading")
    out = {"date_time": dt, "day_of_week": dow, "fractions256": r.u8(), "adjust_reason": r.u8()}
    if r.rest():
        raise ProtocolError("current time: trailing bytes", "invalid_reading")
    return out
