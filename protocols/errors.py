"""Errors that protocol code raises. Portable (no enum/dataclasses).

`reason` is one of the stable reasons of DESIGN §2 where one fits (e.g. "wrong_access_key",
"card_removed"), else "protocol_error"; drivers map it to a HalError unchanged.
"""


class ProtocolError(Exception):
    """Input that does not follow the protocol: a garbled frame, a bad TLV, a wrong MAC."""

    def __init__(self, message, reason="protocol_error"):
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self):
        return self.message


class Incomplete(ProtocolError):
    """More bytes are needed before the frame can be decoded."""

    def __init__(self, message="incomplete"):
        super().__init__(message, "incomplete")
