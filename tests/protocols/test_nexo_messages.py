"""nexo SaleToPOI JSON: requests as the reference shows them, responses in the shapes terminals send."""

import json

from protocols.errors import ProtocolError
from protocols.nexo import framing
from protocols.nexo import messages as m
from protocols.nexo import outcomes as o
from protocols.nexo import service_id as sid

# The PaymentRequest of the reference (shared/reference/printer-scale-payment.md), verbatim.
REFERENCE_PAYMENT_REQUEST = """
{"SaleToPOIRequest":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
 "MessageCategory":"Payment","MessageType":"Request","ServiceID":"692","SaleID":"KIOSK-01","POIID":"TERM-01"},
 "PaymentRequest":{"SaleData":{"SaleTransactionID":{"TransactionID":"27908","TimeStamp":"2026-12-03T09:15:00+07:00"}},
  "PaymentTransaction":{"AmountsReq":{"Currency":"VND","RequestedAmount":150000}}}}}
"""

# A terminal's approval (Adyen-style local Terminal API shape; AdditionalResponse abridged).
APPROVAL = """
{"SaleToPOIResponse":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
 "MessageCategory":"Payment","MessageType":"Response","ServiceID":"692","SaleID":"KIOSK-01","POIID":"TERM-01"},
 "PaymentResponse":{"Response":{"Result":"Success","AdditionalResponse":"tid=47069832&transactionType=GOODS_SERVICES"},
  "SaleData":{"SaleTransactionID":{"TransactionID":"27908","TimeStamp":"2026-12-03T09:15:00+07:00"}},
  "POIData":{"POITransactionID":{"TransactionID":"oLkO001517998574000.8815175552221225","TimeStamp":"2026-12-03T09:15:31+07:00"},
   "POIReconciliationID":"1000"},
  "PaymentResult":{"PaymentType":"Normal","AmountsResp":{"Currency":"VND","AuthorizedAmount":150000.0}}}}}
"""

DECLINE = """
{"SaleToPOIResponse":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
 "MessageCategory":"Payment","MessageType":"Response","ServiceID":"693","SaleID":"KIOSK-01","POIID":"TERM-01"},
 "PaymentResponse":{"Response":{"Result":"Failure","ErrorCondition":"Refusal","AdditionalResponse":"refusalReason=Refused"},
  "POIData":{"POITransactionID":{"TransactionID":"BV0q001517998621000.8815175552286367","TimeStamp":"2026-12-03T09:16:01+07:00"}}}}}
"""

# TransactionStatus for a finished payment: the original answer, repeated.
STATUS_FOUND = """
{"SaleToPOIResponse":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
 "MessageCategory":"TransactionStatus","MessageType":"Response","ServiceID":"694","SaleID":"KIOSK-01","POIID":"TERM-01"},
 "TransactionStatusResponse":{"Response":{"Result":"Success"},
  "RepeatedMessageResponse":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
    "MessageCategory":"Payment","MessageType":"Response","ServiceID":"692","SaleID":"KIOSK-01","POIID":"TERM-01"},
   "RepeatedResponseMessageBody":{"PaymentResponse":{"Response":{"Result":"Success"},
     "POIData":{"POITransactionID":{"TransactionID":"oLkO001517998574000.8815175552221225","TimeStamp":"2026-12-03T09:15:31+07:00"},
      "POIReconciliationID":"1000"},
     "PaymentResult":{"AmountsResp":{"Currency":"VND","AuthorizedAmount":150000}}}}}}}}
"""

STATUS_IN_PROGRESS = """
{"SaleToPOIResponse":{"MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service",
 "MessageCategory":"TransactionStatus","MessageType":"Response","ServiceID":"695","SaleID":"KIOSK-01","POIID":"TERM-01"},
 "TransactionStatusResponse":{"Response":{"Result":"Failure","ErrorCondition":"InProgress",
  "AdditionalResponse":"message=Uncompleted%20transaction"}}}}
"""


def _raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError:
        return True
    return False


def test_payment_request_matches_the_reference_message():
    built = m.payment_request("692", "KIOSK-01", "TERM-01", "27908", "2026-12-03T09:15:00+07:00", 150000)
    assert built == json.loads(REFERENCE_PAYMENT_REQUEST)
    msg = m.decode(m.encode(built))
    assert msg.is_request and msg.category == "Payment" and msg.service_id == "692"
    assert m.requested_amount(msg.body) == (150000, "VND", "27908", None)


