"""Serial scale protocols against the frames of ../shared/reference/printer-scale-payment.md.

Plain functions: this module also runs under MicroPython (tests/mpy_runner.py).
"""
from protocols import scale
from protocols.errors import ProtocolError
from protocols.scale import Noise, Reading, Reply, ScaleCodec


def _events(name, wire, software_parity=False, verify_checksum=True):
    codec = ScaleCodec(scale.get(name), software_parity, verify_checksum)
    return codec.feed(wire)


def _only(events, kind):
    out = [e for e in events if isinstance(e, kind)]
    assert len(out) == 1, events
    return out[0]


# --- 7E1 on an 8N1 wire -----------------------------------------------------------------
def test_8217_weight_as_seen_on_a_pty_with_parity_in_bit_7():
    # The reference: `W` answered as 82 30 30 2E 30 30 30 8D when 7E1 runs as 8N1 on a pty.
    wire = bytes([0x82, 0x30, 0x30, 0x2E, 0x30, 0x30, 0x30, 0x8D])
    r = _only(_events("mettler_8217", wire, software_parity=True), Reading)
    assert r.weight == 0.0 and r.stable and r.state == "stable" and not r.net
    assert r.weight_kg == 0.0


def test_even_parity_bit_matches_the_reference_bytes():
    assert scale.add_parity(b"\x0200.000\r") == bytes([0x82, 0x30, 0x30, 0x2E, 0x30, 0x30, 0x30, 0x8D])
    assert scale.even_parity(ord("W")) == 0xD7  # W = 0x57 has five one bits
    assert scale.strip_parity(bytes([0x82, 0x8D])) == (b"\x02\r", 0)
    assert scale.strip_parity(bytes([0x02]))[1] == 1


def test_8217_weigh_command_carries_parity_when_emulated():
    codec = ScaleCodec(scale.get("mettler_8217"), software_parity=True)
    assert codec.command("weigh") == b"\xd7"
    plain = ScaleCodec(scale.get("mettler_8217"))
    assert plain.command("weigh") == b"W"
    assert plain.command("zero") == b"Z" and plain.command("tare") == b"T"


def test_8217_byte_with_wrong_parity_spoils_its_frame():
    wire = scale.add_parity(b"\x0201.500\r")
    spoiled = wire[:3] + bytes([wire[3] ^ 0x80]) + wire[4:]
    events = _events("mettler_8217", spoiled, software_parity=True)
    assert not [e for e in events if isinstance(e, Reading)]
    assert [e for e in events if isinstance(e, Noise) and e.why == "parity"]


def test_8217_real_7e1_uart_bytes_are_read_as_they_are():
    r = _only(_events("mettler_8217", b"\x02 12.345\r"), Reading)
    assert r.weight == 12.345 and r.stable


def test_8217_net_weight_suffix():
    r = _only(_events("mettler_8217", b"\x0201.250N\r"), Reading)
    assert r.net and r.weight == 1.25


# --- 8217 status byte ---------------------------------------------------------------------
def test_8217_status_motion():
    r = _only(_events("mettler_8217", b"\x02?A\r"), Reading)  # 0x41: bit 6 + motion
    assert r.state == "unstable" and r.weight is None and "motion" in r.flags


def test_8217_status_over_capacity_wins_over_motion():
    r = _only(_events("mettler_8217", b"\x02?C\r"), Reading)  # 0x43: motion + over capacity
    assert r.state == "overload"


def test_8217_status_negative():
    r = _only(_events("mettler_8217", b"\x02?D\r"), Reading)  # 0x44: under zero
    assert r.state == "negative"


def test_8217_status_bit_6_alone_is_not_a_bad_command_flag():
    # Bit 6 is always 1 per the service manual: 0x40 must not be read as any condition flag.
    r = _only(_events("mettler_8217", b"\x02?@\r"), Reading)
    assert r.flags == ()


def test_8217_status_net_and_centre_of_zero_flags():
    r = _only(_events("mettler_8217", b"\x02?q\r"), Reading)  # 0x71: motion, centre of zero, net
    assert r.state == "unstable" and r.net and "centre_of_zero" in r.flags


