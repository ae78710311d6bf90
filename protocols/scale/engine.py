"""The one engine every serial scale protocol runs on.

A protocol is a dict of data (see `protocols.scale.specs`): line settings, framing, the bytes of
each command, and a list of frame patterns (regexes) saying what each frame means. This module
turns bytes from the wire into events (`Reading`, `Reply`, `Noise`) and commands into bytes.
Sans-IO and MicroPython-portable (DESIGN §6): no clocks, no I/O, `re` with numbered groups only.

7-bit even-parity lines: a real UART set to 7E1 hands us 7-bit bytes; a pty (and a UART left at
8N1) hands us the parity bit in bit 7. With `software_parity` the engine sets the parity bit on
what it sends and checks and strips it on what it receives, so the same code runs over both.
"""

import re

from protocols.errors import ProtocolError


class ScaleError(ProtocolError):
    """A ProtocolError that can also be built on MicroPython.

    `ProtocolError.__init__` calls `Exception.__init__`, which MicroPython lacks (AttributeError);
    until protocols/errors.py uses super(), fall back to the base class's constructor ourselves.
    """

    def __init__(self, message, reason="protocol_error"):
        try:
            ProtocolError.__init__(self, message, reason)
        except AttributeError:
            super(ProtocolError, self).__init__(message)
            self.message = message
            self.reason = reason

# Reading states. `negative` is under zero (a display below 0 or the scale's own under-zero flag).
STABLE = "stable"
UNSTABLE = "unstable"
OVERLOAD = "overload"
NEGATIVE = "negative"
ERROR = "error"

UNIT_KG = {
    "kg": 1.0,
    "g": 0.001,
    "lb": 0.45359237,
    "oz": 0.028349523125,
    "t": 1000.0,
}


def even_parity(byte):
    """`byte` (7 bits) with bit 7 set so the number of one bits is even."""
    b = byte & 0x7F
    ones = 0
    x = b
    while x:
        ones += x & 1
        x >>= 1
    return b | 0x80 if ones & 1 else b


def add_parity(data):
    """Bytes as a 7E1 UART would put them on an 8N1 wire."""
    return bytes([even_parity(b) for b in data])


def parity_ok(byte):
    return even_parity(byte) == byte


def strip_parity(data):
    """(7-bit bytes, number of bytes whose parity was wrong)."""
    bad = 0
    out = bytearray()
    for b in data:
        if not parity_ok(b):
            bad += 1
        out.append(b & 0x7F)
    return bytes(out), bad


def to_kg(value, unit):
    """Weight in `unit` → kilograms; ProtocolError for a unit that is not a mass."""
    factor = UNIT_KG.get(unit)
    if factor is None:
        raise ScaleError("unit %r is not a mass unit" % unit, "invalid_reading")
    return value * factor


def parse_number(text):
    """A weight field (`+00072.35`, `+  4.876`, ` 100.00`) → float; ProtocolError if it is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except Exception:
            raise ScaleError("weight field is not ASCII")
    t = text.replace(" ", "")
    sign = 1.0
    if t[:1] in ("+", "-"):
        if t[0] == "-":
            sign = -1.0
        t = t[1:]
    if not t or t.count(".") > 1:
        raise ScaleError("no number in weight field")
    for c in t:
        if c not in "0123456789.":
            raise ScaleError("weight field has a non-digit")
    if t == ".":
        raise ScaleError("no number in weight field")
    return sign * float(t)


class Reading:
    """One weight (and, for a height-weight station, height and BMI) as the device reported it.

    `weight` is in `unit` (None when the device reported only a condition, e.g. the 8217's status
    answer while the load is moving). `state` is one of stable / unstable / overload / negative /
    error. Citizen data once a person stands on the scale: never log it.
    """

    def __init__(self, weight, unit, state, net=False, height_m=None, bmi=None, flags=()):
        self.weight = weight
        self.unit = unit
        self.state = state
        self.net = net
        self.height_m = height_m
        self.bmi = bmi
        self.flags = tuple(flags)

    @property
    def stable(self):
        return self.state == STABLE

    @property
    def weight_kg(self):
        if self.weight is None:
            return None
        return round(to_kg(self.weight, self.unit), 4)

    def __repr__(self):
        # No weight in the repr: reprs end up in logs and assertion messages.
        return "Reading(state=%s, unit=%s, net=%s)" % (self.state, self.unit, self.net)


class Reply:
    """The device's answer to a command. `outcome`: ok / busy / overload / negative / error."""

    def __init__(self, command, outcome, detail=None):
        self.command = command
        self.outcome = outcome
        self.detail = detail

    def __repr__(self):
        return "Reply(%s, %s)" % (self.command, self.outcome)


