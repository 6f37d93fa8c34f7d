"""Enveloped XML-DSig over the DxpMsg (or a business message), per the official DXP/CEB rule.

Inclusive C14N, Reference URI="", the enveloped-signature transform, KeyInfo with KeyName
(certificate number) and X509Certificate. The private key stays behind the Signer; this module
only hashes and assembles.

Produced (`profile`, a signer's `xmldsig` setting):
- `chinaport-2022` (default): SignatureMethod `http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3`,
  DigestMethod `…/2022/04/xmldsig#sm3`, the digest SM3;
- `ceb-2018`: the form the widely used open-source card-signing service (chinaport-data-signature)
  and CEB messages carry: SignatureMethod `http://www.w3.org/2000/09/xmldsig#sm2-sm3` with
  DigestMethod `http://www.w3.org/2000/09/xmldsig#sha1`, the digest SHA-1.
RSA-SHA1 (and ECDSA-SHA256) cards sign the same in both.

Verified: every variant in use. The signature algorithm comes from SignatureMethod and the digest
algorithm from DigestMethod (never one from the other); CanonicalizationMethod inclusive C14N with
or without comments.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from lxml import etree

from card import crypto
from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3, Signer
from gateway import xmlsafe

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_S = f"{{{DS_NS}}}"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_COMMENTS = C14N + "#WithComments"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

CHINAPORT_SM2_SM3 = "http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3"
CHINAPORT_SM3 = "http://www.chinaport.gov.cn/2022/04/xmldsig#sm3"
W3_SM2_SM3 = "http://www.w3.org/2000/09/xmldsig#sm2-sm3"
W3_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
W3_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
W3_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
W3_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

# SignatureMethod -> the card's algorithm
SIGNATURE_METHODS = {
    CHINAPORT_SM2_SM3: SM2_SM3,
    W3_SM2_SM3: SM2_SM3,
    W3_RSA_SHA1: RSA_SHA1,
    W3_ECDSA_SHA256: ECDSA_SHA256,
}
# DigestMethod -> hash
DIGEST_METHODS = {
    CHINAPORT_SM3: "sm3",
    "http://www.w3.org/2000/09/xmldsig#sm3": "sm3",
    "http://www.w3.org/2001/04/xmldsig-more#sm3": "sm3",
    W3_SHA1: "sha1",
    W3_SHA256: "sha256",
}
C14N_METHODS = {C14N: False, C14N_COMMENTS: True}   # -> with comments

PROFILES = ("chinaport-2022", "ceb-2018")
# (profile, card algorithm) -> (SignatureMethod, DigestMethod)
_PRODUCE = {
    ("chinaport-2022", SM2_SM3): (CHINAPORT_SM2_SM3, CHINAPORT_SM3),
    ("ceb-2018", SM2_SM3): (W3_SM2_SM3, W3_SHA1),
}
_PRODUCE_ANY = {RSA_SHA1: (W3_RSA_SHA1, W3_SHA1), ECDSA_SHA256: (W3_ECDSA_SHA256, W3_SHA256)}
# kept for callers that looked the pair up by algorithm
URIS = {SM2_SM3: _PRODUCE[("chinaport-2022", SM2_SM3)], **_PRODUCE_ANY}


class SignatureError(Exception):
    """The envelope's signature is missing, malformed, or does not verify."""

    def __init__(self, message: str, code: str = "1001"):
        super().__init__(message)
        self.code = code   # DxpRep code: 1001 bad signature, 1004 signature/data mismatch


_HASHLIB_SM3 = "sm3" in hashlib.algorithms_available   # hashlib hashes large data without the GIL


def hash_bytes(name: str, data: bytes) -> bytes:
    if name == "sm3" and not _HASHLIB_SM3:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()
    return hashlib.new(name, data).digest()


def digest(algorithm: str, data: bytes) -> bytes:
    """The digest the chinaport 2022/04 form pairs with a card algorithm (SM3 for SM2 …)."""
    return hash_bytes({SM2_SM3: "sm3", RSA_SHA1: "sha1"}.get(algorithm, "sha256"), data)


