"""Host -> printer: split an ESC/POS byte stream into commands (sans-IO, portable).

The simulated printer runs on it, and tests use it to read back what a driver sent. Covers what
receipts use (text modes, GS v 0 raster, GS ( k QR, GS k barcodes, cut, feeds, status requests)
plus the harmless commands python-escpos emits along the way; anything else is a ProtocolError
naming the bytes, because a real printer would print garbage there.
"""

from protocols.errors import ProtocolError

ESC = 0x1B
GS = 0x1D
DLE = 0x10
FS = 0x1C

MAX_RASTER_BYTES = 4 * 1024 * 1024
_CLEAR_ARGS = bytes((1, 3, 20, 1, 6, 2, 8))  # DLE DC4 fn=8's fixed d1..d7


class Command:
    """One command: `name`, an integer `value` (or None), and `data` bytes (or None)."""

    def __init__(self, name, value=None, data=None, args=None):
        self.name = name
        self.value = value
        self.data = data
        self.args = args

    def __repr__(self):
        return "Command(%r, %r, %r, %r)" % (self.name, self.value, self.data, self.args)


# ESC x n: one-argument commands.
_ESC_1 = {
    0x21: "print_mode", 0x45: "bold", 0x47: "double_strike", 0x2D: "underline", 0x61: "align",
    0x4D: "font", 0x74: "codepage", 0x64: "feed_lines", 0x4A: "feed_dots", 0x33: "line_spacing",
    0x7B: "upside_down", 0x56: "rotate", 0x20: "char_spacing", 0x3D: "select_peripheral",
    0x52: "charset", 0x72: "color", 0x54: "print_direction", 0x65: "reverse_feed",
    0x55: "unidirectional", 0x4B: "reverse_feed_dots",
}
_ESC_0 = {0x40: "init", 0x32: "default_line_spacing", 0x69: "partial_cut", 0x6D: "partial_cut",
          0x4C: "page_mode", 0x53: "standard_mode", 0x0C: "print_page"}
_GS_1 = {
    0x21: "size", 0x42: "invert", 0x62: "smoothing", 0x68: "barcode_height",
    0x77: "barcode_width", 0x48: "hri_position", 0x66: "hri_font", 0x61: "asb",
    0x72: "paper_sensor_status", 0x49: "printer_id", 0x2F: "print_downloaded_image",
    0x45: "head_energy", 0x54: "line_start",
}
_GS_2 = {0x4C: "left_margin", 0x57: "print_area_width", 0x50: "motion_units",
         0x24: "vertical_position", 0x5C: "relative_vertical_position"}
_FS_0 = {0x2E: "kanji_off", 0x26: "kanji_on"}
_FS_1 = {0x43: "kanji_code", 0x21: "kanji_mode", 0x2D: "kanji_underline"}


def _u16(lo, hi):
    return lo | (hi << 8)


