"""BAC and 3DES secure messaging against the worked example of ICAO 9303-11 Appendix D
(numbers in ../shared/reference/cccd.md)."""
# ruff: noqa: E501  (spec vectors are kept on one line each, as printed)
from binascii import unhexlify as h

from protocols import iso7816, mrz
from protocols.emrtd import bac
from protocols.emrtd import primitives as P
from protocols.emrtd.sm import SecureMessaging
from protocols.errors import ProtocolError
from tests.protocols.emrtd_softcrypto import SoftCrypto

C = SoftCrypto()
MRZ_INFO = "L898902C<369080619406236"
KSENC = h("979EC13B1CBFE9DCD01AB0FED307EAE5")
KSMAC = h("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = h("887022120C06C226")


def test_mrz_information_of_appendix_d():
    assert mrz.key_information("L898902C", "690806", "940623") == MRZ_INFO


def test_key_seed_and_document_keys():
    assert bac.key_seed(C, MRZ_INFO) == h("239AB9CB282DAF66231DC5A4DF6BFBAE")
    kenc, kmac = bac.document_keys(C, MRZ_INFO)
    assert kenc == h("AB94FDECF2674FDFB9B391F85D7F76F2")
    assert kmac == h("7962D9ECE03D1ACD4C76089DCE131543")


def test_external_authenticate_command():
    t = bac.BacTerminal(C, MRZ_INFO)
    cmd = t.authenticate_command(h("4608F91988702212"), h("781723860C06C226"),
                                 h("0B795240CB7049B01C19B33E32804F0B"))
    assert cmd.data == h("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2"
                         "5F1448EEA8AD90A7")
    assert cmd.to_bytes() == h("0082000028") + cmd.data + h("28")


def test_card_answer_gives_session_keys_and_ssc():
    t = bac.BacTerminal(C, MRZ_INFO)
    t.authenticate_command(h("4608F91988702212"), h("781723860C06C226"), h("0B795240CB7049B01C19B33E32804F0B"))
    sm = t.finish(h("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449"))
    assert sm.ks_enc == KSENC
    assert sm.ks_mac == KSMAC
    assert sm.ssc == int.from_bytes(SSC, "big")


def test_card_answer_with_wrong_mac_means_wrong_key():
    t = bac.BacTerminal(C, MRZ_INFO)
    t.authenticate_command(h("4608F91988702212"), h("781723860C06C226"), h("0B795240CB7049B01C19B33E32804F0B"))
    bad = bytearray(h("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449"))
    bad[-1] ^= 1
    try:
        t.finish(bytes(bad))
    except ProtocolError as e:
        assert e.reason == "wrong_access_key"
    else:
        raise AssertionError("accepted a bad MAC")


def test_chip_side_answers_the_appendix_d_card_answer():
    chip = bac.BacChip(C, MRZ_INFO)
    chip.challenge(h("4608F91988702212"))
    t = bac.BacTerminal(C, MRZ_INFO)
    cmd = t.authenticate_command(h("4608F91988702212"), h("781723860C06C226"), h("0B795240CB7049B01C19B33E32804F0B"))
    answer, sm = chip.external_authenticate(cmd.data, k_ic=h("0B4F80323EB3191CB04970CB4052790B"))
    assert answer == h("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
    assert sm.ks_enc == KSENC and sm.ssc == int.from_bytes(SSC, "big")


def _session():
    return SecureMessaging(C, P.CIPHER_3DES, KSENC, KSMAC, SSC)


def test_protected_select_ef_com_and_its_answer():
    sm = _session()
    cmd = sm.protect(iso7816.select_by_fid(0x011E))
    assert cmd.to_bytes() == h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
    data, sw = sm.unprotect(h("990290008E08FA855A5D4C50A8ED9000"))
    assert (data, sw) == (b"", 0x9000)


def test_protected_read_binary_sequence():
    sm = _session()
    sm.protect(iso7816.select_by_fid(0x011E))
    sm.unprotect(h("990290008E08FA855A5D4C50A8ED9000"))
    cmd = sm.protect(iso7816.read_binary(0, 4))
    assert cmd.to_bytes() == h("0CB000000D9701048E08ED6705417E96BA5500")
    data, sw = sm.unprotect(h("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"))
    assert data == h("60145F01") and sw == 0x9000
    cmd = sm.protect(iso7816.read_binary(4, 0x12))
    assert cmd.to_bytes() == h("0CB000040D9701128E082EA28A70F3C7B53500")
    data, sw = sm.unprotect(h("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"))
    assert data == h("04303130365F36063034303030305C026175") and sw == 0x9000


def test_chip_side_unwraps_and_wraps_the_appendix_d_exchange():
    chip = _session()
    plain = chip.unprotect_command(h("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"))
    assert plain.to_bytes() == h("00A4020C02011E")
    assert chip.protect_response(b"", 0x9000) == h("990290008E08FA855A5D4C50A8ED9000")
    plain = chip.unprotect_command(h("0CB000000D9701048E08ED6705417E96BA5500"))
    assert (plain.ins, plain.le) == (0xB0, 4)
    assert chip.protect_response(h("60145F01"), 0x9000) == h("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000")


def test_tampered_response_mac_is_an_sm_error():
    sm = _session()
    sm.protect(iso7816.select_by_fid(0x011E))
    try:
        sm.unprotect(h("990290008E08FA855A5D4C50A8EC9000"))
    except ProtocolError as e:
        assert e.reason == "sm_error"
    else:
        raise AssertionError("accepted a bad MAC")


def test_extended_le_goes_in_a_two_byte_do97():
    sm = _session()
    cmd = sm.protect(iso7816.read_binary(0, 4096, extended=True))
    assert cmd.extended
    assert cmd.data[:4] == h("97021000")
    assert cmd.to_bytes()[-2:] == b"\x00\x00"
    chip = _session()
    plain = chip.unprotect_command(cmd.to_bytes())
    assert plain.le == 4096 and plain.extended
