"""nexo Retailer (SaleToPOI) in JSON: the sale system's side and the terminal's side, sans-IO.

- `messages`: build and check `SaleToPOIRequest` / `SaleToPOIResponse` envelopes.
- `outcomes`: what a `Response` (Result + ErrorCondition) means for the money.
- `transaction`: one payment's life (request, answer or silence, TransactionStatus, abort,
  reversal) as a state machine whose states are what the journal records.
- `service_id`: ServiceIDs that are never reused, even after the journal is lost.
- `framing`: the 4-byte length-prefixed TCP framing some terminals speak.

Portable (DESIGN §6): no sockets, clocks or files; the caller passes in time stamps.
"""
