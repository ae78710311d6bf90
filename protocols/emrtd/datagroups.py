"""Parsers of the logical data structure (ICAO 9303-10) as found on the Vietnamese CCCD:
EF.CardAccess / DG14 (SecurityInfos), EF.COM, DG1 (MRZ), DG2 (face), DG13 (Vietnamese personal
data, see cccd.md), DG15 (Active Authentication key). Every failure is a ProtocolError.

The results are citizen data: callers never log them.
"""
from protocols import mrz, tlv
from protocols.emrtd import asn1
from protocols.errors import ProtocolError

try:
    from unicodedata import normalize as _normalize
except ImportError:  # MicroPython: no Unicode database; cards are read as stored
    _normalize = None  # type: ignore[assignment]

# file identifiers and LDS tags per data group number
FID = {1: 0x0101, 2: 0x0102, 3: 0x0103, 4: 0x0104, 5: 0x0105, 6: 0x0106, 7: 0x0107, 8: 0x0108,
       9: 0x0109, 10: 0x010A, 11: 0x010B, 12: 0x010C, 13: 0x010D, 14: 0x010E, 15: 0x010F, 16: 0x0110}
EF_COM = 0x011E
EF_SOD = 0x011D
EF_CARD_ACCESS = 0x011C
TAG = {1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76, 5: 0x65, 6: 0x66, 7: 0x67, 8: 0x68, 9: 0x69, 10: 0x6A,
       11: 0x6B, 12: 0x6C, 13: 0x6D, 14: 0x6E, 15: 0x6F, 16: 0x70}
DG_OF_TAG = {}
for _n, _t in TAG.items():
    DG_OF_TAG[_t] = _n

OID_ACTIVE_AUTH = "2.23.136.1.1.5"
OID_CHIP_AUTH_PREFIX = "0.4.0.127.0.7.2.2.3."
OID_CHIP_AUTH_PK_PREFIX = "0.4.0.127.0.7.2.2.1."


def nfc(text):
    return _normalize("NFC", text) if _normalize is not None else text


def parse_security_infos(data):
    """SecurityInfos (a SET OF SEQUENCE { OID, ... }) as a list of dicts: `oid`, and `version`,
    `parameter_id`, `algorithm` (an OID) or `data` (raw DER of the rest) as present."""
    items = tlv.parse(tlv.parse_one(data, asn1.SET) if data and data[0] == asn1.SET else data)
    out = []
    for tag, value in items:
        if tag != asn1.SEQUENCE:
            raise ProtocolError("SecurityInfos: element is not a SEQUENCE")
        parts = tlv.parse(value)
        if not parts or parts[0][0] != asn1.OID:
            raise ProtocolError("SecurityInfo without an OID")
        info = {"oid": asn1.decode_oid(parts[0][1])}
        rest = parts[1:]
        if rest and rest[0][0] == asn1.INTEGER:
            info["version"] = asn1.decode_int(rest[0][1])
            if len(rest) > 1:
                if rest[1][0] == asn1.INTEGER:
                    info["parameter_id"] = asn1.decode_int(rest[1][1])
                elif rest[1][0] == asn1.OID:
                    info["algorithm"] = asn1.decode_oid(rest[1][1])
        elif rest:
            raw = b""
            for t, v in rest:
                raw += tlv.encode(t, v)
            info["data"] = raw
        out.append(info)
    return out


def parse_card_access(data):
    return parse_security_infos(data)


def parse_dg14(data):
    return parse_security_infos(tlv.unwrap(data, 0x6E))


def parse_com(data):
    inner = tlv.parse(tlv.unwrap(data, 0x60))
    lds = tlv.find(inner, 0x5F01)
    uni = tlv.find(inner, 0x5F36)
    tags = tlv.find(inner, 0x5C) or b""
    groups = []
    for t in tags:
        if t in DG_OF_TAG:
            groups.append(DG_OF_TAG[t])
    return {"lds_version": _ascii(lds), "unicode_version": _ascii(uni), "datagroups": groups}


