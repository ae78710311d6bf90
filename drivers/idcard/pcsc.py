"""PC/SC through pyscard's low-level `smartcard.scard` API: one worker thread owns the card
handle (PC/SC handles are not for concurrent use), and a presence watcher blocks in
SCardGetStatusChange on its own context (pyscard releases the GIL there) until a change or
SCardCancel — no polling."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

from smartcard import scard

from drivers.base import HalError

_T = TypeVar("_T")

# PC/SC codes meaning the card is gone (pcsclite's pcsclite.h)
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD,
    scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_W_UNRESPONSIVE_CARD,
    scard.SCARD_E_INVALID_HANDLE,
}
_SERVICE_GONE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_NO_READERS_AVAILABLE,
                 scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_UNKNOWN_READER}


def _rc(rc: int) -> int:
    return rc & 0xFFFFFFFF


def _u(code: int) -> int:
    return code & 0xFFFFFFFF


_CARD_GONE = {_u(c) for c in _CARD_GONE}
_SERVICE_GONE = {_u(c) for c in _SERVICE_GONE}


class CardSilent(HalError):
    """The reader said the exchange worked but brought back no answer (not even a status word):
    the card went mute, as it does in the moment it leaves the field, before the reader has
    noticed it is gone."""

    def __init__(self) -> None:
        super().__init__("hardware_error", "the card did not answer")


def _error(rc: int, what: str) -> HalError:
    rc = _rc(rc)
    if rc in _CARD_GONE:
        return HalError("card_removed", f"the card left the reader ({what})")
    if rc in _SERVICE_GONE:
        return HalError("link_lost", f"PC/SC service or reader gone during {what} (0x{rc:08X})")
    return HalError("hardware_error", f"PC/SC {what} failed: 0x{rc:08X}")


class PcscReader:
    """One reader; `connect_card` / `transmit` / `disconnect_card` run on a private thread."""

    def __init__(self, reader_hint: str | None) -> None:
        self.reader_hint = reader_hint
        self.reader: str | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pcsc")
        self._ctx: int | None = None
        self._card: int | None = None
        self._protocol = 0

    async def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> str:
        rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != scard.SCARD_S_SUCCESS:
            raise HalError("no_device", f"pcscd unreachable (0x{_rc(rc):08X})")
        self._ctx = ctx
        rc, readers = scard.SCardListReaders(ctx, [])
        if rc != scard.SCARD_S_SUCCESS or not readers:
            raise HalError("no_device", "no smart card reader")
        chosen = None
        for name in readers:
            if self.reader_hint is None or name == self.reader_hint:
                chosen = name
                break
        if chosen is None:
            chosen = next((n for n in readers if self.reader_hint and self.reader_hint in n), None)
        if chosen is None:
            raise HalError("no_device", f"reader {self.reader_hint!r} not found")
        self.reader = chosen
        return chosen

    async def open(self) -> str:
        return str(await self._call(self._open))

    def _connect(self) -> bytes:
        assert self._ctx is not None and self.reader is not None
        rc, card, protocol = scard.SCardConnect(self._ctx, self.reader, scard.SCARD_SHARE_EXCLUSIVE,
                                                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if rc != scard.SCARD_S_SUCCESS:
            if _rc(rc) in (_u(scard.SCARD_E_NO_SMARTCARD), _u(scard.SCARD_W_REMOVED_CARD)):
                raise HalError("no_card", "no card on the reader")
            if _rc(rc) == _u(scard.SCARD_E_SHARING_VIOLATION):
                raise HalError("device_busy", "another program holds the card")
            raise _error(rc, "connect")
        self._card, self._protocol = card, protocol
        rc, _reader, _state, _proto, atr = scard.SCardStatus(card)
        if rc != scard.SCARD_S_SUCCESS:
            raise _error(rc, "status")
        return bytes(atr)

    async def connect_card(self) -> bytes:
        """Connect exclusively to the card; returns its ATR."""
        return bytes(await self._call(self._connect))

    def _transmit(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise HalError("card_removed", "no card connected")
        rc, response = scard.SCardTransmit(self._card, self._protocol, list(apdu))
        if rc != scard.SCARD_S_SUCCESS:
            raise _error(rc, "transmit")
        if len(response) < 2:
            raise CardSilent()
        return bytes(response)

    async def transmit(self, apdu: bytes) -> bytes:
        return bytes(await self._call(self._transmit, apdu))

    def _disconnect(self, reset: bool) -> None:
        if self._card is not None:
            # reset: the chip forgets its session keys at once
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD)
            self._card = None

    async def disconnect_card(self, reset: bool = True) -> None:
        await self._call(self._disconnect, reset)

    def _close(self) -> None:
        self._disconnect(True)
        if self._ctx is not None:
            scard.SCardReleaseContext(self._ctx)
            self._ctx = None

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._pool.shutdown(wait=False)


class PresenceWatcher:
    """Calls `on_change(present, atr)` on the loop at each card insertion/removal and
    `on_lost(reason)` if pcscd or the reader goes away. Blocks in SCardGetStatusChange."""

    def __init__(self, reader: str, loop: asyncio.AbstractEventLoop,
                 on_change: Callable[[bool, bytes], None], on_lost: Callable[[str], None]) -> None:
        self.reader = reader
        self.loop = loop
        self.on_change = on_change
        self.on_lost = on_lost
        self._stop = threading.Event()
        rc, self._ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rc != scard.SCARD_S_SUCCESS:
            raise HalError("no_device", f"pcscd unreachable (0x{_rc(rc):08X})")
        self._thread = threading.Thread(target=self._run, name="pcsc-presence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _run(self) -> None:
        state = scard.SCARD_STATE_UNAWARE
        present: bool | None = None
        while not self._stop.is_set():
            rc, states = scard.SCardGetStatusChange(self._ctx, scard.INFINITE, [(self.reader, state)])
            if self._stop.is_set() or _rc(rc) == _u(scard.SCARD_E_CANCELLED):
                break
            if rc == _u(scard.SCARD_E_TIMEOUT):
                continue
            if rc != scard.SCARD_S_SUCCESS:
                self._post(self.on_lost, f"presence watch failed (0x{_rc(rc):08X})")
                break
            _name, event, atr = states[0]
            if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                self._post(self.on_lost, "reader gone")
                break
            now_present = bool(event & scard.SCARD_STATE_PRESENT)
            if now_present != present:
                present = now_present
                self._post(self.on_change, now_present, bytes(atr) if now_present else b"")
            state = event & ~scard.SCARD_STATE_CHANGED

    def stop(self) -> None:
        self._stop.set()
        # A cancel that lands before the thread has entered SCardGetStatusChange is lost, and the
        # thread would then block for ever (and SCardReleaseContext with it): cancel until it is out.
        for _ in range(50):
            if not self._thread.is_alive():
                break
            scard.SCardCancel(self._ctx)
            self._thread.join(0.1)
        if self._thread.is_alive():
            return  # leave the context rather than hang on it; the thread is a daemon
        scard.SCardReleaseContext(self._ctx)
