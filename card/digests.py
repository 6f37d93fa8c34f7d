"""What the host hashes before asking a card to sign (the SIGN HASH input).

SM2 (GB/T 32918.2): e = SM3(Z || M), Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
with the default user ID 1234567812345678 and the signer's public key (xA, yA) taken
from its certificate. ECDSA P-256: SHA-256(M). RSA: the DER DigestInfo of SHA-1(M)
(PKCS#1 v1.5 signs DigestInfo; the card pads and exponentiates).
"""
from __future__ import annotations

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes

from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3

SM2_DEFAULT_ID = b"1234567812345678"

_SM2_A = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC")
_SM2_B = bytes.fromhex("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93")
_SM2_GX = bytes.fromhex("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7")
_SM2_GY = bytes.fromhex("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")

SHA1_DIGEST_INFO_PREFIX = bytes.fromhex("3021300906052B0E03021A05000414")


def _digest(algorithm: hashes.HashAlgorithm, *parts: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    for part in parts:
        h.update(part)
    return h.finalize()


def sm3(*parts: bytes) -> bytes:
    return _digest(hashes.SM3(), *parts)


def sm2_public_point(cert_der: bytes) -> bytes:
    """The 64-byte x||y of the certificate's SM2 public key."""
    point = asn1_x509.Certificate.load(cert_der).public_key["public_key"].native
    if len(point) != 65 or point[0] != 0x04:
        raise ValueError("the certificate's SM2 public key is not an uncompressed point")
    return bytes(point[1:])


def sm2_z(public_point: bytes, user_id: bytes = SM2_DEFAULT_ID) -> bytes:
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return sm3(entl, user_id, _SM2_A, _SM2_B, _SM2_GX, _SM2_GY, public_point)


def signing_input(algorithm: str, cert_der: bytes, data: bytes) -> bytes:
    """The bytes SIGN HASH takes for `data` under `algorithm` and this certificate."""
    if algorithm == SM2_SM3:
        return sm3(sm2_z(sm2_public_point(cert_der)), data)
    if algorithm == ECDSA_SHA256:
        return _digest(hashes.SHA256(), data)
    if algorithm == RSA_SHA1:
        return SHA1_DIGEST_INFO_PREFIX + _digest(hashes.SHA1(), data)
    raise ValueError(f"unknown signature algorithm {algorithm!r}")
