"""ESC/POS status: the real-time requests (DLE EOT 1-4), automatic status back (GS a) and a
sans-IO splitter that tells every reply the printer sends apart.

What python-escpos lacks: it reads only DLE EOT 1 and 4 and knows no ASB. Portable (DESIGN §6).

How replies are told apart, by their fixed bits (Epson):
- a DLE EOT reply byte has bits 1 and 4 set, bits 0 and 7 clear      (b & 0x93 == 0x12)
- the first byte of an ASB block has bit 4 set, bits 0, 1 and 7 clear (b & 0x93 == 0x10),
  and the three bytes after it have bits 4 and 7 clear                (b & 0x90 == 0x00)
- a GS r / GS I n<64 reply byte has bits 4 and 7 clear
- a block reply (GS I n>=64) is `_` (0x5F) ... NUL
- XON (0x11) / XOFF (0x13) from software flow control have bit 0 set: never a status byte.
- the answer to DLE DC4 fn=8 (clear buffers) is 37h 25h NUL (Epson, Citizen).
Real-time replies overtake queued data, so each kind is matched to its own queue of requests.
"""

from collections import deque

from protocols.errors import ProtocolError

DLE = 0x10
EOT = 0x04
GS = 0x1D
XON = 0x11
XOFF = 0x13

PRINTER = 1
OFFLINE_CAUSE = 2
ERROR_CAUSE = 3
ROLL_PAPER = 4

# GS a n: which changes the printer reports unprompted.
ASB_DRAWER = 0x01
ASB_ONLINE = 0x02
ASB_ERROR = 0x04
ASB_PAPER = 0x08
ASB_ALL = 0x0F

_MAX_BLOCK = 80  # GS I block replies are short strings; anything longer is garbage


def realtime_status_request(n):
    """DLE EOT n (n = 1 printer, 2 offline cause, 3 error cause, 4 roll paper)."""
    if n not in (PRINTER, OFFLINE_CAUSE, ERROR_CAUSE, ROLL_PAPER):
        raise ProtocolError("DLE EOT n must be 1-4, not %r" % (n,))
    return bytes((DLE, EOT, n))


def automatic_status_back(mask=ASB_ALL):
    """GS a n: enable (mask != 0) or disable (0) automatic status back."""
    if not 0 <= mask <= 0xFF:
        raise ProtocolError("GS a mask out of range")
    return bytes((GS, 0x61, mask))


# DLE DC4 fn=8 d1..d7 = 1 3 20 1 6 2 8: clear the receive and print buffers (Epson and Citizen
# manuals); executed even while the printer is offline or in error, answered 37h 25h 00h.
BUFFER_CLEAR = bytes((DLE, 0x14, 8, 1, 3, 20, 1, 6, 2, 8))
BUFFER_CLEARED = bytes((0x37, 0x25, 0x00))


def buffer_clear_request():
    """DLE DC4 8: the printer drops what it still holds of an earlier job."""
    return BUFFER_CLEAR


def paper_sensor_request():
    """GS r 1: paper sensor status, answered only after the buffered data (not real-time)."""
    return bytes((GS, 0x72, 1))


def is_realtime_status_byte(b):
    return (b & 0x93) == 0x12


def _bit(b, n):
    return bool(b & (1 << n))


def decode_realtime_status(n, b):
    """One DLE EOT n reply byte -> a dict of named flags (the reference table)."""
    if not 0 <= b <= 0xFF or not is_realtime_status_byte(b):
        raise ProtocolError("0x%02x is not a real-time status byte" % (b & 0xFF,))
    if n == PRINTER:
        return {"drawer_pin3": _bit(b, 2), "offline": _bit(b, 3),
                "waiting_for_recovery": _bit(b, 5), "feed_button": _bit(b, 6)}
    if n == OFFLINE_CAUSE:
        return {"cover_open": _bit(b, 2), "paper_feed_by_button": _bit(b, 3),
                "stopped_at_paper_end": _bit(b, 5), "error": _bit(b, 6)}
    if n == ERROR_CAUSE:
        return {"recoverable_error": _bit(b, 2), "cutter_error": _bit(b, 3),
                "unrecoverable_error": _bit(b, 5), "auto_recoverable_error": _bit(b, 6)}
    if n == ROLL_PAPER:
        # Each condition is reported on two bits (two sensors / legacy layout): either counts.
        return {"near_end": bool(b & 0x0C), "paper_end": bool(b & 0x60)}
    raise ProtocolError("DLE EOT n must be 1-4, not %r" % (n,))


def is_asb_header(b):
    return (b & 0x93) == 0x10


