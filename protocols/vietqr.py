"""VietQR: the NAPAS 247 profile of the EMVCo merchant-presented QR code.

A payload is a run of `ID(2) LEN(2) VALUE` fields in ASCII; some values are themselves such runs
(38 = the NAPAS merchant account, 62 = additional data). Field 63 closes the payload with a
CRC-16/CCITT-FALSE over everything before its value, `6304` included, as four upper-case hex
digits.

Portable (DESIGN §6): no typing at run time; every parsing failure is a `ProtocolError`.
"""
from protocols.errors import ProtocolError

NAPAS_AID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
SERVICE_TO_CARD = "QRIBFTTC"
CURRENCY_VND = "704"
COUNTRY_VN = "VN"
STATIC = "11"  # the same code for every payment; the payer types the amount
DYNAMIC = "12"  # made for one payment: carries the amount

# Field 62 text reaches banking apps that choke on diacritics and punctuation.
_FREE_TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._-"


def _digits(text):
    # str.isdigit accepts non-ASCII digits on CPython; the payload must hold ASCII ones only.
    if not text:
        return False
    for ch in text:
        if ch < "0" or ch > "9":
            return False
    return True


def _alnum(text):
    for ch in text:
        if not ("0" <= ch <= "9" or "A" <= ch <= "Z" or "a" <= ch <= "z"):
            return False
    return True


def crc16_ccitt_false(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def field(tag, value):
    """One `ID LEN VALUE` field; `value` is ASCII text of at most 99 characters."""
    if len(tag) != 2 or not tag.isdigit():
        raise ProtocolError("VietQR: field id must be two digits, got %r" % (tag,))
    if len(value) > 99:
        raise ProtocolError("VietQR: field %s is %d characters; at most 99" % (tag, len(value)))
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) > 0x7E:
            raise ProtocolError("VietQR: field %s holds a non-printable or non-ASCII character" % tag)
    return "%s%02d%s" % (tag, len(value), value)


def _check_text(name, value, limit):
    if not value:
        raise ProtocolError("VietQR: %s is empty" % name)
    if len(value) > limit:
        raise ProtocolError("VietQR: %s is longer than %d characters" % (name, limit))
    for ch in value:
        if ch not in _FREE_TEXT:
            raise ProtocolError("VietQR: %s may hold only letters, digits, space and . _ - "
                                "(no diacritics)" % name)


def build(bank_bin, account, amount=None, bill_number=None, purpose=None, to_card=False):
    """The payload text for a transfer to `account` at the bank with NAPAS BIN `bank_bin`.

    With an `amount` (whole VND) the code is dynamic (one payment), else static.
    """
    if len(bank_bin) != 6 or not _digits(bank_bin):
        raise ProtocolError("VietQR: the bank BIN must be 6 digits")
    if not account or len(account) > 19 or not _alnum(account):
        raise ProtocolError("VietQR: the account or card number must be 1-19 letters or digits")
    beneficiary = field("00", bank_bin) + field("01", account)
    service = SERVICE_TO_CARD if to_card else SERVICE_TO_ACCOUNT
    merchant = field("00", NAPAS_AID) + field("01", beneficiary) + field("02", service)
    out = field("00", "01") + field("01", STATIC if amount is None else DYNAMIC)
    out += field("38", merchant) + field("53", CURRENCY_VND)
    if amount is not None:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0 or amount > 9999999999999:
            raise ProtocolError("VietQR: the amount must be a positive whole number of VND (≤ 13 digits)")
        out += field("54", str(amount))
    out += field("58", COUNTRY_VN)
    extra = ""
    if bill_number is not None:
        _check_text("bill number", bill_number, 25)
        extra += field("01", bill_number)
    if purpose is not None:
        _check_text("purpose", purpose, 25)
        extra += field("08", purpose)
    if extra:
        out += field("62", extra)
    out += "6304"
    return out + "%04X" % crc16_ccitt_false(out.encode())


