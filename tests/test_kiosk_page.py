"""The demo kiosk page in a real browser: Debian's headless Chromium driven by Playwright, served
by the bridge of a daemon on the simulated station (card, printer, scale, payment terminal, GPIO
panel and, once it is there, the BLE station). Each resident flow end to end, its error
messages, the English toggle, and refusals of a wrong token or Origin.

Screenshots go to the test's tmp dir and to $HALSVC_SCREENSHOTS (default bench/out/kiosk/).
No browser is downloaded: Playwright drives /usr/bin/chromium (tools/setup.sh TEST_PKGS).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from harness import ROOT, Station

from drivers.base import REASON_CODES
from halsvc.client import RpcError
from simulators.cccd_card.document import DEFAULT_CITIZEN

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = os.environ.get("HALSVC_CHROMIUM", "/usr/bin/chromium")
if not pathlib.Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

WAIT_MS = 60_000  # a ceiling against hangs, not a measurement
expect.set_options(timeout=WAIT_MS)
PARTS = {"gpio_panel", "cccd_card", "escpos_printer", "serial_scale", "payment_terminal", "ble_station"}
CAN = DEFAULT_CITIZEN["id_number"][-6:]
SHOTS = pathlib.Path(os.environ.get("HALSVC_SCREENSHOTS") or ROOT / "bench" / "out" / "kiosk")


class Kiosk:
    def __init__(self, st: Station) -> None:
        self.st = st
        with st.sync_client() as hal:
            status = hal.call("hal.status")
            self.methods = {m["name"] for m in hal.call("rpc.discover")["methods"]}
        self.ws_url = str(status["bridge"])
        self.base = "http://" + self.ws_url.removeprefix("ws://").split("/", 1)[0]
        self.token = (st.workdir / "state" / "kiosk.token").read_text().strip()

    def url(self, lang: str = "vi", token: str | None = None) -> str:
        return f"{self.base}/#token={token if token is not None else self.token}&lang={lang}"

    def wait_event(self, topic: str, action: tuple[str, str, dict[str, Any]]) -> None:
        """Do a control action and wait for the broadcast it causes (no sleeping)."""
        with self.st.sync_client(timeout=WAIT_MS / 1000) as hal:
            hal.subscribe(topic)
            part, name, args = action
            self.st.control(part, name, **args)
            for ev in hal.events():
                if ev["topic"] == topic:
                    return


@pytest.fixture(scope="module")
def kiosk() -> Iterator[Kiosk]:
    # The card takes whichever vpcd slot is free (the simulator queues only when both are held).
    st = Station(only=PARTS, config={"bridge": {"enabled": True, "port": 0}}).start()
    try:
        wait_online(st, "idcard0", "printer0", "scale0", "payment0", "panel0",
                    *(["health0"] if "health0" in st.config_path.read_text() else []))
        yield Kiosk(st)
    finally:
        st.stop()


def wait_online(st: Station, *devices: str) -> None:
    """Wait on status events (READY=1 means the daemon serves; devices come up on their own)."""
    with st.sync_client(timeout=WAIT_MS / 1000) as hal:
        hal.subscribe("*.status")
        pending = {d for d in devices if hal.call("device.status", {"device": d})["state"] != "online"}
        events = hal.events()
        while pending:
            ev = next(events)
            if ev["topic"].endswith(".status") and ev["data"].get("state") == "online":
                pending.discard(ev["device"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, kiosk: Kiosk) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], errors  # no JavaScript error on any flow


def shot(page: Any, tmp_path: pathlib.Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def open_page(page: Any, kiosk: Kiosk, lang: str = "vi") -> None:
    page.goto(kiosk.url(lang))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#link")).to_have_attribute("data-state", "up")


# --- the ID card -------------------------------------------------------------------------------
def test_tap_the_id_card_and_see_name_and_photo(page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    shot(page, tmp_path, "01-home")
    kiosk.wait_event("idcard.card_removed", ("cccd_card", "remove", {}))
    page.click("#tile-idcard")
    page.fill("#can", CAN)
    page.click("#idcard-read")
    expect(page.locator("#idcard-status")).to_have_text(re.compile("Đặt thẻ căn cước lên đầu đọc"))
    kiosk.st.control("cccd_card", "insert")  # the resident taps the card
    expect(page.locator("#idcard-name")).to_have_text(DEFAULT_CITIZEN["full_name"])
    expect(page.locator("#idcard-birth")).to_have_text("05/01/1993")
    expect(page.locator("#idcard-check")).to_have_text("Hợp lệ")
    photo = page.locator("#idcard-photo")
    page.wait_for_function("() => document.getElementById('idcard-photo').naturalWidth > 0")
    assert photo.evaluate("img => img.naturalHeight") > 100
    shot(page, tmp_path, "02-idcard")
    log = kiosk.st.log()
    for secret in (DEFAULT_CITIZEN["full_name"], DEFAULT_CITIZEN["id_number"], CAN, kiosk.token):
        assert secret not in log  # the bridge logs no citizen data and not its token
    # The resident walks away: nothing of theirs stays on the screen.
    kiosk.st.control("gpio_panel", "person_arrives")
    kiosk.st.control("gpio_panel", "person_leaves")
    expect(page.locator("#home")).to_be_visible()
    assert page.locator("#idcard-name").text_content() == ""
    assert photo.get_attribute("src") is None


def test_card_pulled_mid_read_says_so_and_a_wrong_can_too(page: Any, kiosk: Kiosk,
                                                          tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    page.click("#tile-idcard")
    page.fill("#can", "999999")
    page.click("#idcard-read")
    status = page.locator("#idcard-status")
    expect(status).to_have_attribute("data-reason", "wrong_access_key")
    expect(status).to_have_text(re.compile("Mã CAN không đúng"))
    kiosk.st.control("cccd_card", "reset_stats")
    kiosk.st.control("cccd_card", "pull_after", apdus=8)
    page.fill("#can", CAN)
    page.click("#idcard-read")
    expect(status).to_have_attribute("data-reason", "card_removed")
    expect(status).to_have_text(re.compile("Thẻ bị lấy ra khi đang đọc"))
    shot(page, tmp_path, "03-idcard-removed")
    page.click("#lang")
    expect(status).to_have_text(re.compile("The card was taken away during the read"))
    kiosk.wait_event("idcard.card_present", ("cccd_card", "insert", {}))


def test_a_flow_holds_its_device_until_the_resident_goes_back(page: Any, kiosk: Kiosk) -> None:
    open_page(page, kiosk)
    with kiosk.st.sync_client(timeout=WAIT_MS / 1000) as other:
        other.subscribe("device.claimed")
        page.click("#tile-idcard")
        events = other.events()
        while not (ev := next(events))["data"]["claimed"]:
            pass
        assert ev["device"] == "idcard0"
        with pytest.raises(RpcError) as info:
            other.call("idcard.read", {"can": CAN})
        assert info.value.reason == "device_busy"
        page.click("#idcard .back")
        while (ev := next(events))["data"]["claimed"]:
            pass
        assert ev["device"] == "idcard0"
        assert other.call("device.status", {"device": "idcard0"})["claimed"] is False


# --- blood pressure ----------------------------------------------------------------------------
WATCH_CUFF = """() => {
    const gauge = document.getElementById('bp-cuff');
    window.cuffSeen = [];
    new MutationObserver(() => window.cuffSeen.push(Number(gauge.textContent)))
      .observe(gauge, {childList: true, characterData: true, subtree: true});
}"""


def test_blood_pressure_with_a_live_cuff_gauge_or_not_available(page: Any, kiosk: Kiosk,
                                                                tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    tile = page.locator("#tile-bp")
    if "health.measure" not in kiosk.methods:
        expect(tile).to_be_disabled()
        expect(tile.locator(".na")).to_be_visible()
        expect(tile.locator(".na")).to_have_text("Không có trên trạm này")
        shot(page, tmp_path, "04-bp-not-available")
        return
    expect(tile).to_be_enabled()
    tile.click()
    page.evaluate(WATCH_CUFF)
    page.click("#bp-start")
    expect(page.locator("#bp-result")).to_be_visible()
    expect(page.locator("#bp-status")).to_have_attribute("data-kind", "ok")
    seen = page.evaluate("window.cuffSeen")
    assert max(seen) > 100, seen  # the gauge moved with the cuff while it inflated
    assert page.locator("#bp-sys").text_content().isdigit()
    assert page.locator("#bp-dia").text_content().isdigit()
    shot(page, tmp_path, "04-bp")
    kiosk.st.control("ble_station", "cuff_error")
    page.click("#bp-start")
    status = page.locator("#bp-status")
    expect(status).to_have_attribute("data-reason", "cuff_error")
    expect(status).to_have_text(re.compile("Vòng bít quấn chưa đúng"))


# --- weight and BMI ----------------------------------------------------------------------------
def test_weigh_in_with_bmi(page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    page.click("#tile-weigh")
    page.fill("#height", "160")
    page.click("#weigh-start")
    expect(page.locator("#weigh-status")).to_have_text(re.compile("Mời bước lên cân"))
    kiosk.st.control("serial_scale", "step_on", kg=64, settle_s=0.5)
    expect(page.locator("#weigh-bmi")).to_have_text("25,0")
    expect(page.locator("#weigh-kg")).to_have_text("64,0")
    expect(page.locator("#weigh-class")).to_have_text("Béo phì")
    shot(page, tmp_path, "05-weigh")
    kiosk.st.control("serial_scale", "step_off")


# --- paying the water bill and the receipt ------------------------------------------------------
def test_pay_the_water_bill_by_card_and_print_the_receipt(page: Any, kiosk: Kiosk,
                                                          tmp_path: pathlib.Path) -> None:
    before = len(kiosk.st.control("escpos_printer", "jobs")["jobs"])
    open_page(page, kiosk)
    page.click("#tile-pay")
    expect(page.locator("#bill-amount")).to_have_text(re.compile("150.000 ₫"))
    page.click("#pay-card")
    status = page.locator("#pay-status")
    expect(status).to_have_attribute("data-outcome", "approved")
    expect(status).to_have_text("Thanh toán thành công.")
    page.click("#receipt-print")
    expect(page.locator("#receipt-status")).to_have_attribute("data-outcome", "printed")
    page.wait_for_function("() => document.getElementById('receipt-img').naturalWidth === 576")
    shot(page, tmp_path, "06-pay-card-receipt")
    page.click("#receipt-print")  # pressed again: the same job id, no second receipt
    expect(page.locator("#receipt-status")).to_have_attribute("data-outcome", "printed")
    assert len(kiosk.st.control("escpos_printer", "jobs")["jobs"]) == before + 1
    ledger = kiosk.st.control("payment_terminal", "ledger")
    assert any(r.get("amount") == 150000 for r in ledger["records"])


def test_a_declined_card_says_so_and_the_retry_is_a_new_payment(page: Any, kiosk: Kiosk,
                                                                 tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    page.click("#tile-pay")
    kiosk.st.control("payment_terminal", "scenario", name="decline")
    page.click("#pay-card")
    status = page.locator("#pay-status")
    expect(status).to_have_attribute("data-outcome", "declined")
    expect(status).to_have_text(re.compile("Thẻ bị từ chối"))
    shot(page, tmp_path, "07-pay-declined")
    page.click("#pay-card")  # a new key: the terminal approves this one
    expect(status).to_have_attribute("data-outcome", "approved")


def test_pay_by_vietqr_and_paper_out_is_explained(page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk, lang="en")
    page.click("#tile-pay")
    page.click("#pay-qr")
    qr = page.locator("#pay-qr-img")
    expect(qr).to_be_visible()
    page.wait_for_function("() => document.getElementById('pay-qr-img').naturalWidth > 100")
    assert qr.get_attribute("data-payload").startswith("000201")
    shot(page, tmp_path, "08-vietqr")
    page.click("#pay-qr-done")
    kiosk.wait_event("printer.status", ("escpos_printer", "paper_out", {}))
    try:
        page.click("#receipt-print")
        status = page.locator("#receipt-status")
        expect(status).to_have_attribute("data-reason", "paper_out")
        expect(status).to_have_text(re.compile("The printer is out of paper.*Your payment still stands"))
        page.wait_for_function("() => document.getElementById('receipt-img').naturalWidth === 576")
        shot(page, tmp_path, "09-paper-out")
    finally:
        kiosk.wait_event("printer.status", ("escpos_printer", "paper_refill", {}))


def test_english_toggle(page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    open_page(page, kiosk)
    expect(page.locator("h1")).to_have_text("Trạm Công dân số")
    page.click("#lang")
    expect(page.locator("h1")).to_have_text("Digital Citizen Station")
    expect(page.locator("#tile-weigh")).to_contain_text("Weight and BMI")
    expect(page.locator("#lang")).to_have_text("VI")
    shot(page, tmp_path, "10-english")
    page.click("#lang")
    expect(page.locator("#tile-weigh")).to_contain_text("Cân và chỉ số BMI")


def test_touch_targets_are_large(page: Any, kiosk: Kiosk) -> None:
    open_page(page, kiosk)
    for sel in ("#lang", ".tile"):
        box = page.locator(sel).first.bounding_box()
        assert box["height"] >= 64 and box["width"] >= 64, (sel, box)
    page.click("#tile-pay")
    for sel in ("#pay-card", "#pay-qr", "#pay .back"):
        box = page.locator(sel).bounding_box()
        assert box["height"] >= 64, (sel, box)


def test_every_error_reason_has_a_message_in_both_languages() -> None:
    text = (ROOT / "halsvc" / "kiosk" / "i18n.js").read_text(encoding="utf-8")
    vi, en = text.split("\n  en: {", 1)
    reasons = set(REASON_CODES) | {"invalid_params", "method_not_found", "internal_error", "interrupted",
                                   "message_too_large", "parse_error", "invalid_request"}
    for reason in sorted(reasons):
        assert f'"reason.{reason}":' in vi, f"no Vietnamese message for {reason}"
        assert f'"reason.{reason}":' in en, f"no English message for {reason}"


# --- refusals ----------------------------------------------------------------------------------
OPEN_WS = """async (url) => await new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
})"""


def test_a_wrong_token_or_origin_is_refused(page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    page.goto(kiosk.url(token="not-the-token"))
    expect(page.locator("#link")).to_have_attribute("data-state", "refused")
    expect(page.locator("#banner")).to_have_text(re.compile("không được phép kết nối"))
    expect(page.locator("#tile-idcard")).to_be_visible()
    assert page.locator("body").get_attribute("data-ready") is None
    shot(page, tmp_path, "11-refused-token")
    good = f"{kiosk.ws_url}?token={kiosk.token}"
    # The right token from the bridge's own page opens; from any other origin it does not.
    page.goto(kiosk.url())
    assert page.evaluate(OPEN_WS, good) == "open"
    page.goto("about:blank")
    assert page.evaluate(OPEN_WS, good) == "refused"
    page.set_content("<p>another page</p>")
    assert page.evaluate(OPEN_WS, good) == "refused"


def test_a_payment_whose_answer_is_lost_is_asked_again_with_its_key_and_charged_once(
        page: Any, kiosk: Kiosk, tmp_path: pathlib.Path) -> None:
    """The daemon dies while the terminal is taking the card. The page says the connection was
    lost, reconnects by itself, and the resident's second press asks for that same payment (the
    same idempotency key): one charge on the terminal, and the page shows it approved."""
    def charges() -> int:
        return sum(1 for r in kiosk.st.control("payment_terminal", "ledger")["records"]
                   if r.get("amount") == 150000 and r.get("state") == "approved")

    before = charges()
    open_page(page, kiosk)
    page.click("#tile-pay")
    kiosk.st.control("payment_terminal", "scenario", name="slow")
    page.click("#pay-card")
    status = page.locator("#pay-status")
    expect(status).to_have_attribute("data-key", "")  # the terminal's own prompt is on screen
    key = page.evaluate("() => paymentKey()")
    kiosk.st.stop_daemon(signal.SIGKILL)
    expect(status).to_have_attribute("data-reason", "disconnected")
    expect(status).to_have_text("Mất kết nối với trạm giữa chừng.")
    shot(page, tmp_path, "14-pay-answer-lost")
    port = int(kiosk.base.rsplit(":", 1)[1])
    kiosk.st.write_config(bridge={"enabled": True, "port": port})
    kiosk.st.start_daemon()
    wait_online(kiosk.st, "idcard0", "printer0", "scale0", "payment0", "panel0")
    expect(page.locator("#link")).to_have_attribute("data-state", "up")
    assert page.evaluate("() => paymentKey()") == key  # not a new payment
    page.click("#pay-card")
    expect(status).to_have_attribute("data-outcome", "approved")
    assert charges() == before + 1


# --- a station without those devices --------------------------------------------------------------
def test_flows_without_their_devices_say_not_available_and_light_up_when_they_come(
        browser: Any, tmp_path: pathlib.Path) -> None:
    """A station with only its GPIO panel: every flow says it is not available here. The daemon
    restarts with a scale configured: the page reconnects by itself (same per-boot token) and
    the weighing tile lights up, from rpc.discover."""
    st = Station(only={"gpio_panel"}, config={"bridge": {"enabled": True, "port": 0}}).start()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        bare = Kiosk(st)
        pg = context.new_page()
        pg.goto(bare.url())
        expect(pg.locator("body")).to_have_attribute("data-ready", "true")
        for tile in ("#tile-idcard", "#tile-bp", "#tile-weigh", "#tile-pay"):
            expect(pg.locator(tile)).to_be_disabled()
            expect(pg.locator(f"{tile} .na")).to_have_text("Không có trên trạm này")
        shot(pg, tmp_path, "12-nothing-available")
        pg.click("#lang")
        expect(pg.locator("#tile-pay .na")).to_have_text("Not available on this station")
        # The same port again, so the page's address still holds; a scale that is not plugged in
        # still offers scale.read (it answers device_offline until it is).
        port = int(bare.base.rsplit(":", 1)[1])
        st.stop_daemon()
        expect(pg.locator("#link")).to_have_attribute("data-state", "down")
        st.write_config(bridge={"enabled": True, "port": port},
                        devices={"scale0": {"driver": "scale", "port": str(st.workdir / "no-such-tty")}})
        st.start_daemon()
        expect(pg.locator("#link")).to_have_attribute("data-state", "up")
        expect(pg.locator("#tile-weigh")).to_be_enabled()
        expect(pg.locator("#tile-idcard")).to_be_disabled()
        pg.click("#tile-weigh")
        pg.click("#weigh-start")
        expect(pg.locator("#weigh-status")).to_have_attribute("data-reason", "device_offline")
        expect(pg.locator("#weigh-status")).to_have_text(re.compile("The device is out of service"))
        shot(pg, tmp_path, "13-weigh-offline")
    finally:
        context.close()
        st.stop()
