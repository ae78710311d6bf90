"""The scale engine on noisy lines: what the driver's noise faults came down to, frame by frame."""

from __future__ import annotations

from protocols import scale
from protocols.scale import Noise, Reading, Reply, ScaleCodec


def _readings(name: str, wire: bytes, software_parity: bool = False) -> list[Reading]:
    codec = ScaleCodec(scale.get(name), software_parity)
    return [e for e in codec.feed(wire) if isinstance(e, Reading)]


def test_noise_on_the_same_line_before_an_and_frame_is_skipped():
    wire = scale.add_parity(b"\x13Q7x" + b"ST,+00055.50 kg\r\n")
    [r] = _readings("and", wire, software_parity=True)
    assert r.weight_kg == 55.5 and r.stable


def test_noise_on_the_same_line_before_a_cas_frame_is_skipped():
    [r] = _readings("cas", b"\xfe\x00ab" + b"ST,GS,+ 55.500kg\r\n")
    assert r.weight_kg == 55.5


def test_a_bad_parity_byte_spoils_its_own_line_only():
    # Before: parity errors were counted per read, so the good frame after the bad one was lost.
    bad_line = bytearray(scale.add_parity(b"ST,+00012.00 kg\r\n"))
    bad_line[6] ^= 0x80
    good = scale.add_parity(b"ST,+00055.50 kg\r\n")
    readings = _readings("and", bytes(bad_line) + good, software_parity=True)
    assert [r.weight_kg for r in readings] == [55.5]


def test_a_bad_parity_byte_in_the_noise_before_a_frame_does_not_spoil_it():
    noise = bytes([0x86, 0x31])  # 0x86: an ACK with the wrong parity, then a '1'
    readings = _readings("and", noise + scale.add_parity(b"ST,+00055.50 kg\r\n"), software_parity=True)
    assert [r.weight_kg for r in readings] == [55.5]


def test_a_bad_parity_byte_in_a_frame_still_spoils_it():
    line = bytearray(scale.add_parity(b"ST,+00055.50 kg\r\n"))
    line[8] ^= 0x80  # a digit: a suffix search must not turn 55.50 into 5.50
    assert _readings("and", bytes(line), software_parity=True) == []


def test_only_a_clean_ack_byte_is_an_ack():
    def replies(wire: bytes) -> list[tuple[str, str]]:
        codec = ScaleCodec(scale.get("and"), software_parity=True)
        return [(e.command, e.outcome) for e in codec.feed(wire) if isinstance(e, Reply)]

    assert replies(bytes([0x86])) == []  # ACK's bits with the wrong parity: line noise
    assert replies(bytes([0x06])) == [("any", "ok")]


def test_a_stray_start_byte_in_8217_noise_does_not_swallow_the_next_frame():
    wire = scale.add_parity(b"\x02zz" + b"\x0255.500\r")
    [r] = _readings("mettler_8217", wire, software_parity=True)
    assert r.weight_kg == 55.5


def test_a_long_noise_burst_then_a_frame_on_the_same_line_is_read():
    codec = ScaleCodec(scale.get("cas"))
    events = codec.feed(bytes(range(14, 128)) * 3 + b"ST,GS,+ 55.500kg\r\n")
    assert [e.weight_kg for e in events if isinstance(e, Reading)] == [55.5]
    assert [e for e in events if isinstance(e, Noise) and e.why == "frame too long"]
