"""The chip citizen ID reader (Vietnam's CCCD, an ICAO 9303 eMRTD) on PC/SC.

`idcard.read` opens the chip with PACE (CAN or MRZ) or BAC, reads the data groups, checks them
(passive authentication against the configured CSCA trust store, active authentication when the
card has DG15) and returns the citizen's data to the caller only. Card presence is broadcast
as `idcard.card_present` / `idcard.card_removed`, with no citizen data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from drivers.base import DeviceState, Driver, HalError, OperationContext, rpc_method
from drivers.idcard import passive_auth
from drivers.idcard.crypto import ReaderCrypto
from drivers.idcard.pcsc import CardSilent, PcscReader, PresenceWatcher
from drivers.idcard.session import CardSession, dg_label, face_result, parse_wanted
from protocols.emrtd import access_key, datagroups
from protocols.emrtd import sod as sodmod
from protocols.errors import ProtocolError

log = logging.getLogger("halsvc.idcard")

# How long a card that went mute mid-read may take to be reported gone: pcscd polls a reader
# without presence events every 400 ms (PCSCLITE_STATUS_POLL_RATE).
REMOVAL_GRACE_S = 2.0

_DG13_KEYS = ("id_number", "full_name", "birth_date", "sex", "nationality", "ethnicity", "religion",
              "place_of_origin", "place_of_residence", "identifying_marks", "issue_date", "expiry_date",
              "expiry_text", "father_name", "mother_name", "spouse_name", "extra")

_S = {"type": "string"}
READ_PARAMS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "can": {"type": "string", "pattern": "^[0-9]{6}$",
                "description": "Card access number: the last 6 digits of the 12-digit ID number"},
        "id_number": {"type": "string", "pattern": "^[0-9]{12}$",
                      "description": "The 12-digit ID number; its last 6 digits are the CAN"},
        "mrz": {"type": "string", "description": "The MRZ text (TD1, 3 lines of 30, or TD3)"},
        "document_number": {"type": "string", "description": "MRZ document number (9 characters)"},
        "birth_date": {"type": "string", "description": "Birth date, YYMMDD or YYYY-MM-DD"},
        "expiry_date": {"type": "string", "description": "Expiry date, YYMMDD or YYYY-MM-DD"},
        "qr": {"type": "string", "description": "The text of the QR code on the card front"},
        "datagroups": {"type": "array", "items": {"type": "string"},
                       "description": "Data groups to read, e.g. [\"DG1\", \"DG2\", \"DG13\", \"SOD\"]"},
        "verify": {"type": "boolean", "description": "Run passive (and active) authentication; default true"},
        "wait_ms": {"type": "integer", "minimum": 0, "maximum": 600000,
                    "description": "How long to wait for a card to be tapped; default 0 (must be there)"},
    },
}
READ_RESULT = {
    "type": "object",
    "properties": {
        "access": {"type": "string", "enum": ["PACE-CAN", "PACE-MRZ", "BAC"]},
        "id_number": _S, "full_name": _S, "birth_date": {"type": ["string", "null"]}, "sex": _S,
        "nationality": _S, "ethnicity": _S, "religion": _S, "place_of_origin": _S,
        "place_of_residence": _S, "identifying_marks": _S, "issue_date": {"type": ["string", "null"]},
        "expiry_date": {"type": ["string", "null"]}, "father_name": {"type": ["string", "null"]},
        "mother_name": {"type": ["string", "null"]}, "spouse_name": {"type": ["string", "null"]},
        "mrz": {"type": "object"},
        "face": {"type": "object", "properties": {"mime": _S, "data": _S}},
        "authenticity": {"type": "object"},
        "datagroups": {"type": "object"},
        "stats": {"type": "object", "properties": {"apdus": {"type": "integer"}, "bytes": {"type": "integer"},
                                                   "ms": {"type": "number"}}},
    },
    "required": ["access", "authenticity", "stats"],
}


class IdCardDriver(Driver):
    kind = "idcard"
    broadcasts = ("idcard.card_present", "idcard.card_removed")
    options_schema = {
        "type": "object",
        "properties": {
            "reader": {"type": "string",
                       "description": "PC/SC reader name (or part of it); default: the first"},
            "trust_store": {"type": "string",
                            "description": "CSCA certificates: a PEM/DER file or a directory"},
            "extended_length": {"type": "string", "enum": ["auto", "never"],
                                "description": "Use extended-length reads when the card advertises them"},
            "block_size": {"type": "integer", "minimum": 16, "maximum": 231,
                           "description": "Fixed short-read block size (disables extended length and SFI)"},
        },
    }

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self.crypto = ReaderCrypto()
        self.pcsc: PcscReader | None = None
        self.watcher: PresenceWatcher | None = None
        self.card_present = False
        self.atr = b""
        self._presence = asyncio.Event()
        self._absence = asyncio.Event()
        self._absence.set()
        self._memory: dict[bytes, dict[str, Any]] = {}  # per ATR: what the card/reader accepted
        self.trust_store = passive_auth.load_trust_store(self.options.get("trust_store"))

    # --- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        self.pcsc = PcscReader(self.options.get("reader"))
        reader = await self.pcsc.open()
        loop = asyncio.get_running_loop()
        self.watcher = PresenceWatcher(reader, loop, self._on_presence, self._on_lost)
        self.watcher.start()
        self.set_state(DeviceState.ONLINE, reader=reader, card_present=self.card_present)

    async def disconnect(self) -> None:
        if self.watcher is not None:
            watcher, self.watcher = self.watcher, None
            await asyncio.to_thread(watcher.stop)
        if self.pcsc is not None:
            pcsc, self.pcsc = self.pcsc, None
            with contextlib.suppress(Exception):
                await pcsc.close()
        if self.card_present:
            self._on_presence(False, b"")

    def _on_presence(self, present: bool, atr: bytes) -> None:
        if present == self.card_present:
            return
        self.card_present = present
        self.atr = atr
        if present:
            self._presence.set()
            self._absence.clear()
            self.emit("idcard.card_present", {"reader": self._details.get("reader"), "atr": atr.hex()})
        else:
            self._presence.clear()
            self._absence.set()
            self.emit("idcard.card_removed", {"reader": self._details.get("reader")})
        self.set_state(None, card_present=present)

    def _on_lost(self, reason: str) -> None:
        self.link_lost(reason)

    async def selftest(self, level: str) -> dict[str, Any]:
        self.require_online()
        checks = [{"name": "pcsc_reader", "passed": self.pcsc is not None,
                   "reader": self._details.get("reader")},
                  {"name": "trust_store", "passed": bool(self.trust_store),
                   "certificates": len(self.trust_store)}]
        return {"passed": all(c["passed"] for c in checks), "level": level, "checks": checks}

    # --- RPC ---------------------------------------------------------------------------------
    @rpc_method("idcard.status", "Reader state and whether a card is on it (no citizen data).",
                exclusive=False, result={"type": "object"})
    async def status_rpc(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        return {**self.status(), "card_present": self.card_present,
                "trust_store_certificates": len(self.trust_store)}

    @rpc_method("idcard.read", "Read, check and return the chip of a CCCD (citizen data: caller only).",
                params=READ_PARAMS, result=READ_RESULT, citizen_data=True, long=True,
                errors=("no_card", "card_removed", "wrong_access_key", "not_supported", "hardware_error",
                        "device_offline", "timeout", "cancelled"),
                events=("idcard.progress",))
    async def read(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        try:
            key = access_key.from_params(params)
        except ProtocolError as exc:
            raise HalError("invalid_params", exc.message, code=-32602) from None
        wanted = parse_wanted(params.get("datagroups"))
        verify = bool(params.get("verify", True))
        async with self.operation():
            self.require_online()
            await self._wait_for_card(int(params.get("wait_ms", 0)), ctx)
            return await self.read_card(key, wanted, verify, lambda d: ctx.progress("idcard.progress", d))

    async def _wait_for_card(self, wait_ms: int, ctx: OperationContext) -> None:
        if self.card_present:
            return
        if wait_ms <= 0:
            raise HalError("no_card", "no card on the reader")
        ctx.progress("idcard.progress", {"step": "waiting_for_card"})
        try:
            await asyncio.wait_for(self._presence.wait(), wait_ms / 1000.0)
        except TimeoutError:
            raise HalError("no_card", f"no card tapped within {wait_ms} ms") from None

    async def read_card(self, key: tuple[str, str], wanted: list[int | str], verify: bool,
                        progress: Any) -> dict[str, Any]:
        """The whole read on the card now on the reader (used by the RPC and by bench/idcard.py)."""
        assert self.pcsc is not None
        started = time.perf_counter()
        atr = await self.pcsc.connect_card()
        memory = self._memory.setdefault(atr, {})
        if self.options.get("extended_length") == "never":
            memory["extended"] = False
        session = CardSession(self.pcsc.transmit, self.crypto, atr, memory, progress,
                              block=self.options.get("block_size"))
        try:
            progress({"step": "access"})
            access = await session.establish(key)
            progress({"step": "access_granted", "access": access})
            result = await self._read_groups(session, wanted, verify, progress)
        except HalError as exc:
            if exc.reason in ("hardware_error", "link_lost") and await self._card_left(exc):
                raise HalError("card_removed", "the card left the reader during the read") from None
            raise
        finally:
            session.close()
            with contextlib.suppress(HalError):
                await self.pcsc.disconnect_card(reset=True)
        result["access"] = access
        result["stats"] = {"apdus": session.apdus, "bytes": session.bytes,
                           "ms": round((time.perf_counter() - started) * 1000.0, 1),
                           "extended_length": bool(memory.get("extended")),
                           "pace_compute_ms": None if session.pace_ms is None else round(session.pace_ms, 1)}
        log.info("%s: card read (%s, %d APDUs, %d bytes)", self.device_id, access, session.apdus,
                 session.bytes, extra={"device": self.device_id})
        return result

    async def _card_left(self, exc: HalError) -> bool:
        """Whether a failed exchange was the card leaving. A card pulled mid-APDU first goes
        mute, and the presence watcher hears of it only at pcscd's next poll: wait for that."""
        if not self.card_present:
            return True
        if not isinstance(exc, CardSilent):
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._absence.wait(), REMOVAL_GRACE_S)
        return not self.card_present

    async def _read_groups(self, session: CardSession, wanted: list[int | str], verify: bool,
                           progress: Any) -> dict[str, Any]:
        files: dict[int | str, bytes] = {}
        status: dict[str, str] = {}
        order = list(wanted)
        if verify and "SOD" not in order:
            order.append("SOD")

        async def fetch(name: int | str) -> bytes | None:
            label = dg_label(name)

            def chunk(done: int, total: int | None) -> None:
                progress({"step": "read", "datagroup": label, "bytes": done, "total": total})

            try:
                content = await session.read_file(name, chunk)
            except HalError as exc:
                if exc.reason == "access_denied":
                    status[label] = "denied"
                    return None
                raise
            status[label] = "read" if content is not None else "absent"
            if content is not None:
                files[name] = content
            return content

        for name in order:
            await fetch(name)
        result: dict[str, Any] = {"datagroups": status}
        try:
            if 1 in files:
                mrz = datagroups.parse_dg1(files[1])
                result["mrz"] = mrz
            if 13 in files:
                fields = datagroups.parse_dg13(files[13])
                for k in _DG13_KEYS:
                    if k in fields:
                        result[k] = fields[k]
            if 2 in files:
                result["face"] = face_result(files[2])
        except ProtocolError as exc:
            # a garbled group is reported, and passive authentication below says why
            result["parse_error"] = exc.message
        authenticity: dict[str, Any] = {"status": "not_checked"}
        if verify:
            sod = _security_object(files.get("SOD"))
            listed = sod.dg_hashes if sod is not None else {}
            # Active authentication uses DG15 (and DG14 for its algorithm): read them before
            # passive authentication, so that what it uses is checked against EF.SOD as well.
            if 15 in listed:
                for n in (15, 14):
                    if n in listed and n not in files and dg_label(n) not in status:
                        await fetch(n)
            groups = {n: v for n, v in files.items() if isinstance(n, int)}
            progress({"step": "verify"})
            passive = await asyncio.to_thread(passive_auth.passive_authentication, files.get("SOD"), groups,
                                              self.trust_store)
            active = await self._active_auth(session, files, sod)
            chip = {"status": "not_checked", "reason": "chip authentication not implemented"}
            authenticity = {"status": passive["status"], "passive": passive, "active": active, "chip": chip}
            if passive["status"] == "invalid":
                authenticity["failed"] = passive.get("failed")
                if passive.get("failed_datagroups"):
                    authenticity["failed_datagroups"] = passive["failed_datagroups"]
            elif active["status"] == "invalid":
                # the files verify, but the chip cannot prove it holds DG15's key: a copy
                authenticity["status"] = "invalid"
                authenticity["failed"] = "active_authentication"
        result["authenticity"] = authenticity
        return result

    async def _active_auth(self, session: CardSession, files: dict[int | str, bytes],
                           sod: sodmod.SecurityObject | None) -> dict[str, Any]:
        if sod is None or 15 not in sod.dg_hashes:
            return {"status": "not_checked", "reason": "the card has no DG15"}
        dg15 = files.get(15)
        dg14 = files.get(14)
        if dg15 is None:
            return {"status": "not_checked", "reason": "DG15 unreadable"}
        algorithm = None
        try:
            spki = datagroups.parse_dg15(dg15)
            for info in datagroups.parse_dg14(dg14) if dg14 else []:
                if info["oid"] == datagroups.OID_ACTIVE_AUTH:
                    algorithm = info.get("algorithm")
        except ProtocolError as exc:
            return {"status": "invalid", "failed": "dg15_format", "detail": exc.message}
        challenge = os.urandom(8)
        signature = await session.internal_authenticate(challenge)
        if signature is None:
            return {"status": "invalid", "failed": "internal_authenticate_refused"}
        result = passive_auth.verify_active_authentication(spki, algorithm, challenge, signature)
        # DG15 must itself be covered by EF.SOD, else the key proves nothing
        digest = hashlib.new(str(sod.lds_hash), dg15).digest()
        if result["status"] == "valid" and sod.dg_hashes.get(15) != digest:
            return {"status": "invalid", "failed": "dg15_hash"}
        return result


def _security_object(sod: bytes | None) -> sodmod.SecurityObject | None:
    """EF.SOD parsed for its list of data groups; None if absent or garbled (passive
    authentication then says why)."""
    if sod is None:
        return None
    try:
        return sodmod.parse(sod)
    except ProtocolError:
        return None


DRIVER = IdCardDriver
