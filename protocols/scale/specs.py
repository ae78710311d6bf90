"""Every serial scale protocol we speak, declared as data for `protocols.scale.engine`.

Each spec names its line settings, framing, commands (bytes sent, what answers them), the frame
patterns (regex over the frame without framing or parity) and a safe auto-detection probe (a
query that changes nothing on the scale: never zero, tare or clear). Facts are from
`shared/reference/printer-scale-payment.md`; where a manual is silent, the comment says so.

Pattern kinds: "reading" (state / value / unit / net groups), "status_byte" (a bit field),
"reply" (an answer to a command: `outcome` is a constant or a group mapped by `outcomes`),
"record" (comma-separated key,value pairs with a checksum: the Tanita station).
"""

from protocols.scale.engine import ERROR, NEGATIVE, OVERLOAD, STABLE, UNSTABLE

LINE_7E1_9600 = {"baudrate": 9600, "bytesize": 7, "parity": "E", "stopbits": 1}
LINE_7E1_2400 = {"baudrate": 2400, "bytesize": 7, "parity": "E", "stopbits": 1}
LINE_8N1_9600 = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1}

CRLF_FRAMING = {"end": b"\n", "strip": b"\r", "max_frame": 64}

# Mettler Toledo 8217: `W` → STX weight [N] CR when the weight is valid and still, otherwise
# STX ? <status> CR. Bit 6 of the status is always 1 per the service manual (one open-source
# driver reads it as "bad command" and would flag every answer): it is deliberately not a flag.
METTLER_8217 = {
    "name": "mettler_8217",
    "title": "Mettler Toledo 8217",
    "line": LINE_7E1_9600,
    "framing": {"start": b"\x02", "end": b"\r", "max_frame": 16},
    "unit": "kg",  # the frame carries no unit: the scale's configured one (option `unit`)
    "mode": "polled",
    "modes": ("polled",),
    "commands": {
        "weigh": {"send": b"W", "reply": "reading"},
        "zero": {"send": b"Z", "reply": None},
        "tare": {"send": b"T", "reply": None},
        "clear": {"send": b"C", "reply": None},
    },
    "patterns": [
        {"event": "reading", "re": b"^ *([0-9]*\\.?[0-9]+)(N?)$", "state": STABLE, "value": 1,
         "net": 2, "nets": {b"N": True}},
        {"event": "status_byte", "re": b"^\\?(.)$", "byte": 1,
         "bits": ((0, "motion"), (1, "overload"), (2, "negative"), (3, "outside_zero_range"),
                  (4, "centre_of_zero"), (5, "net")),
         "precedence": ("overload", "negative", "motion", "outside_zero_range"),
         "flag_states": {"overload": OVERLOAD, "negative": NEGATIVE, "motion": UNSTABLE,
                         "outside_zero_range": ERROR}},
        {"event": "reply", "re": b"^E$", "command": "echo", "outcome": "ok"},
    ],
    # The echo command answers STX E CR and then echoes the rest raw.
    "probe": {"send": b"Ehello", "expect_raw": b"\x02E\rhello"},
}

# Mettler Toledo MT-SICS (level 0/1): CRLF-terminated text commands and answers.
MT_SICS = {
    "name": "mt_sics",
    "title": "Mettler Toledo MT-SICS",
    "line": LINE_8N1_9600,
    "framing": CRLF_FRAMING,
    "unit": "g",
    "mode": "polled",
    "modes": ("polled", "continuous"),
    "commands": {
        "weigh": {"send": b"SI\r\n", "reply": "reading"},  # immediate: we judge stability by polling
        "zero": {"send": b"Z\r\n", "reply": "reply"},
        "tare": {"send": b"T\r\n", "reply": "reply"},
        "identify": {"send": b"I4\r\n", "reply": "reply"},
    },
    "patterns": [
        {"event": "reading", "re": b"^S ([SD]) +(-?[0-9]*\\.?[0-9]+) +([a-zA-Z]+)$", "state": 1,
         "states": {b"S": STABLE, b"D": UNSTABLE}, "value": 2, "unit": 3},
        {"event": "reading", "re": b"^S ([-+])$", "state": 1,
         "states": {b"+": OVERLOAD, b"-": NEGATIVE}},
        {"event": "reply", "re": b"^S I$", "command": "weigh", "outcome": "busy"},
        {"event": "reply", "re": b"^Z ([AI+-])$", "command": "zero", "outcome": 1,
         "outcomes": {b"A": "ok", b"I": "busy", b"+": "overload", b"-": "negative"}},
        {"event": "reply", "re": b"^T S +-?[0-9]*\\.?[0-9]+ +[a-zA-Z]+$", "command": "tare",
         "outcome": "ok"},
        {"event": "reply", "re": b"^T ([I+-])$", "command": "tare", "outcome": 1,
         "outcomes": {b"I": "busy", b"+": "overload", b"-": "negative"}},
        {"event": "reply", "re": b"^I4 A \"(.*)\"$", "command": "identify", "outcome": "ok",
         "detail": 1},
        {"event": "reply", "re": b"^E([STL])$", "command": "any", "outcome": "error", "detail": 1},
    ],
    "probe": {"send": b"I4\r\n", "expect": ("identify",)},
}