def decode_automatic_status(block):
    """A 4-byte ASB block -> dict of named flags (same names as the DLE EOT decoders)."""
    if len(block) != 4:
        raise ProtocolError("an automatic status block has 4 bytes, not %d" % len(block))
    b1, b2, b3, b4 = block[0], block[1], block[2], block[3]
    if not is_asb_header(b1):
        raise ProtocolError("0x%02x does not start an automatic status block" % b1)
    for b in (b2, b3, b4):
        if b & 0x90:
            raise ProtocolError("0x%02x cannot be inside an automatic status block" % b)
    return {
        "drawer_pin3": _bit(b1, 2), "offline": _bit(b1, 3), "cover_open": _bit(b1, 5),
        "feed_button": _bit(b1, 6),
        "recoverable_error": _bit(b2, 2), "cutter_error": _bit(b2, 3),
        "unrecoverable_error": _bit(b2, 5), "auto_recoverable_error": _bit(b2, 6),
        "near_end": bool(b3 & 0x03), "paper_end": bool(b3 & 0x0C),
    }


def encode_automatic_status(flags):
    """The printer side of decode_automatic_status (for simulators)."""
    f = flags.get
    b1 = 0x10 | (4 if f("drawer_pin3") else 0) | (8 if f("offline") else 0) \
        | (0x20 if f("cover_open") else 0) | (0x40 if f("feed_button") else 0)
    b2 = (4 if f("recoverable_error") else 0) | (8 if f("cutter_error") else 0) \
        | (0x20 if f("unrecoverable_error") else 0) | (0x40 if f("auto_recoverable_error") else 0)
    b3 = (0x03 if f("near_end") else 0) | (0x0C if f("paper_end") else 0)
    return bytes((b1, b2, b3, 0))


def encode_realtime_status(n, flags):
    """The printer side of decode_realtime_status (for simulators)."""
    f = flags.get
    b = 0x12
    if n == PRINTER:
        b |= (4 if f("drawer_pin3") else 0) | (8 if f("offline") else 0) \
            | (0x20 if f("waiting_for_recovery") else 0) | (0x40 if f("feed_button") else 0)
    elif n == OFFLINE_CAUSE:
        b |= (4 if f("cover_open") else 0) | (8 if f("paper_feed_by_button") else 0) \
            | (0x20 if f("stopped_at_paper_end") else 0) | (0x40 if f("error") else 0)
    elif n == ERROR_CAUSE:
        b |= (4 if f("recoverable_error") else 0) | (8 if f("cutter_error") else 0) \
            | (0x20 if f("unrecoverable_error") else 0) | (0x40 if f("auto_recoverable_error") else 0)
    elif n == ROLL_PAPER:
        b |= (0x0C if f("near_end") else 0) | (0x60 if f("paper_end") else 0)
    else:
        raise ProtocolError("DLE EOT n must be 1-4, not %r" % (n,))
    return bytes((b,))


class PrinterStatus:
    """What is known about the printer, merged from DLE EOT replies and ASB blocks."""

    FLAGS = ("offline", "cover_open", "near_end", "paper_end", "cutter_error",
             "recoverable_error", "unrecoverable_error", "auto_recoverable_error",
             "feed_button", "drawer_pin3", "waiting_for_recovery", "paper_feed_by_button",
             "stopped_at_paper_end", "error")

    def __init__(self):
        self.flags = {}
        for name in self.FLAGS:
            self.flags[name] = False

    def update(self, flags):
        for name in flags:
            if name in self.flags:
                self.flags[name] = flags[name]
        return self

    @property
    def paper(self):
        if self.flags["paper_end"]:
            return "out"
        if self.flags["near_end"]:
            return "near_end"
        return "ok"

    @property
    def cover(self):
        return "open" if self.flags["cover_open"] else "closed"

    @property
    def online(self):
        return not self.flags["offline"]

    def fault(self):
        """The reason a job cannot print now, or None. Ordered so the most actionable cause
        (what a technician fixes first) wins over the offline state it causes."""
        f = self.flags
        if f["cover_open"]:
            return "cover_open"
        if f["paper_end"]:
            return "paper_out"
        if f["cutter_error"]:
            return "cutter_error"
        if f["unrecoverable_error"] or f["recoverable_error"]:
            return "hardware_error"
        if f["offline"] and not f["auto_recoverable_error"]:
            return "printer_offline"
        return None

    def summary(self):
        return {"paper": self.paper, "cover": self.cover, "online": self.online,
                "error": self.fault()}


class RealtimeStatus:
    """A reply to DLE EOT n."""

    kind = "realtime"

    def __init__(self, n, byte):
        self.n = n
        self.byte = byte
        self.flags = decode_realtime_status(n, byte)

    def __repr__(self):
        return "RealtimeStatus(%d, 0x%02x)" % (self.n, self.byte)


class AutomaticStatus:
    """An unprompted 4-byte ASB block."""

    kind = "automatic"

    def __init__(self, block):
        self.block = bytes(block)
        self.flags = decode_automatic_status(self.block)

    def __repr__(self):
        return "AutomaticStatus(%r)" % (self.block,)


