"""ServiceIDs: 1-10 characters, unique per terminal for 48 hours, and here never reused at all.

An id is the base-36 spelling of a counter that only grows and never falls below the wall clock
in centiseconds. The driver persists the last counter before the id is used, so a restart never
repeats one; and if the journal is lost, the clock floor still puts new ids above every id
issued before (we issue a handful per payment, far below 100 a second).
"""
from protocols.errors import ProtocolError

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_COUNTER = 36 ** 10 - 1


def to_text(counter):
    if counter < 0 or counter > MAX_COUNTER:
        raise ProtocolError("ServiceID counter %d out of range" % counter)
    if counter == 0:
        return "0"
    out = ""
    while counter:
        out = _DIGITS[counter % 36] + out
        counter //= 36
    return out


def from_text(text):
    if not isinstance(text, str) or not 1 <= len(text) <= 10:
        raise ProtocolError("ServiceID must be 1-10 characters")
    value = 0
    for ch in text.upper():
        i = _DIGITS.find(ch)
        if i < 0:
            raise ProtocolError("ServiceID %r is not one of ours (base 36)" % text)
        value = value * 36 + i
    return value


def next_counter(last, now_centiseconds):
    """The counter after `last` (None for a fresh journal), never below the clock."""
    floor = int(now_centiseconds)
    candidate = 0 if last is None else last + 1
    if candidate < floor:
        candidate = floor
    if candidate > MAX_COUNTER:
        raise ProtocolError("ServiceID space exhausted")
    return candidate