class Noise:
    """Bytes that were not a frame of this protocol (line noise, another protocol, bad parity)."""

    def __init__(self, size, why):
        self.size = size
        self.why = why

    def __repr__(self):
        return "Noise(%d, %s)" % (self.size, self.why)


def _group(match, index):
    if index is None:
        return None
    return match.group(index)


def _text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeError:  # an 8-bit line carries any byte: not text is not a frame
            raise ScaleError("reply text is not UTF-8")
    return value


def _decode_reading(pattern, match, default_unit):
    state = pattern.get("state")
    if isinstance(state, int):
        raw = match.group(state)
        state = pattern["states"].get(raw)
        if state is None:
            raise ScaleError("unknown weight header %r" % raw)
    net = False
    if "net" in pattern:
        net = bool(pattern["nets"].get(match.group(pattern["net"]), False))
    unit = default_unit
    if pattern.get("unit") is not None:
        u = _text(match.group(pattern["unit"])).strip().lower()
        if u:
            unit = u
    weight = None
    if pattern.get("value") is not None:
        raw_value = match.group(pattern["value"])
        try:
            weight = parse_number(raw_value)
        except ProtocolError:
            # An overloaded A&D/CAS prints filler (`+9999999E+19`) where the weight goes.
            if state != OVERLOAD:
                raise
    if unit not in UNIT_KG:
        raise ScaleError("unit %r is not a mass unit" % unit, "invalid_reading")
    if state == OVERLOAD:
        weight = None
    elif weight is not None and weight < 0:
        state = NEGATIVE
    return Reading(weight, unit, state, net)


def _decode_status_byte(pattern, match, default_unit):
    raw = match.group(pattern["byte"])
    status = raw[0] & 0x7F
    flags = []
    for bit, name in pattern["bits"]:
        if status & (1 << bit):
            flags.append(name)
    state = ERROR
    for name in pattern["precedence"]:
        if name in flags:
            state = pattern["flag_states"][name]
            break
    return Reading(None, default_unit, state, "net" in flags, flags=flags)


def _decode_pairs(pattern, frame, verify_checksum):
    """A Tanita-style record: `key,value,key,value,...,CS,<hex byte sum>`."""
    try:
        text = frame.decode()
    except Exception:
        raise ScaleError("record is not ASCII")
    fields = text.split(",")
    if len(fields) < 2 or len(fields) % 2:
        raise ScaleError("record has an odd number of fields")
    values = {}
    for i in range(0, len(fields), 2):
        values[fields[i]] = fields[i + 1]
    if fields[0] != pattern["first_key"]:
        raise ScaleError("record does not start with %s" % pattern["first_key"])
    cs_key = pattern["checksum_key"]
    if cs_key in values:
        mark = text.rfind("," + cs_key + ",")
        if mark < 0 or fields[-2] != cs_key:
            raise ScaleError("checksum is not the last field")
        printed = values[cs_key]
        if len(printed) != 2:
            raise ScaleError("checksum is not two hex digits")
        try:
            expected = int(printed, 16)
        except ValueError:
            raise ScaleError("checksum is not hex")
        total = 0
        for b in frame[:mark + 1]:
            total += b
        if verify_checksum and (total & 0xFF) != expected:
            raise ScaleError("record checksum mismatch", "checksum_error")
    elif verify_checksum:
        raise ScaleError("record has no checksum")
    fmap = pattern["fields"]
    if fmap["weight"] not in values:
        raise ScaleError("record has no weight")
    weight = parse_number(values[fmap["weight"]])
    height_m = None
    if fmap.get("height") in values:
        height_m = round(parse_number(values[fmap["height"]]) * pattern["height_to_m"], 4)
    bmi = None
    if fmap.get("bmi") in values:
        bmi = parse_number(values[fmap["bmi"]])
    state = STABLE if weight >= 0 else NEGATIVE
    return Reading(weight, pattern["unit"], state, False, height_m, bmi)


