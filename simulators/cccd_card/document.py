"""The contents of a simulated CCCD chip: the citizen's data groups, EF.CardAccess, EF.COM and
an EF.SOD genuinely signed (CMS, ECDSA) by a test Document Signer under a test CSCA.

The PKI is generated at start into the work dir; the CSCA certificate there is the trust store
the simulated station configures. An "unknown CSCA" fault signs with a second chain whose root
is never written to the trust store.
"""

from __future__ import annotations

import datetime
import io
import pathlib
import random
import unicodedata
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocols import mrz, tlv
from protocols.emrtd import asn1, datagroups, sod

DEFAULT_CITIZEN: dict[str, Any] = {
    "id_number": "079203001234",
    "full_name": "Nguyễn Thị Thu Hà",
    "birth_date": "1993-01-05",
    "sex": "Nữ",
    "nationality": "Việt Nam",
    "ethnicity": "Kinh",
    "religion": "Không",
    "place_of_origin": "Phường Bến Nghé, Quận 1, Thành phố Hồ Chí Minh",
    "place_of_residence": "123 Đường Lê Lợi, Phường Bến Thành, Quận 1, Thành phố Hồ Chí Minh",
    "identifying_marks": "Nốt ruồi cách 2cm trên đuôi mắt phải",
    "issue_date": "2021-04-10",
    "expiry_date": "2033-01-05",
    "father_name": "Nguyễn Văn Hùng",
    "mother_name": "Trần Thị Lan",
    "spouse_name": "Lê Minh Tuấn",
}

OID_PACE_ECDH_GM_AES128 = "0.4.0.127.0.7.2.2.4.2.2"
OID_PACE_ECDH_GM_3DES = "0.4.0.127.0.7.2.2.4.2.1"
OID_ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_UTF8_IDENTIFIER = "1.0.10646.1.0.8"


def ascii_name(text: str) -> str:
    """MRZ form of a Vietnamese name: diacritics dropped, đ -> D, upper case."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def vn_date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def yymmdd(iso: str) -> str:
    return iso.replace("-", "")[2:]


def citizen_mrz(c: dict[str, Any]) -> str:
    names = ascii_name(c["full_name"]).split()
    sex = "F" if c["sex"] in ("Nữ", "F") else "M"
    expiry = c["expiry_date"] if c.get("expiry_date") and c["expiry_date"][0].isdigit() else "2099-12-31"
    return mrz.td1_vnm(c["id_number"], yymmdd(c["birth_date"]), sex, yymmdd(expiry),
                       names[0], " ".join(names[1:]))


def face_jpeg(seed: int = 7, target: int = 15500) -> bytes:
    """A real JPEG of about `target` bytes (a deterministic synthetic portrait)."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    img = Image.new("RGB", (240, 320), (210, 220, 235))
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 60, 180, 220), fill=(224, 189, 160))
    draw.rectangle((40, 230, 200, 320), fill=(40, 60, 120))
    for _ in range(1400):
        x, y = rnd.randrange(240), rnd.randrange(320)
        draw.point((x, y), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    best = b""
    for quality in range(95, 10, -5):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        best = buf.getvalue()
        if len(best) <= target:
            break
    return best


def _utf8(s: str) -> bytes:
    return tlv.encode(asn1.UTF8_STRING, s.encode())


def build_dg13(c: dict[str, Any]) -> bytes:
    order = [(1, "id_number"), (2, "full_name"), (3, "birth_date"), (4, "sex"), (5, "nationality"),
             (6, "ethnicity"), (7, "religion"), (8, "place_of_origin"), (9, "place_of_residence"),
             (10, "identifying_marks"), (11, "issue_date"), (12, "expiry_date")]
    entries = b""
    for n, key in order:
        value = c.get(key)
        if value is None:
            continue
        if key in ("birth_date", "issue_date", "expiry_date") and value[:1].isdigit():
            value = vn_date(value)
        entries += tlv.encode(asn1.SEQUENCE, asn1.encode_int(n) + _utf8(value))
    parents = _utf8(c.get("father_name") or "") + _utf8(c.get("mother_name") or "")
    entries += tlv.encode(asn1.SEQUENCE, asn1.encode_int(13) + tlv.encode(asn1.SEQUENCE, parents))
    if c.get("spouse_name"):
        entries += tlv.encode(asn1.SEQUENCE, asn1.encode_int(14) + tlv.encode(asn1.SEQUENCE,
                                                                               _utf8(c["spouse_name"])))
    for n, value in (c.get("extra") or {}).items():  # e.g. fields 15/16 of disputed meaning
        entries += tlv.encode(asn1.SEQUENCE, asn1.encode_int(int(n)) + _utf8(str(value)))
    body = asn1.encode_int(1) + asn1.oid_tlv(OID_UTF8_IDENTIFIER) + tlv.encode(asn1.SET, entries)
    return tlv.encode(0x6D, tlv.encode(asn1.SEQUENCE, body))


def build_dg2(image: bytes, width: int = 240, height: int = 320, jpeg2000: bool = False) -> bytes:
    facial_info = (bytes(4) + b"\x00\x00" + b"\x02" + b"\x00\x00" + b"\x00\x00\x00" + b"\x00\x00"
                   + b"\x00\x00\x00" + b"\x00\x00\x00")
    image_info = bytes((1, 1 if jpeg2000 else 0)) + width.to_bytes(2, "big") + height.to_bytes(2, "big") \
        + bytes((1, 2)) + bytes(4)
    block = facial_info + image_info + image
    block = len(block).to_bytes(4, "big") + block[4:]
    record = b"FAC\x00" + b"010\x00" + (14 + len(block)).to_bytes(4, "big") + b"\x00\x01" + block
    header = (tlv.encode(0x80, b"\x01\x01") + tlv.encode(0x81, b"\x02") + tlv.encode(0x87, b"\x01\x01")
              + tlv.encode(0x88, b"\x00\x08"))
    template = tlv.encode(0x7F60, tlv.encode(0xA1, header) + tlv.encode(0x5F2E, record))
    return tlv.encode(0x75, tlv.encode(0x7F61, asn1.encode_int(1) + template))


def build_dg1(mrz_text: str) -> bytes:
    return tlv.encode(0x61, tlv.encode(0x5F1F, mrz_text.replace("\n", "").encode()))


def pace_info(oid: str, parameter_id: int) -> bytes:
    return tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(oid) + asn1.encode_int(2) + asn1.encode_int(parameter_id))


