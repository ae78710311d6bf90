"""One payment's life as a state machine. Its states are exactly what the journal records.

    new ──start──▶ pending ──PaymentResponse──▶ approved | declined | aborted | not_charged
                     │  └──abort──▶ aborting ──PaymentResponse──▶ (same)
                     └──no answer──▶ unknown ──TransactionStatus──▶ final | unknown (ask later)
    approved ──reverse──▶ reversing ──ReversalResponse──▶ reversed | approved (refused)
                               └──no answer──▶ reversing (TransactionStatus / resend later)

`pending`, `aborting`, `unknown` and `reversing` are unfinished: the terminal may have done
something we have not heard about, and start-up recovery must ask it. Every method that builds
a request changes state *first*, so the caller journals the new state before the request leaves.
"""
from protocols.errors import ProtocolError
from protocols.nexo import messages as m
from protocols.nexo import outcomes as o

NEW = "new"
PENDING = "pending"
ABORTING = "aborting"
UNKNOWN = "unknown"
REVERSING = "reversing"
REVERSED = "reversed"
APPROVED = o.APPROVED
DECLINED = o.DECLINED
ABORTED = o.ABORTED
NOT_CHARGED = o.NOT_CHARGED

UNFINISHED = (PENDING, ABORTING, UNKNOWN, REVERSING)
FINISHED = (APPROVED, DECLINED, ABORTED, NOT_CHARGED, REVERSED)
STATES = (NEW,) + UNFINISHED + FINISHED

_ALLOWED = {
    NEW: (PENDING,),
    PENDING: (ABORTING, UNKNOWN, APPROVED, DECLINED, ABORTED, NOT_CHARGED),
    ABORTING: (UNKNOWN, APPROVED, DECLINED, ABORTED, NOT_CHARGED),
    UNKNOWN: (UNKNOWN, ABORTING, APPROVED, DECLINED, ABORTED, NOT_CHARGED),
    APPROVED: (REVERSING,),
    REVERSING: (REVERSING, REVERSED, APPROVED),
}

FIELDS = ("state", "service_id", "transaction_id", "amount", "currency", "reference",
          "authorized_amount", "poi_transaction_id", "poi_timestamp", "reconciliation_id", "error_condition",
          "reversal_service_id")


class StateConflict(ProtocolError):
    def __init__(self, message):
        ProtocolError.__init__(self, message, "state_conflict")