def decode_frame(spec, frame, verify_checksum=True):
    """One frame's bytes (no framing, no parity) → Reading or Reply; ProtocolError otherwise."""
    prepare(spec)  # a caller may hand us a spec no codec has compiled yet
    default_unit = spec.get("unit", "kg")
    for pattern in spec["patterns"]:
        kind = pattern["event"]
        if kind == "record":
            if not frame.startswith(pattern["prefix"]):
                continue
            return _decode_pairs(pattern, frame, verify_checksum)
        match = pattern["compiled"].match(frame)
        if match is None:
            continue
        if kind == "reading":
            return _decode_reading(pattern, match, default_unit)
        if kind == "status_byte":
            return _decode_status_byte(pattern, match, default_unit)
        if kind == "reply":
            outcome = pattern.get("outcome")
            if isinstance(outcome, int):
                outcome = pattern["outcomes"].get(match.group(outcome))
                if outcome is None:
                    raise ScaleError("unknown reply code")
            detail = _group(match, pattern.get("detail"))
            return Reply(pattern["command"], outcome, _text(detail))
        raise ScaleError("unknown pattern kind %s" % kind)
    raise ScaleError("frame matches no %s pattern" % spec["name"])


def prepare(spec):
    """Compile a spec's regexes once (idempotent); returns the spec."""
    if spec.get("_ready"):
        return spec
    for pattern in spec["patterns"]:
        if "re" in pattern:
            pattern["compiled"] = re.compile(pattern["re"])
    spec["_ready"] = True
    return spec


