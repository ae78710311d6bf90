"""Length-prefixed nexo framing: each message is a 4-byte big-endian length, then that many
bytes of UTF-8 JSON. Used on a persistent TCP connection so the terminal can also send its own
requests (display prompts) while a payment is open.
"""
from protocols.errors import ProtocolError

MAX_FRAME = 1 << 20  # a nexo message is a few kilobytes; more means a desynchronised stream


def encode_frame(payload):
    if len(payload) > MAX_FRAME:
        raise ProtocolError("nexo frame of %d bytes exceeds %d" % (len(payload), MAX_FRAME))
    return len(payload).to_bytes(4, "big") + bytes(payload)


class FrameDecoder:
    """Feed bytes as they arrive with `receive_data`; take whole frames with `next_frame`."""

    def __init__(self, max_frame=MAX_FRAME):
        self._buf = b""
        self._max = max_frame

    def receive_data(self, data):
        self._buf += bytes(data)

    def next_frame(self):
        """The next complete payload, or None when more bytes are needed."""
        if len(self._buf) < 4:
            return None
        size = int.from_bytes(self._buf[:4], "big")
        if size > self._max:
            raise ProtocolError("nexo frame announces %d bytes; at most %d" % (size, self._max))
        if len(self._buf) < 4 + size:
            return None
        payload = self._buf[4:4 + size]
        self._buf = self._buf[4 + size:]
        return payload

    @property
    def pending(self):
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)