class CommandParser:
    """receive_data(bytes) then next_command() until it returns None (needs more bytes)."""

    def __init__(self):
        self._buf = bytearray()

    def receive_data(self, data):
        self._buf.extend(data)

    @property
    def buffered(self):
        return len(self._buf)

    def _need(self, n):
        return len(self._buf) >= n

    def _drop(self, n):
        try:
            del self._buf[:n]
        except TypeError:  # MicroPython's bytearray has no item deletion
            self._buf = self._buf[n:]

    def _take(self, n, cmd):
        self._drop(n)
        return cmd

    def _bad(self, n, what):
        raw = bytes(self._buf[:n])
        self._drop(n)
        raise ProtocolError("unknown or malformed ESC/POS command %r (%s)" % (raw, what))

    def next_command(self):
        buf = self._buf
        if not buf:
            return None
        b = buf[0]
        if b == 0x00:  # NUL: ignored by printers (a host pads with it to finish a cut-off band)
            n = 1
            while n < len(buf) and buf[n] == 0:
                n += 1
            return self._take(n, Command("nul", n))
        if b == 0x0A:
            return self._take(1, Command("lf"))
        if b == 0x0D:
            return self._take(1, Command("cr"))
        if b == 0x09:
            return self._take(1, Command("ht"))
        if b == 0x0C:
            return self._take(1, Command("form_feed"))
        if b == 0x18:
            return self._take(1, Command("cancel_line"))
        if b == ESC:
            return self._esc()
        if b == GS:
            return self._gs()
        if b == DLE:
            return self._dle()
        if b == FS:
            return self._fs()
        if b < 0x20:
            return self._bad(1, "control byte")
        n = 1
        while n < len(buf) and buf[n] >= 0x20:
            n += 1
        return self._take(n, Command("text", data=bytes(buf[:n])))

    def _dle(self):
        buf = self._buf
        if not self._need(2):
            return None
        c = buf[1]
        if c == 0x04 or c == 0x05:
            if not self._need(3):
                return None
            n = buf[2]
            name = "realtime_status" if c == 0x04 else "realtime_request"
            if c == 0x04 and not 1 <= n <= 4:
                return self._bad(3, "DLE EOT n must be 1-4")
            return self._take(3, Command(name, n))
        if c == 0x14:
            if not self._need(3):
                return None
            if buf[2] == 8:  # DLE DC4 8 1 3 20 1 6 2 8: clear buffers
                if not self._need(10):
                    return None
                if bytes(buf[3:10]) != _CLEAR_ARGS:
                    return self._bad(10, "DLE DC4 8 needs 1 3 20 1 6 2 8")
                return self._take(10, Command("buffer_clear", 8))
            if not self._need(5):
                return None
            return self._take(5, Command("realtime_pulse", buf[2], args=bytes(buf[3:5])))
        # A lone DLE is printable in some code pages, but no receipt sends it.
        return self._bad(2, "DLE")

    def _esc(self):
        buf = self._buf
        if not self._need(2):
            return None
        c = buf[1]
        if c in _ESC_0:
            return self._take(2, Command(_ESC_0[c]))
        if c in _ESC_1:
            if not self._need(3):
                return None
            return self._take(3, Command(_ESC_1[c], buf[2]))
        if c == 0x70:  # ESC p m t1 t2: drawer pulse
            if not self._need(5):
                return None
            return self._take(5, Command("pulse", buf[2], args=bytes(buf[3:5])))
        if c == 0x63:  # ESC c 3|4|5 n: paper sensors / panel buttons
            if not self._need(4):
                return None
            names = {0x33: "paper_sensors_out", 0x34: "paper_sensors_stop", 0x35: "panel_buttons"}
            if buf[2] not in names:
                return self._bad(4, "ESC c")
            return self._take(4, Command(names[buf[2]], buf[3]))
        if c == 0x24 or c == 0x5C:  # ESC $ / ESC \ nL nH: positions
            if not self._need(4):
                return None
            name = "absolute_position" if c == 0x24 else "relative_position"
            return self._take(4, Command(name, _u16(buf[2], buf[3])))
        if c == 0x2A:  # ESC * m nL nH d1..dk: column bit image
            if not self._need(5):
                return None
            m, dots = buf[2], _u16(buf[3], buf[4])
            if m not in (0, 1, 32, 33):
                return self._bad(5, "ESC * mode")
            size = dots * (3 if m >= 32 else 1)
            if not self._need(5 + size):
                return None
            return self._take(5 + size, Command("column_image", m, bytes(buf[5:5 + size]), dots))
        if c == 0x44:  # ESC D n1..nk NUL: tab stops
            end = buf.find(b"\x00", 2)
            if end < 0:
                if len(buf) > 40:
                    return self._bad(2, "ESC D without NUL")
                return None
            return self._take(end + 1, Command("tabs", data=bytes(buf[2:end])))
        if c == 0x57:  # ESC W: page-mode print area, 8 bytes
            if not self._need(10):
                return None
            return self._take(10, Command("page_area", data=bytes(buf[2:10])))
        return self._bad(2, "ESC")

    def _fs(self):
        buf = self._buf
        if not self._need(2):
            return None
        c = buf[1]
        if c in _FS_0:
            return self._take(2, Command(_FS_0[c]))
        if c in _FS_1:
            if not self._need(3):
                return None
            return self._take(3, Command(_FS_1[c], buf[2]))
        if c == 0x70:  # FS p n m: print NV bit image
            if not self._need(4):
                return None
            return self._take(4, Command("print_nv_image", buf[2], args=buf[3]))
        return self._bad(2, "FS")

    def _gs(self):
        buf = self._buf
        if not self._need(2):
            return None
        c = buf[1]
        if c in _GS_1:
            if not self._need(3):
                return None
            return self._take(3, Command(_GS_1[c], buf[2]))
        if c in _GS_2:
            if not self._need(4):
                return None
            return self._take(4, Command(_GS_2[c], _u16(buf[2], buf[3]), args=(buf[2], buf[3])))
        if c == 0x56:  # GS V m [n]: cut
            if not self._need(3):
                return None
            m = buf[2]
            if m in (0, 1, 48, 49):
                return self._take(3, Command("cut", m, args=0))
            if m in (65, 66, 97, 98, 103, 104):
                if not self._need(4):
                    return None
                return self._take(4, Command("cut", m, args=buf[3]))
            return self._bad(3, "GS V mode")
        if c == 0x76:  # GS v 0 m xL xH yL yH d1..dk: raster bit image
            if not self._need(8):
                return None
            if buf[2] not in (0x30, 0):
                return self._bad(3, "GS v")
            m = buf[3]
            width_bytes, height = _u16(buf[4], buf[5]), _u16(buf[6], buf[7])
            if m not in (0, 1, 2, 3, 48, 49, 50, 51):
                return self._bad(8, "GS v 0 mode")
            size = width_bytes * height
            if size > MAX_RASTER_BYTES:
                return self._bad(8, "raster too large")
            if not self._need(8 + size):
                return None
            return self._take(8 + size, Command("raster", m & 3, bytes(buf[8:8 + size]),
                                                (width_bytes, height)))
        if c == 0x28:  # GS ( fn pL pH [cn fn2] data: 2D codes, graphics, ...
            if not self._need(5):
                return None
            fn = buf[2]
            size = _u16(buf[3], buf[4])
            if not self._need(5 + size):
                return None
            body = bytes(buf[5:5 + size])
            if fn == 0x6B:  # GS ( k: cn fn [m] data
                if size < 2:
                    return self._bad(5 + size, "GS ( k too short")
                return self._take(5 + size, Command("symbol", body[1], body[2:], body[0]))
            return self._take(5 + size, Command("gs_paren", fn, body))
        if c == 0x6B:  # GS k m ...: barcode
            if not self._need(3):
                return None
            m = buf[2]
            if m <= 6:
                end = buf.find(b"\x00", 3)
                if end < 0:
                    if len(buf) > 260:
                        return self._bad(3, "GS k without NUL")
                    return None
                return self._take(end + 1, Command("barcode", m, bytes(buf[3:end])))
            if 65 <= m <= 79:
                if not self._need(4):
                    return None
                n = buf[3]
                if not self._need(4 + n):
                    return None
                return self._take(4 + n, Command("barcode", m, bytes(buf[4:4 + n])))
            return self._bad(3, "GS k system")
        return self._bad(2, "GS")
