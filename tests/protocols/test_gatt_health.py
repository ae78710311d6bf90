"""Bluetooth health codecs against the byte examples of ../shared/reference/ble-health.md and
the GATT Specification Supplement, not only round trips through our own encoders.

Plain functions: this module also runs under MicroPython (tests/mpy_runner.py).
"""
from protocols.errors import ProtocolError
from protocols.gatt_health import berrymed, blood_pressure, current_time, ieee11073, plx, racp, uuid16, weight


def _hex(text):
    return bytes.fromhex(text.replace(" ", ""))


def _raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError as exc:
        return exc
    raise AssertionError("no ProtocolError from " + repr(args))


# --- IEEE 11073 numbers -------------------------------------------------------------------
def test_sfloat_examples_and_every_special_value():
    assert ieee11073.decode_sfloat(0x0078) == 120.0  # bytes 78 00
    assert ieee11073.decode_sfloat(0xF16E) == 36.6  # bytes 6E F1
    assert ieee11073.sfloat_bytes(120) == _hex("7800")
    assert ieee11073.sfloat_bytes(36.6) == _hex("6EF1")
    assert ieee11073.decode_sfloat(0x07FF) == ieee11073.NAN
    assert ieee11073.decode_sfloat(0x0800) == ieee11073.NRES
    assert ieee11073.decode_sfloat(0x07FE) == ieee11073.POSITIVE_INFINITY
    assert ieee11073.decode_sfloat(0x0802) == ieee11073.NEGATIVE_INFINITY
    assert ieee11073.decode_sfloat(0x0801) == ieee11073.RESERVED
    for special in (ieee11073.NAN, ieee11073.NRES, ieee11073.POSITIVE_INFINITY,
                    ieee11073.NEGATIVE_INFINITY, ieee11073.RESERVED):
        assert ieee11073.decode_sfloat(ieee11073.encode_sfloat(special)) == special
    # The special mantissas are special only at exponent 0: 2046 x 10 is a number.
    assert ieee11073.decode_sfloat(0x17FE) == 20460.0
    # Negative mantissa and exponent: 0xFFFF = -1 x 10^-1.
    assert ieee11073.decode_sfloat(0xFFFF) == -0.1
    assert ieee11073.decode_sfloat(0x0803) == -2045.0


def test_float_examples_and_every_special_value():
    assert ieee11073.decode_float(0xFF00016E) == 36.6
    assert ieee11073.float_bytes(36.6) == _hex("6E0100FF")
    assert ieee11073.decode_float(0x007FFFFF) == ieee11073.NAN
    assert ieee11073.decode_float(0x00800000) == ieee11073.NRES
    assert ieee11073.decode_float(0x007FFFFE) == ieee11073.POSITIVE_INFINITY
    assert ieee11073.decode_float(0x00800002) == ieee11073.NEGATIVE_INFINITY
    assert ieee11073.decode_float(0x00800001) == ieee11073.RESERVED
    assert ieee11073.decode_float(0x00FFFFFF) == -1.0


def test_uuid16_is_the_bluetooth_base_uuid_form():
    assert uuid16(0x2A35) == "00002a35-0000-1000-8000-00805f9b34fb"


# --- Blood pressure -----------------------------------------------------------------------
def test_blood_pressure_measurement_reference_example():
    m = blood_pressure.decode_measurement(_hex("1E 7800 5000 5D00 E807 05 01 08 1E 00 4800 01 0000"))
    assert m["unit"] == "mmHg"
    assert (m["systolic"], m["diastolic"], m["mean_arterial"]) == (120.0, 80.0, 93.0)
    assert m["timestamp"] == (2024, 5, 1, 8, 30, 0)
    assert m["pulse_rate"] == 72.0 and m["user_id"] == 1
    assert m["status_bits"] == 0 and m["status"] == []


def test_blood_pressure_status_bits_become_words():
    # kPa, status only: 16.0/10.7/12.5 kPa, body movement + irregular pulse + pulse above range.
    m = blood_pressure.decode_measurement(_hex("11 A0F0 6BF0 7DF0 0D00"))
    assert m["unit"] == "kPa" and m["systolic"] == 16.0 and m["diastolic"] == 10.7
    assert m["status"] == ["body_movement", "irregular_pulse", "pulse_rate_high"]
    assert blood_pressure.status_words(0x0002 | 0x0020 | 0x0010) == [
        "cuff_too_loose", "improper_position", "pulse_rate_low"]
    # User 0xFF is "unknown user".
    assert blood_pressure.decode_measurement(_hex("08 7800 5000 5D00 FF"))["user_id"] is None


