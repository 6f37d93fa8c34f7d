"""Signature verification and certificate reading, for every algorithm a card may use.

SM2 goes through tongsuopy (the `cryptography` package has no SM2); RSA and ECDSA
through `cryptography`. Signatures travel as the card produces them: SM2 and ECDSA
as raw r||s, RSA as PKCS#1 v1.5 bytes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalid
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3

SM2_CURVE_OID = "1.2.156.10197.1.301"


class InvalidSignature(Exception):
    """The signature does not match the data and certificate."""


@dataclass(frozen=True)
class CertSummary:
    serial_hex: str
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_algorithm: str  # sm2 | rsa | ec


def to_der(cert: bytes) -> bytes:
    """Accept PEM or DER, return DER."""
    if asn1_pem.detect(cert):
        _, _, der = asn1_pem.unarmor(cert)
        return der
    return cert


def summary(cert: bytes) -> CertSummary:
    c = asn1_x509.Certificate.load(to_der(cert))
    tbs = c["tbs_certificate"]
    validity = tbs["validity"]
    return CertSummary(
        serial_hex=cert_number(c.serial_number),
        subject=c.subject.human_friendly,
        issuer=c.issuer.human_friendly,
        not_before=validity["not_before"].native,
        not_after=validity["not_after"].native,
        key_algorithm=_key_algorithm(c),
    )


def _key_algorithm(c: asn1_x509.Certificate) -> str:
    algo = c.public_key["algorithm"]
    if algo["algorithm"].native == "rsa":
        return "rsa"
    params = algo["parameters"]
    if params.name == "named" and params.chosen.dotted == SM2_CURVE_OID:
        return "sm2"
    return "ec"


def raw_to_der(sig: bytes) -> bytes:
    half = len(sig) // 2
    return encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))


def der_to_raw(sig: bytes, size: int = 32) -> bytes:
    r, s = decode_dss_signature(sig)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify(algorithm: str, cert: bytes, data: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless `signature` is `cert`'s signature over `data`."""
    der = to_der(cert)
    try:
        if algorithm == SM2_SM3:
            _verify_sm2(der, data, signature)
        elif algorithm == RSA_SHA1:
            key = x509.load_der_x509_certificate(der).public_key()
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr]
        elif algorithm == ECDSA_SHA256:
            key = x509.load_der_x509_certificate(der).public_key()
            key.verify(raw_to_der(signature), data, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
        else:
            raise InvalidSignature(f"unknown signature algorithm {algorithm!r}")
    except (_CryptoInvalid, ValueError) as exc:
        raise InvalidSignature(str(exc) or "signature does not verify") from None


def sm2_public_key(cert_der: bytes):
    from tongsuopy.crypto import serialization

    c = asn1_x509.Certificate.load(cert_der)
    return serialization.load_der_public_key(c.public_key.dump())


def _verify_sm2(cert_der: bytes, data: bytes, signature: bytes) -> None:
    from tongsuopy.crypto import hashes as t_hashes
    from tongsuopy.crypto.asymciphers import ec as t_ec

    from tongsuopy.crypto.exceptions import InvalidSignature as _TongsuoInvalid

    if len(signature) != 64:
        raise InvalidSignature(f"SM2 signature must be 64 bytes r||s, got {len(signature)}")
    try:
        sm2_public_key(cert_der).verify(raw_to_der(signature), data, t_ec.ECDSA(t_hashes.SM3()))
    except _TongsuoInvalid:
        raise InvalidSignature("SM2 signature does not verify") from None


def verify_issued_by(cert: bytes, ca_cert: bytes) -> None:
    """Raise InvalidSignature unless `cert` was signed by `ca_cert`'s key."""
    c = asn1_x509.Certificate.load(to_der(cert))
    ca_der = to_der(ca_cert)
    tbs = c["tbs_certificate"].dump()
    sig = c["signature_value"].native
    algo = c["signature_algorithm"]["algorithm"].dotted
    if algo == "1.2.156.10197.1.501":  # SM2-with-SM3
        _verify_sm2(ca_der, tbs, der_to_raw(sig))
        return
    ca = x509.load_der_x509_certificate(ca_der)
    try:
        ca.public_key().verify(sig, tbs, *_x509_params(c, ca))  # type: ignore[arg-type]
    except _CryptoInvalid:
        raise InvalidSignature("certificate not issued by this CA") from None


def _x509_params(c, ca):
    hash_cls = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}[c.hash_algo]
    if isinstance(ca.public_key(), ec.EllipticCurvePublicKey):
        return (ec.ECDSA(hash_cls()),)
    return (padding.PKCS1v15(), hash_cls())


def cert_number(serial: int) -> str:
    """A certificate's number as the card reports it: the serial in lower-case hex, zero-padded
    to whole bytes (`03000000000cde6f`)."""
    text = format(serial, "x")
    return text.zfill(len(text) + len(text) % 2)


def same_cert_no(a: str, b: str) -> bool:
    """Whether two certificate numbers are the same, whatever their case or leading zeros."""
    a, b = (a or "").strip().lower().lstrip("0"), (b or "").strip().lower().lstrip("0")
    return a == b
