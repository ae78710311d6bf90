"""What a nexo `Response` means for the money.

The sale system must never guess: an outcome is either final (the terminal said whether it
charged) or it is not, and then only TransactionStatus can settle it.
"""
from protocols.nexo import messages as m

APPROVED = "approved"  # charged (Success, or Partial for a lower authorised amount)
DECLINED = "declined"  # the card, its issuer or its holder's PIN said no: not charged
ABORTED = "aborted"  # the cardholder or the sale system stopped it before approval: not charged
NOT_CHARGED = "not_charged"  # the payment never ran (busy, unavailable, unknown to the terminal)
IN_PROGRESS = "in_progress"  # still running on the terminal: ask again later
UNKNOWN = "unknown"  # no usable answer: ask with TransactionStatus

FINAL = (APPROVED, DECLINED, ABORTED, NOT_CHARGED)

# ErrorCondition of a failed PaymentResponse → outcome.
_PAYMENT_FAILURES = {
    "Refusal": DECLINED,
    "InvalidCard": DECLINED,
    "WrongPIN": DECLINED,
    "PaymentRestriction": DECLINED,
    "NotAllowed": DECLINED,
    "UnreachableHost": DECLINED,  # the issuer could not be reached: no authorisation, no charge
    "Cancel": ABORTED,
    "Aborted": ABORTED,
    "Busy": NOT_CHARGED,
    "DeviceOut": NOT_CHARGED,
    "UnavailableDevice": NOT_CHARGED,
    "UnavailableService": NOT_CHARGED,
    "LoggedOut": NOT_CHARGED,
    "MessageFormat": NOT_CHARGED,
    "NotFound": NOT_CHARGED,
    "InProgress": IN_PROGRESS,
}


def payment_outcome(result, error_condition):
    """Outcome of a PaymentResponse's Result and ErrorCondition."""
    if result in (m.SUCCESS, m.PARTIAL):
        return APPROVED
    if result != m.FAILURE:
        return UNKNOWN
    # A failure without a known condition still carries no approval, but we cannot tell whether
    # the terminal ever ran the payment: ask rather than assume.
    return _PAYMENT_FAILURES.get(error_condition, UNKNOWN)


def status_outcome(result, error_condition):
    """Outcome of a TransactionStatusResponse *without* a repeated response.

    NotFound means the terminal never started the payment; InProgress, Busy and anything else
    mean it cannot say yet.
    """
    if result == m.FAILURE and error_condition == "NotFound":
        return NOT_CHARGED
    return IN_PROGRESS if error_condition == "InProgress" else UNKNOWN


def retryable(error_condition):
    """Conditions after which the same request may be sent again later (with a new ServiceID)."""
    return error_condition in ("Busy", "InProgress", "UnavailableDevice", "UnavailableService", "DeviceOut",
                               "LoggedOut")
