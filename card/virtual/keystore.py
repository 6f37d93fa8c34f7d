"""The virtual card's private key: raw signing of a host-computed hash.

SM2 signs the given e = SM3(Z || M) with gmssl's pure-Python `CryptSM2.sign(e, k)`
(tongsuopy and `cryptography` only sign whole messages, a card only ever sees the
hash). gmssl takes e as bytes and the nonce k as a hex string that the caller must
draw; we draw it from `secrets`. It is slow (~70 signatures/s) and not constant-time,
which is fine for a test card. ECDSA and RSA use `cryptography` with Prehashed.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from card import crypto, digests
from card.apdu import HASH_LENGTHS
from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3

SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


class CardKeyError(Exception):
    """The key or certificate given to the virtual card is unusable."""


class CardKey:
    def __init__(self, key_file: Path, cert_file: Path):
        try:
            key_pem = Path(key_file).read_bytes()
            self.cert_der = crypto.to_der(Path(cert_file).read_bytes())
        except OSError as exc:
            raise CardKeyError(f"cannot read {exc.filename}: {exc.strerror}") from None
        kind = crypto.summary(self.cert_der).key_algorithm
        if kind == "sm2":
            self.algorithm = SM2_SM3
            self._sm2 = _load_sm2(key_pem, self.cert_der)
        else:
            key = serialization.load_pem_private_key(key_pem, None)
            if kind == "rsa" and isinstance(key, rsa.RSAPrivateKey):
                self.algorithm = RSA_SHA1
            elif kind == "ec" and isinstance(key, ec.EllipticCurvePrivateKey):
                self.algorithm = ECDSA_SHA256
            else:
                raise CardKeyError(f"key file {key_file} does not hold a {kind} key matching the certificate")
            self._key = key
        self._self_test()

    @property
    def hash_length(self) -> int:
        return HASH_LENGTHS[self.algorithm]

    def sign_hash(self, digest: bytes) -> bytes:
        """Sign a SIGN HASH input; raise ValueError when it is not one for this key."""
        if len(digest) != self.hash_length:
            raise ValueError(f"hash must be {self.hash_length} bytes")
        if self.algorithm == SM2_SM3:
            while True:
                k = secrets.randbelow(SM2_N - 1) + 1
                sig = self._sm2.sign(digest, format(k, "064x"))
                if sig is not None:  # None: unlucky k (r = 0 or r + k = n or s = 0)
                    return bytes.fromhex(sig)
        if self.algorithm == ECDSA_SHA256:
            der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            return crypto.der_to_raw(der)
        if not digest.startswith(digests.SHA1_DIGEST_INFO_PREFIX):
            raise ValueError("RSA input must be a SHA-1 DigestInfo")
        raw = digest[len(digests.SHA1_DIGEST_INFO_PREFIX):]
        return self._key.sign(raw, padding.PKCS1v15(), Prehashed(hashes.SHA1()))

    def _self_test(self) -> None:
        data = b"swgw virtual card self-test"
        sig = self.sign_hash(digests.signing_input(self.algorithm, self.cert_der, data))
        try:
            crypto.verify(self.algorithm, self.cert_der, data, sig)
        except crypto.InvalidSignature:
            raise CardKeyError("the private key does not match the certificate") from None


def _load_sm2(key_pem: bytes, cert_der: bytes):
    from gmssl.sm2 import CryptSM2

    try:
        _, _, der = asn1_pem.unarmor(key_pem)
        info = asn1_keys.PrivateKeyInfo.load(der)
        d = info["private_key"].parsed["private_key"].native
    except Exception as exc:  # asn1crypto raises several kinds
        raise CardKeyError(f"cannot parse the SM2 private key (PKCS#8 PEM expected): {exc}") from None
    public_hex = digests.sm2_public_point(cert_der).hex()
    return CryptSM2(private_key=format(d, "064x"), public_key=public_hex)
