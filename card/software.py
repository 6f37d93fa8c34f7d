"""A software key standing in for the operator's card, behind the same Signer interface.

Used by the embedded default and the demo when no card reader is configured, and by
benchmarks. The key file is read once; the card-only failures (PIN, removal) do not
exist here.
"""
from __future__ import annotations

from pathlib import Path

from card import crypto
from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3, CardInfo, Signer, SignerError


class SoftwareSigner(Signer):
    def __init__(self, key_file: Path, cert_file: Path, info: CardInfo, password: bytes | None = None):
        self._info = info
        try:
            self._cert = crypto.to_der(Path(cert_file).read_bytes())
            key_pem = Path(key_file).read_bytes()
        except OSError as exc:
            raise SignerError(f"software key: cannot read {exc.filename}: {exc.strerror}") from None
        cert = crypto.summary(self._cert)
        if not info.cert_no:  # the certificate number is the certificate's serial
            from dataclasses import replace

            self._info = replace(info, cert_no=cert.serial_hex)
        kind = cert.key_algorithm
        if kind == "sm2":
            from tongsuopy.crypto import hashes as t_hashes
            from tongsuopy.crypto import serialization as t_ser
            from tongsuopy.crypto.asymciphers import ec as t_ec

            self.algorithm = SM2_SM3
            self._key = t_ser.load_pem_private_key(key_pem, password)
            self._params = (t_ec.ECDSA(t_hashes.SM3()),)
        else:
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec, padding

            self._key = serialization.load_pem_private_key(key_pem, password)
            if kind == "rsa":
                self.algorithm = RSA_SHA1
                self._params = (padding.PKCS1v15(), hashes.SHA1())
            else:
                self.algorithm = ECDSA_SHA256
                self._params = (ec.ECDSA(hashes.SHA256()),)

    def info(self) -> CardInfo:
        return self._info

    def certificate(self) -> bytes:
        return self._cert

    def sign(self, data: bytes) -> bytes:
        sig = self._key.sign(data, *self._params)
        if self.algorithm == RSA_SHA1:
            return bytes(sig)
        return crypto.der_to_raw(bytes(sig))
