"""Every fault of the virtual CCCD (simulators/cccd_card) against the real driver, live through
pcscd + vpcd: the card pulled mid-read, a slow link, extended length refused, the SELECT-MF quirk,
tampered data groups, a copied chip, an unknown CSCA, no check asked, no card (and a card tapped
while waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import idcard_fixtures
import pytest
from idcard_fixtures import CardRig, DriverHarness, run

from drivers.base import DeviceState, HalError
from simulators.cccd_card.document import DEFAULT_CITIZEN

# The fixtures, registered in this module under their own names (see test_idcard_read.py).
card_rig = idcard_fixtures.card_rig
card = idcard_fixtures.card

CAN = DEFAULT_CITIZEN["id_number"][-6:]


def _read(rig: CardRig, **params: object) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with DriverHarness(rig) as h:
            await h.wait_for(lambda: h.driver.card_present)
            result, _ = await h.read(**params)
            return result

    return run(go())


def _assert_citizen(result: dict[str, Any]) -> None:
    assert result["access"] == "PACE-CAN"
    assert result["id_number"] == DEFAULT_CITIZEN["id_number"]
    assert result["full_name"] == DEFAULT_CITIZEN["full_name"]
    assert result["face"]["mime"] == "image/jpeg"
    assert result["authenticity"]["status"] == "valid", result["authenticity"]


# --- the card leaves the reader -------------------------------------------------------------------
# APDUs before the pull: 2 = inside EF.CardAccess, 4 = between PACE steps, 8 = at the first data
# group (PACE done and the applet selected), 11 = in the middle of the data groups.
@pytest.mark.parametrize("apdus", [2, 4, 8, 11])
def test_card_pulled_mid_read_is_card_removed_and_the_next_tap_reads(card: CardRig, apdus: int) -> None:
    async def go() -> tuple[HalError, dict[str, Any], list[str], DeviceState]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            await card.control_async("reset_stats")
            await card.control_async("pull_after", apdus=apdus)
            mark = len(h.events)
            with pytest.raises(HalError) as info:
                await h.read(can=CAN)
            assert (await card.control_async("stats"))["apdus"] == apdus  # pulled where asked
            await h.wait_for(lambda: not h.driver.card_present)
            await card.control_async("insert")
            await h.wait_for(lambda: h.driver.card_present)
            result, _ = await h.read(can=CAN)
            return info.value, result, h.topics()[mark:], h.driver.state

    err, result, after, state = run(go())
    assert err.reason == "card_removed", (err.reason, err.message)
    _assert_citizen(result)
    presence = [t for t in after if t in ("idcard.card_removed", "idcard.card_present")]
    assert presence == ["idcard.card_removed", "idcard.card_present"]
    assert state == DeviceState.ONLINE  # the reader is ready for the next card, not busy or lost


def test_card_removed_and_present_are_broadcast_without_citizen_data(card: CardRig) -> None:
    async def go() -> list[tuple[str, dict[str, Any]]]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            mark = len(h.events)
            await card.control_async("remove")
            await h.wait_for(lambda: not h.driver.card_present)
            await card.control_async("insert")
            await h.wait_for(lambda: h.driver.card_present)
            return h.events[mark:]

    events = run(go())
    presence = [(t, d) for t, d in events if t in ("idcard.card_removed", "idcard.card_present")]
    assert [t for t, _ in presence] == ["idcard.card_removed", "idcard.card_present"]
    for _, data in presence:
        assert set(data) <= {"reader", "atr"}
        assert CAN not in repr(data) and DEFAULT_CITIZEN["id_number"] not in repr(data)


# --- a slow contactless link -------------------------------------------------------------------------
def test_slow_link_still_reads_and_the_stats_carry_the_time(card: CardRig) -> None:
    card.control("link", latency_ms=2, bitrate=424_000)  # ISO 14443 at 424 kbit/s
    card.control("reset_stats")
    result = _read(card, can=CAN)
    _assert_citizen(result)
    sim = card.control("stats")
    assert sim["link_seconds"] > 0
    # the driver's clock spans every delayed answer the card gave it
    assert result["stats"]["ms"] >= sim["link_seconds"] * 1000.0
    assert result["stats"]["apdus"] == sim["apdus"]


# --- extended length refused -----------------------------------------------------------------------
def test_extended_length_refused_reads_short_and_the_reader_remembers(card: CardRig) -> None:
    card.control("refuse_extended")

    async def go() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        reads = []
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            for _ in range(2):
                await card.control_async("reset_stats")
                result, _ = await h.read(can=CAN)
                reads.append((result, await card.control_async("stats")))
        return reads

    (first, first_sim), (second, second_sim) = run(go())
    for result in (first, second):
        _assert_citizen(result)
        assert result["stats"]["extended_length"] is False
    assert first_sim["extended_refused"] >= 1
    assert second_sim["extended_refused"] == 0  # the second card of the kind starts with short reads
    assert second["stats"]["apdus"] < first["stats"]["apdus"]


def test_extended_length_never_option_sends_no_extended_command(card: CardRig) -> None:
    card.control("refuse_extended")
    card.control("reset_stats")

    async def go() -> dict[str, Any]:
        async with DriverHarness(card, extended_length="never") as h:
            await h.wait_for(lambda: h.driver.card_present)
            result, _ = await h.read(can=CAN)
            return result

    result = run(go())
    _assert_citizen(result)
    assert result["stats"]["extended_length"] is False
    assert card.control("stats")["extended_refused"] == 0


# --- the SELECT-MF quirk -------------------------------------------------------------------------------
def test_select_mf_quirk_card_is_read_with_pace(card: CardRig) -> None:
    card.control("select_mf_quirk")
    result = _read(card, can=CAN)
    _assert_citizen(result)  # PACE-CAN: EF.CardAccess was found without SELECT MF


# --- authenticity -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dg", [1, 2, 13])
def test_tampered_data_group_is_invalid_naming_the_group(card: CardRig, dg: int) -> None:
    card.control("tamper", dg=dg)
    result = _read(card, can=CAN)
    auth = result["authenticity"]
    assert auth["status"] == "invalid", auth
    assert auth["failed"] == "datagroup_hashes" and auth["failed_datagroups"] == [f"DG{dg}"]
    passive = auth["passive"]
    assert passive["failed"] == "datagroup_hashes" and passive["failed_datagroups"] == [f"DG{dg}"]
    assert passive["checks"] == {"datagroup_hashes": "invalid", "sod_signature": "valid",
                                 "certificate_chain": "valid"}
    assert auth["active"]["status"] == "valid"  # the chip is genuine; its data are not


@pytest.mark.parametrize("dg", [14, 15])
def test_tampered_group_read_for_active_auth_is_invalid_too(card: CardRig, dg: int) -> None:
    # DG14 and DG15 are read only for active authentication; what is used must verify as well
    card.control("tamper", dg=dg)
    result = _read(card, can=CAN)
    auth = result["authenticity"]
    assert auth["status"] == "invalid", auth
    assert auth["failed"] == "datagroup_hashes" and auth["failed_datagroups"] == [f"DG{dg}"]
    if dg == 15:
        assert auth["active"]["status"] == "invalid"


def test_copied_chip_fails_active_authentication_and_is_invalid(card: CardRig) -> None:
    # genuine, signed files on a chip without DG15's private key: only active authentication sees it
    card.control("clone")
    auth = _read(card, can=CAN)["authenticity"]
    assert auth["passive"]["status"] == "valid"
    assert auth["active"] == {"status": "invalid", "failed": "aa_signature"}
    assert auth["status"] == "invalid" and auth["failed"] == "active_authentication"


def test_card_without_active_auth_is_valid_on_passive_alone(card: CardRig) -> None:
    card.control("set_access", active_auth=False)
    result = _read(card, can=CAN)
    auth = result["authenticity"]
    assert auth["status"] == "valid" and auth["active"]["status"] == "not_checked"
    assert "DG15" not in result["datagroups"]


def test_unknown_csca_is_no_trust_anchor(card: CardRig) -> None:
    card.control("unknown_csca")
    result = _read(card, can=CAN)
    auth = result["authenticity"]
    assert auth["status"] == "no_trust_anchor", auth
    assert auth["passive"]["checks"] == {"datagroup_hashes": "valid", "sod_signature": "valid",
                                         "certificate_chain": "no_trust_anchor"}
    assert "Unknown State" in auth["passive"]["issuer"]
    assert result["full_name"] == DEFAULT_CITIZEN["full_name"]  # the data is still returned


def test_unknown_csca_and_tampered_group_is_invalid(card: CardRig) -> None:
    card.control("unknown_csca")
    card.control("tamper", dg=13)
    auth = _read(card, can=CAN)["authenticity"]
    assert auth["status"] == "invalid" and auth["passive"]["failed_datagroups"] == ["DG13"]


def test_verify_false_is_not_checked(card: CardRig) -> None:
    card.control("tamper", dg=13)  # not looked at
    result = _read(card, can=CAN, verify=False)
    assert result["authenticity"] == {"status": "not_checked"}
    # the default groups (EF.SOD among them) and nothing for active authentication
    assert result["datagroups"] == {"DG1": "read", "DG2": "read", "DG13": "read", "SOD": "read"}
    assert result["id_number"] == DEFAULT_CITIZEN["id_number"]
    only = _read(card, can=CAN, verify=False, datagroups=["DG13"])
    assert only["authenticity"] == {"status": "not_checked"} and only["datagroups"] == {"DG13": "read"}


# --- no card ---------------------------------------------------------------------------------------
def test_read_waits_for_a_card_tapped_within_wait_ms(card: CardRig) -> None:
    async def go() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            await card.control_async("remove")
            await h.wait_for(lambda: not h.driver.card_present)
            read = asyncio.create_task(h.read(can=CAN, wait_ms=60_000))
            await h.wait_for(lambda: any(p.get("step") == "waiting_for_card" for p in h.progress))
            assert not read.done()
            await card.control_async("insert")
            result: tuple[dict[str, Any], list[dict[str, Any]]] = await asyncio.wait_for(read, 30)
            return result

    result, progress = run(go())
    _assert_citizen(result)
    steps = [p["step"] for p in progress]
    assert steps[0] == "waiting_for_card" and "access_granted" in steps


@pytest.mark.parametrize("wait_ms", [0, 50])
def test_no_card_within_wait_ms_is_no_card(card: CardRig, wait_ms: int) -> None:
    async def go() -> tuple[HalError, DeviceState]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            await card.control_async("remove")
            await h.wait_for(lambda: not h.driver.card_present)
            with pytest.raises(HalError) as info:
                await h.read(can=CAN, wait_ms=wait_ms)
            return info.value, h.driver.state

    err, state = run(go())
    assert err.reason == "no_card"
    assert state == DeviceState.ONLINE


# --- wrong access key ------------------------------------------------------------------------------------
# test_idcard_read.py counts the APDUs of one wrong-CAN attempt (one PACE run, no retry loop);
# here: the failed attempt leaves nothing behind that spoils the right key on the same reader.
def test_right_can_after_a_wrong_one_reads_on_the_same_driver(card: CardRig) -> None:
    async def go() -> tuple[HalError, dict[str, Any]]:
        async with DriverHarness(card) as h:
            await h.wait_for(lambda: h.driver.card_present)
            with pytest.raises(HalError) as info:
                await h.read(can="000000")
            result, _ = await h.read(can=CAN)
            return info.value, result

    err, result = run(go())
    assert err.reason == "wrong_access_key"
    _assert_citizen(result)
