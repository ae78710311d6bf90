"""EF.SOD (ICAO 9303-10 §4.6.2): a CMS SignedData over the LDSSecurityObject, the hash of every
data group. Parsing only; the signature and certificate checks need a crypto library and live
in the driver (`drivers/idcard/passive_auth.py`)."""
from protocols import tlv
from protocols.emrtd import asn1
from protocols.errors import ProtocolError

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"

HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_OID_OF = {}
for _oid, _name in HASH_OIDS.items():
    HASH_OID_OF[_name] = _oid


class SecurityObject:
    """What passive authentication needs from EF.SOD.

    `lds_hash`: hash name of the data-group hashes; `dg_hashes`: {dg number: hash};
    `econtent`: the signed LDSSecurityObject bytes; `signed_attrs`: DER of the signed
    attributes re-tagged as SET (the bytes the signature covers); `message_digest`;
    `signer_hash`; `signature_algorithm` (OID) and `signature_parameters` (DER or b"");
    `signature`; `certificates`: DER of each certificate; `signer_id`: ("issuer_serial",
    DER) or ("ski", bytes).
    """

    def __init__(self):
        self.lds_hash = None
        self.dg_hashes = {}
        self.econtent = b""
        self.signed_attrs = b""
        self.message_digest = None
        self.content_type = None
        self.signer_hash = None
        self.signature_algorithm = None
        self.signature_parameters = b""
        self.signature = b""
        self.certificates = []
        self.signer_id = None


def _algorithm(value):
    parts = tlv.parse_raw(value)
    if not parts or parts[0][0] != asn1.OID:
        raise ProtocolError("SOD: AlgorithmIdentifier without an OID")
    params = b""
    for _, _, raw in parts[1:]:
        params += raw
    return asn1.decode_oid(parts[0][1]), params


def _hash_name(oid):
    name = HASH_OIDS.get(oid)
    if name is None:
        raise ProtocolError("SOD: unknown hash algorithm %s" % oid)
    return name


def parse_lds_security_object(econtent, sod):
    items = tlv.parse(tlv.parse_one(econtent, asn1.SEQUENCE))
    if len(items) < 3 or items[0][0] != asn1.INTEGER:
        raise ProtocolError("SOD: malformed LDSSecurityObject")
    sod.lds_hash = _hash_name(_algorithm(asn1.expect(items[1], asn1.SEQUENCE, "hashAlgorithm"))[0])
    for tag, value in tlv.parse(asn1.expect(items[2], asn1.SEQUENCE, "dataGroupHashValues")):
        if tag != asn1.SEQUENCE:
            raise ProtocolError("SOD: data group hash is not a SEQUENCE")
        pair = tlv.parse(value)
        if len(pair) != 2:
            raise ProtocolError("SOD: data group hash needs number and value")
        number = asn1.decode_int(asn1.expect(pair[0], asn1.INTEGER, "dataGroupNumber"))
        sod.dg_hashes[number] = asn1.expect(pair[1], asn1.OCTET_STRING, "dataGroupHashValue")


def _signed_attributes(raw, sod):
    sod.signed_attrs = b"\x31" + raw[1:]
    for tag, value in tlv.parse(tlv.parse_one(raw, 0xA0)):
        if tag != asn1.SEQUENCE:
            raise ProtocolError("SOD: attribute is not a SEQUENCE")
        parts = tlv.parse(value)
        if len(parts) != 2 or parts[0][0] != asn1.OID or parts[1][0] != asn1.SET:
            raise ProtocolError("SOD: malformed attribute")
        oid = asn1.decode_oid(parts[0][1])
        values = tlv.parse(parts[1][1])
        if not values:
            raise ProtocolError("SOD: attribute without value")
        if oid == OID_MESSAGE_DIGEST:
            sod.message_digest = asn1.expect(values[0], asn1.OCTET_STRING, "messageDigest")
        elif oid == OID_CONTENT_TYPE:
            sod.content_type = asn1.decode_oid(asn1.expect(values[0], asn1.OID, "contentType"))


def _signer_info(value, sod):
    parts = tlv.parse_raw(value)
    if len(parts) < 5:
        raise ProtocolError("SOD: SignerInfo too short")
    sid_tag, sid_value, sid_raw = parts[1]
    if sid_tag == asn1.SEQUENCE:
        sod.signer_id = ("issuer_serial", sid_raw)
    elif sid_tag == 0x80:
        sod.signer_id = ("ski", sid_value)
    else:
        raise ProtocolError("SOD: unknown signer identifier")
    sod.signer_hash = _hash_name(_algorithm(asn1.expect(parts[2][:2], asn1.SEQUENCE, "digestAlgorithm"))[0])
    i = 3
    if parts[i][0] == 0xA0:
        _signed_attributes(parts[i][2], sod)
        i += 1
    if i + 1 >= len(parts):
        raise ProtocolError("SOD: SignerInfo lacks signature")
    sod.signature_algorithm, sod.signature_parameters = _algorithm(
        asn1.expect(parts[i][:2], asn1.SEQUENCE, "signatureAlgorithm"))
    sod.signature = asn1.expect(parts[i + 1][:2], asn1.OCTET_STRING, "signature")


def parse(data):
    """Parse EF.SOD (tag 77) into a SecurityObject."""
    content_info = tlv.parse(tlv.parse_one(tlv.unwrap(data, 0x77), asn1.SEQUENCE))
    if len(content_info) != 2 or content_info[0][0] != asn1.OID:
        raise ProtocolError("SOD: malformed ContentInfo")
    if asn1.decode_oid(content_info[0][1]) != OID_SIGNED_DATA:
        raise ProtocolError("SOD: not a SignedData")
    signed = tlv.parse_raw(tlv.parse_one(asn1.expect(content_info[1], 0xA0, "content"), asn1.SEQUENCE))
    if len(signed) < 4:
        raise ProtocolError("SOD: SignedData too short")
    sod = SecurityObject()
    encap = tlv.parse(asn1.expect(signed[2][:2], asn1.SEQUENCE, "encapContentInfo"))
    if len(encap) != 2 or encap[0][0] != asn1.OID:
        raise ProtocolError("SOD: malformed encapContentInfo")
    if asn1.decode_oid(encap[0][1]) != OID_LDS_SECURITY_OBJECT:
        raise ProtocolError("SOD: content is not an LDSSecurityObject")
    sod.econtent = tlv.parse_one(asn1.expect(encap[1], 0xA0, "eContent"), asn1.OCTET_STRING)
    parse_lds_security_object(sod.econtent, sod)
    signer_infos = None
    for tag, value, _ in signed[3:]:
        if tag == 0xA0:
            for t, _, raw in tlv.parse_raw(value):
                if t == asn1.SEQUENCE:
                    sod.certificates.append(raw)
        elif tag == asn1.SET:
            signer_infos = value
    if signer_infos is None:
        raise ProtocolError("SOD: no SignerInfos")
    infos = tlv.parse(signer_infos)
    if not infos or infos[0][0] != asn1.SEQUENCE:
        raise ProtocolError("SOD: empty SignerInfos")
    _signer_info(infos[0][1], sod)
    return sod