def build_card_access(oid: str, parameter_id: int) -> bytes:
    return tlv.encode(asn1.SET, pace_info(oid, parameter_id))


def build_dg14(oid: str | None, parameter_id: int, active_auth: bool) -> bytes:
    infos = pace_info(oid, parameter_id) if oid else b""
    if active_auth:
        infos += tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(datagroups.OID_ACTIVE_AUTH) + asn1.encode_int(1)
                            + asn1.oid_tlv(OID_ECDSA_PLAIN_SHA256))
    return tlv.encode(0x6E, tlv.encode(asn1.SET, infos))


def build_dg15(public_key: ec.EllipticCurvePublicKey) -> bytes:
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return tlv.encode(0x6F, spki)


def build_com(groups: list[int]) -> bytes:
    tags = bytes(datagroups.TAG[n] for n in groups)
    return tlv.encode(0x60, tlv.encode(0x5F01, b"0107") + tlv.encode(0x5F36, b"040000")
                      + tlv.encode(0x5C, tags))


# --- PKI and EF.SOD -------------------------------------------------------------------------
class Signer:
    """A CSCA and a Document Signer certificate under it."""

    def __init__(self, country_name: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.csca_key = ec.generate_private_key(ec.SECP256R1())
        csca_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                               x509.NameAttribute(NameOID.COMMON_NAME, f"{country_name} CSCA")])
        self.csca = (x509.CertificateBuilder().subject_name(csca_name).issuer_name(csca_name)
                     .public_key(self.csca_key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .sign(self.csca_key, hashes.SHA256()))
        self.ds_key = ec.generate_private_key(ec.SECP256R1())
        ds_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"{country_name} Document Signer")])
        self.ds = (x509.CertificateBuilder().subject_name(ds_name).issuer_name(csca_name)
                   .public_key(self.ds_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(self.csca_key, hashes.SHA256()))

    def write_trust_store(self, path: pathlib.Path) -> None:
        path.write_bytes(self.csca.public_bytes(serialization.Encoding.PEM))

    def sign_sod(self, groups: dict[int, bytes]) -> bytes:
        """EF.SOD over the SHA-256 of each data group: CMS SignedData, ECDSA-SHA256."""
        sha256 = asn1.oid_tlv(sod.HASH_OID_OF["sha256"])
        hashes_der = b""
        for n in sorted(groups):
            digest = hashes.Hash(hashes.SHA256())
            digest.update(groups[n])
            hashes_der += tlv.encode(asn1.SEQUENCE, asn1.encode_int(n)
                                     + tlv.encode(asn1.OCTET_STRING, digest.finalize()))
        econtent = tlv.encode(asn1.SEQUENCE, asn1.encode_int(0) + tlv.encode(asn1.SEQUENCE, sha256)
                              + tlv.encode(asn1.SEQUENCE, hashes_der))
        digest = hashes.Hash(hashes.SHA256())
        digest.update(econtent)
        attrs = (tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(sod.OID_CONTENT_TYPE)
                            + tlv.encode(asn1.SET, asn1.oid_tlv(sod.OID_LDS_SECURITY_OBJECT)))
                 + tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(sod.OID_MESSAGE_DIGEST)
                              + tlv.encode(asn1.SET, tlv.encode(asn1.OCTET_STRING, digest.finalize()))))
        signature = self.ds_key.sign(tlv.encode(asn1.SET, attrs), ec.ECDSA(hashes.SHA256()))
        sid = tlv.encode(asn1.SEQUENCE,
                         self.ds.issuer.public_bytes() + asn1.encode_int(self.ds.serial_number))
        signer_info = tlv.encode(asn1.SEQUENCE, asn1.encode_int(1) + sid + tlv.encode(asn1.SEQUENCE, sha256)
                                 + tlv.encode(0xA0, attrs)
                                 + tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(OID_ECDSA_SHA256))
                                 + tlv.encode(asn1.OCTET_STRING, signature))
        signed_data = tlv.encode(asn1.SEQUENCE, asn1.encode_int(3)
                                 + tlv.encode(asn1.SET, tlv.encode(asn1.SEQUENCE, sha256))
                                 + tlv.encode(asn1.SEQUENCE, asn1.oid_tlv(sod.OID_LDS_SECURITY_OBJECT)
                                              + tlv.encode(0xA0, tlv.encode(asn1.OCTET_STRING, econtent)))
                                 + tlv.encode(0xA0, self.ds.public_bytes(serialization.Encoding.DER))
                                 + tlv.encode(asn1.SET, signer_info))
        content_info = tlv.encode(asn1.SEQUENCE,
                                  asn1.oid_tlv(sod.OID_SIGNED_DATA) + tlv.encode(0xA0, signed_data))
        return tlv.encode(0x77, content_info)


