"""Blood Pressure service (0x1810): Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36,
Feature 0x2A49 (Bluetooth BLS 1.1.1 / GATT Specification Supplement §3.31, §3.124, §3.32)."""
from protocols.errors import ProtocolError
from protocols.gatt_health import ieee11073
from protocols.gatt_health.codec import Reader, encode_date_time, flag_words, u16_bytes

UNIT_KPA = 0x01
HAS_TIMESTAMP = 0x02
HAS_PULSE_RATE = 0x04
HAS_USER_ID = 0x08
HAS_STATUS = 0x10

STATUS_WORDS = ((0x0001, "body_movement"), (0x0002, "cuff_too_loose"), (0x0004, "irregular_pulse"),
                (0x0020, "improper_position"))
# Bits 3-4: pulse rate range; 0 within range, 3 reserved.
PULSE_RANGE_WORDS = {1: "pulse_rate_high", 2: "pulse_rate_low", 3: "pulse_rate_range_reserved"}

FEATURE_WORDS = ((0x0001, "body_movement_detection"), (0x0002, "cuff_fit_detection"),
                 (0x0004, "irregular_pulse_detection"), (0x0008, "pulse_rate_range_detection"),
                 (0x0010, "position_detection"), (0x0020, "multiple_bonds"))

UNKNOWN_USER = 0xFF


def status_words(bits):
    words = flag_words(bits, STATUS_WORDS)
    pulse_range = (bits >> 3) & 0x3
    if pulse_range:
        words.append(PULSE_RANGE_WORDS[pulse_range])
    return words


def decode_measurement(data, what="blood pressure measurement"):
    """0x2A35 (or 0x2A36) value -> dict with unit, systolic, diastolic, mean_arterial (float or
    Special), timestamp (tuple or None), pulse_rate, user_id, status_bits and status (words)."""
    r = Reader(data, what)
    flags = r.u8()
    if flags & 0xE0:
        raise ProtocolError("%s: reserved flag bits set (0x%02x)" % (what, flags), "invalid_reading")
    m = {
        "unit": "kPa" if flags & UNIT_KPA else "mmHg",
        "systolic": r.sfloat(),
        "diastolic": r.sfloat(),
        "mean_arterial": r.sfloat(),
        "timestamp": r.date_time() if flags & HAS_TIMESTAMP else None,
        "pulse_rate": r.sfloat() if flags & HAS_PULSE_RATE else None,
        "user_id": None,
        "status_bits": None,
        "status": [],
    }
    if flags & HAS_USER_ID:
        user = r.u8()
        m["user_id"] = None if user == UNKNOWN_USER else user
    if flags & HAS_STATUS:
        bits = r.u16()
        m["status_bits"] = bits
        m["status"] = status_words(bits)
    if r.rest():
        raise ProtocolError("%s: %d unexpected trailing bytes" % (what, r.rest()), "invalid_reading")
    return m


def decode_intermediate_cuff_pressure(data):
    """0x2A36: the same layout, the current cuff pressure in the systolic field (the other two
    are NaN on a conforming cuff). Adds `cuff_pressure`."""
    m = decode_measurement(data, "intermediate cuff pressure")
    m["cuff_pressure"] = m["systolic"]
    return m


def encode_measurement(systolic, diastolic, mean_arterial, unit="mmHg", timestamp=None,
                       pulse_rate=None, user_id=None, status_bits=None):
    """The inverse, for simulators. Values are floats or Specials; timestamp a 6-tuple."""
    flags = UNIT_KPA if unit == "kPa" else 0
    body = (ieee11073.sfloat_bytes(systolic) + ieee11073.sfloat_bytes(diastolic)
            + ieee11073.sfloat_bytes(mean_arterial))
    if timestamp is not None:
        flags |= HAS_TIMESTAMP
        body += encode_date_time(timestamp)
    if pulse_rate is not None:
        flags |= HAS_PULSE_RATE
        body += ieee11073.sfloat_bytes(pulse_rate)
    if user_id is not None:
        flags |= HAS_USER_ID
        body += bytes((user_id,))
    if status_bits is not None:
        flags |= HAS_STATUS
        body += u16_bytes(status_bits)
    return bytes((flags,)) + body


def encode_intermediate_cuff_pressure(pressure, unit="mmHg", status_bits=None):
    return encode_measurement(pressure, ieee11073.NAN, ieee11073.NAN, unit, status_bits=status_bits)


def decode_feature(data):
    r = Reader(data, "blood pressure feature")
    return flag_words(r.u16(), FEATURE_WORDS)


def encode_feature(bits):
    return u16_bytes(bits)
