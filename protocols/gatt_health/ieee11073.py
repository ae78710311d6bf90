"""IEEE 11073-20601 SFLOAT (16 bit) and FLOAT (32 bit), the number formats of the Bluetooth health
profiles, with every special value kept apart from numbers.

A special value (NaN, NRes, ±INF, reserved) decodes to a `Special`, never to a float, so that a
driver cannot mistake "no reading" for a reading. Portable (DESIGN §6).
"""
from protocols.errors import ProtocolError


class Special:
    """A reserved SFLOAT/FLOAT value: `name` is "NaN", "NRes", "+INF", "-INF" or "reserved"."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Special(%s)" % self.name

    def __eq__(self, other):
        return isinstance(other, Special) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


NAN = Special("NaN")
NRES = Special("NRes")
POSITIVE_INFINITY = Special("+INF")
NEGATIVE_INFINITY = Special("-INF")
RESERVED = Special("reserved")

# Specials are identified by the mantissa alone with exponent 0 (11073-20601 §F.8).
_SFLOAT_SPECIALS = {0x07FF: NAN, 0x0800: NRES, 0x07FE: POSITIVE_INFINITY,
                    0x0802: NEGATIVE_INFINITY, 0x0801: RESERVED}
_FLOAT_SPECIALS = {0x007FFFFF: NAN, 0x00800000: NRES, 0x007FFFFE: POSITIVE_INFINITY,
                   0x00800002: NEGATIVE_INFINITY, 0x00800001: RESERVED}
_SFLOAT_CODES = {"NaN": 0x07FF, "NRes": 0x0800, "+INF": 0x07FE, "-INF": 0x0802, "reserved": 0x0801}
_FLOAT_CODES = {"NaN": 0x007FFFFF, "NRes": 0x00800000, "+INF": 0x007FFFFE, "-INF": 0x00800002,
                "reserved": 0x00800001}


_INF = float("inf")


def is_special(value):
    return isinstance(value, Special)


def _scale(mantissa, exponent):
    # Dividing by a power of ten keeps 36.6 as 36.6 where 366 * 0.1 gives 36.6000000001.
    if exponent >= 0:
        return float(mantissa * 10 ** exponent)
    return mantissa / 10 ** (-exponent)


def decode_sfloat(raw):
    """16-bit SFLOAT (as an unsigned int) -> float or Special."""
    if not 0 <= raw <= 0xFFFF:
        raise ProtocolError("SFLOAT out of range: %r" % (raw,))
    mantissa = raw & 0x0FFF
    exponent = raw >> 12
    if exponent == 0 and mantissa in _SFLOAT_SPECIALS:
        return _SFLOAT_SPECIALS[mantissa]
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    if exponent >= 0x8:
        exponent -= 0x10
    return _scale(mantissa, exponent)


def decode_float(raw):
    """32-bit FLOAT (as an unsigned int) -> float or Special."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ProtocolError("FLOAT out of range: %r" % (raw,))
    mantissa = raw & 0x00FFFFFF
    exponent = raw >> 24
    if exponent == 0 and mantissa in _FLOAT_SPECIALS:
        return _FLOAT_SPECIALS[mantissa]
    if mantissa >= 0x00800000:
        mantissa -= 0x01000000
    if exponent >= 0x80:
        exponent -= 0x100
    return _scale(mantissa, exponent)


def _mantissa_exponent(value, exponent, m_max, e_min, e_max):
    # NaN and ±inf have their own codes (a Special); a finite value beyond the largest mantissa
    # at the largest exponent overflows to inf on scaling, and round(inf) is an OverflowError.
    if value != value or value in (_INF, -_INF):
        raise ProtocolError("%r is not a number: encode a Special instead" % (value,))
    if abs(value) > m_max * 10.0 ** e_max:
        raise ProtocolError("%r is too large for this format" % (value,))
    if exponent is None:
        # The largest precision that fits: a value with fewer decimals is exact at a larger
        # exponent, so try from the finest exponent that still fits the mantissa.
        exponent = e_min
        while exponent < e_max and abs(round(value * 10 ** (-exponent))) > m_max:
            exponent += 1
        while exponent < 0 and round(value * 10 ** (-exponent)) % 10 == 0 and value != 0:
            exponent += 1
        if value == 0:
            exponent = 0
    if not e_min <= exponent <= e_max:
        raise ProtocolError("exponent %d out of range" % exponent)
    if exponent >= 0:
        mantissa = round(value / 10 ** exponent)
    else:
        mantissa = round(value * 10 ** (-exponent))
    if not -m_max <= mantissa <= m_max:
        raise ProtocolError("%r does not fit with exponent %d" % (value, exponent))
    return mantissa, exponent


def encode_sfloat(value, exponent=None):
    """float or Special -> 16-bit SFLOAT as an unsigned int. `exponent` forces the precision."""
    if isinstance(value, Special):
        return _SFLOAT_CODES[value.name]
    # ±2045 leaves the special mantissas 0x7FE..0x802 alone.
    mantissa, exponent = _mantissa_exponent(value, exponent, 2045, -8, 7)
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


def encode_float(value, exponent=None):
    """float or Special -> 32-bit FLOAT as an unsigned int."""
    if isinstance(value, Special):
        return _FLOAT_CODES[value.name]
    mantissa, exponent = _mantissa_exponent(value, exponent, 0x7FFFFD, -128, 127)
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


def sfloat_bytes(value, exponent=None):
    raw = encode_sfloat(value, exponent)
    return bytes((raw & 0xFF, raw >> 8))


def float_bytes(value, exponent=None):
    raw = encode_float(value, exponent)
    return bytes((raw & 0xFF, (raw >> 8) & 0xFF, (raw >> 16) & 0xFF, raw >> 24))
