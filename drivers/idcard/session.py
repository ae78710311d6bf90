"""One read of a CCCD chip over an APDU transport: access control (PACE when EF.CardAccess
offers it, else BAC), data groups read in as few APDUs as the card allows, and the checks.

Reading strategy (the APDU count is the reader's speed on a contactless link):
- READ BINARY with a short file identifier (P1 = 80|SFI), so one APDU both selects and reads;
- extended Le (the whole file at once) when the ATR advertises extended length; on a plain
  6700 (the reader or card refused it) fall back to 223-byte short reads after re-running access
  control (the refused command may have broken secure messaging), on an SM-wrapped 6700 fall
  back without; 6Cxx retries with the length the card named;
- what worked is remembered per ATR (`memory`), so the next card of the kind starts right.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from drivers.base import HalError
from protocols import iso7816, tlv
from protocols.emrtd import bac, datagroups, pace
from protocols.emrtd.sm import SecureMessaging
from protocols.errors import ProtocolError

Transmit = Callable[[bytes], Awaitable[bytes]]
Progress = Callable[[Mapping[str, Any]], None]

AID = bytes.fromhex("A0000002471001")
SHORT_BLOCK = 223  # the largest plain chunk whose SM-wrapped answer fits a short response
EXTENDED_LE = 65536
SFI = {1: 0x01, 2: 0x02, 3: 0x03, 11: 0x0B, 13: 0x0D, 14: 0x0E, 15: 0x0F, "SOD": 0x1D, "COM": 0x1E}
SFI_REFUSED = {0x6A86, 0x6B00, 0x6D00, 0x6A81, 0x6E00}


def atr_advertises_extended(atr: bytes) -> bool:
    """ISO 7816-4 §12.1.1.9: card capabilities (compact TLV 7x in the historical bytes), third
    software-function byte bit 7 = extended Lc/Le fields."""
    if len(atr) < 4 or atr[0] != 0x3B:
        return False
    t0 = atr[1]
    k = t0 & 0x0F
    pos, y = 2, t0 >> 4
    while True:  # skip interface bytes TAi..TDi
        nxt = None
        for bit in (1, 2, 4):
            if y & bit:
                pos += 1
        if y & 8:
            nxt = atr[pos] if pos < len(atr) else 0
            pos += 1
        if nxt is None:
            break
        y = nxt >> 4
    hist = atr[pos:pos + k]
    if not hist or hist[0] != 0x80:
        return False
    i = 1
    while i < len(hist):
        tag, length = hist[i] >> 4, hist[i] & 0x0F
        value = hist[i + 1:i + 1 + length]
        if tag == 7 and len(value) >= 3:
            return bool(value[2] & 0x40)
        i += 1 + length
    return False


class _SessionBroken(Exception):
    """The card answered a protected command with a plain status: SM state is unknown."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