def test_8217_echo_probe_answer_is_recognised():
    codec = ScaleCodec(scale.get("mettler_8217"), software_parity=True)
    send, probe = codec.probe()
    assert send == scale.add_parity(b"Ehello")
    assert codec.probe_answered(probe, scale.add_parity(b"\x02E\rhello"))
    assert not codec.probe_answered(probe, b"\x02E\rhello")  # 8N1 bytes: wrong parity for 'E'
    assert not codec.probe_answered(probe, scale.add_parity(b"ES\r\n"))


# --- MT-SICS ------------------------------------------------------------------------------
def test_sics_stable_weight():
    r = _only(_events("mt_sics", b"S S     100.00 g\r\n"), Reading)
    assert r.stable and r.weight == 100.0 and r.unit == "g" and r.weight_kg == 0.1


def test_sics_dynamic_weight():
    r = _only(_events("mt_sics", b"S D      72.35 kg\r\n"), Reading)
    assert r.state == "unstable" and not r.stable and r.weight_kg == 72.35


def test_sics_negative_weight():
    r = _only(_events("mt_sics", b"S S      -0.52 kg\r\n"), Reading)
    assert r.state == "negative" and r.weight == -0.52


def test_sics_overload_and_underload():
    assert _only(_events("mt_sics", b"S +\r\n"), Reading).state == "overload"
    assert _only(_events("mt_sics", b"S -\r\n"), Reading).state == "negative"


def test_sics_command_answers():
    assert _only(_events("mt_sics", b"Z A\r\n"), Reply).outcome == "ok"
    assert _only(_events("mt_sics", b"Z I\r\n"), Reply).outcome == "busy"
    assert _only(_events("mt_sics", b"Z +\r\n"), Reply).outcome == "overload"
    tare = _only(_events("mt_sics", b"T S     100.00 g\r\n"), Reply)
    assert tare.command == "tare" and tare.outcome == "ok"
    assert _only(_events("mt_sics", b"T I\r\n"), Reply).outcome == "busy"
    assert _only(_events("mt_sics", b"S I\r\n"), Reply).outcome == "busy"
    err = _only(_events("mt_sics", b"ES\r\n"), Reply)
    assert err.outcome == "error" and err.detail == "S"
    ident = _only(_events("mt_sics", b'I4 A "B021002593"\r\n'), Reply)
    assert ident.command == "identify" and ident.detail == "B021002593"


def test_sics_commands_end_in_crlf():
    codec = ScaleCodec(scale.get("mt_sics"))
    assert codec.command("weigh") == b"SI\r\n"
    assert codec.command("zero") == b"Z\r\n" and codec.command("tare") == b"T\r\n"


# --- A&D ----------------------------------------------------------------------------------
def test_and_stable_weight_with_three_character_unit():
    r = _only(_events("and", b"ST,+00072.35 kg\r\n"), Reading)
    assert r.stable and r.weight_kg == 72.35 and r.unit == "kg"


def test_and_unstable_and_overload():
    assert _only(_events("and", b"US,+00071.90 kg\r\n"), Reading).state == "unstable"
    ol = _only(_events("and", b"OL,+9999999E+19\r\n"), Reading)
    assert ol.state == "overload" and ol.weight is None


def test_and_grams_and_negative():
    r = _only(_events("and", b"ST,-00012.50  g\r\n"), Reading)
    assert r.state == "negative" and r.weight_kg == -0.0125


def test_and_count_mode_is_not_a_weight():
    ev = _events("and", b"QT,+00000012 PC\r\n")
    assert not [e for e in ev if isinstance(e, Reading)]
    assert [e for e in ev if isinstance(e, Noise) and e.why == "invalid_reading"]


def test_and_ack_byte_and_error_code():
    assert _only(_events("and", b"\x06"), Reply).outcome == "ok"
    err = _only(_events("and", b"EC,E1\r\n"), Reply)
    assert err.outcome == "error" and err.detail == "1"


def test_and_over_7e1_emulation():
    r = _only(_events("and", scale.add_parity(b"ST,+00072.35 kg\r\n"), software_parity=True), Reading)
    assert r.weight_kg == 72.35


# --- CAS ----------------------------------------------------------------------------------
def test_cas_gross_weight():
    r = _only(_events("cas", b"ST,GS,+  4.876kg\r\n"), Reading)
    assert r.stable and not r.net and r.weight_kg == 4.876


def test_cas_net_unstable_overload():
    r = _only(_events("cas", b"US,NT,+  1.200kg\r\n"), Reading)
    assert r.state == "unstable" and r.net
    assert _only(_events("cas", b"OL,GS,+      .  kg\r\n"), Reading).state == "overload"


