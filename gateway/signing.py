"""Enveloped XML-DSig over the DxpMsg, per the official DXP/CEB rule.

Inclusive C14N, Reference URI="", the enveloped-signature transform, KeyInfo with
KeyName (certificate number) and X509Certificate. Algorithm URIs: the chinaport
2022/04 SM2-SM3 pair by default, RSA-SHA1 (and ECDSA-SHA256) for legacy cards.
The private key stays behind the Signer; this module only hashes and assembles.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from lxml import etree

from card import crypto
from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3, Signer

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_S = f"{{{DS_NS}}}"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

URIS = {
    SM2_SM3: ("http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3", "http://www.chinaport.gov.cn/2022/04/xmldsig#sm3"),
    RSA_SHA1: ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"),
    ECDSA_SHA256: ("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
}
BY_SIGNATURE_URI = {sig: algo for algo, (sig, _) in URIS.items()}


class SignatureError(Exception):
    """The envelope's signature is missing, malformed, or does not verify."""

    def __init__(self, message: str, code: str = "1001"):
        super().__init__(message)
        self.code = code   # DxpRep code: 1001 bad signature, 1004 signature/data mismatch


def digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == SM2_SM3:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()
    if algorithm == RSA_SHA1:
        return hashlib.sha1(data).digest()
    return hashlib.sha256(data).digest()


def c14n(elem) -> bytes:
    return etree.tostring(elem, method="c14n", exclusive=False, with_comments=False)


def _sub(parent, name, text=None, **attrs):
    elem = etree.SubElement(parent, _S + name, **attrs)
    if text is not None:
        elem.text = text
    return elem


def sign(root: etree._Element, signer: Signer, cert_no: str, parent: etree._Element | None = None) -> bytes:
    """Sign `root` (a DxpMsg without Signature) in place; return the serialized envelope.

    The ds:Signature goes last into `parent` (default: `root` itself); with the enveloped
    transform the reference is still the whole of `root` without the Signature, so a
    document-level signature (the MOFCOM key's in LicenseSign) is the same form."""
    algorithm = signer.algorithm
    sig_uri, digest_uri = URIS[algorithm]
    digest_value = base64.b64encode(digest(algorithm, c14n(root))).decode()
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
    _sub(_sub(key_info, "X509Data"), "X509Certificate", base64.b64encode(signer.certificate()).decode())
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class Verified:
    algorithm: str
    cert_no: str
    certificate: bytes


def verify(root: etree._Element, parent: etree._Element | None = None) -> Verified:
    """Check the enveloped signature of `root` (the ds:Signature in `parent`, default `root`)
    against the certificate it carries.

    Whether that certificate is trusted is the caller's decision (`Verified.certificate`).
    Leaves `root` unchanged.
    """
    holder = root if parent is None else parent
    signature = holder.find(_S + "Signature")
    if signature is None:
        raise SignatureError("the message is not signed (no ds:Signature)")
    signed_info = signature.find(_S + "SignedInfo")
    try:
        method = signed_info.find(_S + "SignatureMethod").get("Algorithm")
        digest_value = base64.b64decode(signed_info.find(f"{_S}Reference/{_S}DigestValue").text or "")
        sig_value = base64.b64decode(signature.find(_S + "SignatureValue").text or "")
        cert = base64.b64decode(signature.find(f"{_S}KeyInfo/{_S}X509Data/{_S}X509Certificate").text or "")
        cert_no = (signature.findtext(f"{_S}KeyInfo/{_S}KeyName") or "").strip()
    except (AttributeError, ValueError):
        raise SignatureError("the ds:Signature is incomplete or not base64") from None
    algorithm = BY_SIGNATURE_URI.get(method)
    if algorithm is None:
        raise SignatureError(f"unsupported signature method {method}")
    try:
        crypto.verify(algorithm, cert, c14n(signed_info), sig_value)
    except crypto.InvalidSignature:
        raise SignatureError("the signature does not verify with the certificate in KeyInfo") from None
    except Exception as exc:  # unreadable certificate
        raise SignatureError(f"the certificate in KeyInfo cannot be read: {type(exc).__name__}") from None
    parent_index = list(holder).index(signature)
    holder.remove(signature)
    try:
        actual = digest(algorithm, c14n(root))
    finally:
        holder.insert(parent_index, signature)
    if actual != digest_value:
        raise SignatureError("the signed data was changed after signing (digest mismatch)", code="1004")
    return Verified(algorithm, cert_no, cert)