def test_intermediate_cuff_pressure_carries_nan_in_the_unused_fields():
    m = blood_pressure.decode_intermediate_cuff_pressure(_hex("00 8C00 FF07 FF07"))
    assert m["cuff_pressure"] == 140.0
    assert m["diastolic"] == ieee11073.NAN and m["mean_arterial"] == ieee11073.NAN
    assert blood_pressure.encode_intermediate_cuff_pressure(140) == _hex("00 8C00 FF07 FF07")


def test_blood_pressure_encoder_gives_the_reference_bytes():
    assert blood_pressure.encode_measurement(120, 80, 93, timestamp=(2024, 5, 1, 8, 30, 0), pulse_rate=72,
                                             user_id=1, status_bits=0) == \
        _hex("1E 7800 5000 5D00 E807 05 01 08 1E 00 4800 01 0000")


def test_blood_pressure_malformed_values_are_protocol_errors():
    for raw in ("", "1E 7800", "1E 7800 5000 5D00 E807 05", "00 7800 5000 5D00 00", "20 7800 5000 5D00",
                "02 7800 5000 5D00 E807 0D 01 08 1E 00"):
        assert _raises(blood_pressure.decode_measurement, _hex(raw)).reason == "invalid_reading"


def test_blood_pressure_feature_words():
    assert blood_pressure.decode_feature(_hex("2700")) == [
        "body_movement_detection", "cuff_fit_detection", "irregular_pulse_detection", "multiple_bonds"]


# --- Pulse oximeter -----------------------------------------------------------------------
def test_plx_spot_check_reference_example():
    m = plx.decode_spot_check(_hex("08 6100 4800 19F0"))
    assert (m["spo2"], m["pulse_rate"], m["pulse_amplitude_index"]) == (97.0, 72.0, 2.5)
    assert m["timestamp"] is None and m["status"] == [] and not m["clock_not_set"]


def test_plx_spot_check_with_timestamp_and_statuses():
    raw = _hex("07 6000 4B00 E807 05 01 08 1E 00 8000 2000 00")
    m = plx.decode_spot_check(raw)
    assert m["spo2"] == 96.0 and m["timestamp"] == (2024, 5, 1, 8, 30, 0)
    assert m["status"] == ["validated_data"] and m["device_status"] == ["low_perfusion"]
    assert plx.encode_spot_check(96, 75, timestamp=(2024, 5, 1, 8, 30, 0), status_bits=0x80,
                                 device_status_bits=0x20) == raw


def test_plx_continuous_and_its_optional_pairs():
    m = plx.decode_continuous(_hex("00 6200 4600"))
    assert (m["spo2"], m["pulse_rate"], m["fast"], m["slow"]) == (98.0, 70.0, None, None)
    m = plx.decode_continuous(_hex("11 6200 4600 6100 4700 1EF0"))
    assert m["fast"] == (97.0, 71.0) and m["slow"] is None and m["pulse_amplitude_index"] == 3.0
    assert plx.decode_continuous(_hex("00 FF07 0008"))["spo2"] == ieee11073.NAN


def test_plx_features():
    f = plx.decode_features(_hex("4C00"))
    assert f["features"] == ["spot_check_storage", "timestamp", "pulse_amplitude_index"]
    assert f["supported_status"] is None


def test_plx_features_with_supported_statuses():
    f = plx.decode_features(_hex("0300 8000 200000"))
    assert f["supported_status"] == ["validated_data"] and f["supported_device_status"] == ["low_perfusion"]
    assert plx.encode_features(0x0003, 0x80, 0x20) == _hex("0300 8000 200000")


def test_plx_malformed_values():
    for raw in ("", "08 6100 4800", "01 6100 4800 E807", "40 6100 4800"):
        assert _raises(plx.decode_spot_check, _hex(raw)).reason == "invalid_reading"


# --- Weight and body composition ----------------------------------------------------------
def test_weight_reference_example():
    m = weight.decode_weight(_hex("00 8638"))
    assert m["unit"] == "kg" and m["weight"] == 72.35 and not m["unsuccessful"]
    assert weight.encode_weight(72.35) == _hex("00 8638")


def test_weight_with_bmi_height_and_unsuccessful():
    # 72.35 kg, user 2, BMI 24.4, 1.722 m.
    m = weight.decode_weight(_hex("0C 8638 02 F400 BA06"))
    assert (m["weight"], m["user_id"], m["bmi"], m["height"]) == (72.35, 2, 24.4, 1.722)
    m = weight.decode_weight(_hex("00 FFFF"))
    assert m["unsuccessful"] and m["weight"] is None
    # Imperial: 0.01 lb per unit, height 0.1 in.
    m = weight.decode_weight(_hex("09 703E F400 AE02"))
    assert m["unit"] == "lb" and m["weight"] == 159.84 and m["height"] == 68.6


