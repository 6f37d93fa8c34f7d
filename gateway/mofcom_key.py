"""The MOFCOM electronic key (商务部电子钥匙): the enterprise's second signer, for licence
applications (上报并签章).

Each enterprise names its key in `[[enterprise]] mofcom_key` (a `[signers.<name>]` of kind
`pcsc` or `software`, with its own PIN source); the key is bound to the enterprise's 13-digit
MOFCOM code. The application carries the key's enveloped XML-DSig in LicenseSign; the envelope
stays signed by the operator's card. No key, a key bound to another code, or a key halted after
a refused PIN: the application fails before anything is sent. A refused PIN is never retried.
"""
from __future__ import annotations

from card.signer import CardMismatch, PinError, SignerError
from gateway.config import Enterprise


class MofcomKeyError(SignerError):
    """The application cannot be signed with the enterprise's MOFCOM key (it fails, with why)."""


class MofcomPinRefused(PinError):
    """The MOFCOM key refused its PIN: the application fails, the key is halted, nothing retries."""

    def __init__(self, key: str, cause: PinError):
        super().__init__(f"MOFCOM key {key}: {cause}", cause.tries_left)
        self.key = key


def key_name(ent: Enterprise) -> str:
    return ent.mofcom_key


def sign(rt, root, ent: Enterprise, family, sign_date: str) -> str:
    """Sign the licence application `root` in place with `ent`'s MOFCOM key; what was done."""
    name = ent.mofcom_key
    if not name:
        raise MofcomKeyError(f"enterprise {ent.code} has no MOFCOM electronic key (商务部电子钥匙): bind one "
                             f"with mofcom_key in its [[enterprise]] (a [signers.*] entry); without it MOFCOM "
                             f"cannot take the application")
    with rt.signer_lock(name):   # the signing workers one at a time: a refused PIN halts the key for the next
        return _sign(rt, name, root, ent, family, sign_date)


def _sign(rt, name: str, root, ent: Enterprise, family, sign_date: str) -> str:
    if name in rt.halted_keys:
        raise MofcomKeyError(f"MOFCOM key {name} is halted after a refused PIN ({rt.halted_keys[name]}); "
                             f"fix its PIN source and restart swgw, then resend")
    signer = rt.signer(name)
    try:
        info = signer.info()      # CardAbsent: the caller parks the message
    except CardMismatch as exc:   # the card in the reader is another enterprise's key
        raise MofcomKeyError(f"MOFCOM key {name}: {exc}") from None
    if not ent.mofcom_code:
        raise MofcomKeyError(f"enterprise {ent.code} has no mofcom_code (商务部企业代码)")
    if info.enterprise_code != ent.mofcom_code:
        raise MofcomKeyError(f"MOFCOM key {name} ({info.media_no}) is bound to MOFCOM code {info.enterprise_code}, "
                             f"not to enterprise {ent.code}'s {ent.mofcom_code}: refusing to sign")
    try:
        family.sign_document(root, signer, info, sign_date)
    except PinError as exc:
        rt.halted_keys[name] = str(exc)
        raise MofcomPinRefused(name, exc) from None
    return f"MOFCOM key {info.media_no} (certificate {info.cert_no})"
