"""Weight Scale (0x181D): Weight Measurement 0x2A9D, Weight Scale Feature 0x2A9E; Body
Composition (0x181B): Body Composition Measurement 0x2A9C (WSS 1.0, BCS 1.0)."""
from protocols.errors import ProtocolError
from protocols.gatt_health.codec import Reader, encode_date_time, u16_bytes

UNSUCCESSFUL = 0xFFFF
KG_PER_LB = 0.45359237
UNKNOWN_USER = 0xFF

W_IMPERIAL = 0x01
W_TIMESTAMP = 0x02
W_USER = 0x04
W_BMI_HEIGHT = 0x08

# Weight (and mass fields): 0.005 kg or 0.01 lb; height 0.001 m or 0.1 in.
_MASS_RES = {False: 0.005, True: 0.01}
_HEIGHT_RES = {False: 0.001, True: 0.1}


def _round(value, res):
    # u16 x resolution in binary floating point: keep the digits the resolution has.
    digits = 0
    while res < 1 and digits < 6:
        res *= 10
        digits += 1
    return round(value, digits)


def _mass(raw, imperial):
    return _round(raw * _MASS_RES[imperial], _MASS_RES[imperial])


def _height(raw, imperial):
    return _round(raw * _HEIGHT_RES[imperial], _HEIGHT_RES[imperial])


def _user(r):
    user = r.u8()
    return None if user == UNKNOWN_USER else user


def decode_weight(data):
    """0x2A9D -> dict: unit ("kg"/"lb"), weight (None when the scale says unsuccessful),
    unsuccessful, timestamp, user_id, bmi, height (m or in)."""
    what = "weight measurement"
    r = Reader(data, what)
    flags = r.u8()
    if flags & 0xF0:
        raise ProtocolError("%s: reserved flag bits set (0x%02x)" % (what, flags), "invalid_reading")
    imperial = bool(flags & W_IMPERIAL)
    raw = r.u16()
    m = {"unit": "lb" if imperial else "kg", "unsuccessful": raw == UNSUCCESSFUL,
         "weight": None if raw == UNSUCCESSFUL else _mass(raw, imperial),
         "timestamp": r.date_time() if flags & W_TIMESTAMP else None,
         "user_id": _user(r) if flags & W_USER else None, "bmi": None, "height": None}
    if flags & W_BMI_HEIGHT:
        m["bmi"] = _round(r.u16() * 0.1, 0.1)
        m["height"] = _height(r.u16(), imperial)
    if r.rest():
        raise ProtocolError("%s: %d unexpected trailing bytes" % (what, r.rest()), "invalid_reading")
    return m


def _raw(value, res):
    raw = round(value / res)
    if not 0 <= raw < UNSUCCESSFUL:
        raise ProtocolError("%r does not fit a u16 at resolution %r" % (value, res))
    return raw


def encode_weight(weight, unit="kg", timestamp=None, user_id=None, bmi=None, height=None):
    """The inverse, for simulators; weight None encodes "measurement unsuccessful"."""
    imperial = unit == "lb"
    flags = W_IMPERIAL if imperial else 0
    body = u16_bytes(UNSUCCESSFUL if weight is None else _raw(weight, _MASS_RES[imperial]))
    if timestamp is not None:
        flags |= W_TIMESTAMP
        body += encode_date_time(timestamp)
    if user_id is not None:
        flags |= W_USER
        body += bytes((user_id,))
    if bmi is not None and height is not None:
        flags |= W_BMI_HEIGHT
        body += u16_bytes(_raw(bmi, 0.1)) + u16_bytes(_raw(height, _HEIGHT_RES[imperial]))
    return bytes((flags,)) + body


_WEIGHT_RESOLUTION = {0: None, 1: (0.5, 1.0), 2: (0.2, 0.5), 3: (0.1, 0.2), 4: (0.05, 0.1),
                      5: (0.02, 0.05), 6: (0.01, 0.02), 7: (0.005, 0.01)}
_HEIGHT_RESOLUTION = {0: None, 1: (0.01, 1.0), 2: (0.005, 0.5), 3: (0.001, 0.1)}


