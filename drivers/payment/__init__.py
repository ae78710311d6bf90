"""nexo payment terminals: `driver = "payment"` in a `[devices.<id>]` table."""

from drivers.payment.driver import PaymentDriver

DRIVER = PaymentDriver

__all__ = ["DRIVER", "PaymentDriver"]
