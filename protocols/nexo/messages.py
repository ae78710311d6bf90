"""nexo Retailer JSON messages: envelopes, the requests a sale system sends, the responses and
device requests a terminal sends, and a checking decoder for both directions.

A message is the plain dict that `json` gives; `decode` checks its shape and wraps it in a
`Message` so callers never index into unchecked input.
"""
import json

from protocols.errors import ProtocolError

PROTOCOL_VERSION = "3.0"

REQUEST = "SaleToPOIRequest"
RESPONSE = "SaleToPOIResponse"

CATEGORIES = ("Payment", "Abort", "TransactionStatus", "Reversal", "Reconciliation", "Login", "Logout",
              "Display", "Input", "Diagnosis", "EnableService", "Event")
MESSAGE_CLASSES = ("Service", "Device", "Event")

SUCCESS = "Success"
PARTIAL = "Partial"
FAILURE = "Failure"
RESULTS = (SUCCESS, PARTIAL, FAILURE)

ERROR_CONDITIONS = ("Aborted", "Busy", "Cancel", "DeviceOut", "InProgress", "InsertedCard", "InvalidCard",
                    "LoggedOut", "MessageFormat", "NotAllowed", "NotFound", "PaymentRestriction",
                    "Refusal", "UnavailableDevice", "UnavailableService", "UnreachableHost", "WrongPIN")


def check_service_id(service_id):
    if not isinstance(service_id, str) or not 1 <= len(service_id) <= 10:
        raise ProtocolError("nexo: ServiceID must be 1-10 characters, got %r" % (service_id,))
    return service_id


def header(category, service_id, sale_id, poi_id, message_type="Request", message_class="Service"):
    check_service_id(service_id)
    return {
        "ProtocolVersion": PROTOCOL_VERSION,
        "MessageClass": message_class,
        "MessageCategory": category,
        "MessageType": message_type,
        "ServiceID": service_id,
        "SaleID": sale_id,
        "POIID": poi_id,
    }


def envelope(hdr, body):
    """A whole message: `{"SaleToPOIRequest|Response": {"MessageHeader": …, "<Cat><Type>": body}}`."""
    root = REQUEST if hdr["MessageType"] == "Request" else RESPONSE
    return {root: {"MessageHeader": hdr, hdr["MessageCategory"] + hdr["MessageType"]: body}}


def response_header(request_header):
    """A response header echoes the request's, except MessageType."""
    out = {}
    for key in request_header:
        out[key] = request_header[key]
    out["MessageType"] = "Response"
    return out


def response_part(result, error_condition=None, additional=None):
    out = {"Result": result}
    if error_condition is not None:
        out["ErrorCondition"] = error_condition
    if additional:
        out["AdditionalResponse"] = additional
    return out


# --- requests from the sale system ----------------------------------------------------------
def payment_request(service_id, sale_id, poi_id, transaction_id, timestamp, amount, currency="VND",
                    sale_reference=None):
    sale_data = {"SaleTransactionID": {"TransactionID": transaction_id, "TimeStamp": timestamp}}
    if sale_reference:
        sale_data["SaleReferenceID"] = sale_reference
    body = {
        "SaleData": sale_data,
        "PaymentTransaction": {"AmountsReq": {"Currency": currency, "RequestedAmount": amount}},
    }
    return envelope(header("Payment", service_id, sale_id, poi_id), body)


def message_reference(category, service_id, sale_id, poi_id):
    return {"MessageCategory": category, "ServiceID": service_id, "SaleID": sale_id, "POIID": poi_id}


def abort_request(service_id, sale_id, poi_id, aborted_service_id, aborted_category="Payment",
                  reason="MerchantAbort"):
    body = {"MessageReference": message_reference(aborted_category, aborted_service_id, sale_id, poi_id),
            "AbortReason": reason}
    return envelope(header("Abort", service_id, sale_id, poi_id), body)


def transaction_status_request(service_id, sale_id, poi_id, asked_service_id, asked_category="Payment"):
    body = {"MessageReference": message_reference(asked_category, asked_service_id, sale_id, poi_id)}
    return envelope(header("TransactionStatus", service_id, sale_id, poi_id), body)


def reversal_request(service_id, sale_id, poi_id, poi_transaction_id, poi_timestamp, amount=None,
                     reason="MerchantCancel"):
    body = {"OriginalPOITransaction": {"POITransactionID": {"TransactionID": poi_transaction_id,
                                                            "TimeStamp": poi_timestamp}},
            "ReversalReason": reason}
    if amount is not None:
        body["ReversedAmount"] = amount
    return envelope(header("Reversal", service_id, sale_id, poi_id), body)


