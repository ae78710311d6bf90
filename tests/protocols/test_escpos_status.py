"""ESC/POS status replies decoded against the reference table (printer-scale-payment.md)."""

from protocols.errors import ProtocolError
from protocols.escpos import status as st

# (command n, reply byte, the flags the reference table says are set). 0x12 = bits 1 and 4 only.
TABLE = [
    (1, 0x12, ()),
    (1, 0x16, ("drawer_pin3",)),
    (1, 0x1A, ("offline",)),
    (1, 0x32, ("waiting_for_recovery",)),
    (1, 0x52, ("feed_button",)),
    (2, 0x12, ()),
    (2, 0x16, ("cover_open",)),
    (2, 0x1A, ("paper_feed_by_button",)),
    (2, 0x32, ("stopped_at_paper_end",)),
    (2, 0x52, ("error",)),
    (3, 0x12, ()),
    (3, 0x16, ("recoverable_error",)),
    (3, 0x1A, ("cutter_error",)),
    (3, 0x32, ("unrecoverable_error",)),
    (3, 0x52, ("auto_recoverable_error",)),
    (4, 0x12, ()),
    (4, 0x1E, ("near_end",)),
    (4, 0x72, ("paper_end",)),
    (4, 0x7E, ("near_end", "paper_end")),
]


def test_realtime_status_bits_follow_the_reference_table():
    for n, byte, expected in TABLE:
        flags = st.decode_realtime_status(n, byte)
        on = sorted(k for k in flags if flags[k])
        assert on == sorted(expected), (n, hex(byte), on)


def test_epson_typical_replies():
    # An idle TM-T88 answers 0x16 to DLE EOT 1 (drawer pin low) and 0x12 to 2, 3 and 4.
    assert st.decode_realtime_status(1, 0x16)["offline"] is False
    # Cover open: DLE EOT 1 -> 0x1E (offline), DLE EOT 2 -> 0x16 (cover open).
    assert st.decode_realtime_status(1, 0x1E)["offline"] is True
    assert st.decode_realtime_status(2, 0x16)["cover_open"] is True
    # Paper out while printing: DLE EOT 2 -> 0x32 (stopped at paper end), 4 -> 0x72.
    assert st.decode_realtime_status(4, 0x72)["paper_end"] is True


def test_a_byte_without_the_fixed_bits_is_not_a_status_byte():
    for byte in (0x00, 0x10, 0x13, 0x11, 0x92, 0x93, 0x02, 0xFF, 0x5F):
        assert not st.is_realtime_status_byte(byte)
        try:
            st.decode_realtime_status(1, byte)
        except ProtocolError:
            pass
        else:
            raise AssertionError(hex(byte))


def test_realtime_requests_are_dle_eot_n():
    assert st.realtime_status_request(1) == b"\x10\x04\x01"
    assert st.realtime_status_request(4) == b"\x10\x04\x04"
    assert st.automatic_status_back() == b"\x1d\x61\x0f"
    assert st.automatic_status_back(0) == b"\x1d\x61\x00"
    assert st.paper_sensor_request() == b"\x1d\x72\x01"
    for bad in (0, 5, 17):
        try:
            st.realtime_status_request(bad)
        except ProtocolError:
            continue
        raise AssertionError(bad)


def test_encoder_and_decoder_agree_for_every_flag():
    for n, byte, expected in TABLE:
        flags = {}
        for name in expected:
            flags[name] = True
        assert st.encode_realtime_status(n, flags) == bytes((byte,))


def test_automatic_status_block_decodes_epson_layout():
    # Idle printer: 0x10 0x00 0x00 0x00. Cover open + offline: byte 1 = 0x10|0x20|0x08.
    idle = st.decode_automatic_status(b"\x10\x00\x00\x00")
    assert not any(idle[k] for k in idle)
    cover = st.decode_automatic_status(b"\x38\x00\x00\x00")
    assert cover["cover_open"] and cover["offline"]
    cutter = st.decode_automatic_status(b"\x18\x08\x00\x00")
    assert cutter["cutter_error"] and cutter["offline"]
    near = st.decode_automatic_status(b"\x10\x00\x03\x00")
    assert near["near_end"] and not near["paper_end"]
    out = st.decode_automatic_status(b"\x18\x00\x0f\x00")
    assert out["paper_end"] and out["near_end"]
    assert st.encode_automatic_status({"cover_open": True, "offline": True}) == b"\x38\x00\x00\x00"


def test_malformed_automatic_status_is_rejected():
    for block in (b"\x12\x00\x00\x00", b"\x10\x10\x00\x00", b"\x10\x00\x80\x00", b"\x10\x00"):
        try:
            st.decode_automatic_status(block)
        except ProtocolError:
            continue
        raise AssertionError(block)


