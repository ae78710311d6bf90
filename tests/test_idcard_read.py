"""Live reads of the virtual CCCD through pcscd + vpcd with the real driver."""

from __future__ import annotations

import base64

import idcard_fixtures
import pytest
from idcard_fixtures import CardRig, DriverHarness, run

from drivers.base import HalError
from simulators.cccd_card.document import DEFAULT_CITIZEN

# The fixtures, registered in this module under their own names (assigned, not imported, so the
# test parameters that receive them do not redefine an import).
card_rig = idcard_fixtures.card_rig
card = idcard_fixtures.card

CAN = DEFAULT_CITIZEN["id_number"][-6:]


def test_pace_can_read_returns_citizen_face_and_valid_authenticity(card: CardRig) -> None:
    async def go() -> tuple[dict, list]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            return await h.read(can=CAN)

    result, progress = run(go())
    assert result["access"] == "PACE-CAN"
    for key in ("id_number", "full_name", "sex", "nationality", "ethnicity", "religion", "place_of_origin",
                "place_of_residence", "identifying_marks", "father_name", "mother_name", "spouse_name"):
        assert result[key] == DEFAULT_CITIZEN[key], key
    assert result["birth_date"] == "1993-01-05" and result["expiry_date"] == "2033-01-05"
    assert result["mrz"]["document_number"] == "203001234" and result["mrz"]["valid"]
    assert result["face"]["mime"] == "image/jpeg"
    assert base64.b64decode(result["face"]["data"])[:3] == b"\xff\xd8\xff"
    assert result["authenticity"]["status"] == "valid", result["authenticity"]
    assert result["authenticity"]["active"]["status"] == "valid"
    assert result["stats"]["extended_length"] is True
    assert any(p.get("datagroup") == "DG2" and p["bytes"] == p["total"] for p in progress)


def _read(rig: CardRig, **params: object) -> dict:
    async def go() -> dict:
        async with DriverHarness(rig) as h:
            await h.wait_for(lambda: h.driver.card_present)
            result, _ = await h.read(**params)
            return result

    return run(go())


def _error(rig: CardRig, **params: object) -> HalError:
    with pytest.raises(HalError) as info:
        _read(rig, **params)
    return info.value


def test_bac_only_card_is_read_with_the_mrz(card: CardRig) -> None:
    card.control("set_access", pace=False)
    mrz = "IDVNM2030012345079203001234<<5\n9301054F3301052VNM<<<<<<<<<<<8\nNGUYEN<<THI<THU<HA<<<<<<<<<<<<"
    result = _read(card, mrz=mrz)
    assert result["access"] == "BAC"
    assert result["full_name"] == DEFAULT_CITIZEN["full_name"]
    assert result["authenticity"]["status"] == "valid"


def test_pace_mrz_from_document_number_and_dates(card: CardRig) -> None:
    result = _read(card, document_number="203001234", birth_date="1993-01-05", expiry_date="2033-01-05",
                   datagroups=["DG1", "DG13"])
    assert result["access"] == "PACE-MRZ"
    assert "face" not in result and result["id_number"] == DEFAULT_CITIZEN["id_number"]


def test_id_number_and_qr_give_the_can(card: CardRig) -> None:
    assert _read(card, id_number=DEFAULT_CITIZEN["id_number"], verify=False)["access"] == "PACE-CAN"
    qr = f"{DEFAULT_CITIZEN['id_number']}||{DEFAULT_CITIZEN['full_name']}|05011993|Nữ|HCM|10042021"
    result = _read(card, qr=qr, datagroups=["DG13"], verify=False)
    assert result["access"] == "PACE-CAN" and result["authenticity"]["status"] == "not_checked"


def test_pace_on_nist_p256_with_3des_session(card: CardRig) -> None:
    card.control("set_access", parameter_id=12, pace_oid="0.4.0.127.0.7.2.2.4.2.1")
    result = _read(card, can=CAN)
    assert result["access"] == "PACE-CAN" and result["authenticity"]["status"] == "valid"


def test_wrong_can_is_wrong_access_key_after_one_attempt(card: CardRig) -> None:
    card.control("reset_stats")
    err = _error(card, can="000000")
    assert err.reason == "wrong_access_key"
    # EF.CardAccess (select + read) + MSE + 4 GENERAL AUTHENTICATE: one PACE run, no retry loop
    assert card.control("stats")["apdus"] == 7


def test_can_on_a_bac_only_card_is_not_supported(card: CardRig) -> None:
    card.control("set_access", pace=False)
    assert _error(card, can=CAN).reason == "not_supported"


def test_wrong_mrz_on_bac_card_is_wrong_access_key(card: CardRig) -> None:
    card.control("set_access", pace=False)
    err = _error(card, document_number="203001235", birth_date="930105", expiry_date="330105")
    assert err.reason == "wrong_access_key"


def test_exactly_one_key_source(card: CardRig) -> None:
    assert _error(card, can=CAN, id_number=DEFAULT_CITIZEN["id_number"]).reason == "invalid_params"
    assert _error(card).reason == "invalid_params"
    assert _error(card, document_number="203001234").reason == "invalid_params"


def test_eac_protected_and_absent_groups_are_reported_not_fatal(card: CardRig) -> None:
    result = _read(card, can=CAN, datagroups=["DG1", "DG3", "DG11"])
    asked = {k: result["datagroups"][k] for k in ("DG1", "DG3", "DG11", "SOD")}
    assert asked == {"DG1": "read", "DG3": "denied", "DG11": "absent", "SOD": "read"}
    # DG14/DG15 are read as well: chip and active authentication need them.
    assert set(result["datagroups"]) - set(asked) <= {"DG14", "DG15"}
    assert result["authenticity"]["status"] == "valid"


def test_citizen_with_other_details_and_no_spouse(card: CardRig) -> None:
    card.control("set_citizen", id_number="001099012345", full_name="Đặng Văn Đức", sex="Nam",
                 birth_date="1999-01-01", expiry_date="Không thời hạn", spouse_name=None,
                 extra={"16": "123456789"})
    result = _read(card, id_number="001099012345")
    assert result["full_name"] == "Đặng Văn Đức" and result["sex"] == "Nam"
    assert result["expiry_date"] is None and result["expiry_text"] == "Không thời hạn"
    assert "spouse_name" not in result
    assert result["extra"]["16"]["text"] == ["123456789"]
    assert result["mrz"]["primary_identifier"] == "DANG"