def reconciliation_request(service_id, sale_id, poi_id, kind="SaleReconciliation"):
    return envelope(header("Reconciliation", service_id, sale_id, poi_id), {"ReconciliationType": kind})


def login_request(service_id, sale_id, poi_id, timestamp, software="halsvc", version="0.1",
                  language="vi"):
    body = {
        "DateTime": timestamp,
        "SaleSoftware": {"ManufacturerID": "DCS", "ApplicationName": software, "SoftwareVersion": version,
                         "CertificationCode": "none"},
        "SaleTerminalData": {"TerminalEnvironment": "Unattended"},
        "OperatorLanguage": language,
    }
    return envelope(header("Login", service_id, sale_id, poi_id), body)


# --- what the terminal sends ----------------------------------------------------------------
def payment_response(request_header, result, error_condition=None, poi_transaction_id=None,
                     poi_timestamp=None, sale_transaction=None, authorized_amount=None, currency="VND",
                     reconciliation_id=None, additional=None):
    body = {"Response": response_part(result, error_condition, additional)}
    if sale_transaction is not None:
        body["SaleData"] = {"SaleTransactionID": sale_transaction}
    if poi_transaction_id is not None:
        poi = {"POITransactionID": {"TransactionID": poi_transaction_id, "TimeStamp": poi_timestamp}}
        if reconciliation_id is not None:
            poi["POIReconciliationID"] = reconciliation_id
        body["POIData"] = poi
    if authorized_amount is not None:
        body["PaymentResult"] = {"PaymentType": "Normal",
                                 "AmountsResp": {"Currency": currency, "AuthorizedAmount": authorized_amount}}
    return envelope(response_header(request_header), body)


def transaction_status_response(request_header, result, error_condition=None, repeated=None,
                                additional=None):
    """`repeated` is the original response message (a whole envelope) of a finished transaction."""
    body = {"Response": response_part(result, error_condition, additional)}
    if repeated is not None:
        inner = repeated[RESPONSE]
        hdr = inner["MessageHeader"]
        key = hdr["MessageCategory"] + "Response"
        body["RepeatedMessageResponse"] = {"MessageHeader": hdr,
                                           "RepeatedResponseMessageBody": {key: inner[key]}}
    return envelope(response_header(request_header), body)


def reversal_response(request_header, result, error_condition=None, poi_transaction_id=None,
                      poi_timestamp=None, reversed_amount=None):
    body = {"Response": response_part(result, error_condition)}
    if poi_transaction_id is not None:
        body["POIData"] = {"POITransactionID": {"TransactionID": poi_transaction_id,
                                                "TimeStamp": poi_timestamp}}
    if reversed_amount is not None:
        body["ReversedAmount"] = reversed_amount
    return envelope(response_header(request_header), body)


def reconciliation_response(request_header, result, reconciliation_id=None, totals=None,
                            error_condition=None, kind="SaleReconciliation"):
    """`totals`: list of (transaction type, count, amount), e.g. ("Debit", 3, 450000)."""
    body = {"Response": response_part(result, error_condition), "ReconciliationType": kind}
    if reconciliation_id is not None:
        body["POIReconciliationID"] = reconciliation_id
    if totals is not None:
        body["TransactionTotals"] = [{
            "PaymentInstrumentType": "Card",
            "PaymentTotals": [{"TransactionType": t, "TransactionCount": c, "TransactionAmount": a}
                              for (t, c, a) in totals],
        }]
    return envelope(response_header(request_header), body)


def login_response(request_header, result, error_condition=None):
    body = {"Response": response_part(result, error_condition),
            "POISystemData": {"DateTime": "", "POIStatus": {"GlobalStatus": "OK"}}}
    return envelope(response_header(request_header), body)


def display_request(service_id, sale_id, poi_id, text, device="CustomerDisplay", info="Status"):
    """A prompt the terminal shows its user, also sent to the sale system (`Device` class)."""
    body = {"DisplayOutput": [{
        "Device": device,
        "InfoQualify": info,
        "ResponseRequiredFlag": False,
        "OutputContent": {"OutputFormat": "Text", "OutputText": [{"Text": text}]},
    }]}
    return envelope(header("Display", service_id, sale_id, poi_id, message_class="Device"), body)


# --- wire encoding and checked decoding -----------------------------------------------------
def encode(message):
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