def split(text):
    """Every field of a TLV run, in order: a list of (id, value). Raises ProtocolError."""
    out = []
    pos = 0
    n = len(text)
    while pos < n:
        if pos + 4 > n:
            raise ProtocolError("VietQR: truncated field header at %d" % pos)
        tag = text[pos:pos + 2]
        size = text[pos + 2:pos + 4]
        if not (_digits(tag) and _digits(size)):
            raise ProtocolError("VietQR: field header at %d is not digits" % pos)
        end = pos + 4 + int(size)
        if end > n:
            raise ProtocolError("VietQR: field %s needs %s characters, %d left" % (tag, size, n - pos - 4))
        out.append((tag, text[pos + 4:end]))
        pos = end
    return out


def _as_dict(pairs, where):
    out = {}
    for tag, value in pairs:
        if tag in out:
            raise ProtocolError("VietQR: field %s%s appears twice" % (where, tag))
        out[tag] = value
    return out


def parse(payload):
    """Check and decode a VietQR payload (str or bytes).

    Returns a dict: `initiation` ("static"/"dynamic"), `bin`, `account`, `service`, `currency`,
    `amount` (int or None), `country`, `bill_number`, `purpose` (or None), `crc` and `fields`
    (top-level id → raw value).
    """
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = bytes(payload).decode("ascii")
        except UnicodeError:
            raise ProtocolError("VietQR: payload is not ASCII")
    if not isinstance(payload, str):
        raise ProtocolError("VietQR: payload must be text")
    for ch in payload:
        if ord(ch) < 0x20 or ord(ch) > 0x7E:
            raise ProtocolError("VietQR: payload holds a non-printable or non-ASCII character")
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise ProtocolError("VietQR: payload does not end with the CRC field 6304xxxx")
    given = payload[-4:]
    for ch in given:
        if ch not in "0123456789ABCDEFabcdef":
            raise ProtocolError("VietQR: CRC %r is not 4 hex digits" % given)
    given_crc = int(given, 16)
    computed = crc16_ccitt_false(payload[:-4].encode())
    if computed != given_crc:
        raise ProtocolError("VietQR: CRC mismatch: payload says %s, content gives %04X" % (given, computed))
    top = _as_dict(split(payload), "")
    if top.get("00") != "01":
        raise ProtocolError("VietQR: payload format indicator (00) must be 01")
    initiation = top.get("01")
    if initiation not in (STATIC, DYNAMIC):
        raise ProtocolError("VietQR: point of initiation (01) must be 11 or 12")
    if "38" not in top:
        raise ProtocolError("VietQR: no NAPAS merchant account field (38)")
    merchant = _as_dict(split(top["38"]), "38.")
    if merchant.get("00") != NAPAS_AID:
        raise ProtocolError("VietQR: field 38 is not for NAPAS (AID %s)" % NAPAS_AID)
    if "01" not in merchant:
        raise ProtocolError("VietQR: field 38 has no beneficiary (01)")
    beneficiary = _as_dict(split(merchant["01"]), "38.01.")
    bank_bin = beneficiary.get("00")
    account = beneficiary.get("01")
    if bank_bin is None or len(bank_bin) != 6 or not _digits(bank_bin):
        raise ProtocolError("VietQR: acquirer BIN (38.01.00) must be 6 digits")
    if not account:
        raise ProtocolError("VietQR: no account or card number (38.01.01)")
    amount = None
    if "54" in top:
        raw = top["54"]
        if not raw or not _digits(raw):
            raise ProtocolError("VietQR: amount (54) must be digits")
        amount = int(raw)
    extra = _as_dict(split(top["62"]), "62.") if "62" in top else {}
    return {
        "initiation": "static" if initiation == STATIC else "dynamic",
        "bin": bank_bin,
        "account": account,
        "service": merchant.get("02"),
        "currency": top.get("53"),
        "amount": amount,
        "country": top.get("58"),
        "bill_number": extra.get("01"),
        "purpose": extra.get("08"),
        "crc": "%04X" % computed,
        "fields": top,
    }