def test_approval_details():
    msg = m.decode(APPROVAL.encode())
    assert not msg.is_request
    d = m.payment_details(msg.body)
    assert d["result"] == "Success"
    assert d["authorized_amount"] == 150000 and isinstance(d["authorized_amount"], int)
    assert d["poi_transaction_id"] == "oLkO001517998574000.8815175552221225"
    assert d["reconciliation_id"] == "1000"
    assert d["sale_transaction_id"] == "27908"
    assert o.payment_outcome(d["result"], d["error_condition"]) == o.APPROVED


def test_decline_is_an_outcome_not_an_error():
    msg = m.decode(DECLINE.encode())
    assert msg.error_condition == "Refusal"
    assert o.payment_outcome(msg.result, msg.error_condition) == o.DECLINED


def test_outcomes_of_every_error_condition():
    assert o.payment_outcome("Partial", None) == o.APPROVED
    assert o.payment_outcome("Failure", "Cancel") == o.ABORTED
    assert o.payment_outcome("Failure", "Aborted") == o.ABORTED
    assert o.payment_outcome("Failure", "Busy") == o.NOT_CHARGED
    assert o.payment_outcome("Failure", "WrongPIN") == o.DECLINED
    assert o.payment_outcome("Failure", None) == o.UNKNOWN
    assert o.payment_outcome("Failure", "SomethingNew") == o.UNKNOWN
    for cond in m.ERROR_CONDITIONS:
        assert o.payment_outcome("Failure", cond) in (o.DECLINED, o.ABORTED, o.NOT_CHARGED, o.IN_PROGRESS,
                                                      o.UNKNOWN)
    assert o.status_outcome("Failure", "NotFound") == o.NOT_CHARGED
    assert o.status_outcome("Failure", "InProgress") == o.IN_PROGRESS
    assert o.status_outcome("Failure", "Busy") == o.UNKNOWN


def test_transaction_status_repeats_the_original_response():
    msg = m.decode(STATUS_FOUND.encode())
    assert msg.result == "Success"
    rep = m.repeated_response(msg.body)
    assert rep.category == "Payment" and rep.service_id == "692"
    assert m.payment_details(rep.body)["poi_transaction_id"] == "oLkO001517998574000.8815175552221225"
    busy = m.decode(STATUS_IN_PROGRESS.encode())
    assert m.repeated_response(busy.body) is None
    assert busy.error_condition == "InProgress"


def test_status_request_names_the_original_service_id():
    req = m.transaction_status_request("694", "KIOSK-01", "TERM-01", "692")
    body = req["SaleToPOIRequest"]["TransactionStatusRequest"]
    assert body["MessageReference"] == {"MessageCategory": "Payment", "ServiceID": "692",
                                        "SaleID": "KIOSK-01", "POIID": "TERM-01"}
    assert req["SaleToPOIRequest"]["MessageHeader"]["ServiceID"] == "694"
    assert m.referenced_message(m.decode(req).body) == ("Payment", "692", "KIOSK-01")


def test_response_header_echoes_the_request_except_message_type():
    req = m.decode(json.loads(REFERENCE_PAYMENT_REQUEST))
    resp = m.payment_response(req.header, "Failure", "Busy")
    hdr = resp["SaleToPOIResponse"]["MessageHeader"]
    assert hdr["MessageType"] == "Response"
    for key in ("ProtocolVersion", "MessageClass", "MessageCategory", "ServiceID", "SaleID", "POIID"):
        assert hdr[key] == req.header[key]


def test_status_response_built_by_a_terminal_round_trips():
    req = m.decode(json.loads(REFERENCE_PAYMENT_REQUEST))
    original = m.payment_response(req.header, "Success", poi_transaction_id="T1", poi_timestamp="x",
                                  authorized_amount=150000, reconciliation_id="7")
    sreq = m.decode(m.transaction_status_request("694", "KIOSK-01", "TERM-01", "692"))
    sresp = m.decode(m.encode(m.transaction_status_response(sreq.header, "Success", repeated=original)))
    rep = m.repeated_response(sresp.body)
    assert rep.service_id == "692" and rep.header["MessageType"] == "Response"
    d = m.payment_details(rep.body)
    assert (d["poi_transaction_id"], d["authorized_amount"], d["reconciliation_id"]) == ("T1", 150000, "7")
    assert sresp.header["ServiceID"] == "694"


