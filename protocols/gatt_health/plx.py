"""Pulse Oximeter service (0x1822, PLXS 1.0): Spot-check 0x2A5E, Continuous 0x2A5F, Features
0x2A60 (GATT Specification Supplement §3.172-3.174)."""
from protocols.errors import ProtocolError
from protocols.gatt_health import ieee11073
from protocols.gatt_health.codec import Reader, encode_date_time, flag_words, u16_bytes, u24_bytes

# Spot-check flags
SPOT_TIMESTAMP = 0x01
SPOT_STATUS = 0x02
SPOT_DEVICE_STATUS = 0x04
SPOT_PAI = 0x08
SPOT_CLOCK_NOT_SET = 0x10
# Continuous flags
CONT_FAST = 0x01
CONT_SLOW = 0x02
CONT_STATUS = 0x04
CONT_DEVICE_STATUS = 0x08
CONT_PAI = 0x10

# Measurement Status (u16), bits 5-15.
STATUS_WORDS = ((0x0020, "measurement_ongoing"), (0x0040, "early_estimate"),
                (0x0080, "validated_data"), (0x0100, "fully_qualified"),
                (0x0200, "from_measurement_storage"), (0x0400, "demonstration_data"),
                (0x0800, "testing_data"), (0x1000, "calibration_ongoing"),
                (0x2000, "measurement_unavailable"), (0x4000, "questionable_measurement"),
                (0x8000, "invalid_measurement"))
# Device and Sensor Status (u24), bits 0-15.
DEVICE_STATUS_WORDS = ((0x0001, "extended_display_update_ongoing"), (0x0002, "equipment_malfunction"),
                       (0x0004, "signal_processing_irregularity"), (0x0008, "inadequate_signal"),
                       (0x0010, "poor_signal"), (0x0020, "low_perfusion"),
                       (0x0040, "erratic_signal"), (0x0080, "nonpulsatile_signal"),
                       (0x0100, "questionable_pulse"), (0x0200, "signal_analysis_ongoing"),
                       (0x0400, "sensor_interference"), (0x0800, "sensor_unconnected"),
                       (0x1000, "unknown_sensor_connected"), (0x2000, "sensor_displaced"),
                       (0x4000, "sensor_malfunctioning"), (0x8000, "sensor_disconnected"))
FEATURE_WORDS = ((0x0001, "measurement_status"), (0x0002, "device_sensor_status"),
                 (0x0004, "spot_check_storage"), (0x0008, "timestamp"), (0x0010, "fast_spo2"),
                 (0x0020, "slow_spo2"), (0x0040, "pulse_amplitude_index"), (0x0080, "multiple_bonds"))


def _statuses(m, r, has_status, has_device_status):
    if has_status:
        bits = r.u16()
        m["status_bits"] = bits
        m["status"] = flag_words(bits, STATUS_WORDS)
    if has_device_status:
        bits = r.u24()
        m["device_status_bits"] = bits
        m["device_status"] = flag_words(bits, DEVICE_STATUS_WORDS)


def _empty(spo2, pulse_rate):
    return {"spo2": spo2, "pulse_rate": pulse_rate, "timestamp": None, "status_bits": None,
            "status": [], "device_status_bits": None, "device_status": [],
            "pulse_amplitude_index": None}


def decode_spot_check(data):
    """0x2A5E -> dict: spo2 (%), pulse_rate (bpm), timestamp, status, device_status,
    pulse_amplitude_index (%), clock_not_set."""
    what = "PLX spot-check measurement"
    r = Reader(data, what)
    flags = r.u8()
    if flags & 0xE0:
        raise ProtocolError("%s: reserved flag bits set (0x%02x)" % (what, flags), "invalid_reading")
    m = _empty(r.sfloat(), r.sfloat())
    if flags & SPOT_TIMESTAMP:
        m["timestamp"] = r.date_time()
    _statuses(m, r, flags & SPOT_STATUS, flags & SPOT_DEVICE_STATUS)
    if flags & SPOT_PAI:
        m["pulse_amplitude_index"] = r.sfloat()
    m["clock_not_set"] = bool(flags & SPOT_CLOCK_NOT_SET)
    if r.rest():
        raise ProtocolError("%s: %d unexpected trailing bytes" % (what, r.rest()), "invalid_reading")
    return m


