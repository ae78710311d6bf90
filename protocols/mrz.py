"""Machine readable zone (ICAO 9303-3/-5/-4): check digits, TD1 (ID cards) and TD3 (passports),
and the MRZ_information that seeds BAC and PACE-MRZ keys (9303-11 §9.7.2).

Portable (DESIGN §6). The MRZ is citizen data: callers keep it out of logs.
"""
from protocols.errors import ProtocolError

_WEIGHTS = (7, 3, 1)


def _char_value(c):
    if "0" <= c <= "9":
        return ord(c) - 48
    if "A" <= c <= "Z":
        return ord(c) - 55
    if c == "<":
        return 0
    raise ProtocolError("MRZ: invalid character %r" % c)


def check_digit(field):
    """The 7-3-1 check digit of an MRZ field, as a one-character string."""
    total = 0
    i = 0
    for c in field:
        total += _char_value(c) * _WEIGHTS[i % 3]
        i += 1
    return str(total % 10)


def _checked(field, digit, name, errors):
    if check_digit(field) != digit:
        errors.append(name)


def _date(yymmdd, expiry):
    """YYMMDD -> ISO 8601 date, or None if the field is unreadable. The century is guessed:
    expiry dates are in this century, birth dates after 30 in the last (9303-3 gives no rule)."""
    if len(yymmdd) != 6 or not yymmdd.isdigit():
        return None
    yy = int(yymmdd[:2])
    century = 2000 if expiry or yy <= 30 else 1900
    return "%04d-%s-%s" % (century + yy, yymmdd[2:4], yymmdd[4:6])


def _name(field):
    primary, _, secondary = field.partition("<<")
    return primary.replace("<", " ").strip(), secondary.replace("<", " ").strip()


def normalize(text):
    """The MRZ lines of a scanned or typed text: upper case, spaces dropped, one line per row."""
    lines = []
    for raw in text.replace("\r", "\n").split("\n"):
        line = raw.strip().replace(" ", "").upper()
        if line:
            lines.append(line)
    if len(lines) == 1:
        one = lines[0]
        if len(one) == 90:
            lines = [one[0:30], one[30:60], one[60:90]]
        elif len(one) == 88:
            lines = [one[0:44], one[44:88]]
    return lines


def parse(text):
    """Parse a TD1 (3x30) or TD3 (2x44) MRZ into a dict; `valid` says whether every check digit
    holds and `errors` names those that do not. Raises ProtocolError on a wrong shape."""
    lines = normalize(text)
    for line in lines:
        for c in line:
            _char_value(c)
    if len(lines) == 3 and all(len(x) == 30 for x in lines):
        return _parse_td1(lines)
    if len(lines) == 2 and all(len(x) == 44 for x in lines):
        return _parse_td3(lines)
    raise ProtocolError("MRZ: expected 3 lines of 30 (TD1) or 2 lines of 44 (TD3)")


def _parse_td1(lines):
    l1, l2, l3 = lines
    errors = []  # type: list[str]
    doc = l1[5:14]
    optional1 = l1[15:30]
    if l1[14] == "<" and optional1.rstrip("<"):
        # 9303-5 §4.2.2: a long document number spills into optional data, ended by its check digit
        rest = optional1.rstrip("<")
        doc_full = doc + rest[:-1]
        _checked(doc_full, rest[-1], "document_number", errors)
        doc, doc_check = doc_full, rest[-1]
        optional1 = ""
    else:
        doc_check = l1[14]
        _checked(doc, doc_check, "document_number", errors)
    birth, expiry = l2[0:6], l2[8:14]
    _checked(birth, l2[6], "birth_date", errors)
    _checked(expiry, l2[14], "expiry_date", errors)
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    _checked(composite, l2[29], "composite", errors)
    primary, secondary = _name(l3)
    return {
        "format": "TD1",
        "document_code": l1[0:2].replace("<", ""),
        "issuing_state": l1[2:5].replace("<", ""),
        "document_number": doc.replace("<", ""),
        "document_number_check": doc_check,
        "optional_data": optional1.replace("<", " ").strip(),
        "birth_date": _date(birth, False),
        "birth_date_raw": birth,
        "birth_date_check": l2[6],
        "sex": l2[7].replace("<", "X"),
        "expiry_date": _date(expiry, True),
        "expiry_date_raw": expiry,
        "expiry_date_check": l2[14],
        "nationality": l2[15:18].replace("<", ""),
        "optional_data_2": l2[18:29].replace("<", " ").strip(),
        "primary_identifier": primary,
        "secondary_identifier": secondary,
        "valid": not errors,
        "errors": errors,
    }