def test_reversal_reconciliation_login_abort_shapes():
    rev = m.reversal_request("9", "K", "T", "oLkO0015", "2026-12-03T09:15:31+07:00")
    body = rev["SaleToPOIRequest"]["ReversalRequest"]
    assert body["OriginalPOITransaction"]["POITransactionID"]["TransactionID"] == "oLkO0015"
    assert body["ReversalReason"] == "MerchantCancel"
    assert m.reversal_target(m.decode(rev).body) == ("oLkO0015", "2026-12-03T09:15:31+07:00")
    rec = m.decode(m.reconciliation_request("A", "K", "T"))
    assert rec.body == {"ReconciliationType": "SaleReconciliation"}
    resp = m.decode(m.reconciliation_response(rec.header, "Success", "1001",
                                              [("Debit", 2, 300000), ("ReverseDebit", 1, 150000)]))
    assert resp.body["POIReconciliationID"] == "1001"
    assert m.reconciliation_totals(resp.body) == [("Card", "Debit", 2, 300000),
                                                  ("Card", "ReverseDebit", 1, 150000)]
    ab = m.decode(m.abort_request("B", "K", "T", "692"))
    assert ab.body["AbortReason"] == "MerchantAbort"
    assert m.referenced_message(ab.body)[1] == "692"
    login = m.decode(m.login_request("C", "K", "T", "2026-12-03T09:00:00+07:00"))
    assert login.category == "Login" and login.body["OperatorLanguage"] == "vi"


def test_display_prompt_is_a_device_request():
    d = m.decode(m.encode(m.display_request("692", "K", "T", "Insert card")))
    assert d.is_request and d.message_class == "Device" and d.category == "Display"
    assert m.display_texts(d.body) == ["Insert card"]


def test_service_id_rules():
    assert _raises(m.check_service_id, "")
    assert _raises(m.check_service_id, "12345678901")
    assert m.check_service_id("1234567890") == "1234567890"
    # never below the clock in centiseconds, always above the last one
    assert sid.next_counter(None, 178000000000) == 178000000000
    assert sid.next_counter(178000000005, 178000000000) == 178000000006
    assert sid.next_counter(5, 178000000000) == 178000000000
    text = sid.to_text(sid.next_counter(None, 178000000000))
    assert 1 <= len(text) <= 10
    assert sid.from_text(text) == 178000000000
    assert sid.to_text(sid.MAX_COUNTER) == "ZZZZZZZZZZ"
    assert _raises(sid.to_text, sid.MAX_COUNTER + 1)
    assert _raises(sid.from_text, "no-way!")


def test_ids_grow_in_base36_order_as_strings_too():
    prev = None
    for c in (178000000000, 178000000001, 178000000035, 178000000036):
        t = sid.to_text(c)
        if prev is not None:
            assert (len(t), t) > (len(prev), prev)
        prev = t


def test_framing_splits_and_joins():
    payload = m.encode(json.loads(REFERENCE_PAYMENT_REQUEST))
    wire = framing.encode_frame(payload) + framing.encode_frame(b"{}")
    assert wire[:4] == len(payload).to_bytes(4, "big")
    dec = framing.FrameDecoder()
    frames = []
    for i in range(len(wire)):
        dec.receive_data(wire[i:i + 1])
        f = dec.next_frame()
        while f is not None:
            frames.append(f)
            f = dec.next_frame()
    assert frames == [payload, b"{}"]
    big = framing.FrameDecoder(max_frame=10)
    big.receive_data(b"\x00\x00\x01\x00")
    assert _raises(big.next_frame)


def test_malformed_messages_are_protocol_errors():
    bad = [b"", b"\xff", b"[]", b"{}", b'{"a":1}', b'{"SaleToPOIRequest":1}',
           b'{"SaleToPOIRequest":{"MessageHeader":{}}}',
           b'{"SaleToPOIRequest":{},"SaleToPOIResponse":{}}',
           b'{"SaleToPOIResponse":{"MessageHeader":{"MessageClass":"Service","MessageCategory":"Payment",'
           b'"MessageType":"Request","ServiceID":"1"},"PaymentRequest":{}}}',
           b'{"SaleToPOIRequest":{"MessageHeader":{"MessageClass":"Service","MessageCategory":"Payment",'
           b'"MessageType":"Request","ServiceID":"1"}}}',
           b'{"SaleToPOIRequest":{"MessageHeader":{"MessageClass":"Service","MessageCategory":"Nope",'
           b'"MessageType":"Request","ServiceID":"1"},"NopeRequest":{}}}',
           b"[" * 5000]
    for data in bad:
        assert _raises(m.decode, data), data
    ok = m.decode(APPROVAL.encode())
    ok.body["PaymentResult"]["AmountsResp"]["AuthorizedAmount"] = "lots"
    assert _raises(m.payment_details, ok.body)
    ok.body["PaymentResult"]["AmountsResp"]["AuthorizedAmount"] = 1.5
    assert _raises(m.payment_details, ok.body)
    ok.body["Response"] = {"Result": "Maybe"}
    assert _raises(m.payment_details, ok.body)
