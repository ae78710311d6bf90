"""APDU, TLV, MRZ and data-group parsers against byte examples of the specifications and the
CCCD reference (cccd.md)."""
# ruff: noqa: E501  (spec vectors are kept on one line each, as printed)
from binascii import unhexlify as h

from protocols import iso7816, mrz, tlv
from protocols.emrtd import asn1, datagroups, sod
from protocols.errors import ProtocolError

VN_MRZ = "IDVNM0990123459001099012345<<0\n9901018M3901016VNM<<<<<<<<<<<0\nNGUYEN<<VAN<AN<<<<<<<<<<<<<<<<"


def _raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        return True
    raise AssertionError("no ProtocolError")


def test_short_and_extended_apdu_encodings():
    assert iso7816.select_by_fid(0x011C).to_bytes() == h("00A4020C02011C")
    assert iso7816.select_mf().to_bytes() == h("00A4000C023F00")
    assert iso7816.read_binary(0, 256).to_bytes() == h("00B0000000")
    assert iso7816.read_binary(0x0102, 0xDF).to_bytes() == h("00B00102DF")
    assert iso7816.read_binary(0, 65536).to_bytes() == h("00B00000000000")
    assert iso7816.read_binary(0, 4096, extended=True).to_bytes() == h("00B00000001000")
    long_cmd = iso7816.CommandAPDU(0, 0x2A, 0, 0, bytes(300), le=1000)
    assert long_cmd.to_bytes()[4:7] == h("00012C") and long_cmd.to_bytes()[-2:] == h("03E8")


def test_command_parsing_round_trips_every_case():
    for raw in ("00A4020C02011C", "00B0000000", "00B00000001000", "0084000008",
                "00A40400" + "07A0000002471001", "0022C1A40F800A04007F00070202040202830101"):
        assert iso7816.parse_command(h(raw)).to_bytes() == h(raw)
    _raises(iso7816.parse_command, h("00A402"))
    _raises(iso7816.parse_command, h("00A4020C05011C"))


def test_tlv_long_forms_and_two_byte_tags():
    data = h("7F49") + h("820101") + bytes(257)
    tag, value, end = tlv.read_tlv(data)
    assert tag == 0x7F49 and len(value) == 257 and end == len(data)
    assert tlv.encode(0x5F1F, bytes(200))[:4] == h("5F1F81C8")
    assert tlv.total_length(h("7582")) is None
    assert tlv.total_length(h("75823A98")) == 4 + 0x3A98
    _raises(tlv.read_tlv, h("6105AABB"))
    _raises(tlv.read_tlv, h("5F"))


def test_oid_encoding_of_pace_and_icao():
    assert asn1.encode_oid("0.4.0.127.0.7.2.2.4.2.2") == h("04007F00070202040202")
    assert asn1.decode_oid(h("678108010101")) == "2.23.136.1.1.1"
    assert asn1.decode_oid(h("2A864886F70D010702")) == "1.2.840.113549.1.7.2"


def test_check_digits_of_9303_examples():
    assert mrz.check_digit("L898902C<") == "3"
    assert mrz.check_digit("690806") == "1"
    assert mrz.check_digit("940623") == "6"
    assert mrz.check_digit("001099012345") == "0"


def test_td1_of_the_cccd_reference_and_its_key_seed():
    parsed = mrz.parse(VN_MRZ)
    assert parsed["valid"], parsed["errors"]
    assert parsed["document_number"] == "099012345"
    assert parsed["optional_data"] == "001099012345  0"
    assert parsed["birth_date"] == "1999-01-01" and parsed["expiry_date"] == "2039-01-01"
    assert parsed["sex"] == "M" and parsed["nationality"] == "VNM"
    assert mrz.key_information_from_mrz(parsed) == "099012345999010183901016"


def test_td1_builder_matches_the_reference_layout():
    built = mrz.td1_vnm("001099012345", "990101", "M", "390101", "Nguyen", "Van An")
    assert built.split("\n")[:2] == VN_MRZ.split("\n")[:2]


def test_td3_specimen_of_9303_4():
    parsed = mrz.parse("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
                       "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
    assert parsed["valid"], parsed["errors"]
    assert parsed["primary_identifier"] == "ERIKSSON"
    assert parsed["secondary_identifier"] == "ANNA MARIA"


def test_wrong_check_digit_is_reported():
    bad = VN_MRZ.replace("9901018M", "9901019M")
    parsed = mrz.parse(bad)
    assert not parsed["valid"] and "birth_date" in parsed["errors"]


def test_ef_com_of_appendix_d():
    # the plain text read in 9303-11 Appendix D: 60 14 5F01 0430313036 5F36 06303430303030 5C 02 6175
    com = datagroups.parse_com(h("60145F0104303130365F36063034303030305C026175"))
    assert com == {"lds_version": "0106", "unicode_version": "040000", "datagroups": [1, 2]}


def _dg13(fields):
    entries = b""
    for n, value in fields:
        entries += tlv.encode(0x30, asn1.encode_int(n) + value)
    body = asn1.encode_int(1) + asn1.oid_tlv("1.0.10646.1.0.8") + tlv.encode(0x31, entries)
    return tlv.encode(0x6D, tlv.encode(0x30, body))


def _utf8(s):
    return tlv.encode(0x0C, s.encode())


def test_dg13_fields_matched_by_number_not_position():
    data = _dg13([
        (2, _utf8("Nguyễn Văn An")), (1, _utf8("001099012345")), (3, _utf8("01/01/1999")),
        (4, _utf8("Nam")), (12, _utf8("Không thời hạn")),
        (13, tlv.encode(0x30, _utf8("Nguyễn Văn Ba") + _utf8("Trần Thị Cư"))),
        (16, _utf8("X123")),
    ])
    out = datagroups.parse_dg13(data)
    assert out["id_number"] == "001099012345"
    assert out["full_name"] == "Nguyễn Văn An"
    assert out["birth_date"] == "1999-01-01"
    assert out["expiry_date"] is None and out["expiry_text"] == "Không thời hạn"
    assert out["father_name"] == "Nguyễn Văn Ba" and out["mother_name"] == "Trần Thị Cư"
    assert "spouse_name" not in out
    assert out["extra"]["16"]["text"] == ["X123"]


def test_dg1_and_dg15_and_card_access_shapes():
    dg1 = tlv.encode(0x61, tlv.encode(0x5F1F, VN_MRZ.replace("\n", "").encode()))
    assert datagroups.parse_dg1(dg1)["document_number"] == "099012345"
    spki = tlv.encode(0x30, tlv.encode(0x30, asn1.oid_tlv("1.2.840.10045.2.1")) + tlv.encode(0x03, b"\x00\x04"))
    assert datagroups.parse_dg15(tlv.encode(0x6F, spki)) == spki
    _raises(datagroups.parse_card_access, h("3103020101"))


def test_garbage_gives_protocol_errors():
    for parser in (datagroups.parse_com, datagroups.parse_dg1, datagroups.parse_dg2, datagroups.parse_dg13,
                   datagroups.parse_dg14, datagroups.parse_dg15, sod.parse, datagroups.parse_card_access):
        for garbage in (b"", b"\x00", h("7582FFFF00"), h("6D03020101"), h("770430020500"), h("31023000")):
            try:
                parser(garbage)
            except ProtocolError:
                pass