class ByteReply:
    """A one-byte reply to a queued (not real-time) request such as GS r 1."""

    kind = "byte"

    def __init__(self, tag, byte):
        self.tag = tag
        self.byte = byte


class BlockReply:
    """A `_ ... NUL` block reply (GS I n >= 64: model name, firmware...)."""

    kind = "block"

    def __init__(self, text):
        self.text = text


class BufferCleared:
    """The printer's answer to DLE DC4 fn=8: its buffers are empty."""

    kind = "buffer_cleared"

    def __repr__(self):
        return "BufferCleared()"


class FlowControl:
    """XON (ready=True) or XOFF (ready=False) seen in the reply stream."""

    kind = "flow"

    def __init__(self, ready):
        self.ready = ready


class ReplySplitter:
    """Bytes from the printer in, typed replies out (h11 style: receive_data / next_event).

    Tell it what was asked (`expect_realtime(n)` when sending DLE EOT n, `expect_byte(tag)` for
    GS r): real-time replies are matched in order among themselves, byte replies among
    themselves. `next_event()` returns None when more bytes are needed and raises ProtocolError
    for a byte that fits nothing (the byte is dropped first, so the stream resynchronises).
    """

    def __init__(self):
        self._buf = bytearray()
        # positional maxlen: MicroPython takes no keywords here
        self._realtime = deque((), 64)  # type: deque  # noqa: RUF037
        self._byte = deque((), 64)  # type: deque  # noqa: RUF037

    def expect_realtime(self, n):
        if n not in (PRINTER, OFFLINE_CAUSE, ERROR_CAUSE, ROLL_PAPER):
            raise ProtocolError("DLE EOT n must be 1-4")
        self._realtime.append(n)

    def expect_byte(self, tag):
        self._byte.append(tag)

    def forget_pending(self):
        """Drop outstanding requests (after a timeout or reconnect): late replies then raise."""
        while self._realtime:
            self._realtime.popleft()
        while self._byte:
            self._byte.popleft()

    @property
    def pending_realtime(self):
        return len(self._realtime)

    def receive_data(self, data):
        self._buf.extend(data)

    def _drop(self, start, n):
        try:
            del self._buf[start:start + n]
        except TypeError:  # MicroPython's bytearray has no item deletion
            self._buf = self._buf[:start] + self._buf[start + n:]

    def next_event(self):
        buf = self._buf
        if not buf:
            return None
        b = buf[0]
        if b == XON or b == XOFF:
            self._drop(0, 1)
            return FlowControl(b == XON)
        if is_realtime_status_byte(b):
            self._drop(0, 1)
            if not self._realtime:
                raise ProtocolError("unsolicited real-time status byte 0x%02x" % b)
            return RealtimeStatus(self._realtime.popleft(), b)
        if is_asb_header(b):
            return self._next_asb()
        if b == BUFFER_CLEARED[0]:
            return self._next_cleared()
        if b == 0x5F:
            end = buf.find(b"\x00")
            if end < 0:
                if len(buf) > _MAX_BLOCK:
                    self._drop(0, len(buf))
                    raise ProtocolError("block reply without NUL terminator")
                return None
            raw = bytes(buf[1:end])
            self._drop(0, end + 1)
            try:
                text = raw.decode()
            except UnicodeError:
                raise ProtocolError("block reply is not text")
            return BlockReply(text)
        if (b & 0x90) == 0 and self._byte:
            self._drop(0, 1)
            return ByteReply(self._byte.popleft(), b)
        self._drop(0, 1)
        raise ProtocolError("unexpected byte 0x%02x from the printer" % b)

    def _next_cleared(self):
        # 37h 25h 00h; an XOFF/XON may come between its bytes (Epson says so for serial).
        buf = self._buf
        i, got = 1, 1
        while got < 3:
            if i >= len(buf):
                return None
            c = buf[i]
            if c == XON or c == XOFF:
                self._drop(i, 1)
                return FlowControl(c == XON)
            if c != BUFFER_CLEARED[got]:
                self._drop(0, 1)
                raise ProtocolError("unexpected byte 0x%02x from the printer" % BUFFER_CLEARED[0])
            i += 1
            got += 1
        self._drop(0, 3)
        return BufferCleared()

    def _next_asb(self):
        # XON/XOFF may be interleaved with the block on a software-flow-controlled line.
        buf = self._buf
        block = bytearray((buf[0],))
        flow = None
        i = 1
        while len(block) < 4:
            if i >= len(buf):
                return None
            c = buf[i]
            if c == XON or c == XOFF:
                if flow is None:
                    flow = i
            elif c & 0x90:
                self._drop(0, 1)
                raise ProtocolError("automatic status block broken by 0x%02x" % c)
            else:
                block.append(c)
            i += 1
        if flow is not None:
            # Deliver the flow byte first; the block stays to be read next time.
            c = buf[flow]
            self._drop(flow, 1)
            return FlowControl(c == XON)
        self._drop(0, i)
        return AutomaticStatus(block)
