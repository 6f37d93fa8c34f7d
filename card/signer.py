"""The interface between the gateway and whatever holds the operator's key."""
from __future__ import annotations

import abc
import contextlib
import contextvars
from dataclasses import dataclass

# Signature algorithms a signer may implement, by the name used in config.
SM2_SM3 = "sm2-sm3"
RSA_SHA1 = "rsa-sha1"
ECDSA_SHA256 = "ecdsa-sha256"
ALGORITHMS = (SM2_SM3, RSA_SHA1, ECDSA_SHA256)


@dataclass(frozen=True)
class CardInfo:
    """What a card (or the key standing in for one) says about itself."""

    media_no: str          # 介质号, the IC card number carried in AddInfo/IcCard (<= 13)
    holder: str            # operator name on the card
    enterprise_code: str   # the enterprise the card is bound to (USCC or customs code)
    cert_no: str           # certificate number, carried as KeyInfo/KeyName
    reader: str = ""       # PC/SC reader name, empty for a software key


class SignerError(Exception):
    """A signer could not sign. Subclasses say whether to stop, park or retry."""


class PinError(SignerError):
    """The PIN was refused or the card is blocked: stop all signing, never retry."""

    def __init__(self, message: str, tries_left: int | None = None):
        super().__init__(message)
        self.tries_left = tries_left


class CardAbsent(SignerError):
    """No card in the reader (removed, or reader gone): park and try again later."""


class CardMismatch(SignerError):
    """The card belongs to another enterprise than the message's sender."""


class Signer(abc.ABC):
    """Signs bytes with a key the caller never sees.

    `sign(data)` returns the signature over `data` under `algorithm`:
    for SM2/SM3 the raw 64-byte r||s over SM3(Z || data) with the default user ID,
    for RSA-SHA1 PKCS#1 v1.5, for ECDSA P-256 raw r||s over SHA-256.
    """

    algorithm: str = SM2_SM3

    @abc.abstractmethod
    def info(self) -> CardInfo:
        """The card's identity. Raises CardAbsent if the card is not there."""

    @abc.abstractmethod
    def certificate(self) -> bytes:
        """The signing certificate, DER."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign `data`. Raises PinError, CardAbsent or SignerError."""

    def close(self) -> None:  # pragma: no cover - default no-op
        """Release the reader / key."""


@dataclass(frozen=True)
class Purpose:
    """What a signature is for: a remote signer sends it with the bytes (the card host checks the
    enterprise and keeps the business key in its audit log); a local card ignores it."""

    enterprise: str
    business_key: str


_purpose: contextvars.ContextVar[Purpose | None] = contextvars.ContextVar("sign_purpose", default=None)


@contextlib.contextmanager
def signing_for(enterprise: str, business_key: str):
    """Within this block, signatures are for this enterprise's message `business_key`."""
    token = _purpose.set(Purpose(enterprise, business_key))
    try:
        yield
    finally:
        _purpose.reset(token)


def current_purpose() -> Purpose | None:
    return _purpose.get()