def _ascii(value):
    if value is None:
        return None
    try:
        return bytes(value).decode()
    except UnicodeError:
        raise ProtocolError("LDS: version is not text")


def parse_dg1(data):
    """The MRZ text and its parsed fields."""
    value = tlv.find(tlv.parse(tlv.unwrap(data, 0x61)), 0x5F1F)
    if value is None:
        raise ProtocolError("DG1 without an MRZ (5F1F)")
    try:
        text = bytes(value).decode()
    except UnicodeError:
        raise ProtocolError("DG1: MRZ is not text")
    parsed = mrz.parse(text)
    parsed["text"] = "\n".join(mrz.normalize(text))
    return parsed


JPEG = "image/jpeg"
JPEG2000 = "image/jp2"


def _image_mime(image):
    if image[:3] == b"\xff\xd8\xff":
        return JPEG
    if image[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or image[:4] == b"\xff\x4f\xff\x51":
        return JPEG2000
    return None


def parse_face_record(record):
    """An ISO/IEC 19794-5 facial record ("FAC\\0"): the first image as (mime, bytes, info)."""
    record = bytes(record)
    if len(record) < 14 or record[:4] != b"FAC\x00":
        raise ProtocolError("DG2: biometric data is not an ISO 19794-5 face record")
    faces = (record[12] << 8) | record[13]
    if faces < 1:
        raise ProtocolError("DG2: no face in the record")
    pos = 14
    if len(record) < pos + 20:
        raise ProtocolError("DG2: truncated facial information")
    block_len = int.from_bytes(record[pos:pos + 4], "big")
    points = (record[pos + 4] << 8) | record[pos + 5]
    gender = record[pos + 6]
    image_info = pos + 20 + 8 * points
    if len(record) < image_info + 12 or block_len < 32 or pos + block_len > len(record):
        raise ProtocolError("DG2: truncated face image information")
    data_type = record[image_info + 1]
    width = (record[image_info + 2] << 8) | record[image_info + 3]
    height = (record[image_info + 4] << 8) | record[image_info + 5]
    image = record[image_info + 12:pos + block_len]
    mime = _image_mime(image) or (JPEG2000 if data_type == 1 else JPEG if data_type == 0 else None)
    if mime is None or not image:
        raise ProtocolError("DG2: unknown face image type")
    return mime, image, {"width": width, "height": height,
                         "gender": {1: "M", 2: "F"}.get(gender, "X")}


def parse_dg2(data):
    """The face of DG2: {"mime", "image" (bytes), "width", "height"}."""
    group = tlv.parse(tlv.unwrap(data, 0x75))
    bit = tlv.find(group, 0x7F61)
    if bit is None:
        raise ProtocolError("DG2 without a biometric information group template (7F61)")
    for tag, value in tlv.parse(bit):
        if tag != 0x7F60:
            continue
        inner = tlv.parse(value)
        record = tlv.find(inner, 0x5F2E)
        if record is None:
            record = tlv.find(inner, 0x7F2E)
        if record is None:
            raise ProtocolError("DG2: template without biometric data")
        mime, image, info = parse_face_record(record)
        info["mime"] = mime
        info["image"] = image
        return info
    raise ProtocolError("DG2 without a biometric template (7F60)")


def parse_dg15(data):
    """The Active Authentication public key as DER SubjectPublicKeyInfo."""
    spki = tlv.unwrap(data, 0x6F)
    tlv.parse_one(spki, asn1.SEQUENCE)
    return spki


# --- DG13 ---------------------------------------------------------------------------------
DG13_FIELDS = {
    1: "id_number", 2: "full_name", 3: "birth_date", 4: "sex", 5: "nationality", 6: "ethnicity",
    7: "religion", 8: "place_of_origin", 9: "place_of_residence", 10: "identifying_marks",
    11: "issue_date", 12: "expiry_date",
}
_DATE_FIELDS = ("birth_date", "issue_date", "expiry_date")


def _ascii_digits(text):
    # str.isdigit() also accepts "²" and "١", which int() then refuses (ValueError).
    if not text:
        return False
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def vn_date(text):
    """dd/mm/yyyy -> ISO 8601; anything else (e.g. "Không thời hạn", no expiry) -> None."""
    t = text.strip()
    parts = t.split("/")
    if len(parts) == 3 and all(_ascii_digits(p) for p in parts) and len(parts[2]) == 4:
        d, m, y = int(parts[0]), int(parts[1]), int(parts[2])
        if 1 <= d <= 31 and 1 <= m <= 12:
            return "%04d-%02d-%02d" % (y, m, d)
    if len(t) == 8 and _ascii_digits(t):
        return "%s-%s-%s" % (t[4:8], t[2:4], t[0:2])
    return None


# DG13 nests a few levels (file, SEQUENCE, SET, entry, parents); a card nesting far deeper is
# garbage that would otherwise end in RecursionError (or a MicroPython stack overflow).
MAX_DG13_DEPTH = 16
# A field number is small; a longer INTEGER is not one (and str() of a huge one is a ValueError).
_MAX_FIELD_NUMBER_BYTES = 4


def _too_deep(depth):
    if depth > MAX_DG13_DEPTH:
        raise ProtocolError("DG13 nested deeper than %d levels" % MAX_DG13_DEPTH)


def _strings(items, out, depth=0):
    """Every string value in `items`, depth first (field 13 nests father and mother)."""
    _too_deep(depth)
    for tag, value in items:
        if tag in (asn1.SEQUENCE, asn1.SET):
            _strings(tlv.parse(value), out, depth + 1)
        elif tag in (asn1.UTF8_STRING, asn1.PRINTABLE_STRING, asn1.IA5_STRING, 0x14, 0x1E):
            out.append(nfc(asn1.text((tag, value))))
    return out


def _field_entries(items, out, depth=0):
    """SEQUENCE { INTEGER n, value... } entries found anywhere in the tree, in order."""
    _too_deep(depth)
    for tag, value in items:
        if tag not in (asn1.SEQUENCE, asn1.SET):
            continue
        inner = tlv.parse(value)
        if (inner and inner[0][0] == asn1.INTEGER and len(inner) > 1 and inner[1][0] != asn1.OID
                and len(inner[0][1]) <= _MAX_FIELD_NUMBER_BYTES):
            out.append((asn1.decode_int(inner[0][1]), inner[1:]))
        else:
            _field_entries(inner, out, depth + 1)
    return out


def _raw_hex(items):
    raw = b""
    for t, v in items:
        raw += tlv.encode(t, v)
    return "".join("%02x" % b for b in raw)


def parse_dg13(data):
    """Vietnam's DG13: fields matched by number (cccd.md), text NFC-normalised, dates as ISO
    8601 (a non-date expiry keeps its words in `expiry_text`), unknown numbers kept raw under
    `extra` as {"<n>": {"text": [...], "der": hex}}."""
    entries = _field_entries(tlv.parse(tlv.unwrap(data, 0x6D)), [])
    if not entries:
        raise ProtocolError("DG13 holds no numbered fields")
    out = {}
    extra = {}
    for n, values in entries:
        texts = _strings(values, [])
        name = DG13_FIELDS.get(n)
        if name is not None and texts:
            value = texts[0]
            if name in _DATE_FIELDS:
                iso = vn_date(value)
                if iso is None and name == "expiry_date":
                    out["expiry_text"] = value
                out[name] = iso
            else:
                out[name] = value
        elif n == 13:
            out["father_name"] = texts[0] if texts else None
            out["mother_name"] = texts[1] if len(texts) > 1 else None
        elif n == 14:
            out["spouse_name"] = texts[0] if texts else None
        else:
            extra[str(n)] = {"text": texts, "der": _raw_hex(values)}
    if extra:
        out["extra"] = extra
    return out