def decode_continuous(data):
    """0x2A5F -> dict: spo2, pulse_rate (normal), fast and slow (spo2, pulse_rate) pairs or None,
    status, device_status, pulse_amplitude_index."""
    what = "PLX continuous measurement"
    r = Reader(data, what)
    flags = r.u8()
    if flags & 0xE0:
        raise ProtocolError("%s: reserved flag bits set (0x%02x)" % (what, flags), "invalid_reading")
    m = _empty(r.sfloat(), r.sfloat())
    m["fast"] = (r.sfloat(), r.sfloat()) if flags & CONT_FAST else None
    m["slow"] = (r.sfloat(), r.sfloat()) if flags & CONT_SLOW else None
    _statuses(m, r, flags & CONT_STATUS, flags & CONT_DEVICE_STATUS)
    if flags & CONT_PAI:
        m["pulse_amplitude_index"] = r.sfloat()
    if r.rest():
        raise ProtocolError("%s: %d unexpected trailing bytes" % (what, r.rest()), "invalid_reading")
    return m


def encode_spot_check(spo2, pulse_rate, timestamp=None, status_bits=None, device_status_bits=None,
                      pulse_amplitude_index=None, clock_not_set=False):
    flags = SPOT_CLOCK_NOT_SET if clock_not_set else 0
    body = ieee11073.sfloat_bytes(spo2) + ieee11073.sfloat_bytes(pulse_rate)
    if timestamp is not None:
        flags |= SPOT_TIMESTAMP
        body += encode_date_time(timestamp)
    if status_bits is not None:
        flags |= SPOT_STATUS
        body += u16_bytes(status_bits)
    if device_status_bits is not None:
        flags |= SPOT_DEVICE_STATUS
        body += u24_bytes(device_status_bits)
    if pulse_amplitude_index is not None:
        flags |= SPOT_PAI
        body += ieee11073.sfloat_bytes(pulse_amplitude_index)
    return bytes((flags,)) + body


def encode_continuous(spo2, pulse_rate, status_bits=None, device_status_bits=None,
                      pulse_amplitude_index=None):
    flags = 0
    body = ieee11073.sfloat_bytes(spo2) + ieee11073.sfloat_bytes(pulse_rate)
    if status_bits is not None:
        flags |= CONT_STATUS
        body += u16_bytes(status_bits)
    if device_status_bits is not None:
        flags |= CONT_DEVICE_STATUS
        body += u24_bytes(device_status_bits)
    if pulse_amplitude_index is not None:
        flags |= CONT_PAI
        body += ieee11073.sfloat_bytes(pulse_amplitude_index)
    return bytes((flags,)) + body


def decode_features(data):
    """0x2A60 -> {"features": [words], "supported_status": [words] | None,
    "supported_device_status": [words] | None}."""
    r = Reader(data, "PLX features")
    bits = r.u16()
    out = {"features": flag_words(bits, FEATURE_WORDS), "supported_status": None,
           "supported_device_status": None}
    if bits & 0x0001:
        out["supported_status"] = flag_words(r.u16(), STATUS_WORDS)
    if bits & 0x0002:
        out["supported_device_status"] = flag_words(r.u24(), DEVICE_STATUS_WORDS)
    return out


def encode_features(bits, supported_status=0, supported_device_status=0):
    body = u16_bytes(bits)
    if bits & 0x0001:
        body += u16_bytes(supported_status)
    if bits & 0x0002:
        body += u24_bytes(supported_device_status)
    return body
