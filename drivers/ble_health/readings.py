"""Parsed health measurements -> RPC results with units, or a HalError with a reason.

A special value (NaN, NRes, ±INF) or a number outside the physiological range is never
returned as a number. Readings are citizen data: error texts say what was wrong, not the
value (they reach logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.base import HalError
from protocols.errors import ProtocolError
from protocols.gatt_health import blood_pressure, ieee11073, plx, weight
from protocols.gatt_health.codec import iso_date_time

MMHG_PER_KPA = 7.50062
KG_PER_LB = weight.KG_PER_LB
IN_TO_M = 0.0254

# Plausible ranges for an adult at a kiosk; outside them the device has misread.
RANGES = {
    "systolic_mmhg": (50.0, 280.0),
    "diastolic_mmhg": (25.0, 200.0),
    "mean_arterial_mmhg": (30.0, 230.0),
    "pulse_bpm": (25.0, 250.0),
    "spo2_percent": (50.0, 100.0),
    "weight_kg": (2.0, 350.0),
    "height_m": (0.5, 2.6),
    "body_fat_percent": (2.0, 75.0),
}
NO_FINGER_WORDS = {"sensor_disconnected", "sensor_unconnected", "sensor_displaced"}


def parse(decoder: Any, raw: bytes, what: str) -> dict[str, Any]:
    try:
        return dict(decoder(raw))
    except ProtocolError as exc:
        raise HalError("invalid_reading", f"the {what} sent a malformed value: {exc.message}",
                       detail="malformed") from None


def _number(value: Any, field: str, what: str) -> float:
    if ieee11073.is_special(value):
        raise HalError("invalid_reading", f"the {what} reported {field} as {value.name}", field=field,
                       special=value.name)
    return float(value)


def _check(result: dict[str, Any], what: str) -> dict[str, Any]:
    for key, (lo, hi) in RANGES.items():
        v = result.get(key)
        if v is not None and not lo <= v <= hi:
            raise HalError("invalid_reading", f"the {what} reported an implausible {key.rsplit('_', 1)[0]}",
                           field=key, detail="out_of_range")
    return result


def blood_pressure_result(m: Mapping[str, Any]) -> dict[str, Any]:
    what = "cuff"
    status = list(m["status"])
    if any(ieee11073.is_special(m[k]) for k in ("systolic", "diastolic", "mean_arterial")):
        if {"cuff_too_loose", "improper_position", "body_movement"} & set(status):
            raise HalError("cuff_error", "the cuff could not take a reading: " + ", ".join(status),
                           status=status)
    scale = MMHG_PER_KPA if m["unit"] == "kPa" else 1.0
    out: dict[str, Any] = {
        "kind": "blood_pressure",
        "systolic_mmhg": round(_number(m["systolic"], "systolic", what) * scale, 1),
        "diastolic_mmhg": round(_number(m["diastolic"], "diastolic", what) * scale, 1),
        "mean_arterial_mmhg": round(_number(m["mean_arterial"], "mean_arterial", what) * scale, 1),
        "unit": "mmHg",
        "timestamp": iso_date_time(m["timestamp"]),
        "status": status,
    }
    if m["pulse_rate"] is not None:
        out["pulse_bpm"] = round(_number(m["pulse_rate"], "pulse_rate", what), 1)
    if m["user_id"] is not None:
        out["user_id"] = m["user_id"]
    if out["diastolic_mmhg"] >= out["systolic_mmhg"]:
        raise HalError("invalid_reading", "the cuff reported a diastolic above the systolic pressure",
                       detail="out_of_range")
    return _check(out, what)


def cuff_pressure_mmhg(m: Mapping[str, Any]) -> float | None:
    p = m["cuff_pressure"]
    if ieee11073.is_special(p):
        return None
    return round(float(p) * (MMHG_PER_KPA if m["unit"] == "kPa" else 1.0), 1)


def spo2_result(m: Mapping[str, Any], what: str = "oximeter") -> dict[str, Any]:
    device_status = list(m.get("device_status", []))
    if NO_FINGER_WORDS & set(device_status):
        raise HalError("no_finger", "no finger in the oximeter", status=device_status)
    if "invalid_measurement" in m.get("status", []) or "measurement_unavailable" in m.get("status", []):
        raise HalError("invalid_reading", "the oximeter marked its measurement invalid",
                       status=list(m["status"]))
    out: dict[str, Any] = {
        "kind": "spo2",
        "spo2_percent": round(_number(m["spo2"], "spo2", what), 1),
        "pulse_bpm": round(_number(m["pulse_rate"], "pulse_rate", what), 1),
        # A device whose clock was never set stamps 2000-01-01 or so: no timestamp beats a wrong one.
        "timestamp": None if m.get("clock_not_set") else iso_date_time(m.get("timestamp")),
        "status": list(m.get("status", [])) + device_status,
    }
    pai = m.get("pulse_amplitude_index")
    if pai is not None and not ieee11073.is_special(pai):
        out["perfusion_index_percent"] = round(float(pai), 2)
    return _check(out, what)


def live_spo2(m: Mapping[str, Any]) -> dict[str, Any] | None:
    """A continuous PLX value for a progress event, or None while it carries no numbers."""
    if ieee11073.is_special(m["spo2"]) or ieee11073.is_special(m["pulse_rate"]):
        return None
    return {"spo2_percent": float(m["spo2"]), "pulse_bpm": float(m["pulse_rate"])}


def _kg(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    return round(value * KG_PER_LB, 2) if unit == "lb" else round(value, 3)


def _m(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    return round(value * IN_TO_M, 3) if unit == "lb" else round(value, 3)


def weight_result(m: Mapping[str, Any], height_m: float | None = None) -> dict[str, Any]:
    if m["unsuccessful"]:
        raise HalError("unstable_weight", "the scale could not measure (the person moved or stepped off)")
    out: dict[str, Any] = {"kind": "weight", "weight_kg": _kg(m["weight"], m["unit"]), "stable": True,
                           "timestamp": iso_date_time(m["timestamp"])}
    height = _m(m["height"], m["unit"]) or height_m
    if height:
        out["height_m"] = height
        out["bmi"] = m["bmi"] if m["bmi"] is not None else round(out["weight_kg"] / height ** 2, 1)
    if m["user_id"] is not None:
        out["user_id"] = m["user_id"]
    return _check(out, "scale")


def body_composition_result(m: Mapping[str, Any], height_m: float | None = None) -> dict[str, Any]:
    if m["unsuccessful"]:
        raise HalError("invalid_reading", "the scale could not measure body composition",
                       detail="unsuccessful")
    u = m["unit"]
    out: dict[str, Any] = {"kind": "body_composition", "body_fat_percent": m["body_fat_percent"],
                           "timestamp": iso_date_time(m["timestamp"])}
    for key, name, conv in (("weight", "weight_kg", _kg), ("muscle_mass", "muscle_mass_kg", _kg),
                            ("fat_free_mass", "fat_free_mass_kg", _kg),
                            ("soft_lean_mass", "soft_lean_mass_kg", _kg),
                            ("body_water_mass", "body_water_kg", _kg), ("height", "height_m", _m)):
        if m.get(key) is not None:
            out[name] = conv(m[key], u)
    for key in ("muscle_percent", "impedance_ohm", "basal_metabolism_kj", "user_id"):
        if m.get(key) is not None:
            out[key] = m[key]
    if "height_m" not in out and height_m:
        out["height_m"] = height_m
    if out.get("weight_kg") and out.get("height_m"):
        out["bmi"] = round(out["weight_kg"] / out["height_m"] ** 2, 1)
    return _check(out, "scale")


def berrymed_result(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The steady reading of the last frames (all valid): their median values."""
    spo2 = sorted(f["spo2"] for f in frames)[len(frames) // 2]
    pulse = sorted(f["pulse_rate"] for f in frames)[len(frames) // 2]
    out = {"kind": "spo2", "spo2_percent": float(spo2), "pulse_bpm": float(pulse), "timestamp": None,
           "status": []}
    return _check(out, "oximeter")


DECODERS = {
    "blood_pressure": blood_pressure.decode_measurement,
    "cuff_pressure": blood_pressure.decode_intermediate_cuff_pressure,
    "spot_check": plx.decode_spot_check,
    "continuous": plx.decode_continuous,
    "weight": weight.decode_weight,
    "body_composition": weight.decode_body_composition,
}
