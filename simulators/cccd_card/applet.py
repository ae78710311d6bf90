"""The chip's command processor: the file system of a CCCD, PACE and BAC, secure messaging,
READ BINARY with short and extended Le and short file identifiers, INTERNAL AUTHENTICATE.

Synchronous, bytes in, bytes out; the transport (vpcd) and fault timing live in `card.py`.
"""

from __future__ import annotations

from protocols import iso7816
from protocols.emrtd import bac, datagroups, pace
from protocols.emrtd.sm import SecureMessaging
from protocols.errors import ProtocolError
from simulators.cccd_card.crypto import CardCrypto
from simulators.cccd_card.document import CardImage

AID = bytes.fromhex("A0000002471001")
MF = 0x3F00
SFI_FIDS = {n: fid for n, fid in datagroups.FID.items()}
SFI_FIDS[0x1D] = datagroups.EF_SOD
SFI_FIDS[0x1E] = datagroups.EF_COM
SFI_FIDS[0x1C] = datagroups.EF_CARD_ACCESS


class Applet:
    def __init__(self, image: CardImage, *, select_mf_quirk: bool = False, refuse_extended: bool = False,
                 bac_enabled: bool = True) -> None:
        self.crypto = CardCrypto()
        self.image = image
        self.select_mf_quirk = select_mf_quirk
        self.refuse_extended = refuse_extended
        self.bac_enabled = bac_enabled
        self.extended_refused = 0  # extended-length commands answered 6700 (refuse_extended)
        self.power_on()

    def power_on(self) -> None:
        self.sm: SecureMessaging | None = None
        self.applet_selected = False
        self.current: int | None = None
        self.bac: bac.BacChip | None = None
        self.pace: pace.PaceChip | None = None
        self.access: str | None = None

    # --- dispatch ------------------------------------------------------------------------
    def process(self, raw: bytes) -> bytes:
        try:
            cmd = iso7816.parse_command(raw)
        except ProtocolError:
            return iso7816.response(b"", iso7816.SW_WRONG_LENGTH)
        if cmd.extended and self.refuse_extended:
            self.extended_refused += 1
            return iso7816.response(b"", iso7816.SW_WRONG_LENGTH)
        if cmd.cla & 0x0C == 0x0C:
            if self.sm is None:
                return iso7816.response(b"", iso7816.SW_SM_DATA_MISSING)
            try:
                plain = self.sm.unprotect_command(cmd)
            except ProtocolError:
                self.sm = None  # 9303-11: a bad MAC ends the session
                self.access = None
                return iso7816.response(b"", iso7816.SW_SM_DATA_WRONG)
            data, sw = self.dispatch(plain, protected=True)
            if self.sm is None:  # the command ended the session
                return iso7816.response(b"", sw)
            return self.sm.protect_response(data, sw)
        if self.sm is not None and cmd.ins not in (iso7816.INS_SELECT,):
            # a plain command after access control aborts secure messaging
            self.sm = None
            self.access = None
        data, sw = self.dispatch(cmd, protected=False)
        return iso7816.response(data, sw)

    def dispatch(self, cmd: iso7816.CommandAPDU, protected: bool) -> tuple[bytes, int]:
        ins = cmd.ins
        if ins == iso7816.INS_SELECT:
            return self.select(cmd, protected)
        if ins == iso7816.INS_READ_BINARY:
            return self.read_binary(cmd, protected)
        if ins == iso7816.INS_GET_CHALLENGE and not protected:
            return self.get_challenge(cmd)
        if ins == iso7816.INS_EXTERNAL_AUTHENTICATE and not protected:
            return self.external_authenticate(cmd)
        if ins == iso7816.INS_MSE and not protected:
            return self.mse(cmd)
        if ins == iso7816.INS_GENERAL_AUTHENTICATE and not protected:
            return self.general_authenticate(cmd)
        if ins == iso7816.INS_INTERNAL_AUTHENTICATE and protected:
            return self.internal_authenticate(cmd)
        return b"", iso7816.SW_INS_NOT_SUPPORTED

    # --- files -----------------------------------------------------------------------------
    def _file(self, fid: int) -> bytes | None:
        if fid == datagroups.EF_CARD_ACCESS:
            return self.image.card_access
        if not self.applet_selected:
            return None
        return self.image.files.get(fid)

    def select(self, cmd: iso7816.CommandAPDU, protected: bool) -> tuple[bytes, int]:
        if cmd.p1 == 0x04:
            if cmd.data != AID:
                return b"", iso7816.SW_FILE_NOT_FOUND
            self.applet_selected = True
            self.current = None
            return b"", iso7816.SW_OK
        if cmd.p1 == 0x00 and cmd.data in (b"", b"\x3f\x00"):
            if self.select_mf_quirk:
                return b"", iso7816.SW_INS_NOT_SUPPORTED
            self.applet_selected = False
            self.current = MF
            return b"", iso7816.SW_OK
        if cmd.p1 in (0x00, 0x02) and len(cmd.data) == 2:
            fid = (cmd.data[0] << 8) | cmd.data[1]
            if fid in self.image.protected_fids and self.applet_selected:
                self.current = fid
                return b"", iso7816.SW_OK
            if self._file(fid) is None:
                return b"", iso7816.SW_FILE_NOT_FOUND
            if fid != datagroups.EF_CARD_ACCESS and not protected:
                return b"", iso7816.SW_SECURITY_NOT_SATISFIED
            self.current = fid
            return b"", iso7816.SW_OK
        return b"", iso7816.SW_WRONG_P1P2

    def read_binary(self, cmd: iso7816.CommandAPDU, protected: bool) -> tuple[bytes, int]:
        if cmd.p1 & 0x80:  # short EF identifier in P1, offset in P2
            fid = SFI_FIDS.get(cmd.p1 & 0x1F)
            if fid is None:
                return b"", iso7816.SW_FILE_NOT_FOUND
            if fid in self.image.protected_fids:
                return b"", iso7816.SW_SECURITY_NOT_SATISFIED
            if self._file(fid) is None:
                return b"", iso7816.SW_FILE_NOT_FOUND
            self.current = fid
            offset = cmd.p2
        else:
            offset = (cmd.p1 << 8) | cmd.p2
        fid = self.current
        if fid is None:
            return b"", iso7816.SW_CONDITIONS
        if fid in self.image.protected_fids:
            return b"", iso7816.SW_SECURITY_NOT_SATISFIED
        content = self._file(fid)
        if content is None:
            return b"", iso7816.SW_FILE_NOT_FOUND
        if fid != datagroups.EF_CARD_ACCESS and not protected:
            return b"", iso7816.SW_SECURITY_NOT_SATISFIED
        if offset > len(content):
            return b"", iso7816.SW_WRONG_P1P2
        le = cmd.le or (65536 if cmd.extended else 256)
        if protected and not cmd.extended and le > 223:
            # a short response has room for 256 bytes, SM objects included: like real chips,
            # refuse a plain length that cannot fit once wrapped, and say what fits (6Cxx)
            return b"", 0x6CDF
        chunk = content[offset:offset + le]
        if len(chunk) < le and cmd.le not in (256, 65536):
            return chunk, iso7816.SW_END_OF_FILE
        return chunk, iso7816.SW_OK

    # --- access control --------------------------------------------------------------------
    def get_challenge(self, cmd: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if not self.bac_enabled:
            return b"", iso7816.SW_INS_NOT_SUPPORTED
        self.bac = bac.BacChip(self.crypto, self.image.mrz_information)
        return self.bac.challenge(), iso7816.SW_OK

    def external_authenticate(self, cmd: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if self.bac is None:
            return b"", iso7816.SW_CONDITIONS
        try:
            answer, sm = self.bac.external_authenticate(cmd.data)
        except ProtocolError:
            self.bac = None
            return b"", iso7816.SW_AUTH_FAILED
        self.bac = None
        self.sm = sm
        self.access = "BAC"
        return answer, iso7816.SW_OK

    def mse(self, cmd: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if (cmd.p1, cmd.p2) != (0xC1, 0xA4) or not self.image.pace:
            return b"", iso7816.SW_WRONG_P1P2
        chip = pace.PaceChip(self.crypto, {pace.PASSWORD_MRZ: self.image.mrz_information,
                                           pace.PASSWORD_CAN: self.image.can},
                             self.image.pace_oid, self.image.parameter_id)
        try:
            chip.set_at(cmd.data)
        except ProtocolError:
            return b"", 0x6A80
        self.pace = chip
        self.sm = None
        return b"", iso7816.SW_OK

    def general_authenticate(self, cmd: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if self.pace is None:
            return b"", iso7816.SW_CONDITIONS
        try:
            answer, sm = self.pace.general_authenticate(cmd.data)
        except ProtocolError as exc:
            self.pace = None
            return b"", iso7816.SW_AUTH_FAILED if exc.reason == "wrong_access_key" else 0x6A80
        if sm is not None:
            self.pace = None
            self.sm = sm
            self.access = "PACE"
        return answer, iso7816.SW_OK

    def internal_authenticate(self, cmd: iso7816.CommandAPDU) -> tuple[bytes, int]:
        if self.image.aa_key is None:
            return b"", iso7816.SW_INS_NOT_SUPPORTED
        if len(cmd.data) != 8:
            return b"", iso7816.SW_WRONG_LENGTH
        return self.image.active_auth_signature(cmd.data), iso7816.SW_OK