def decode_weight_feature(data):
    """0x2A9E (u32) -> {"timestamp", "multiple_users", "bmi": bool, "weight_resolution_kg",
    "height_resolution_m": float or None}."""
    r = Reader(data, "weight scale feature")
    lo = r.u16()
    hi = r.u16()
    bits = lo | (hi << 16)
    wres = _WEIGHT_RESOLUTION.get((bits >> 3) & 0xF)
    hres = _HEIGHT_RESOLUTION.get((bits >> 7) & 0x7)
    return {"timestamp": bool(bits & 1), "multiple_users": bool(bits & 2), "bmi": bool(bits & 4),
            "weight_resolution_kg": wres[0] if wres else None,
            "height_resolution_m": hres[0] if hres else None}


def encode_weight_feature(timestamp=True, multiple_users=False, bmi=False, weight_res=7, height_res=3):
    bits = (1 if timestamp else 0) | (2 if multiple_users else 0) | (4 if bmi else 0) \
        | ((weight_res & 0xF) << 3) | ((height_res & 0x7) << 7)
    return u16_bytes(bits & 0xFFFF) + u16_bytes(bits >> 16)


# Body Composition Measurement flags (u16) and the optional fields, in wire order.
BC_IMPERIAL = 0x0001
BC_TIMESTAMP = 0x0002
BC_USER = 0x0004
BC_MULTIPLE_PACKETS = 0x1000
_BC_FIELDS = (  # (flag, key, kind): kind "kj" raw kJ, "pct" x0.1 %, "mass", "ohm" x0.1, "height"
    (0x0008, "basal_metabolism_kj", "kj"),
    (0x0010, "muscle_percent", "pct"),
    (0x0020, "muscle_mass", "mass"),
    (0x0040, "fat_free_mass", "mass"),
    (0x0080, "soft_lean_mass", "mass"),
    (0x0100, "body_water_mass", "mass"),
    (0x0200, "impedance_ohm", "ohm"),
    (0x0400, "weight", "mass"),
    (0x0800, "height", "height"),
)


def _bc_value(raw, kind, imperial):
    if kind == "kj":
        return raw
    if kind in ("pct", "ohm"):
        return _round(raw * 0.1, 0.1)
    if kind == "mass":
        return _mass(raw, imperial)
    return _height(raw, imperial)


def _bc_raw(value, kind, imperial):
    if kind == "kj":
        return _raw(value, 1)
    if kind in ("pct", "ohm"):
        return _raw(value, 0.1)
    if kind == "mass":
        return _raw(value, _MASS_RES[imperial])
    return _raw(value, _HEIGHT_RES[imperial])


def decode_body_composition(data):
    """0x2A9C -> dict: unit, body_fat_percent (None when unsuccessful), unsuccessful,
    timestamp, user_id, multiple_packets, and each optional field present (None if absent)."""
    what = "body composition measurement"
    r = Reader(data, what)
    flags = r.u16()
    if flags & 0xE000:
        raise ProtocolError("%s: reserved flag bits set (0x%04x)" % (what, flags), "invalid_reading")
    imperial = bool(flags & BC_IMPERIAL)
    raw = r.u16()
    m = {"unit": "lb" if imperial else "kg", "unsuccessful": raw == UNSUCCESSFUL,
         "body_fat_percent": None if raw == UNSUCCESSFUL else _round(raw * 0.1, 0.1),
         "timestamp": r.date_time() if flags & BC_TIMESTAMP else None,
         "user_id": _user(r) if flags & BC_USER else None,
         "multiple_packets": bool(flags & BC_MULTIPLE_PACKETS)}
    for flag, key, kind in _BC_FIELDS:
        m[key] = _bc_value(r.u16(), kind, imperial) if flags & flag else None
    if r.rest() and not m["multiple_packets"]:
        raise ProtocolError("%s: %d unexpected trailing bytes" % (what, r.rest()), "invalid_reading")
    return m


def encode_body_composition(body_fat_percent, unit="kg", timestamp=None, user_id=None, **fields):
    """The inverse, for simulators: optional fields by their decode key (weight, height, …)."""
    imperial = unit == "lb"
    flags = BC_IMPERIAL if imperial else 0
    body = u16_bytes(UNSUCCESSFUL if body_fat_percent is None else _raw(body_fat_percent, 0.1))
    if timestamp is not None:
        flags |= BC_TIMESTAMP
        body += encode_date_time(timestamp)
    if user_id is not None:
        flags |= BC_USER
        body += bytes((user_id,))
    for flag, key, kind in _BC_FIELDS:
        if fields.get(key) is not None:
            flags |= flag
            body += u16_bytes(_bc_raw(fields[key], kind, imperial))
    return u16_bytes(flags) + body
