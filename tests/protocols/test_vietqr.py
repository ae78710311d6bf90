"""VietQR payloads: CRC check value, field-by-field layout, and payloads issued by real banks."""

from protocols import vietqr
from protocols.errors import ProtocolError


def _independent_crc(text):
    """CRC-16/CCITT-FALSE written here bit by bit from its definition (poly 0x1021, init 0xFFFF,
    MSB first, no reflection, no final xor), without the module under test."""
    crc = 0xFFFF
    for b in text.encode():
        for i in range(8):
            bit = (b >> (7 - i)) & 1
            top = (crc >> 15) & 1
            crc = (crc << 1) & 0xFFFF
            if top ^ bit:
                crc ^= 0x1021
    return crc


def _raises(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ProtocolError:
        return True
    return False


# Payloads as issued by Vietnamese banks and payOS (CRC verified independently).
BANK_STATIC_VIETINBANK = (
    "00020101021138540010A00000072701240006970422011009119673630208QRIBFTTA53037045802VN63046ad9")
BANK_STATIC_970405 = (
    "00020101021138570010A00000072701270006970405011322082054793800208QRIBFTTA53037045802VN630497A6")
BANK_STATIC_970416 = (
    "00020101021138530010A0000007270123000697041601092576788590208QRIBFTTA53037045802VN6304AE9F")
PAYOS_DYNAMIC = (
    "00020101021238570010A000000727012700069704220113VQRQABRLS04480208QRIBFTTA5303704540420005802VN"
    "6224082018f8746b181045f0a2ce63040FC0")
# A sample copied around the web whose CRC does not match its content (real CRC is 1A95).
BAD_CRC_SAMPLE = (
    "00020101021238540010A00000072701240006970422011009447998190208QRIBFTTA5303704540625000005802VN"
    "62060802Qr63044274")


def test_crc_check_value():
    assert vietqr.crc16_ccitt_false(b"123456789") == 0x29B1
    assert _independent_crc("123456789") == 0x29B1
    try:
        from binascii import crc_hqx  # CPython's own CRC-CCITT agrees, where there is one
    except ImportError:
        return
    for text in ("", "123456789", BANK_STATIC_VIETINBANK[:-4]):
        assert crc_hqx(text.encode(), 0xFFFF) == _independent_crc(text)


def test_crc_of_empty_input_is_the_init_value():
    assert vietqr.crc16_ccitt_false(b"") == 0xFFFF


def test_dynamic_payload_field_by_field():
    p = vietqr.build("970436", "0011001234567", amount=150000, bill_number="HD2026120301",
                     purpose="Tien dien T12")
    expected = (
        "000201"  # payload format indicator 01
        "010212"  # dynamic: carries an amount
        "3857"  # merchant account information, 57 characters
        "0010A000000727"  # NAPAS AID
        "0127" "0006970436" "01130011001234567"  # beneficiary: BIN + account
        "0208QRIBFTTA"  # transfer to an account
        "5303704"  # VND
        "5406150000"  # amount
        "5802VN"
        "6233" "0112HD2026120301" "0813Tien dien T12"
        "6304"
    )
    assert p[:-4] == expected
    assert p[-4:] == f"{_independent_crc(expected):04X}"
    assert p[-4:].upper() == p[-4:]


def test_static_payload_has_no_amount_and_initiation_11():
    p = vietqr.build("970422", "0911967363")
    assert p[:-4] == ("00020101021138540010A00000072701240006970422011009119673630208QRIBFTTA"
                      "53037045802VN6304")
    # the same account a bank app showed: our encoder reproduces it byte for byte
    assert p.upper() == BANK_STATIC_VIETINBANK.upper()


def test_transfer_to_card_uses_service_code_c():
    p = vietqr.build("970436", "9704360000000001", amount=1000, to_card=True)
    assert "0208QRIBFTTC" in p
    assert vietqr.parse(p)["service"] == "QRIBFTTC"


def test_parse_bank_payloads():
    d = vietqr.parse(BANK_STATIC_970405)
    assert d["initiation"] == "static"
    assert d["bin"] == "970405"
    assert d["account"] == "2208205479380"
    assert d["amount"] is None
    assert d["currency"] == "704"
    assert d["country"] == "VN"
    assert d["service"] == "QRIBFTTA"
    d = vietqr.parse(BANK_STATIC_970416)
    assert (d["bin"], d["account"]) == ("970416", "257678859")
    d = vietqr.parse(BANK_STATIC_VIETINBANK)  # lower-case CRC digits are still accepted
    assert d["crc"] == "6AD9"


def test_parse_dynamic_payos_payload():
    d = vietqr.parse(PAYOS_DYNAMIC)
    assert d["initiation"] == "dynamic"
    assert d["bin"] == "970422"
    assert d["account"] == "VQRQABRLS0448"
    assert d["amount"] == 2000
    assert d["purpose"] == "18f8746b181045f0a2ce"


def test_round_trip_of_built_payload():
    p = vietqr.build("970415", "113366668888", amount=99000, bill_number="INV-7", purpose="Hoc phi")
    d = vietqr.parse(p)
    assert (d["bin"], d["account"], d["amount"]) == ("970415", "113366668888", 99000)
    assert (d["bill_number"], d["purpose"]) == ("INV-7", "Hoc phi")


def test_bad_crc_is_rejected():
    assert _raises(vietqr.parse, BAD_CRC_SAMPLE)
    good = vietqr.build("970436", "123", amount=5)
    flipped = good[:-5] + ("0" if good[-5] != "0" else "1") + good[-4:]
    assert _raises(vietqr.parse, flipped)


def test_garbage_is_a_protocol_error():
    for junk in ["", "6304", "abcd6304ZZZZ", "0002016304FFFF", b"\xff\xfe", "0002", 12,
                 "00020101021138" + "9" * 50 + "6304ABCD"]:
        assert _raises(vietqr.parse, junk), junk


def test_diacritics_and_bad_values_are_refused_when_building():
    assert _raises(vietqr.build, "970436", "123", purpose="Tiền điện")
    assert _raises(vietqr.build, "97043", "123")
    assert _raises(vietqr.build, "970436", "")
    assert _raises(vietqr.build, "970436", "123", amount=0)
    assert _raises(vietqr.build, "970436", "123", amount=-5)
    assert _raises(vietqr.build, "970436", "123", bill_number="x" * 26)
