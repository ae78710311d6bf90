"""The host-side ESC/POS command splitter, fed byte strings written by other encoders."""

from protocols.errors import ProtocolError
from protocols.escpos.commands import CommandParser

# What python-escpos 3.1 sends for: init, set(center, bold, double size), "Hi\n", set_with_default,
# qr("abc", native=True, size=4), an EAN13 barcode, cut. Captured from escpos.printer.Dummy.
ESCPOS_SAMPLE = (
    b"\x1b@\x1b!\x00\x1b!\x00\x1b!0\x1bE\x01\x1ba\x01\x1bt\x00Hi\n\x1b!\x00\x1b!\x00\x1b!\x00"
    b"\x1b{\x00\x1db\x00\x1bE\x00\x1b-\x00\x1bM\x00\x1ba\x00\x1dB\x00"
    b"\x1d(k\x04\x001A2\x00\x1d(k\x03\x001C\x04\x1d(k\x03\x001E0\x1d(k\x06\x001P0abc"
    b"\x1d(k\x03\x001Q0\x1ba\x01\x1dh@\x1dw\x03\x1df\x00\x1dH\x02\x1dkC\x0c012345678905"
    b"\x1bd\x06\x1dV\x00\n\n\x1bd\x03"
)


def _commands(data, chunk=0):
    p = CommandParser()
    out = []
    if chunk:
        for i in range(0, len(data), chunk):
            p.receive_data(data[i:i + chunk])
            while True:
                c = p.next_command()
                if c is None:
                    break
                out.append(c)
    else:
        p.receive_data(data)
        while True:
            c = p.next_command()
            if c is None:
                break
            out.append(c)
    return out


def test_python_escpos_sample_splits_into_known_commands():
    cmds = _commands(ESCPOS_SAMPLE)
    names = [c.name for c in cmds]
    assert names[:7] == ["init", "print_mode", "print_mode", "print_mode", "bold", "align", "codepage"]
    assert cmds[4].value == 1 and cmds[5].value == 1
    assert cmds[7].name == "text" and cmds[7].data == b"Hi"
    symbols = [c for c in cmds if c.name == "symbol"]
    # GS ( k: cn=49 (QR), functions 65 model, 67 size, 69 ec, 80 store, 81 print.
    assert [c.value for c in symbols] == [65, 67, 69, 80, 81]
    assert symbols[3].data == b"0abc" and symbols[1].data == b"\x04"
    barcode = next(c for c in cmds if c.name == "barcode")
    assert barcode.value == 67 and barcode.data == b"012345678905"
    assert [c.name for c in cmds[-5:]] == ["feed_lines", "cut", "lf", "lf", "feed_lines"]


def _merged(cmds):
    # A text run may arrive in pieces; the printer prints it the same.
    out = []  # type: list
    for c in cmds:
        if c.name == "text" and out and out[-1][0] == "text":
            out[-1] = ("text", None, out[-1][2] + c.data)
        else:
            out.append((c.name, c.value, c.data))
    return out


def test_split_does_not_depend_on_chunking():
    whole = _merged(_commands(ESCPOS_SAMPLE))
    for chunk in (1, 2, 3, 7):
        assert _merged(_commands(ESCPOS_SAMPLE, chunk)) == whole


def test_raster_bit_image_gs_v_0():
    # Epson's GS v 0 layout: m=0, xL xH = 2 bytes wide, yL yH = 3 rows, then 6 data bytes.
    cmds = _commands(b"\x1dv0\x00\x02\x00\x03\x00\xff\x00\x81\x81\x00\xff\n")
    assert cmds[0].name == "raster" and cmds[0].args == (2, 3)
    assert cmds[0].data == b"\xff\x00\x81\x81\x00\xff"
    assert cmds[1].name == "lf"


def test_realtime_and_status_commands():
    cmds = _commands(b"\x10\x04\x01\x10\x04\x04\x1da\x0f\x1dr\x01\x1dVA\x03")
    assert [(c.name, c.value) for c in cmds] == [
        ("realtime_status", 1), ("realtime_status", 4), ("asb", 15), ("paper_sensor_status", 1),
        ("cut", 65)]
    assert cmds[-1].args == 3


def test_incomplete_commands_wait_for_more_bytes():
    p = CommandParser()
    p.receive_data(b"\x1dv0\x00\x01\x00\x02\x00\xaa")
    assert p.next_command() is None
    p.receive_data(b"\x55")
    assert p.next_command().data == b"\xaa\x55"


def test_unknown_sequences_are_protocol_errors_and_skipped():
    p = CommandParser()
    p.receive_data(b"\x1b\xffA\x01")
    try:
        p.next_command()
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted ESC 0xff")
    assert p.next_command().data == b"A"


def test_raster_bands_are_at_most_255_rows_and_parse_back():
    from protocols.escpos.raster import raster_bands

    width_bytes, height = 3, 600
    data = bytes((i * 7) & 0xFF for i in range(width_bytes * height))
    bands = raster_bands(width_bytes, height, data)
    assert len(bands) == 3
    assert bands[0][:8] == b"\x1dv0\x00\x03\x00\xff\x00"
    assert bands[2][:8] == b"\x1dv0\x00\x03\x00\x5a\x00"  # 600 - 2 * 255 = 90 rows
    cmds = _commands(b"".join(bands))
    assert [c.args for c in cmds] == [(3, 255), (3, 255), (3, 90)]
    assert b"".join(c.data for c in cmds) == data


def test_dle_dc4_8_clears_buffers_and_needs_its_fixed_arguments():
    cmds = _commands(b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08\x10\x14\x01\x00\x01A")
    assert [(c.name, c.value) for c in cmds] == [("buffer_clear", 8), ("realtime_pulse", 1), ("text", None)]
    p = CommandParser()
    p.receive_data(b"\x10\x14\x08\x01\x03\x14")
    assert p.next_command() is None  # waits for all ten bytes
    p.receive_data(b"\x01\x06\x02\x09B")
    try:
        p.next_command()
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted DLE DC4 8 with a wrong d7")
    assert p.next_command().data == b"B"


def test_nul_runs_are_one_ignorable_command():
    cmds = _commands(b"\x00\x00\x00A\x00")
    assert [(c.name, c.value) for c in cmds] == [("nul", 3), ("text", None), ("nul", 1)]