class PaymentTransaction:
    """The sale system's side of one payment on one terminal."""

    def __init__(self, sale_id, poi_id, service_id, amount, currency="VND", reference=None,
                 transaction_id=None):
        m.check_service_id(service_id)
        self.sale_id = sale_id
        self.poi_id = poi_id
        self.service_id = service_id
        self.transaction_id = transaction_id or service_id
        self.amount = amount
        self.currency = currency
        self.reference = reference
        self.state = NEW
        self.authorized_amount = None
        self.poi_transaction_id = None
        self.poi_timestamp = None
        self.reconciliation_id = None
        self.error_condition = None
        self.reversal_service_id = None
        self.status_service_id = None  # ServiceID of the last TransactionStatus asked

    # --- journal ------------------------------------------------------------------------
    def snapshot(self):
        """Everything the journal keeps: amounts, references, ids and states — no card data."""
        out = {}
        for key in FIELDS:
            out[key] = getattr(self, key)
        return out

    @classmethod
    def restore(cls, sale_id, poi_id, row):
        t = cls(sale_id, poi_id, row["service_id"], row["amount"], row.get("currency") or "VND",
                row.get("reference"), row.get("transaction_id"))
        for key in FIELDS:
            if key in row and row[key] is not None:
                setattr(t, key, row[key])
        if t.state not in STATES:
            raise ProtocolError("journal state %r unknown" % (t.state,))
        return t

    @property
    def finished(self):
        return self.state in FINISHED

    def _move(self, new):
        if new not in _ALLOWED.get(self.state, ()):
            raise StateConflict("payment %s cannot go from %s to %s" % (self.service_id, self.state, new))
        self.state = new

    # --- requests -------------------------------------------------------------------------
    def start(self, timestamp):
        """new → pending; returns the PaymentRequest to send once `pending` is journalled."""
        self._move(PENDING)
        return m.payment_request(self.service_id, self.sale_id, self.poi_id, self.transaction_id, timestamp,
                                 self.amount, self.currency, self.reference)

    def abort(self, service_id):
        """Ask the terminal to stop before approval. The outcome still comes as the payment's own
        response (or via TransactionStatus): aborting settles nothing by itself."""
        if self.state == ABORTING:
            return m.abort_request(service_id, self.sale_id, self.poi_id, self.service_id)
        self._move(ABORTING)
        return m.abort_request(service_id, self.sale_id, self.poi_id, self.service_id)

    def lost(self):
        """The request may have left but no answer will come on this connection."""
        if self.state in (PENDING, ABORTING):
            self._move(UNKNOWN)

    def status_request(self, service_id):
        """TransactionStatus for the payment (or for the reversal while reversing)."""
        if self.state not in UNFINISHED:
            raise StateConflict("payment %s is %s: nothing to ask" % (self.service_id, self.state))
        self.status_service_id = service_id
        if self.state == REVERSING:
            return m.transaction_status_request(service_id, self.sale_id, self.poi_id,
                                                self.reversal_service_id, "Reversal")
        return m.transaction_status_request(service_id, self.sale_id, self.poi_id, self.service_id, "Payment")

    def reverse(self, service_id, timestamp=None):
        """approved → reversing; the ReversalRequest to send once that is journalled."""
        if self.state == REVERSING and self.reversal_service_id is not None:
            # Resending after silence: a new ServiceID, the same POITransactionID, so the terminal
            # reverses at most once.
            self.reversal_service_id = service_id
        else:
            self._move(REVERSING)
            self.reversal_service_id = service_id
        return m.reversal_request(service_id, self.sale_id, self.poi_id, self.poi_transaction_id,
                                  self.poi_timestamp or timestamp, self.authorized_amount)

    # --- answers --------------------------------------------------------------------------
    def on_payment_response(self, msg):
        """Apply a PaymentResponse (direct, or repeated inside TransactionStatus). Returns the outcome."""
        if msg.category != "Payment" or msg.is_request:
            raise ProtocolError("nexo: expected a PaymentResponse, got %r" % (msg,))
        if msg.service_id != self.service_id:
            raise ProtocolError("nexo: PaymentResponse for ServiceID %s, ours is %s"
                                % (msg.service_id, self.service_id))
        d = m.payment_details(msg.body)
        outcome = o.payment_outcome(d["result"], d["error_condition"])
        if outcome == APPROVED and d["poi_transaction_id"] is None:
            raise ProtocolError("nexo: approval without a POITransactionID")
        if self.state in (REVERSING, REVERSED):
            # A late repeat of the payment's own answer says nothing about the reversal.
            if outcome != APPROVED:
                raise StateConflict("payment %s is %s, terminal now says %s"
                                    % (self.service_id, self.state, outcome))
            return self.state
        if outcome in o.FINAL:
            if self.state in FINISHED and self.state != outcome:
                raise StateConflict("payment %s already %s, terminal now says %s"
                                    % (self.service_id, self.state, outcome))
            if self.state != outcome:
                self._move(outcome)
            self.error_condition = d["error_condition"]
            if outcome == APPROVED:
                self.authorized_amount = d["authorized_amount"]
                if self.authorized_amount is None:
                    self.authorized_amount = self.amount
            self.poi_transaction_id = d["poi_transaction_id"] or self.poi_transaction_id
            self.poi_timestamp = d["poi_timestamp"] or self.poi_timestamp
            self.reconciliation_id = d["reconciliation_id"] or self.reconciliation_id
        else:
            self.lost()
        return outcome

    def on_status_response(self, msg):
        """Apply a TransactionStatusResponse. Returns the outcome (`in_progress`/`unknown` = ask later)."""
        if msg.category != "TransactionStatus" or msg.is_request:
            raise ProtocolError("nexo: expected a TransactionStatusResponse, got %r" % (msg,))
        result = msg.result
        repeated = m.repeated_response(msg.body) if result != m.FAILURE else None
        if repeated is not None:
            if repeated.category == "Payment":
                if self.state == REVERSING:
                    return REVERSING  # the payment itself is known; the reversal is what we asked
                return self.on_payment_response(repeated)
            if repeated.category == "Reversal" and self.state == REVERSING:
                return self.on_reversal_response(repeated)
            raise ProtocolError("nexo: TransactionStatus repeated a %s response" % repeated.category)
        outcome = o.status_outcome(result, msg.error_condition)
        if self.state == REVERSING:
            if outcome == NOT_CHARGED:  # the reversal never reached the terminal: still approved
                self._move(APPROVED)
                return APPROVED
            return REVERSING
        if outcome == NOT_CHARGED:
            if self.state in FINISHED:
                return self.state
            self.error_condition = "NotFound"
            self._move(NOT_CHARGED)
            return NOT_CHARGED
        self.lost()
        return outcome

    def on_reversal_response(self, msg):
        if msg.category != "Reversal" or msg.is_request:
            raise ProtocolError("nexo: expected a ReversalResponse, got %r" % (msg,))
        if self.state != REVERSING:
            raise StateConflict("payment %s is %s, not reversing" % (self.service_id, self.state))
        result = msg.result
        if result == m.SUCCESS:
            self._move(REVERSED)
            return REVERSED
        if msg.error_condition in ("InProgress", "Busy"):
            return REVERSING
        self.error_condition = msg.error_condition
        self._move(APPROVED)
        return APPROVED

    def result(self):
        """What the RPC answers: no card data, only the outcome and its ids."""
        status = self.state
        return {
            "status": status,
            "amount": self.amount,
            "currency": self.currency,
            "authorized_amount": self.authorized_amount if status in (APPROVED, REVERSING, REVERSED) else 0,
            "terminal_transaction_id": self.poi_transaction_id,
            "reconciliation_id": self.reconciliation_id,
            "service_id": self.service_id,
            "error_condition": self.error_condition,
        }