class Message:
    """A decoded, shape-checked nexo message."""

    def __init__(self, root, hdr, body):
        self.is_request = root == REQUEST
        self.header = hdr
        self.body = body
        self.category = hdr["MessageCategory"]
        self.message_class = hdr["MessageClass"]
        self.service_id = hdr["ServiceID"]
        self.sale_id = hdr.get("SaleID")
        self.poi_id = hdr.get("POIID")

    def __repr__(self):
        return "<nexo %s%s %s>" % (self.category, "Request" if self.is_request else "Response",
                                   self.service_id)

    def envelope(self):
        root = REQUEST if self.is_request else RESPONSE
        key = self.category + ("Request" if self.is_request else "Response")
        return {root: {"MessageHeader": self.header, key: self.body}}

    # Response helpers: every accessor checks types, so garbage gives ProtocolError.
    @property
    def result(self):
        return response_result(self.body)

    @property
    def error_condition(self):
        return response_error(self.body)


def _dict(value, what):
    if not isinstance(value, dict):
        raise ProtocolError("nexo: %s must be an object" % what)
    return value


def _text(value, what, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProtocolError("nexo: %s must be a string" % what)
    return value


def check_header(hdr, expect_type=None):
    _dict(hdr, "MessageHeader")
    for key in ("MessageClass", "MessageCategory", "MessageType", "ServiceID"):
        _text(hdr.get(key), "MessageHeader." + key)
    for key in ("SaleID", "POIID", "ProtocolVersion"):
        _text(hdr.get(key), "MessageHeader." + key, optional=True)
    if hdr["MessageType"] not in ("Request", "Response"):
        raise ProtocolError("nexo: MessageType %r is neither Request nor Response" % (hdr["MessageType"],))
    if expect_type is not None and hdr["MessageType"] != expect_type:
        raise ProtocolError("nexo: MessageType %s inside a %s envelope" % (hdr["MessageType"], expect_type))
    if hdr["MessageCategory"] not in CATEGORIES:
        raise ProtocolError("nexo: unknown MessageCategory %r" % (hdr["MessageCategory"],))
    if hdr["MessageClass"] not in MESSAGE_CLASSES:
        raise ProtocolError("nexo: unknown MessageClass %r" % (hdr["MessageClass"],))
    check_service_id(hdr["ServiceID"])
    return hdr


def decode(data):
    """Bytes (or an already parsed dict) → `Message`. Raises ProtocolError on anything malformed."""
    if isinstance(data, dict):
        obj = data
    else:
        try:
            text = bytes(data).decode("utf-8")
            obj = json.loads(text)
        except Exception:  # UnicodeError, ValueError, RecursionError/RuntimeError on deep nesting
            raise ProtocolError("nexo: message is not UTF-8 JSON")
    _dict(obj, "message")
    if len(obj) != 1:
        raise ProtocolError("nexo: message must have exactly one root member")
    root = None
    for key in obj:
        root = key
    if root not in (REQUEST, RESPONSE):
        raise ProtocolError("nexo: root must be %s or %s, got %r" % (REQUEST, RESPONSE, root))
    inner = _dict(obj[root], root)
    hdr = check_header(inner.get("MessageHeader"), "Request" if root == REQUEST else "Response")
    key = hdr["MessageCategory"] + hdr["MessageType"]
    body = _dict(inner.get(key), key)
    return Message(root, hdr, body)


def response_result(body):
    resp = _dict(body.get("Response"), "Response")
    result = _text(resp.get("Result"), "Response.Result")
    if result not in RESULTS:
        raise ProtocolError("nexo: unknown Result %r" % (result,))
    return result


def response_error(body):
    resp = _dict(body.get("Response"), "Response")
    return _text(resp.get("ErrorCondition"), "Response.ErrorCondition", optional=True)


def amount(value, what):
    """A nexo amount as whole units: VND has no minor unit, so 150000 and 150000.0 are the same."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("nexo: %s must be a number" % what)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise ProtocolError("nexo: %s must be a whole number of VND" % what)
        value = int(value)
    if value < 0:
        raise ProtocolError("nexo: %s is negative" % what)
    return value


def payment_details(body):
    """What a PaymentResponse body says about the money: a dict of result, error_condition,
    authorized_amount, poi_transaction_id, poi_timestamp, reconciliation_id, sale_transaction_id."""
    out = {"result": response_result(body), "error_condition": response_error(body),
           "authorized_amount": None, "poi_transaction_id": None, "poi_timestamp": None,
           "reconciliation_id": None, "sale_transaction_id": None}
    if "POIData" in body:
        poi = _dict(body["POIData"], "POIData")
        tid = _dict(poi.get("POITransactionID"), "POIData.POITransactionID")
        out["poi_transaction_id"] = _text(tid.get("TransactionID"), "POITransactionID.TransactionID")
        out["poi_timestamp"] = _text(tid.get("TimeStamp"), "POITransactionID.TimeStamp", optional=True)
        rid = poi.get("POIReconciliationID")
        out["reconciliation_id"] = _text(rid, "POIReconciliationID", optional=True)
    if "PaymentResult" in body:
        pr = _dict(body["PaymentResult"], "PaymentResult")
        amounts = _dict(pr.get("AmountsResp"), "PaymentResult.AmountsResp")
        out["authorized_amount"] = amount(amounts.get("AuthorizedAmount"), "AuthorizedAmount")
    if "SaleData" in body:
        sd = _dict(body["SaleData"], "SaleData")
        st = _dict(sd.get("SaleTransactionID"), "SaleData.SaleTransactionID")
        out["sale_transaction_id"] = _text(st.get("TransactionID"), "SaleTransactionID.TransactionID")
    return out


def repeated_response(body):
    """The original response inside a TransactionStatusResponse, as a `Message`, or None."""
    if "RepeatedMessageResponse" not in body:
        return None
    rep = _dict(body["RepeatedMessageResponse"], "RepeatedMessageResponse")
    hdr = check_header(rep.get("MessageHeader"))
    inner = _dict(rep.get("RepeatedResponseMessageBody"), "RepeatedResponseMessageBody")
    key = hdr["MessageCategory"] + "Response"
    return Message(RESPONSE, hdr, _dict(inner.get(key), "RepeatedResponseMessageBody." + key))


def referenced_message(body):
    """MessageReference of an Abort or TransactionStatus request: (category, ServiceID, SaleID)."""
    ref = _dict(body.get("MessageReference"), "MessageReference")
    return (_text(ref.get("MessageCategory"), "MessageReference.MessageCategory", optional=True) or "Payment",
            check_service_id(_text(ref.get("ServiceID"), "MessageReference.ServiceID")),
            _text(ref.get("SaleID"), "MessageReference.SaleID", optional=True))


def requested_amount(body):
    """(amount, currency, SaleTransactionID.TransactionID, SaleReferenceID) of a PaymentRequest."""
    pt = _dict(body.get("PaymentTransaction"), "PaymentTransaction")
    areq = _dict(pt.get("AmountsReq"), "AmountsReq")
    sd = _dict(body.get("SaleData"), "SaleData")
    st = _dict(sd.get("SaleTransactionID"), "SaleData.SaleTransactionID")
    return (amount(areq.get("RequestedAmount"), "RequestedAmount"),
            _text(areq.get("Currency"), "AmountsReq.Currency"),
            _text(st.get("TransactionID"), "SaleTransactionID.TransactionID"),
            _text(sd.get("SaleReferenceID"), "SaleReferenceID", optional=True))


def reversal_target(body):
    """(POITransactionID, TimeStamp) of the payment a ReversalRequest reverses."""
    orig = _dict(body.get("OriginalPOITransaction"), "OriginalPOITransaction")
    tid = _dict(orig.get("POITransactionID"), "OriginalPOITransaction.POITransactionID")
    return (_text(tid.get("TransactionID"), "POITransactionID.TransactionID"),
            _text(tid.get("TimeStamp"), "POITransactionID.TimeStamp", optional=True))


def reconciliation_totals(body):
    """[(PaymentInstrumentType, TransactionType, count, amount)] of a ReconciliationResponse."""
    out = []
    totals = body.get("TransactionTotals", [])
    if not isinstance(totals, list):
        raise ProtocolError("nexo: TransactionTotals must be a list")
    for t in totals:
        _dict(t, "TransactionTotals[]")
        kind = _text(t.get("PaymentInstrumentType"), "PaymentInstrumentType", optional=True) or "Card"
        pts = t.get("PaymentTotals", [])
        if not isinstance(pts, list):
            raise ProtocolError("nexo: PaymentTotals must be a list")
        for p in pts:
            _dict(p, "PaymentTotals[]")
            count = p.get("TransactionCount")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ProtocolError("nexo: TransactionCount must be a count")
            out.append((kind, _text(p.get("TransactionType"), "TransactionType"), count,
                        amount(p.get("TransactionAmount"), "TransactionAmount")))
    return out


def display_texts(body):
    """Every text line of a DisplayRequest body."""
    outputs = body.get("DisplayOutput")
    if not isinstance(outputs, list):
        raise ProtocolError("nexo: DisplayOutput must be a list")
    texts = []
    for out in outputs:
        content = _dict(_dict(out, "DisplayOutput[]").get("OutputContent"), "OutputContent")
        lines = content.get("OutputText", [])
        if not isinstance(lines, list):
            raise ProtocolError("nexo: OutputText must be a list")
        for line in lines:
            texts.append(_text(_dict(line, "OutputText[]").get("Text"), "OutputText.Text"))
    return texts
