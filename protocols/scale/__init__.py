"""Serial scales and height-weight stations, sans-IO: protocols declared as data, one engine."""

from protocols.scale.engine import (
    ERROR,
    NEGATIVE,
    OVERLOAD,
    STABLE,
    UNIT_KG,
    UNSTABLE,
    Noise,
    Reading,
    Reply,
    ScaleError,
    ScaleCodec,
    add_parity,
    decode_frame,
    even_parity,
    parse_number,
    strip_parity,
    to_kg,
)
from protocols.scale.specs import DETECT_ORDER, PROTOCOLS


def get(name):
    """The spec of protocol `name`; ProtocolError naming the known ones otherwise."""
    spec = PROTOCOLS.get(name)
    if spec is None:
        raise ScaleError("unknown scale protocol %r; known: %s" % (name, ", ".join(DETECT_ORDER)),
                            "not_supported")
    return spec


def bmi(weight_kg, height_m):
    """Body-mass index, one decimal, as stations print it."""
    return round(weight_kg / (height_m * height_m), 1)


__all__ = [
    "DETECT_ORDER", "ERROR", "NEGATIVE", "OVERLOAD", "PROTOCOLS", "STABLE", "UNIT_KG", "UNSTABLE",
    "Noise", "Reading", "Reply", "ScaleCodec", "ScaleError", "add_parity", "bmi", "decode_frame",
    "even_parity", "get", "parse_number", "strip_parity", "to_kg",
]
