"""What each simulated scale puts on the wire, written from the manuals' formats on its own.

Deliberately not built on `protocols.scale`'s patterns: the simulator is the device side, and a
driver bug mirrored in a shared encoder would pass every test.
"""

from __future__ import annotations

from dataclasses import dataclass

STX, CR, LF, ACK = b"\x02", b"\r", b"\n", b"\x06"
CRLF = CR + LF


@dataclass(frozen=True)
class Display:
    """What the scale's indicator shows right now."""

    weight_kg: float
    stable: bool
    overload: bool
    net: bool = False
    centre_of_zero: bool = False

    @property
    def negative(self) -> bool:
        return not self.overload and self.weight_kg < -0.0049


def mettler_8217_weight(d: Display) -> bytes:
    """Answer to `W`: the weight when still, valid and not negative, else the status byte."""
    if d.stable and not d.overload and not d.negative:
        text = f"{abs(d.weight_kg):06.3f}" + ("N" if d.net else "")
        return STX + text.encode() + CR
    status = 0x40  # bit 6: always 1 per the service manual
    if not d.stable:
        status |= 0x01
    if d.overload:
        status |= 0x02
    if d.negative:
        status |= 0x04
    if d.centre_of_zero:
        status |= 0x10
    if d.net:
        status |= 0x20
    return STX + b"?" + bytes([status]) + CR


def sics_weight(d: Display, immediate: bool) -> bytes:
    if d.overload:
        return b"S +" + CRLF
    if d.negative and d.weight_kg < -5:  # below the zero range: under load
        return b"S -" + CRLF
    if not immediate and not d.stable:
        return b"S I" + CRLF
    head = b"S S " if d.stable else b"S D "
    return head + f"{d.weight_kg:10.2f} kg".encode() + CRLF


def and_weight(d: Display) -> bytes:
    if d.overload:
        return b"OL,+9999999E+19" + CRLF
    head = b"ST," if d.stable else b"US,"
    return head + f"{d.weight_kg:+09.2f} kg".encode() + CRLF


def cas_weight(d: Display) -> bytes:
    if d.overload:
        return b"OL,GS,+      .  kg" + CRLF
    head = b"ST," if d.stable else b"US,"
    kind = b"NT," if d.net else b"GS,"
    sign = "-" if d.weight_kg < 0 else "+"
    return head + kind + f"{sign}{abs(d.weight_kg):7.3f}kg".encode() + CRLF


def tanita_record(weight_kg: float, height_m: float, model: str = "WB-3000",
                  corrupt_checksum: bool = False) -> bytes:
    """One finished measurement as the station prints it (checksum: byte sum mod 256, see specs)."""
    bmi = weight_kg / (height_m * height_m)
    body = (f'{{0,16,~0,1,~1,1,~2,1,MO,"{model}",Hm,{height_m * 100:.1f},Wk,{weight_kg:.1f},'
            f"MI,{bmi:.1f},").encode()
    checksum = sum(body) & 0xFF
    if corrupt_checksum:
        checksum ^= 0x5A
    return body + f"CS,{checksum:02X}".encode() + CRLF


def seven_e_one(data: bytes) -> bytes:
    """Bytes as a 7E1 device puts them on a pty that runs 8N1: even parity in bit 7."""
    out = bytearray()
    for b in data:
        b &= 0x7F
        out.append(b | 0x80 if bin(b).count("1") & 1 else b)
    return bytes(out)


def from_seven_e_one(data: bytes) -> tuple[bytes, int]:
    """What a 7E1 UART makes of 8N1 bytes: 7-bit bytes, and how many failed the parity check."""
    good = bytearray()
    bad = 0
    for b in data:
        if bin(b).count("1") & 1:
            bad += 1
            continue  # a UART flags and drops a parity error
        good.append(b & 0x7F)
    return bytes(good), bad
