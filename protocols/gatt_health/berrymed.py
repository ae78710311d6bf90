"""BerryMed pulse oximeter frames (proprietary, over a UART-like GATT service).

A stream of 5-byte frames; only the first byte of a frame has bit 7 set, which is how a
receiver finds frame starts again after a lost or torn notification. Notifications need not
line up with frames, so `FrameParser.feed` keeps what is left over.

    b0: low nibble signal strength; 0x10 searching too long; 0x20 probe unplugged; 0x40 pulse beep
    b1: pleth 0-100
    b2: low nibble bar graph; 0x10 no finger; 0x20 searching for a pulse; 0x40 pulse rate bit 7
    b3: pulse rate, low 7 bits (255 = invalid)
    b4: SpO2 (127 = invalid)
"""

SYNC = 0x80
FRAME_LEN = 5
INVALID_PULSE = 255
INVALID_SPO2 = 127


def decode_frame(frame):
    """5 bytes -> dict. Invalid pulse rate / SpO2 become None."""
    b0, b1, b2, b3, b4 = frame[0], frame[1], frame[2], frame[3], frame[4]
    pulse = ((b2 & 0x40) << 1) | (b3 & 0x7F)
    return {"signal_strength": b0 & 0x0F, "searching_too_long": bool(b0 & 0x10),
            "probe_unplugged": bool(b0 & 0x20), "beep": bool(b0 & 0x40), "pleth": b1 & 0x7F,
            "bar_graph": b2 & 0x0F, "no_finger": bool(b2 & 0x10), "searching": bool(b2 & 0x20),
            "pulse_rate": None if pulse == INVALID_PULSE else pulse,
            "spo2": None if (b4 & 0x7F) == INVALID_SPO2 else b4 & 0x7F}


def encode_frame(spo2=None, pulse_rate=None, pleth=0, signal_strength=0, bar_graph=0,
                 no_finger=False, searching=False, probe_unplugged=False, beep=False,
                 searching_too_long=False):
    pulse = INVALID_PULSE if pulse_rate is None else pulse_rate
    b0 = SYNC | (signal_strength & 0x0F) | (0x10 if searching_too_long else 0) \
        | (0x20 if probe_unplugged else 0) | (0x40 if beep else 0)
    b2 = (bar_graph & 0x0F) | (0x10 if no_finger else 0) | (0x20 if searching else 0) \
        | (0x40 if pulse & 0x80 else 0)
    return bytes((b0, pleth & 0x7F, b2, pulse & 0x7F, INVALID_SPO2 if spo2 is None else spo2 & 0x7F))


class FrameParser:
    """Bytes in any chunking -> decoded frames; bytes that cannot start a frame are dropped
    (counted in `dropped`)."""

    def __init__(self):
        self._buf = bytearray()
        self.dropped = 0

    def feed(self, data):
        frames = []
        for b in bytes(data):
            if b & SYNC:
                self.dropped += len(self._buf)  # a torn frame: start again here
                self._buf = bytearray((b,))
            elif self._buf:
                self._buf.append(b)
                if len(self._buf) == FRAME_LEN:
                    frames.append(decode_frame(self._buf))
                    self._buf = bytearray()
            else:
                self.dropped += 1
        return frames
