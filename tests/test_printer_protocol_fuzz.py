"""Garbage into the ESC/POS parsers gives ProtocolError, never another exception."""

from hypothesis import given, settings
from hypothesis import strategies as hs

from protocols.errors import ProtocolError
from protocols.escpos.commands import CommandParser
from protocols.escpos.status import ReplySplitter, decode_automatic_status, decode_realtime_status
from tests.fuzzing import examples


def _drain(step) -> None:
    for _ in range(10_000):
        try:
            if step() is None:
                return
        except ProtocolError:
            continue


@settings(max_examples=examples(300))
@given(hs.lists(hs.binary(max_size=64), max_size=8), hs.lists(hs.integers(1, 4), max_size=4))
def test_reply_splitter_survives_garbage(chunks: list[bytes], asks: list[int]) -> None:
    sp = ReplySplitter()
    for n in asks:
        sp.expect_realtime(n)
    sp.expect_byte("paper")
    for chunk in chunks:
        sp.receive_data(chunk)
        _drain(sp.next_event)


@settings(max_examples=examples(300))
@given(hs.lists(hs.binary(max_size=64), max_size=8))
def test_command_parser_survives_garbage(chunks: list[bytes]) -> None:
    p = CommandParser()
    for chunk in chunks:
        p.receive_data(chunk)
        _drain(p.next_command)


@settings(max_examples=examples(200))
@given(hs.integers(-5, 300), hs.integers(-5, 300), hs.binary(max_size=6))
def test_status_decoders_reject_cleanly(n: int, byte: int, block: bytes) -> None:
    for call in (lambda: decode_realtime_status(n, byte), lambda: decode_automatic_status(block)):
        try:
            call()
        except ProtocolError:
            pass
