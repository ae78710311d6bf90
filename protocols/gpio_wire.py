"""The wire between a simulated station panel and the GPIO driver's mock pins.

A real board has copper between the pins and the lamps, buzzer and sensors; the simulated
station has a Unix socket carrying one line per level change, in both directions:

    <pin> <level>\n        pin: BCM number 0-63; level: 0, 1, or a PWM duty 0.0-1.0

The panel sends its inputs (presence sensor, door switch) and the driver its outputs (lamps,
buzzer). Portable (DESIGN §6): no I/O here.
"""
from protocols.errors import ProtocolError

MAX_LINE = 32
MAX_PIN = 63


def encode(pin, level):
    """One level change as wire bytes."""
    if not 0 <= pin <= MAX_PIN:
        raise ProtocolError("pin out of range")
    if level in (0, 1, True, False):
        text = "1" if level else "0"
    else:
        if not 0.0 <= level <= 1.0:
            raise ProtocolError("level out of range")
        text = "%.3f" % level
    return ("%d %s\n" % (pin, text)).encode()


def parse_line(line):
    """b"17 1" -> (17, 1.0); anything else -> ProtocolError."""
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    try:
        text = line.decode("ascii").strip()
    except UnicodeError:
        raise ProtocolError("not ASCII")
    parts = text.split(" ")
    if len(parts) != 2 or not parts[0].isdigit():
        raise ProtocolError("expected '<pin> <level>'")
    pin = int(parts[0])
    if pin > MAX_PIN:
        raise ProtocolError("pin out of range")
    try:
        level = float(parts[1])
    except ValueError:
        raise ProtocolError("level is not a number")
    if not 0.0 <= level <= 1.0:  # also rejects nan
        raise ProtocolError("level out of range")
    return pin, level


class Decoder:
    """Bytes in, (pin, level) out; bad lines are counted and skipped, as a UART drops noise."""

    def __init__(self):
        self.buf = b""
        self.errors = 0

    def feed(self, data):
        self.buf += data
        out = []  # type: list[tuple[int, float]]
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > MAX_LINE:  # garbage with no newline: drop it
                    self.buf = b""
                    self.errors += 1
                return out
            line, self.buf = self.buf[:i], self.buf[i + 1:]
            if not line.strip():
                continue
            try:
                out.append(parse_line(line))
            except ProtocolError:
                self.errors += 1
