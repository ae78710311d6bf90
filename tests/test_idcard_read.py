"""Live reads of the virtual CCCD through pcscd + vpcd with the real driver."""

from __future__ import annotations

import base64

import pytest
from idcard_fixtures import CardRig, DriverHarness, card, card_rig, run  # noqa: F401

from drivers.base import HalError
from simulators.cccd_card.document import DEFAULT_CITIZEN

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