def _all_events(splitter):
    out = []  # type: list
    while True:
        ev = splitter.next_event()
        if ev is None:
            return out
        out.append(ev)


def test_splitter_tells_realtime_replies_from_automatic_status():
    sp = st.ReplySplitter()
    sp.expect_realtime(1)
    sp.expect_realtime(4)
    # DLE EOT 1 reply, then an unprompted ASB (cover opened), then the DLE EOT 4 reply.
    sp.receive_data(b"\x16\x38\x00\x00")
    sp.receive_data(b"\x00\x7e")
    evs = _all_events(sp)
    assert [e.kind for e in evs] == ["realtime", "automatic", "realtime"]
    assert evs[0].n == 1 and evs[0].flags["offline"] is False
    assert evs[1].flags["cover_open"] is True
    assert evs[2].n == 4 and evs[2].flags["paper_end"] is True


def test_splitter_waits_for_a_whole_automatic_status_block():
    sp = st.ReplySplitter()
    sp.receive_data(b"\x10\x00")
    assert sp.next_event() is None
    sp.receive_data(b"\x03")
    assert sp.next_event() is None
    sp.receive_data(b"\x00")
    ev = sp.next_event()
    assert ev.kind == "automatic" and ev.flags["near_end"]


def test_splitter_passes_flow_control_even_inside_a_block():
    sp = st.ReplySplitter()
    sp.receive_data(b"\x13\x10\x00\x11\x00\x00")
    evs = _all_events(sp)
    assert [e.kind for e in evs] == ["flow", "flow", "automatic"]
    assert evs[0].ready is False and evs[1].ready is True


def test_splitter_matches_byte_and_block_replies():
    sp = st.ReplySplitter()
    sp.expect_byte("paper")
    sp.expect_realtime(2)
    sp.receive_data(b"\x12\x03_TM-T88V\x00")
    evs = _all_events(sp)
    assert [e.kind for e in evs] == ["realtime", "byte", "block"]
    assert evs[1].tag == "paper" and evs[1].byte == 3
    assert evs[2].text == "TM-T88V"


def test_unsolicited_status_is_a_protocol_error_and_resyncs():
    sp = st.ReplySplitter()
    sp.receive_data(b"\x12\x10\x00\x00\x00")
    try:
        sp.next_event()
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted an unsolicited status byte")
    assert sp.next_event().kind == "automatic"
    sp.receive_data(b"\xff")
    try:
        sp.next_event()
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted 0xff")
    assert sp.next_event() is None


def test_printer_status_merges_replies_into_a_fault():
    ps = st.PrinterStatus()
    assert ps.summary() == {"paper": "ok", "cover": "closed", "online": True, "error": None}
    ps.update(st.decode_realtime_status(4, 0x1E))
    assert ps.paper == "near_end" and ps.fault() is None
    ps.update(st.decode_realtime_status(1, 0x1A))
    assert ps.fault() == "printer_offline"
    ps.update(st.decode_realtime_status(2, 0x16))
    assert ps.fault() == "cover_open" and ps.cover == "open"
    ps.update(st.decode_realtime_status(2, 0x12))
    ps.update(st.decode_realtime_status(3, 0x1A))
    assert ps.fault() == "cutter_error"
    ps.update(st.decode_automatic_status(b"\x18\x00\x0c\x00"))
    assert ps.paper == "out" and ps.fault() == "paper_out"


def test_buffer_clear_is_dle_dc4_8_and_its_answer_is_told_apart():
    # Epson / Citizen manuals: DLE DC4 fn=8 d1..d7 = 1 3 20 1 6 2 8 -> 37h 25h 00h.
    assert st.buffer_clear_request() == b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08"
    sp = st.ReplySplitter()
    sp.expect_realtime(1)
    sp.receive_data(b"\x37\x25")
    assert sp.next_event() is None  # waits for the NUL
    sp.receive_data(b"\x00\x12\x10\x00\x00\x00")
    kinds = [sp.next_event().kind, sp.next_event().kind, sp.next_event().kind]
    assert kinds == ["buffer_cleared", "realtime", "automatic"]
    assert sp.next_event() is None


def test_buffer_cleared_answer_with_xoff_inside_and_a_broken_one():
    sp = st.ReplySplitter()
    sp.receive_data(b"\x37\x13\x25\x00")
    first = sp.next_event()
    assert first.kind == "flow" and first.ready is False
    assert sp.next_event().kind == "buffer_cleared"
    sp.receive_data(b"\x37\x26\x00")
    try:
        sp.next_event()
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted 37h 26h as a clear answer")