class CardSession:
    def __init__(self, transmit: Transmit, crypto: Any, atr: bytes, memory: dict[str, Any],
                 progress: Progress | None = None, *, block: int | None = None,
                 use_sfi: bool | None = None) -> None:
        self._transmit = transmit
        self.crypto = crypto
        self.progress = progress or (lambda data: None)
        self.memory = memory
        if block is not None:  # a fixed block size, as common readers do (for comparison)
            memory.setdefault("extended", False)
            memory.setdefault("sfi", False)
        memory.setdefault("extended", atr_advertises_extended(atr))
        memory.setdefault("sfi", True if use_sfi is None else use_sfi)
        self.block = block or SHORT_BLOCK
        self.sm: SecureMessaging | None = None
        self.apdus = 0
        self.bytes = 0
        self.access: str | None = None
        self._key: tuple[str, str] | None = None
        self.pace_info: dict[str, Any] | None = None
        self.pace_ms: float | None = None

    # --- transport ---------------------------------------------------------------------------
    async def raw(self, command: iso7816.CommandAPDU) -> tuple[bytes, int]:
        apdu = command.to_bytes()
        response = await self._transmit(apdu)
        self.apdus += 1
        self.bytes += len(apdu) + len(response)
        try:
            return iso7816.split_response(response)
        except ProtocolError as exc:
            raise HalError("hardware_error", f"card answered garbage: {exc.message}") from None

    async def send(self, command: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if self.sm is None:
            return await self.raw(command)
        protected = self.sm.protect(command)
        apdu = protected.to_bytes()
        response = await self._transmit(apdu)
        self.apdus += 1
        self.bytes += len(apdu) + len(response)
        if len(response) == 2 and response != b"\x90\x00":
            self.sm = None
            raise _SessionBroken((response[0] << 8) | response[1])
        try:
            return self.sm.unprotect(response)
        except ProtocolError as exc:
            raise HalError("hardware_error", f"secure messaging failed: {exc.message}") from None

    # --- access control ------------------------------------------------------------------------
    async def read_card_access(self) -> bytes | None:
        _, sw = await self.raw(iso7816.select_by_fid(datagroups.EF_CARD_ACCESS))
        if sw != iso7816.SW_OK:
            # an applet selected by default hides the MF's files: select the MF first. Some
            # cards answer 6D00 to SELECT MF (the CCCD quirk); the direct select above is
            # then the only way, and a failure means no EF.CardAccess.
            _, mf_sw = await self.raw(iso7816.select_mf())
            if mf_sw != iso7816.SW_OK:
                return None
            _, sw = await self.raw(iso7816.select_by_fid(datagroups.EF_CARD_ACCESS))
            if sw != iso7816.SW_OK:
                return None
        content = b""
        while True:
            data, sw = await self.raw(iso7816.read_binary(len(content), 256))
            if sw & 0xFF00 == 0x6C00:
                data, sw = await self.raw(iso7816.read_binary(len(content), (sw & 0xFF) or 256))
            if sw not in (iso7816.SW_OK, iso7816.SW_END_OF_FILE) or not data:
                break
            content += data
            total = tlv.total_length(content)
            if total is not None and len(content) >= total:
                return content[:total]
        return content or None

    async def establish(self, key: tuple[str, str]) -> str:
        self._key = key
        kind, secret = key
        if self.pace_info is None:
            card_access = await self.read_card_access()
            if card_access:
                try:
                    infos = datagroups.parse_card_access(card_access)
                except ProtocolError:
                    infos = []
                for info in infos:
                    if pace.supported(info["oid"], info.get("parameter_id")):
                        self.pace_info = info
                        break
        if self.pace_info is not None:
            return await self._pace(kind, secret)
        if kind == "can":
            raise HalError("not_supported", "the card offers no PACE, and BAC needs the MRZ "
                           "(document number, birth date, expiry date)")
        return await self._bac(secret)

    async def _pace(self, kind: str, secret: str) -> str:
        assert self.pace_info is not None
        started = time.perf_counter()
        computing = 0.0
        ref = pace.PASSWORD_CAN if kind == "can" else pace.PASSWORD_MRZ
        t0 = time.perf_counter()
        terminal = pace.PaceTerminal(self.crypto, secret, ref, self.pace_info["oid"],
                                     self.pace_info["parameter_id"])
        computing += time.perf_counter() - t0
        self.sm = None
        _, sw = await self.raw(terminal.mse_set_at())
        if sw != iso7816.SW_OK:
            raise HalError("hardware_error", f"card refused PACE set-up ({sw:04X})")
        answer = b""
        try:
            for step in (1, 2, 3, 4):
                t0 = time.perf_counter()
                if step == 1:
                    command = terminal.step1()
                elif step == 2:
                    command = terminal.step2(answer)
                elif step == 3:
                    command = terminal.step3(answer)
                else:
                    command = terminal.step4(answer)
                computing += time.perf_counter() - t0
                answer, sw = await self.raw(command)
                if sw & 0xFFF0 in (0x6300, 0x63C0) or sw == iso7816.SW_SECURITY_NOT_SATISFIED:
                    # the chip refused our token: the password is not this card's. Never retried,
                    # so a wrong key cannot count the card's tries down.
                    raise HalError("wrong_access_key", "the card refused the access key")
                if sw != iso7816.SW_OK:
                    raise HalError("hardware_error", f"PACE step {step} failed ({sw:04X})")
            t0 = time.perf_counter()
            self.sm = terminal.finish(answer)
            computing += time.perf_counter() - t0
        except ProtocolError as exc:
            if exc.reason == "wrong_access_key":
                raise HalError("wrong_access_key", "the card's PACE token does not verify") from None
            raise HalError("hardware_error", f"PACE failed: {exc.message}") from None
        self.pace_ms = computing * 1000.0
        self.pace_total_ms = (time.perf_counter() - started) * 1000.0
        _, sw = await self.send(iso7816.select_aid(AID))
        if sw != iso7816.SW_OK:
            raise HalError("hardware_error", f"eMRTD application not found ({sw:04X})")
        self.access = "PACE-CAN" if kind == "can" else "PACE-MRZ"
        return self.access

    async def _bac(self, mrz_information: str) -> str:
        self.sm = None
        _, sw = await self.raw(iso7816.select_aid(AID))
        if sw != iso7816.SW_OK:
            raise HalError("hardware_error", f"eMRTD application not found ({sw:04X})")
        terminal = bac.BacTerminal(self.crypto, mrz_information)
        rnd_ic, sw = await self.raw(terminal.challenge_command())
        if sw != iso7816.SW_OK:
            raise HalError("hardware_error", f"GET CHALLENGE failed ({sw:04X})")
        try:
            answer, sw = await self.raw(terminal.authenticate_command(rnd_ic))
            if sw != iso7816.SW_OK:
                raise HalError("wrong_access_key", "the card refused the access key")
            self.sm = terminal.finish(answer)
        except ProtocolError as exc:
            raise HalError("wrong_access_key" if exc.reason == "wrong_access_key" else "hardware_error",
                           exc.message) from None
        self.access = "BAC"
        return self.access

    async def _reestablish(self) -> None:
        assert self._key is not None
        await self.establish(self._key)

    # --- reading ---------------------------------------------------------------------------------
    async def _read_command(self, command: iso7816.CommandAPDU) -> tuple[bytes, int]:
        """Send a READ, adapting the length to what the card and reader take."""
        for _ in range(4):
            try:
                data, sw = await self.send(command)
            except _SessionBroken as broken:
                if command.extended and broken.sw in (iso7816.SW_WRONG_LENGTH, 0x6F00, 0x6A80):
                    self.memory["extended"] = False
                    await self._reestablish()
                    command = self._shorten(command, self.block)
                    continue
                raise HalError("hardware_error", f"card broke secure messaging ({broken.sw:04X})") from None
            if sw == iso7816.SW_WRONG_LENGTH and command.extended:
                self.memory["extended"] = False
                command = self._shorten(command, self.block)
                continue
            if sw & 0xFF00 == 0x6C00:
                command = self._shorten(command, (sw & 0xFF) or 256)
                continue
            return data, sw
        raise HalError("hardware_error", "the card keeps refusing the read length")

    @staticmethod
    def _shorten(command: iso7816.CommandAPDU, le: int) -> iso7816.CommandAPDU:
        return iso7816.CommandAPDU(command.cla, command.ins, command.p1, command.p2, le=min(le, 256),
                                   extended=False)

    def _le(self, wanted: int) -> tuple[int, bool]:
        if self.memory.get("extended"):
            return min(wanted, EXTENDED_LE), True
        return min(wanted, self.block), False

    async def read_file(self, name: int | str, on_chunk: Callable[[int, int | None], None]) -> bytes | None:
        """A whole EF (data group number, "SOD" or "COM"); None if the card has no such file.
        Raises HalError("access_denied") for an EAC-protected group."""
        fid = datagroups.FID[name] if isinstance(name, int) else (
            datagroups.EF_SOD if name == "SOD" else datagroups.EF_COM)
        le, ext = self._le(EXTENDED_LE)
        data, sw = b"", 0
        if self.memory.get("sfi") and name in SFI:
            data, sw = await self._read_command(
                iso7816.CommandAPDU(0x00, iso7816.INS_READ_BINARY, 0x80 | SFI[name], 0, le=le, extended=ext))
            if sw in SFI_REFUSED:
                self.memory["sfi"] = False
        if not self.memory.get("sfi") or name not in SFI:
            _, sw = await self.send(iso7816.select_by_fid(fid))
            if sw == iso7816.SW_OK:
                le, ext = self._le(EXTENDED_LE)
                data, sw = await self._read_command(iso7816.read_binary(0, le, extended=ext))
        if sw == iso7816.SW_FILE_NOT_FOUND:
            return None
        if sw == iso7816.SW_SECURITY_NOT_SATISFIED:
            raise HalError("access_denied", "protected by extended access control")
        if sw not in (iso7816.SW_OK, iso7816.SW_END_OF_FILE):
            raise HalError("hardware_error", f"READ BINARY failed ({sw:04X})")
        content = bytes(data)
        try:
            total = tlv.total_length(content)
        except ProtocolError:
            raise HalError("hardware_error", "file does not start with a TLV") from None
        on_chunk(len(content), total)
        while total is None or len(content) < total:
            remaining = (total - len(content)) if total is not None else SHORT_BLOCK
            if len(content) > 0x7FFF:
                raise HalError("not_supported", "file longer than 32 KiB (needs odd-INS READ BINARY)")
            le, ext = self._le(remaining)
            data, sw = await self._read_command(iso7816.read_binary(len(content), le, extended=ext))
            if sw not in (iso7816.SW_OK, iso7816.SW_END_OF_FILE) or not data:
                raise HalError("hardware_error", f"READ BINARY at {len(content)} failed ({sw:04X})")
            content += data
            if total is None:
                try:
                    total = tlv.total_length(content)
                except ProtocolError:
                    raise HalError("hardware_error", "file does not start with a TLV") from None
            on_chunk(len(content), total)
        return content[:total]

    async def internal_authenticate(self, challenge: bytes) -> bytes | None:
        data, sw = await self.send(iso7816.CommandAPDU(0x00, iso7816.INS_INTERNAL_AUTHENTICATE, 0, 0,
                                                       challenge, le=256))
        return data if sw == iso7816.SW_OK else None

    def close(self) -> None:
        if self.sm is not None:
            self.sm.close()
            self.sm = None


DG_NAMES = {1: "DG1", 2: "DG2", 13: "DG13", 14: "DG14", 15: "DG15", "SOD": "SOD", "COM": "COM"}


def dg_label(name: int | str) -> str:
    return f"DG{name}" if isinstance(name, int) else str(name)


def parse_wanted(names: list[str] | None) -> list[int | str]:
    """"DG1", "dg13", "SOD", 2 -> [1, 13, "SOD", 2]."""
    out: list[int | str] = []
    for n in names or ["DG1", "DG2", "DG13", "SOD"]:
        s = str(n).upper()
        if s in ("SOD", "COM"):
            item: int | str = s
        else:
            s = s[2:] if s.startswith("DG") else s
            if not s.isdigit() or not 1 <= int(s) <= 16:
                raise HalError("invalid_params", f"unknown data group {n!r}", code=-32602)
            item = int(s)
        if item not in out:
            out.append(item)
    return out


def face_result(dg2: bytes) -> dict[str, Any]:
    face = datagroups.parse_dg2(dg2)
    return {"mime": face["mime"], "width": face["width"], "height": face["height"],
            "data": base64.b64encode(face["image"]).decode()}