def c14n(elem, with_comments: bool = False) -> bytes:
    return etree.tostring(elem, method="c14n", exclusive=False, with_comments=with_comments)


def _sub(parent, name, text=None, **attrs):
    elem = etree.SubElement(parent, _S + name, **attrs)
    if text is not None:
        elem.text = text
    return elem


def methods(algorithm: str, profile: str = "chinaport-2022") -> tuple[str, str]:
    """(SignatureMethod, DigestMethod) a signer with `algorithm` writes under `profile`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown XML-DSig profile {profile!r} (known: {', '.join(PROFILES)})")
    return _PRODUCE.get((profile, algorithm)) or _PRODUCE_ANY[algorithm]


def sign(root: etree._Element, signer: Signer, cert_no: str, profile: str = "chinaport-2022",
         parent: etree._Element | None = None) -> bytes:
    """Sign `root` (a DxpMsg without Signature) in place; return the serialized envelope.

    The ds:Signature goes last into `parent` (default: `root` itself); with the enveloped
    transform the reference is still the whole of `root` without the Signature, so a
    document-level signature (the MOFCOM key's in LicenseSign) is the same form."""
    sig_uri, digest_uri = methods(signer.algorithm, profile)
    digest_value = base64.b64encode(hash_bytes(DIGEST_METHODS[digest_uri], c14n(root))).decode()
    signature = _sub(root if parent is None else parent, "Signature")
    signed_info = _sub(signature, "SignedInfo")
    _sub(signed_info, "CanonicalizationMethod", Algorithm=C14N)
    _sub(signed_info, "SignatureMethod", Algorithm=sig_uri)
    ref = _sub(signed_info, "Reference", URI="")
    _sub(_sub(ref, "Transforms"), "Transform", Algorithm=ENVELOPED)
    _sub(ref, "DigestMethod", Algorithm=digest_uri)
    _sub(ref, "DigestValue", digest_value)
    value = signer.sign(c14n(signed_info))
    _sub(signature, "SignatureValue", base64.b64encode(value).decode())
    key_info = _sub(signature, "KeyInfo")
    _sub(key_info, "KeyName", cert_no)
    _sub(_sub(key_info, "X509Data"), "X509Certificate", _b64(signer.certificate()))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_canonical(canonical: bytes, close: bytes, in_scope: str, signer: Signer, cert_no: str,
                   profile: str = "chinaport-2022") -> bytes:
    """`sign`, for a root given as text: the same serialized result, byte for byte, without trees.

    `canonical` is the root without Signature in inclusive C14N and is also exactly lxml's
    serialization of it (envelope.canonical), ending in `close`, its closing tag; the root binds the
    prefix ds to XML-DSig, `in_scope` are the namespace declarations C14N writes on its SignedInfo;
    `cert_no` is plain text (no control character or carriage return)."""
    sig_uri, digest_uri = methods(signer.algorithm, profile)
    digest_value = base64.b64encode(hash_bytes(DIGEST_METHODS[digest_uri], canonical)).decode()
    inner = (f'<ds:CanonicalizationMethod Algorithm="{C14N}"></ds:CanonicalizationMethod>'
             f'<ds:SignatureMethod Algorithm="{sig_uri}"></ds:SignatureMethod><ds:Reference URI="">'
             f'<ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"></ds:Transform></ds:Transforms>'
             f'<ds:DigestMethod Algorithm="{digest_uri}"></ds:DigestMethod>'
             f'<ds:DigestValue>{digest_value}</ds:DigestValue></ds:Reference></ds:SignedInfo>')
    value = base64.b64encode(signer.sign(f"<ds:SignedInfo {in_scope}>{inner}".encode())).decode()
    signature = (f"<ds:Signature><ds:SignedInfo>{_EMPTY.sub(_CLOSED, inner)}"
                 f"<ds:SignatureValue>{value}</ds:SignatureValue><ds:KeyInfo><ds:KeyName>{xmlsafe.escape_text(cert_no)}</ds:KeyName>"
                 f"<ds:X509Data><ds:X509Certificate>{_b64(signer.certificate())}</ds:X509Certificate>"
                 f"</ds:X509Data></ds:KeyInfo></ds:Signature>")
    return b"".join((_XML_DECLARATION, canonical[:-len(close)], signature.encode(), close))


_XML_DECLARATION = xmlsafe.DECLARATION.encode()
_EMPTY, _CLOSED = re.compile('"></ds:[A-Za-z]+>'), '"/>'   # an empty method element: lxml writes <x a="…"/>


@functools.lru_cache(maxsize=16)
def _b64(certificate: bytes) -> str:
    """A signer's certificate in base64 (the same few certificates, message after message)."""
    return base64.b64encode(certificate).decode()


@dataclass(frozen=True)
class Verified:
    algorithm: str
    cert_no: str
    certificate: bytes
    signature_method: str = ""
    digest_method: str = ""
    c14n_method: str = ""


def _find_signature(root):
    """The enveloped ds:Signature: a child of the root (DxpMsg, CEB…Message), else the first one."""
    sig = root.find(_S + "Signature")
    if sig is None:
        sig = next(root.iter(_S + "Signature"), None)
    return sig


def verify(root: etree._Element, parent: etree._Element | None = None) -> Verified:
    """Check the enveloped signature of `root` (the ds:Signature in `parent`, default `root`)
    against the certificate it carries.

    Whether that certificate is trusted is the caller's decision (`Verified.certificate`).
    Leaves `root` unchanged.
    """
    signature = _find_signature(root) if parent is None else parent.find(_S + "Signature")
    if signature is None:
        raise SignatureError("the message is not signed (no ds:Signature)")
    signed_info = signature.find(_S + "SignedInfo")
    try:
        c14n_uri = signed_info.find(_S + "CanonicalizationMethod").get("Algorithm")
        method = signed_info.find(_S + "SignatureMethod").get("Algorithm")
        reference = signed_info.find(_S + "Reference")
        digest_uri = reference.find(_S + "DigestMethod").get("Algorithm")
        digest_value = base64.b64decode(reference.findtext(_S + "DigestValue") or "", validate=True)
        sig_value = base64.b64decode("".join((signature.findtext(_S + "SignatureValue") or "").split()),
                                     validate=True)
        cert = base64.b64decode("".join((signature.findtext(
            f"{_S}KeyInfo/{_S}X509Data/{_S}X509Certificate") or "").split()), validate=True)
        cert_no = (signature.findtext(f"{_S}KeyInfo/{_S}KeyName") or "").strip()
    except (AttributeError, ValueError):
        raise SignatureError("the ds:Signature is incomplete or not base64") from None
    algorithm = SIGNATURE_METHODS.get(method)
    if algorithm is None:
        raise SignatureError(f"unsupported signature method {method}")
    hash_name = DIGEST_METHODS.get(digest_uri)
    if hash_name is None:
        raise SignatureError(f"unsupported digest method {digest_uri}")
    if c14n_uri not in C14N_METHODS:
        raise SignatureError(f"unsupported canonicalization {c14n_uri} (inclusive C14N 1.0 is used)")
    if reference.get("URI", "") != "":
        raise SignatureError(f"Reference URI {reference.get('URI')!r}: only the whole document (URI=\"\") is signed")
    for transform in reference.iter(_S + "Transform"):
        if transform.get("Algorithm") not in (ENVELOPED, *C14N_METHODS):
            raise SignatureError(f"unsupported transform {transform.get('Algorithm')}")
    if not cert:
        raise SignatureError("KeyInfo carries no X509Certificate")
    with_comments = C14N_METHODS[c14n_uri]
    try:
        crypto.verify(algorithm, cert, c14n(signed_info, with_comments), sig_value)
    except crypto.InvalidSignature:
        raise SignatureError("the signature does not verify with the certificate in KeyInfo") from None
    except Exception as exc:  # unreadable certificate
        raise SignatureError(f"the certificate in KeyInfo cannot be read: {type(exc).__name__}") from None
    parent = signature.getparent()
    index = list(parent).index(signature)
    tail = signature.tail
    parent.remove(signature)
    try:
        actual = hash_bytes(hash_name, c14n(root, with_comments))
    finally:
        parent.insert(index, signature)
        signature.tail = tail
    if actual != digest_value:
        raise SignatureError("the signed data was changed after signing (digest mismatch)", code="1004")
    return Verified(algorithm, cert_no, cert, method, digest_uri, c14n_uri)


# -- swgw verify ----------------------------------------------------------------------------
def inspect(data: bytes) -> dict:
    """What `swgw verify` reports about one file: methods, digest, signature, certificate."""
    from gateway import xmlsafe

    report: dict = {"verified": False, "reason": "", "root": ""}
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        report["reason"] = str(exc)
        return report
    report["root"] = etree.QName(root).localname
    signature = _find_signature(root)
    if signature is not None:
        si = signature.find(_S + "SignedInfo")
        if si is not None:
            report["c14n_method"] = si.find(_S + "CanonicalizationMethod").get("Algorithm") \
                if si.find(_S + "CanonicalizationMethod") is not None else ""
            report["signature_method"] = si.find(_S + "SignatureMethod").get("Algorithm") \
                if si.find(_S + "SignatureMethod") is not None else ""
            dm = si.find(f"{_S}Reference/{_S}DigestMethod")
            report["digest_method"] = dm.get("Algorithm") if dm is not None else ""
        report["key_name"] = (signature.findtext(f"{_S}KeyInfo/{_S}KeyName") or "").strip()
        cert_text = "".join((signature.findtext(f"{_S}KeyInfo/{_S}X509Data/{_S}X509Certificate") or "").split())
        if cert_text:
            try:
                report["certificate"] = _certificate(base64.b64decode(cert_text), report["key_name"])
            except Exception as exc:  # not a certificate: verify() names it below
                report["certificate"] = {"error": f"cannot be read: {type(exc).__name__}"}
    try:
        verified = verify(root)
    except SignatureError as exc:
        report["reason"] = str(exc)
        return report
    report["verified"] = True
    report["algorithm"] = verified.algorithm
    return report


def _certificate(der: bytes, key_name: str) -> dict:
    c = crypto.summary(der)
    now = dt.datetime.now(dt.timezone.utc)
    return {"subject": c.subject, "issuer": c.issuer, "serial": c.serial_hex,
            "not_before": c.not_before.isoformat(), "not_after": c.not_after.isoformat(),
            "valid_now": c.not_before <= now <= c.not_after, "key_algorithm": c.key_algorithm,
            "key_name_matches": crypto.same_cert_no(key_name, c.serial_hex) if key_name else None}


def render(report: dict) -> str:
    lines = [f"{'VERIFIED' if report['verified'] else 'NOT VERIFIED'}  <{report.get('root', '')}>"
             + ("" if report["verified"] else f": {report['reason']}")]
    for label, key in (("canonicalization", "c14n_method"), ("signature method", "signature_method"),
                       ("digest method", "digest_method"), ("key name", "key_name")):
        if report.get(key):
            lines.append(f"  {label + ':':<19} {report[key]}")
    cert = report.get("certificate") or {}
    if cert.get("error"):
        lines.append(f"  certificate:        {cert['error']}")
    elif cert:
        lines.append(f"  certificate:        {cert['subject']}")
        lines.append(f"  issuer:             {cert['issuer']}")
        lines.append(f"  serial:             {cert['serial']}"
                     + ("" if cert["key_name_matches"] in (None, True) else "  (KeyName differs!)"))
        lines.append(f"  valid:              {cert['not_before'][:10]} .. {cert['not_after'][:10]}"
                     + ("" if cert["valid_now"] else "  (NOT valid now)"))
    return "\n".join(lines)
