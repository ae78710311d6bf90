"""PACE ECDH generic mapping on brainpoolP256r1 against ICAO 9303-11 Appendix G.1 (the worked
example: MRZ password, AES-128), plus the CAN password and NIST P-256 end to end between our
terminal and chip halves."""
# ruff: noqa: E501  (spec vectors are kept on one line each, as printed)
from binascii import unhexlify as h

from protocols import mrz
from protocols.emrtd import datagroups, ec, pace
from protocols.emrtd import primitives as P
from protocols.errors import ProtocolError
from tests.protocols.emrtd_softcrypto import SoftCrypto

C = SoftCrypto()
OID = "0.4.0.127.0.7.2.2.4.2.2"
CARD_ACCESS = h("31143012060A04007F0007020204020202010202010D")
MRZ_INFO = mrz.key_information("T22000129", "640812", "101031")
NONCE_Z = h("95A3A016522EE98D01E76CB6B98B42C3")
NONCE_S = h("3F00C4D39D153F2B2A214A078D899B22")
MAP_T = h("7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99")
MAP_C = h("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560")
EPH_T = h("A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595")
EPH_C = h("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A")
GA2_T = h("10860000457C438141047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E"
          "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D00")
GA2_C = h("7C43824104824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57"
          "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54")
GA3_T = h("10860000457C438341042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
          "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB3646200")
GA3_C = h("7C438441049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB"
          "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094")
MAPPED_G = (int("8CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2", 16),
            int("8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522", 16))


def test_card_access_of_appendix_g_offers_pace_aes128_brainpool():
    infos = datagroups.parse_card_access(CARD_ACCESS)
    assert infos == [{"oid": OID, "version": 2, "parameter_id": 13}]


def test_password_key_from_mrz_and_can():
    assert pace.password_key(C, MRZ_INFO, pace.PASSWORD_MRZ, OID) == h("89DED1B26624EC1E634C1989302849DD")
    assert pace.password_key(C, "123456", pace.PASSWORD_CAN, OID) == h("591468CDA83D65219CCCB8560233600F")


def test_terminal_messages_of_appendix_g1():
    t = pace.PaceTerminal(C, MRZ_INFO, pace.PASSWORD_MRZ, OID, 13)
    assert t.mse_set_at().to_bytes() == h("0022C1A40F800A04007F00070202040202830101")
    assert t.step1().to_bytes() == h("10860000027C0000")
    assert t.step2(h("7C12801095A3A016522EE98D01E76CB6B98B42C3"), MAP_T).to_bytes() == GA2_T
    assert t.nonce == NONCE_S
    assert t.step3(GA2_C, EPH_T).to_bytes() == GA3_T
    assert t.generator == MAPPED_G
    assert t.step4(GA3_C).to_bytes() == h("008600000C7C0A8508C2B0BD78D94BA86600")
    assert t.ks_enc == h("F5F0E35C0D7161EE6724EE513A0D9A7F")
    assert t.ks_mac == h("FE251C7858B356B24514B3BD5F4297D1")
    sm = t.finish(h("7C0A86083ABB9674BCE93C08"))
    assert sm.ssc == 0 and sm.cipher == P.CIPHER_AES


def test_chip_messages_of_appendix_g1():
    chip = pace.PaceChip(C, {pace.PASSWORD_MRZ: MRZ_INFO}, OID, 13)
    chip.set_at(h("800A04007F00070202040202830101"))
    assert chip.general_authenticate(h("7C00"), nonce=NONCE_S)[0] == h("7C12801095A3A016522EE98D01E76CB6B98B42C3")
    assert chip.general_authenticate(GA2_T[5:-1], map_private=MAP_C)[0] == GA2_C
    assert chip.general_authenticate(GA3_T[5:-1], private=EPH_C)[0] == GA3_C
    answer, sm = chip.general_authenticate(h("7C0A8508C2B0BD78D94BA866"))
    assert answer == h("7C0A86083ABB9674BCE93C08")
    assert sm.ks_enc == h("F5F0E35C0D7161EE6724EE513A0D9A7F")


def _run(terminal, chip):
    chip.set_at(terminal.mse_set_at().data)
    a1, _ = chip.general_authenticate(terminal.step1().data)
    a2, _ = chip.general_authenticate(terminal.step2(a1).data)
    a3, _ = chip.general_authenticate(terminal.step3(a2).data)
    a4, chip_sm = chip.general_authenticate(terminal.step4(a3).data)
    return terminal.finish(a4), chip_sm


def test_can_on_nist_p256_with_3des_between_our_halves():
    oid = "0.4.0.127.0.7.2.2.4.2.1"
    t = pace.PaceTerminal(C, "123456", pace.PASSWORD_CAN, oid, 12)
    chip = pace.PaceChip(C, {pace.PASSWORD_CAN: "123456"}, oid, 12)
    sm, chip_sm = _run(t, chip)
    assert sm.cipher == P.CIPHER_3DES
    assert sm.ks_enc == chip_sm.ks_enc and sm.ks_mac == chip_sm.ks_mac


def test_wrong_can_is_refused_by_the_chip_as_wrong_access_key():
    t = pace.PaceTerminal(C, "654321", pace.PASSWORD_CAN, OID, 13)
    chip = pace.PaceChip(C, {pace.PASSWORD_CAN: "123456"}, OID, 13)
    try:
        _run(t, chip)
    except ProtocolError as e:
        assert e.reason == "wrong_access_key"
    else:
        raise AssertionError("wrong CAN accepted")


def test_point_off_the_curve_is_refused():
    bad = b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01"
    try:
        ec.BRAINPOOL_P256R1.decode_point(bad)
    except ProtocolError:
        pass
    else:
        raise AssertionError("accepted a point off the curve")
