"""Passive authentication (ICAO 9303-11 §5.1): EF.SOD's CMS signature by the Document Signer,
the Document Signer certificate against the configured CSCA trust store, and every data group's
hash. Also Active Authentication (§6.1) with an ECDSA key from DG15.

Results: `valid`, `invalid` (with the check that failed), `no_trust_anchor`, `not_checked`.
"""

from __future__ import annotations

import datetime
import hashlib
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from protocols.emrtd import sod as sodmod
from protocols.errors import ProtocolError

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
_SIG_HASH = {  # signature algorithm OID -> hash name (None: take the signer's digest algorithm)
    "1.2.840.10045.4.1": "sha1", "1.2.840.10045.4.3.1": "sha224", "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.113549.1.1.5": "sha1", "1.2.840.113549.1.1.14": "sha224", "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.113549.1.1.1": None, "1.2.840.10045.2.1": None, "1.2.840.113549.1.1.10": None,
}
_RSA_PSS = "1.2.840.113549.1.1.10"
_ECDSA_PLAIN = {"0.4.0.127.0.7.1.1.4.1.1": "sha1", "0.4.0.127.0.7.1.1.4.1.2": "sha224",
                "0.4.0.127.0.7.1.1.4.1.3": "sha256", "0.4.0.127.0.7.1.1.4.1.4": "sha384",
                "0.4.0.127.0.7.1.1.4.1.5": "sha512"}


def load_trust_store(path: str | pathlib.Path | None) -> list[x509.Certificate]:
    """CSCA certificates from a PEM/DER file or every *.pem/*.crt/*.cer/*.der of a directory."""
    if not path:
        return []
    p = pathlib.Path(path)
    files: Iterable[pathlib.Path] = sorted(p.iterdir()) if p.is_dir() else [p]
    out: list[x509.Certificate] = []
    for f in files:
        if not f.is_file():
            continue
        data = f.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            out.extend(x509.load_pem_x509_certificates(data))
        elif data[:1] == b"\x30":
            out.append(x509.load_der_x509_certificate(data))
    return out


def _verify_signature(public_key: Any, signature: bytes, data: bytes, sig_oid: str, params: bytes,
                      hash_name: str) -> None:
    algo = _HASHES[hash_name]()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(public_key, rsa.RSAPublicKey):
        if sig_oid == _RSA_PSS:
            # salt length from the parameters is usually the hash length; AUTO accepts any
            public_key.verify(signature, data, padding.PSS(padding.MGF1(algo), padding.PSS.AUTO), algo)
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), algo)
    else:
        raise InvalidSignature("unsupported Document Signer key")


def _ds_certificate(sod: sodmod.SecurityObject) -> x509.Certificate | None:
    certs = [x509.load_der_x509_certificate(c) for c in sod.certificates]
    if not certs:
        return None
    if sod.signer_id and sod.signer_id[0] == "ski":
        for c in certs:
            try:
                ski = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sod.signer_id[1]:
                return c
    return certs[0]


def passive_authentication(sod_bytes: bytes | None, groups: Mapping[int, bytes],
                           trust_store: list[x509.Certificate],
                           now: datetime.datetime | None = None) -> dict[str, Any]:
    """Check EF.SOD and the data groups read. Never raises: a broken SOD is `invalid`."""
    if sod_bytes is None:
        return {"status": "not_checked", "reason": "EF.SOD not read"}
    checks: dict[str, Any] = {}
    try:
        sod = sodmod.parse(sod_bytes)
    except ProtocolError as exc:
        return {"status": "invalid", "failed": "sod_format", "detail": exc.message}
    # 1. every data group read must hash to the value EF.SOD holds
    bad = []
    for n, content in sorted(groups.items()):
        expected = sod.dg_hashes.get(n)
        if expected is None or hashlib.new(sod.lds_hash, content).digest() != expected:
            bad.append(f"DG{n}")
    checks["datagroup_hashes"] = "invalid" if bad else "valid"
    # 2. the signed attributes bind the LDS security object, and the DS signed them
    try:
        ds = _ds_certificate(sod)
        if ds is None:
            raise InvalidSignature("no Document Signer certificate in EF.SOD")
        if sod.message_digest != hashlib.new(sod.signer_hash or "sha256", sod.econtent).digest():
            raise InvalidSignature("messageDigest does not match the LDS security object")
        hash_name = _SIG_HASH.get(sod.signature_algorithm or "", None) or sod.signer_hash or "sha256"
        _verify_signature(ds.public_key(), sod.signature, sod.signed_attrs, sod.signature_algorithm or "",
                          sod.signature_parameters, hash_name)
        checks["sod_signature"] = "valid"
    except (InvalidSignature, ValueError, TypeError) as exc:
        checks["sod_signature"] = "invalid"
        return {"status": "invalid", "failed": "sod_signature", "detail": str(exc) or "bad signature",
                "checks": checks, "failed_datagroups": bad}
    # 3. the DS certificate chains to a CSCA we trust
    issuers = [c for c in trust_store if c.subject == ds.issuer]
    if not issuers:
        checks["certificate_chain"] = "no_trust_anchor"
        status = "invalid" if bad else "no_trust_anchor"
        result = {"status": status, "checks": checks, "document_signer": ds.subject.rfc4514_string(),
                  "issuer": ds.issuer.rfc4514_string()}
        if bad:
            result.update(failed="datagroup_hashes", failed_datagroups=bad)
        return result
    when = now or datetime.datetime.now(datetime.UTC)
    chain_ok = False
    for csca in issuers:
        try:
            ds.verify_directly_issued_by(csca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        chain_ok = True
        break
    if not chain_ok:
        checks["certificate_chain"] = "invalid"
        return {"status": "invalid", "failed": "certificate_chain", "checks": checks}
    if not (ds.not_valid_before_utc <= when <= ds.not_valid_after_utc):
        checks["certificate_chain"] = "expired"
        return {"status": "invalid", "failed": "certificate_validity", "checks": checks}
    checks["certificate_chain"] = "valid"
    if bad:
        return {"status": "invalid", "failed": "datagroup_hashes", "failed_datagroups": bad, "checks": checks}
    return {"status": "valid", "checks": checks, "datagroups": [f"DG{n}" for n in sorted(groups)]}


def verify_active_authentication(spki_der: bytes, algorithm_oid: str | None, challenge: bytes,
                                 signature: bytes) -> dict[str, Any]:
    """Active Authentication with an ECDSA key (plain r||s signature, BSI TR-03111)."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except ValueError:
        return {"status": "invalid", "failed": "dg15_key"}
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return {"status": "not_checked", "reason": "RSA (ISO 9796-2) Active Authentication not implemented"}
    hash_name = _ECDSA_PLAIN.get(algorithm_oid or "", "sha256")
    half = len(signature) // 2
    if not signature or len(signature) % 2:
        return {"status": "invalid", "failed": "aa_signature"}
    der = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                               int.from_bytes(signature[half:], "big"))
    try:
        key.verify(der, challenge, ec.ECDSA(_HASHES[hash_name]()))
    except InvalidSignature:
        return {"status": "invalid", "failed": "aa_signature"}
    return {"status": "valid", "algorithm": f"ecdsa-plain-{hash_name}"}