class ScaleCodec:
    """Bytes in → events out, command names in → bytes out, for one protocol spec.

    `feed(data)` returns a list of `Reading` / `Reply` / `Noise`. It never raises on garbage:
    anything that is not a frame comes back as `Noise`, so a noisy line cannot kill a reader.
    """

    def __init__(self, spec, software_parity=False, verify_checksum=True):
        self.spec = prepare(spec)
        framing = spec["framing"]
        self.start = framing.get("start")
        self.end = framing["end"]
        self.strip = framing.get("strip", b"")
        self.max_frame = framing.get("max_frame", 64)
        self.singles = framing.get("singles", {})
        self.seven_bit = spec["line"]["bytesize"] == 7
        self.software_parity = software_parity and self.seven_bit
        self.verify_checksum = verify_checksum
        self._buf = bytearray()
        self._in_frame = self.start is None
        # Bytes of `_buf` before this index are spoiled (a byte with the wrong parity landed there).
        self._spoiled_to = 0

    @property
    def name(self):
        return self.spec["name"]

    def has_command(self, name):
        return name in self.spec["commands"]

    def command(self, name):
        """The bytes to send for command `name` (weigh, zero, tare…)."""
        cmd = self.spec["commands"].get(name)
        if cmd is None:
            raise ScaleError("%s has no %s command" % (self.spec["name"], name), "not_supported")
        data = cmd["send"]
        if self.software_parity:
            data = add_parity(data)
        return data

    def reply_kind(self, name):
        """What answers command `name`: "reading", "reply", "ack" (optional ACK) or None."""
        return self.spec["commands"][name].get("reply")

    def encode_raw(self, data):
        """Arbitrary bytes as they go on the wire (parity added when emulated)."""
        return add_parity(data) if self.software_parity else data

    def clean(self, data):
        """Wire bytes → protocol bytes, and how many had bad parity."""
        if self.software_parity:
            return strip_parity(data)
        if self.seven_bit:
            return bytes([b & 0x7F for b in data]), 0
        return bytes(data), 0

    def feed(self, data):
        events = []  # type: list
        for raw in data:
            if self.software_parity:
                self._byte(raw & 0x7F, not parity_ok(raw), events)
            elif self.seven_bit:
                self._byte(raw & 0x7F, False, events)
            else:
                self._byte(raw, False, events)
        return events

    def _byte(self, b, bad, events):
        # Parity is judged byte by byte: a bad byte spoils only the frame it lands in, never a
        # frame that follows it in the same read.
        idle = not self._buf if self.start is None else not self._in_frame
        if idle and not bad and b in self.singles:
            events.append(Reply(self.singles[b][0], self.singles[b][1]))
            return
        if self.start is not None and b == self.start[0] and not bad:
            if self._in_frame and self._buf:
                # A new start byte: what came before it was not a whole frame (line noise).
                events.append(Noise(len(self._buf), "no frame end"))
            self._in_frame = True
            self._buf = bytearray()
            self._spoiled_to = 0
            return
        if not self._in_frame:
            events.append(Noise(1, "outside frame"))
            return
        self._buf.append(b)
        if bad:
            self._spoiled_to = len(self._buf)
        if self._buf[-len(self.end):] == self.end:
            frame = bytes(self._buf[:-len(self.end)])
            spoiled = min(self._spoiled_to, len(frame))
            self._buf = bytearray()
            self._in_frame = self.start is None
            self._spoiled_to = 0
            if self.strip and frame.endswith(self.strip):
                frame = frame[:-len(self.strip)]
                spoiled = min(spoiled, len(frame))
            if not frame:
                return
            self._decode(frame, spoiled, events)
            return
        if self.start is not None and len(self._buf) > self.max_frame:
            # The frame's end was lost: wait for the next start byte.
            events.append(Noise(len(self._buf), "frame too long"))
            self._buf = bytearray()
            self._in_frame = False
            self._spoiled_to = 0
            return
        if self.start is None and len(self._buf) >= 2 * self.max_frame:
            # No start byte to resynchronise on: keep the newest max_frame bytes, since the line
            # may still end with a whole frame after the noise.
            cut = len(self._buf) - self.max_frame
            events.append(Noise(cut, "frame too long"))
            self._buf = self._buf[cut:]
            self._spoiled_to = max(0, self._spoiled_to - cut)

    def _decode(self, frame, spoiled, events):
        """Decode one frame; without a start byte, noise may precede it on the same line, so the
        frame is looked for at each later position (never inside the spoiled part)."""
        if self.start is not None or spoiled >= len(frame):
            if spoiled:
                events.append(Noise(len(frame), "parity"))
                return
            try:
                events.append(decode_frame(self.spec, frame, self.verify_checksum))
            except ProtocolError as exc:
                events.append(Noise(len(frame), exc.reason))
            return
        why = "parity" if spoiled else None
        for at in range(spoiled, len(frame)):
            try:
                event = decode_frame(self.spec, frame[at:], self.verify_checksum)
            except ProtocolError as exc:
                if why is None:
                    why = exc.reason
                continue
            if at:
                events.append(Noise(at, why or "noise before frame"))
            events.append(event)
            return
        events.append(Noise(len(frame), why or "protocol_error"))

    def probe(self):
        """(bytes to send, how to recognise the answer) for auto-detection, or None."""
        probe = self.spec.get("probe")
        if probe is None:
            return None
        return self.encode_raw(probe["send"]), probe

    def probe_answered(self, probe, wire_bytes):
        """Whether what came back after `probe()` is this protocol answering it."""
        clean, bad = self.clean(wire_bytes)
        expect = probe.get("expect_raw")
        if expect is not None:
            return bad == 0 and expect in clean
        codec = ScaleCodec(self.spec, self.software_parity, self.verify_checksum)
        for ev in codec.feed(wire_bytes):
            if isinstance(ev, Reading) and "reading" in probe["expect"]:
                return True
            if isinstance(ev, Reply) and ev.command in probe["expect"]:
                return True
        return False