# A&D (FX-i, EK-i, GF, HV/HW…): `HH,<sign><8 digits/point><3-char unit>` CRLF; Q polls; streams
# when set to stream mode. Z/T answer ACK (0x06) when the AK setting is on, else nothing.
AND_GF = {
    "name": "and",
    "title": "A&D standard format",
    "line": LINE_7E1_2400,
    "framing": {"end": b"\n", "strip": b"\r", "max_frame": 64, "singles": {6: ("any", "ok")}},
    "unit": "kg",
    "mode": "polled",
    "modes": ("polled", "continuous"),
    "commands": {
        "weigh": {"send": b"Q\r\n", "reply": "reading"},
        "zero": {"send": b"Z\r\n", "reply": "ack"},
        "tare": {"send": b"T\r\n", "reply": "ack"},
    },
    "patterns": [
        {"event": "reading", "re": b"^(ST|US|OL|QT),([-+ ][-+0-9.E ]*)([a-zA-Z%]*)$", "state": 1,
         "states": {b"ST": STABLE, b"US": UNSTABLE, b"OL": OVERLOAD, b"QT": STABLE},
         "value": 2, "unit": 3},
        {"event": "reply", "re": b"^EC,E([0-9])$", "command": "any", "outcome": "error", "detail": 1},
    ],
    "probe": {"send": b"Q\r\n", "expect": ("reading",)},
}

# CAS (PB, ER, DB…) continuous output: `ST,GS,+  4.876kg` CRLF — header, gross/net, weight, unit.
CAS = {
    "name": "cas",
    "title": "CAS continuous output",
    "line": LINE_8N1_9600,
    "framing": CRLF_FRAMING,
    "unit": "kg",
    "mode": "continuous",
    "modes": ("continuous",),
    "commands": {},
    "patterns": [
        {"event": "reading", "re": b"^(ST|US|OL),(GS|NT),([-+ ][-+0-9. ]*)([a-zA-Z]*)$", "state": 1,
         "states": {b"ST": STABLE, b"US": UNSTABLE, b"OL": OVERLOAD}, "value": 3, "unit": 4,
         "net": 2, "nets": {b"NT": True}},
    ],
    "probe": None,  # talks unasked: detected by listening
}

# Tanita WB-3000 height-weight-BMI station: one record per finished measurement, unasked.
# Hm is the height in cm, Wk the weight in kg, MI the BMI. No manual states the checksum; in a
# sibling model's sample (SC-240) the byte sum mod 256 from `{` through the comma before `CS`
# equals the printed value (two hex digits) — likely, not certain, hence `verify_checksum`.
# Line settings are not in the reference: 9600 8N1 is an assumption, configurable per device.
TANITA_WB3000 = {
    "name": "tanita_wb3000",
    "title": "Tanita WB-3000 height-weight station",
    "line": LINE_8N1_9600,
    "framing": {"end": b"\n", "strip": b"\r", "max_frame": 256},
    "unit": "kg",
    "mode": "records",
    "modes": ("records",),
    "commands": {},
    "patterns": [
        {"event": "record", "prefix": b"{0,", "first_key": "{0", "checksum_key": "CS",
         "fields": {"weight": "Wk", "height": "Hm", "bmi": "MI"}, "height_to_m": 0.01, "unit": "kg"},
    ],
    "probe": None,
}

# In auto-detection order: the passive ones are heard first, then probes from the most
# specific answer (8217 echo) to the most generic (A&D weight query).
PROTOCOLS = {}
for _spec in (METTLER_8217, MT_SICS, AND_GF, CAS, TANITA_WB3000):
    PROTOCOLS[_spec["name"]] = _spec
DETECT_ORDER = ("mettler_8217", "mt_sics", "and", "cas", "tanita_wb3000")
