"""The key that opens a CCCD chip, from what the resident or the kiosk has: the CAN (6 digits),
the 12-digit ID number (CAN = its last 6 digits), the QR text on the card front (it starts with
the ID number), the MRZ, or document number + birth date + expiry date.

Result: ("can", "123456") for PACE-CAN, or ("mrz", MRZ_information) for PACE-MRZ and BAC.
These are secrets: callers never log them.
"""
from protocols import mrz
from protocols.errors import ProtocolError

SOURCES = ("can", "id_number", "mrz", "document_number", "qr")


def _bad(message):
    return ProtocolError(message, "invalid_params")


def _ascii_digits(text):
    # str.isdigit() also accepts "²" and "١٢٣": a CAN of those would reach PACE as other bytes
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def _digits(value, n, what):
    v = str(value).strip().replace(" ", "")
    if len(v) != n or not _ascii_digits(v):
        raise _bad("%s must be %d digits" % (what, n))
    return v


def parse_qr(text):
    """The fields of the QR on a CCCD front: ID|old ID|name|DDMMYYYY birth|sex|address|DDMMYYYY
    issue (some cards have 6 fields). No expiry: it is not in the QR."""
    parts = text.strip().split("|")
    if len(parts) < 6:
        raise _bad("QR text must have at least 6 '|'-separated fields")
    out = {"id_number": _digits(parts[0], 12, "QR ID number")}
    out["old_id_number"] = parts[1] or None
    out["full_name"] = parts[2]
    out["birth_date"] = parts[3]
    out["sex"] = parts[4]
    out["address"] = parts[5]
    out["issue_date"] = parts[6] if len(parts) > 6 else None
    return out


def from_params(params):
    """Exactly one key source from RPC params -> (kind, secret)."""
    given = [k for k in SOURCES if params.get(k) not in (None, "")]
    triple = [k for k in ("document_number", "birth_date", "expiry_date") if params.get(k) not in (None, "")]
    if triple and len(triple) != 3:
        raise _bad("document_number, birth_date and expiry_date go together")
    if len(given) != 1:
        raise _bad("give exactly one key source: can, id_number, mrz, qr, "
                   "or document_number+birth_date+expiry_date")
    kind = given[0]
    if kind == "can":
        return "can", _digits(params["can"], 6, "CAN")
    if kind == "id_number":
        return "can", _digits(params["id_number"], 12, "id_number")[-6:]
    if kind == "qr":
        return "can", parse_qr(str(params["qr"]))["id_number"][-6:]
    if kind == "mrz":
        parsed = mrz.parse(str(params["mrz"]))
        if parsed["errors"] and [e for e in parsed["errors"] if e != "composite"]:
            raise _bad("MRZ check digits fail: " + ", ".join(parsed["errors"]))
        return "mrz", mrz.key_information_from_mrz(parsed)
    info = mrz.key_information(str(params["document_number"]), str(params["birth_date"]),
                               str(params["expiry_date"]))
    return "mrz", info