def test_cas_has_no_commands():
    codec = ScaleCodec(scale.get("cas"))
    try:
        codec.command("zero")
    except ProtocolError as exc:
        assert exc.reason == "not_supported"
    else:
        raise AssertionError("CAS zero should be not_supported")


# --- Tanita WB-3000 -----------------------------------------------------------------------
def _tanita(body):
    total = 0
    for b in body:
        total += b
    return body + ("CS,%02X\r\n" % (total & 0xFF)).encode()


TANITA_BODY = b'{0,16,~0,1,~1,1,~2,1,MO,"WB-3000",Hm,170.5,Wk,65.3,MI,22.5,'


def test_tanita_record_with_checksum():
    r = _only(_events("tanita_wb3000", _tanita(TANITA_BODY)), Reading)
    assert r.stable and r.weight_kg == 65.3 and r.height_m == 1.705 and r.bmi == 22.5


def test_tanita_checksum_is_byte_sum_of_brace_through_comma_before_cs():
    record = _tanita(TANITA_BODY)
    total = 0
    for b in record[:record.index(b",CS,") + 1]:
        total += b
    assert record.endswith(("%02X\r\n" % (total & 0xFF)).encode())


def test_tanita_wrong_checksum_is_refused_unless_told_otherwise():
    bad = TANITA_BODY + b"CS,00\r\n"
    if _tanita(TANITA_BODY) == bad:  # 1 in 256: pick another wrong value
        bad = TANITA_BODY + b"CS,01\r\n"
    ev = _events("tanita_wb3000", bad)
    assert not [e for e in ev if isinstance(e, Reading)]
    assert [e for e in ev if isinstance(e, Noise) and e.why == "checksum_error"]
    assert _only(_events("tanita_wb3000", bad, verify_checksum=False), Reading).weight_kg == 65.3


def test_tanita_record_split_across_reads():
    codec = ScaleCodec(scale.get("tanita_wb3000"))
    record = _tanita(TANITA_BODY)
    events = []
    for i in range(len(record)):
        events.extend(codec.feed(record[i:i + 1]))
    assert _only(events, Reading).height_m == 1.705


# --- engine -------------------------------------------------------------------------------
def test_noise_before_a_frame_is_skipped():
    events = _events("and", b"\xff\x13garbage\r\nST,+00072.35 kg\r\n")
    assert _only(events, Reading).weight_kg == 72.35
    assert [e for e in events if isinstance(e, Noise)]


def test_frame_without_end_is_dropped_when_too_long():
    codec = ScaleCodec(scale.get("mt_sics"))
    events = codec.feed(b"X" * 200)
    assert [e for e in events if isinstance(e, Noise) and e.why == "frame too long"]
    # The rest of the overlong line is skipped; the next line is read.
    events = codec.feed(b"XXXX\r\nS S     1.00 kg\r\n")
    assert [e for e in events if isinstance(e, Reading)]


def test_decode_frame_raises_protocol_error_on_garbage():
    for frame in (b"", b"hello", b"ST,", b"S S  abc g"):
        try:
            scale.decode_frame(scale.get("mt_sics"), frame)
        except ProtocolError:
            pass
        else:
            raise AssertionError(frame)


def test_parse_number_forms():
    assert scale.parse_number("+00072.35") == 72.35
    assert scale.parse_number("+  4.876") == 4.876
    assert scale.parse_number(b"-0.5") == -0.5
    for bad in ("", "+", ".", "1.2.3", "12E3"):
        try:
            scale.parse_number(bad)
        except ProtocolError:
            pass
        else:
            raise AssertionError(bad)


def test_units_to_kg():
    assert scale.to_kg(1000, "g") == 1.0
    assert abs(scale.to_kg(100, "lb") - 45.359237) < 1e-9
    assert scale.bmi(65.3, 1.705) == 22.5


def test_unknown_protocol_is_not_supported():
    try:
        scale.get("nope")
    except ProtocolError as exc:
        assert exc.reason == "not_supported"
    else:
        raise AssertionError("no error")


def test_reading_repr_carries_no_weight():
    r = _only(_events("and", b"ST,+00072.35 kg\r\n"), Reading)
    assert "72" not in repr(r)
