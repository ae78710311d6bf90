"""Hypothesis against every parser in protocols/gatt_health: arbitrary bytes may only ever give
a ProtocolError (with reason invalid_reading for a characteristic value), and what our encoders
write parses back to the same reading. CPython only (hypothesis)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.gatt_health import berrymed, blood_pressure, codec, current_time, ieee11073, plx, racp, weight
from tests.fuzzing import examples

FUZZ = settings(max_examples=examples(300), deadline=None)  # HALSVC_FUZZ_LONG=1: minutes

PARSERS: list[Callable[[bytes], Any]] = [
    blood_pressure.decode_measurement, blood_pressure.decode_intermediate_cuff_pressure,
    blood_pressure.decode_feature, plx.decode_spot_check, plx.decode_continuous, plx.decode_features,
    weight.decode_weight, weight.decode_weight_feature, weight.decode_body_composition,
    racp.decode_response, racp.decode_request, current_time.decode, codec.decode_date_time,
]


def garbage_in(fn: Callable[[bytes], Any], data: bytes) -> None:
    try:
        fn(data)
    except ProtocolError as exc:
        assert exc.reason in ("invalid_reading", "protocol_error")


@FUZZ
@given(st.binary(max_size=40), st.sampled_from(PARSERS))
def test_characteristic_parsers_take_any_bytes(data: bytes, parser: Callable[[bytes], Any]) -> None:
    garbage_in(parser, data)


@FUZZ
@given(st.sampled_from(PARSERS), st.integers(0, 0x1F), st.binary(max_size=30))
def test_parsers_with_plausible_flags_and_random_bodies(parser: Callable[[bytes], Any], flags: int,
                                                         body: bytes) -> None:
    garbage_in(parser, bytes((flags,)) + body)
    garbage_in(parser, bytes((flags, 0)) + body)


@FUZZ
@given(st.lists(st.binary(max_size=12), max_size=20))
def test_berrymed_parser_takes_any_chunks(chunks: list[bytes]) -> None:
    p = berrymed.FrameParser()
    frames = [f for c in chunks for f in p.feed(c)]
    total = sum(len(c) for c in chunks)
    assert len(frames) * berrymed.FRAME_LEN + p.dropped <= total
    for f in frames:
        assert f["spo2"] is None or 0 <= f["spo2"] < 127
        assert f["pulse_rate"] is None or 0 <= f["pulse_rate"] < 255


@FUZZ
@given(st.integers(0, 0xFFFF))
def test_every_sfloat_decodes_to_a_number_or_a_special(raw: int) -> None:
    v = ieee11073.decode_sfloat(raw)
    assert ieee11073.is_special(v) or math.isfinite(v)


@FUZZ
@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_decodes_to_a_number_or_a_special(raw: int) -> None:
    v = ieee11073.decode_float(raw)
    assert ieee11073.is_special(v) or math.isfinite(v)


reading = st.integers(0, 300)
stamp = st.none() | st.tuples(st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 28),
                              st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))


@FUZZ
@given(reading, reading, reading, stamp, st.none() | reading, st.none() | st.integers(0, 254),
       st.none() | st.integers(0, 0x3F))
def test_blood_pressure_round_trip(sys_: int, dia: int, mean: int, ts: Any, pulse: Any, user: Any,
                                   status: Any) -> None:
    raw = blood_pressure.encode_measurement(sys_, dia, mean, timestamp=ts, pulse_rate=pulse, user_id=user,
                                            status_bits=status)
    m = blood_pressure.decode_measurement(raw)
    assert (m["systolic"], m["diastolic"], m["mean_arterial"], m["timestamp"]) == (sys_, dia, mean, ts)
    assert (m["pulse_rate"], m["user_id"], m["status_bits"]) == (pulse, user, status)


@FUZZ
@given(st.integers(0, 100), st.integers(0, 250), stamp, st.none() | st.integers(0, 0xFFE0),
       st.none() | st.integers(0, 0xFFFF))
def test_spot_check_round_trip(spo2: int, pulse: int, ts: Any, status: Any, device: Any) -> None:
    status = None if status is None else status & 0xFFE0
    m = plx.decode_spot_check(plx.encode_spot_check(spo2, pulse, ts, status, device))
    assert (m["spo2"], m["pulse_rate"], m["timestamp"], m["status_bits"], m["device_status_bits"]) == (
        spo2, pulse, ts, status, device)


@FUZZ
@given(st.integers(0, 0xFFFE), st.sampled_from(["kg", "lb"]))
def test_weight_round_trip(raw: int, unit: str) -> None:
    res = 0.005 if unit == "kg" else 0.01
    m = weight.decode_weight(weight.encode_weight(raw * res, unit))
    assert m["unit"] == unit and abs(m["weight"] - raw * res) < res / 2


@FUZZ
@given(st.integers(0, 127), st.integers(0, 254), st.integers(0, 100), st.integers(0, 15), st.booleans())
def test_berrymed_round_trip(spo2: int, pulse: int, pleth: int, bar: int, no_finger: bool) -> None:
    f = berrymed.decode_frame(berrymed.encode_frame(spo2, pulse, pleth, bar_graph=bar, no_finger=no_finger))
    assert f["spo2"] == (None if spo2 == 127 else spo2) and f["pulse_rate"] == pulse
    assert (f["pleth"], f["bar_graph"], f["no_finger"]) == (pleth, bar, no_finger)