def _parse_td3(lines):
    l1, l2 = lines
    errors = []  # type: list[str]
    doc, birth, expiry = l2[0:9], l2[13:19], l2[21:27]
    _checked(doc, l2[9], "document_number", errors)
    _checked(birth, l2[19], "birth_date", errors)
    _checked(expiry, l2[27], "expiry_date", errors)
    if l2[42] != "<" or l2[28:42].strip("<"):
        _checked(l2[28:42], l2[42], "optional_data", errors)
    composite = l2[0:10] + l2[13:20] + l2[21:43]
    _checked(composite, l2[43], "composite", errors)
    primary, secondary = _name(l1[5:44])
    return {
        "format": "TD3",
        "document_code": l1[0:2].replace("<", ""),
        "issuing_state": l1[2:5].replace("<", ""),
        "document_number": doc.replace("<", ""),
        "document_number_check": l2[9],
        "optional_data": l2[28:42].replace("<", " ").strip(),
        "birth_date": _date(birth, False),
        "birth_date_raw": birth,
        "birth_date_check": l2[19],
        "sex": l2[20].replace("<", "X"),
        "expiry_date": _date(expiry, True),
        "expiry_date_raw": expiry,
        "expiry_date_check": l2[27],
        "nationality": l2[10:13].replace("<", ""),
        "primary_identifier": primary,
        "secondary_identifier": secondary,
        "valid": not errors,
        "errors": errors,
    }


def _yymmdd(value, name):
    """Accept YYMMDD or ISO YYYY-MM-DD / YYYYMMDD."""
    v = value.replace("-", "").strip()
    if len(v) == 8 and _ascii_digits(v):
        v = v[2:]
    if len(v) != 6 or not _ascii_digits(v):
        raise ProtocolError("MRZ: %s must be YYMMDD or YYYY-MM-DD" % name, "invalid_params")
    return v


def _ascii_digits(text):
    # str.isdigit() also accepts "²" and "١": not MRZ characters
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def key_information(document_number, birth_date, expiry_date):
    """MRZ_information for BAC/PACE keys: document number (padded to 9 with '<') + check +
    birth date + check + expiry date + check (9303-11 §9.7.2)."""
    doc = document_number.strip().upper().replace(" ", "")
    if not doc:
        raise ProtocolError("MRZ: empty document number", "invalid_params")
    for c in doc:
        _char_value(c)
    while len(doc) < 9:
        doc += "<"
    birth = _yymmdd(birth_date, "birth_date")
    expiry = _yymmdd(expiry_date, "expiry_date")
    return doc + check_digit(doc) + birth + check_digit(birth) + expiry + check_digit(expiry)


def key_information_from_mrz(parsed):
    """MRZ_information from a `parse()` result."""
    return key_information(parsed["document_number"], parsed["birth_date_raw"], parsed["expiry_date_raw"])


def td1_vnm(id_number, birth_yymmdd, sex, expiry_yymmdd, surname, given_names):
    """Build the TD1 MRZ of a Vietnamese CCCD (the reference's layout): document number = last 9
    digits of the ID, optional data = the full 12-digit ID + '<<' + a check digit."""
    doc = id_number[-9:]
    opt = id_number + "<<" + check_digit(id_number)
    l1 = ("IDVNM" + doc + check_digit(doc) + opt + "<" * 30)[:30]
    l2 = birth_yymmdd + check_digit(birth_yymmdd) + sex + expiry_yymmdd + check_digit(expiry_yymmdd) + "VNM"
    l2 = (l2 + "<" * 30)[:29]
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    l2 += check_digit(composite)
    name = (surname.upper().replace(" ", "<") + "<<" + given_names.upper().replace(" ", "<") + "<" * 30)[:30]
    return l1 + "\n" + l2 + "\n" + name