class CardImage:
    """Every file of one card, built from a citizen and the card's options."""

    def __init__(self, citizen: dict[str, Any], signer: Signer, *, pace: bool = True,
                 pace_oid: str = OID_PACE_ECDH_GM_AES128, parameter_id: int = 13,
                 active_auth: bool = True, tamper_dg: int | None = None, face: bytes | None = None,
                 clone: bool = False) -> None:
        self.citizen = dict(citizen)
        self.mrz = citizen_mrz(self.citizen)
        self.mrz_information = mrz.key_information_from_mrz(mrz.parse(self.mrz))
        self.can = self.citizen["id_number"][-6:]
        self.pace = pace
        self.pace_oid = pace_oid
        self.parameter_id = parameter_id
        self.aa_key = ec.generate_private_key(ec.SECP256R1()) if active_auth else None
        self.face = face if face is not None else face_jpeg()
        groups = {1: build_dg1(self.mrz), 2: build_dg2(self.face), 13: build_dg13(self.citizen),
                  14: build_dg14(pace_oid if pace else None, parameter_id, active_auth)}
        if self.aa_key is not None:
            groups[15] = build_dg15(self.aa_key.public_key())
        self.sod = signer.sign_sod(groups)
        if clone and self.aa_key is not None:
            # a copy of a genuine chip's files: it cannot sign with the key DG15 names
            self.aa_key = ec.generate_private_key(ec.SECP256R1())
        if tamper_dg is not None and tamper_dg in groups:
            # change one character of content after signing: the hash no longer matches
            g = bytearray(groups[tamper_dg])
            g[-3] ^= 0x01
            groups[tamper_dg] = bytes(g)
        self.files: dict[int, bytes] = {datagroups.FID[n]: v for n, v in groups.items()}
        self.files[datagroups.EF_SOD] = self.sod
        self.files[datagroups.EF_COM] = build_com(sorted(groups))
        self.card_access = build_card_access(pace_oid, parameter_id) if pace else None
        self.protected_fids = {datagroups.FID[3], datagroups.FID[4]}  # EAC-protected: 6982

    def active_auth_signature(self, challenge: bytes) -> bytes:
        """ECDSA-plain-SHA256 (BSI TR-03111): r || s."""
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        assert self.aa_key is not None
        r, s = decode_dss_signature(self.aa_key.sign(challenge, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
