"""The payment state machine: every path the journal can record, driven by terminal answers."""

from protocols.errors import ProtocolError
from protocols.nexo import messages as m
from protocols.nexo import transaction as tx

TS = "2026-12-03T09:15:00+07:00"


def _new(service_id="692", amount=150000):
    return tx.PaymentTransaction("KIOSK-01", "TERM-01", service_id, amount, "VND", "BILL-1")


def _answer(request, *args, **kw):
    """The terminal's PaymentResponse to `request`, decoded as the driver would see it."""
    hdr = m.decode(request).header
    return m.decode(m.encode(m.payment_response(hdr, *args, **kw)))


def _raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        return True
    return False


def test_approved_payment():
    t = _new()
    req = t.start(TS)
    assert t.state == tx.PENDING and t.state in tx.UNFINISHED
    body = req["SaleToPOIRequest"]["PaymentRequest"]
    assert body["SaleData"]["SaleReferenceID"] == "BILL-1"
    out = t.on_payment_response(_answer(req, "Success", poi_transaction_id="P1", poi_timestamp=TS,
                                        authorized_amount=150000, reconciliation_id="12"))
    assert out == tx.APPROVED and t.finished
    r = t.result()
    assert r["status"] == "approved" and r["authorized_amount"] == 150000
    assert r["terminal_transaction_id"] == "P1" and r["reconciliation_id"] == "12"


def test_declined_and_cancelled_and_busy():
    for cond, want in (("Refusal", tx.DECLINED), ("Cancel", tx.ABORTED), ("Busy", tx.NOT_CHARGED)):
        t = _new()
        req = t.start(TS)
        assert t.on_payment_response(_answer(req, "Failure", cond)) == want
        assert t.result()["authorized_amount"] == 0
        assert t.result()["error_condition"] == cond


def test_silence_then_status_finds_the_approval():
    t = _new()
    req = t.start(TS)
    approval = m.payment_response(m.decode(req).header, "Success", poi_transaction_id="P9", poi_timestamp=TS,
                                  authorized_amount=150000)
    t.lost()
    assert t.state == tx.UNKNOWN
    sreq = t.status_request("693")
    ref = sreq["SaleToPOIRequest"]["TransactionStatusRequest"]["MessageReference"]
    assert ref["ServiceID"] == "692"
    hdr = m.decode(sreq).header
    busy = m.decode(m.transaction_status_response(hdr, "Failure", "InProgress"))
    assert t.on_status_response(busy) == "in_progress" and t.state == tx.UNKNOWN
    found = m.decode(m.transaction_status_response(hdr, "Success", repeated=approval))
    assert t.on_status_response(found) == tx.APPROVED
    assert t.poi_transaction_id == "P9"


def test_status_not_found_means_never_charged():
    t = _new()
    t.start(TS)
    t.lost()
    hdr = m.decode(t.status_request("693")).header
    assert t.on_status_response(m.decode(m.transaction_status_response(hdr, "Failure", "NotFound"))) \
        == tx.NOT_CHARGED
    assert t.finished


def test_abort_then_terminal_reports_aborted():
    t = _new()
    req = t.start(TS)
    ab = t.abort("700")
    assert t.state == tx.ABORTING
    assert ab["SaleToPOIRequest"]["AbortRequest"]["MessageReference"]["ServiceID"] == "692"
    assert t.on_payment_response(_answer(req, "Failure", "Aborted")) == tx.ABORTED


def test_abort_too_late_still_approved():
    t = _new()
    req = t.start(TS)
    t.abort("700")
    assert t.on_payment_response(_answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                         authorized_amount=150000)) == tx.APPROVED


def test_reversal_round_trip_and_refusal():
    t = _new()
    req = t.start(TS)
    t.on_payment_response(_answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                  authorized_amount=150000))
    rev = t.reverse("800")
    assert t.state == tx.REVERSING
    assert m.reversal_target(m.decode(rev).body) == ("P", TS)
    hdr = m.decode(rev).header
    assert t.on_reversal_response(m.decode(m.reversal_response(hdr, "Failure", "NotAllowed"))) == tx.APPROVED
    rev = t.reverse("801")
    hdr = m.decode(rev).header
    assert t.on_reversal_response(m.decode(m.reversal_response(hdr, "Success", poi_transaction_id="P"))) \
        == tx.REVERSED


def test_reversing_resolved_by_status():
    t = _new()
    req = t.start(TS)
    t.on_payment_response(_answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                  authorized_amount=150000))
    rev = t.reverse("800")
    sreq = t.status_request("801")
    assert sreq["SaleToPOIRequest"]["TransactionStatusRequest"]["MessageReference"] == {
        "MessageCategory": "Reversal", "ServiceID": "800", "SaleID": "KIOSK-01", "POIID": "TERM-01"}
    shdr = m.decode(sreq).header
    original = m.reversal_response(m.decode(rev).header, "Success", poi_transaction_id="P")
    assert t.on_status_response(m.decode(m.transaction_status_response(shdr, "Success", repeated=original))) \
        == tx.REVERSED


def test_reversal_never_arrived_leaves_payment_approved():
    t = _new()
    req = t.start(TS)
    t.on_payment_response(_answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                  authorized_amount=150000))
    t.reverse("800")
    shdr = m.decode(t.status_request("801")).header
    assert t.on_status_response(m.decode(m.transaction_status_response(shdr, "Failure", "NotFound"))) \
        == tx.APPROVED


def test_impossible_moves_are_state_conflicts():
    t = _new()
    try:
        t.reverse("800")
    except ProtocolError as exc:
        assert exc.reason == "state_conflict"
    else:
        raise AssertionError("reversal of a new payment accepted")
    req = t.start(TS)
    assert _raises(t.start, TS)
    t.on_payment_response(_answer(req, "Failure", "Refusal"))
    assert _raises(t.status_request, "9")
    # a terminal contradicting a final outcome is refused, not silently applied
    assert _raises(t.on_payment_response, _answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                                  authorized_amount=1))


def test_response_for_another_service_id_is_refused():
    t = _new()
    t.start(TS)
    other = _new("999").start(TS)
    assert _raises(t.on_payment_response, _answer(other, "Success", poi_transaction_id="P", poi_timestamp=TS))
    assert t.state == tx.PENDING


def test_approval_without_terminal_id_is_refused():
    t = _new()
    req = t.start(TS)
    assert _raises(t.on_payment_response, _answer(req, "Success", authorized_amount=1))


def test_snapshot_restores_the_same_transaction():
    t = _new()
    req = t.start(TS)
    t.on_payment_response(_answer(req, "Success", poi_transaction_id="P", poi_timestamp=TS,
                                  authorized_amount=150000, reconciliation_id="3"))
    row = t.snapshot()
    assert "card" not in " ".join(row).lower()
    back = tx.PaymentTransaction.restore("KIOSK-01", "TERM-01", row)
    assert back.result() == t.result()
    assert _raises(tx.PaymentTransaction.restore, "K", "T", dict(row, state="weird"))


def test_a_late_approval_does_not_undo_a_reversal():
    t = _new()
    req = t.start(TS)
    approval = _answer(req, "Success", poi_transaction_id="P1", poi_timestamp=TS, authorized_amount=150000)
    t.on_payment_response(approval)
    t.reverse("700", TS)
    assert t.state == tx.REVERSING
    assert t.on_payment_response(approval) == tx.REVERSING and t.state == tx.REVERSING
    assert _raises(t.on_payment_response, _answer(req, "Failure", "Refusal"))