def test_weight_scale_feature():
    f = weight.decode_weight_feature(_hex("BE 01 00 00"))
    assert f["timestamp"] is False and f["multiple_users"] and f["bmi"]
    assert f["weight_resolution_kg"] == 0.005 and f["height_resolution_m"] == 0.001
    assert weight.encode_weight_feature(False, True, True, 7, 3) == _hex("BE 01 00 00")


def test_body_composition_example():
    m = weight.decode_body_composition(_hex("0004 E100 8638"))
    assert m["body_fat_percent"] == 22.5 and m["weight"] == 72.35 and m["height"] is None
    assert weight.encode_body_composition(22.5, weight=72.35) == _hex("0004 E100 8638")
    full = weight.encode_body_composition(22.5, user_id=1, basal_metabolism_kj=6500, muscle_percent=38.2,
                                          impedance_ohm=480.5, weight=72.35, height=1.722)
    m = weight.decode_body_composition(full)
    assert (m["basal_metabolism_kj"], m["muscle_percent"], m["impedance_ohm"], m["height"]) == (
        6500, 38.2, 480.5, 1.722)
    assert weight.decode_body_composition(_hex("0000 FFFF"))["unsuccessful"]


def test_weight_malformed_values():
    for raw in ("", "00 86", "02 8638 E807", "10 8638"):
        assert _raises(weight.decode_weight, _hex(raw)).reason == "invalid_reading"
    assert _raises(weight.decode_body_composition, _hex("0004 E100")).reason == "invalid_reading"


# --- RACP and Current Time ----------------------------------------------------------------
def test_racp_report_all_and_its_answers():
    assert racp.report_stored_records() == _hex("0101")
    assert racp.report_number_of_records() == _hex("0401")
    assert racp.decode_response(_hex("06 00 01 01")) == {"op": "response", "request": 1, "code": 1,
                                                          "result": "success"}
    assert racp.decode_response(_hex("06 00 01 06"))["result"] == "no_records_found"
    assert racp.decode_response(_hex("05 00 0300")) == {"op": "count", "count": 3}
    assert racp.response_code(1, 1) == _hex("06 00 01 01")
    assert racp.decode_request(_hex("0101")) == (1, 1, b"")
    for raw in ("", "06", "06 01 01 01", "01 01", "06 00 01 01 00"):
        _raises(racp.decode_response, _hex(raw))


def test_current_time():
    raw = current_time.encode((2024, 5, 1, 8, 30, 0), 3)
    assert raw == _hex("E807 05 01 08 1E 00 03 00 02")
    assert current_time.decode(raw)["date_time"] == (2024, 5, 1, 8, 30, 0)
    _raises(current_time.decode, _hex("E807 05 01 08 1E 00 09 00 02"))


# --- BerryMed -----------------------------------------------------------------------------
def test_berrymed_frames_from_the_reference_layout():
    # Signal 5, beep; pleth 60; bar 4; pulse 72; SpO2 98.
    f = berrymed.decode_frame(_hex("C5 3C 04 48 62"))
    assert (f["signal_strength"], f["beep"], f["pleth"], f["bar_graph"]) == (5, True, 60, 4)
    assert (f["pulse_rate"], f["spo2"], f["no_finger"]) == (72, 98, False)
    # Pulse rate bit 7 lives in b2: 0x40 + 0x0A = 138 bpm.
    assert berrymed.decode_frame(_hex("80 00 40 0A 5F"))["pulse_rate"] == 138
    # No finger: invalid pulse (255) and SpO2 (127).
    f = berrymed.decode_frame(_hex("80 00 50 7F 7F"))
    assert f["no_finger"] and f["pulse_rate"] is None and f["spo2"] is None
    assert berrymed.encode_frame(98, 72, 60, 5, 4, beep=True) == _hex("C5 3C 04 48 62")


def test_berrymed_parser_resyncs_across_torn_notifications():
    p = berrymed.FrameParser()
    stream = _hex("3C 04") + _hex("C5 3C 04 48 62") + _hex("C5 3C") + _hex("C6 3D 04 48 61")
    frames = p.feed(stream[:4]) + p.feed(stream[4:9]) + p.feed(stream[9:])
    assert [f["spo2"] for f in frames] == [98, 97]
    assert p.dropped == 4
