"""A Signer on a swgw-profile card in a PC/SC reader (pyscard's `smartcard.scard` API).

    signer = PcscSigner(pin=lambda: read_pin(), media_no="ZK1234567890A",
                        enterprise_code="91210200MA0000000X")
    signer.info()           # CardInfo; CardAbsent when no such card is in any reader
    signer.sign(data)       # host hashes (card.digests), the card signs the hash

The signer connects lazily and reconnects on its own: a removed card raises
CardAbsent, and when the card is back a later call reconnects, re-selects and
re-presents the PIN that the card already accepted once. A refused PIN raises
PinError and the signer then refuses to present any PIN again until the operator
calls `reset_pin(new_pin)`: the gateway never burns the card's tries. The PIN never
appears in an exception, a log line or a repr. All card access is serialised by a lock.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Union

from smartcard import scard

from card import apdu, crypto, digests
from card.signer import (
    ECDSA_SHA256,
    RSA_SHA1,
    SM2_SM3,
    CardAbsent,
    CardInfo,
    CardMismatch,
    PinError,
    Signer,
    SignerError,
)

log = logging.getLogger("swgw.card")

PinSource = Union[bytes, str, Callable[[], Union[bytes, str]]]

_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_M = 0xFFFFFFFF

# PC/SC results that mean "no card / reader gone / service gone": park and retry later.
_ABSENT = {c & _M for c in (
    scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_NO_READERS_AVAILABLE,
)}
_SERVICE_GONE = {c & _M for c in (
    scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_INVALID_HANDLE,
)}
_RESET = scard.SCARD_W_RESET_CARD & _M


def _pcsc_message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult).rstrip('.')} (0x{hresult & _M:08X})"


class _Pin:
    """Holds the PIN or where to get it; shows nothing of it."""

    def __init__(self, source: PinSource):
        self._source = source

    def get(self) -> bytes:
        value = self._source() if callable(self._source) else self._source
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)) or not 1 <= len(value) <= apdu.MAX_PIN_LENGTH:
            raise SignerError(f"the configured PIN is unusable: it must be 1..{apdu.MAX_PIN_LENGTH} bytes")
        return bytes(value)

    def __repr__(self) -> str:
        return "<PIN hidden>"


# --- the PC/SC link -----------------------------------------------------------------

class _Context:
    """One PC/SC context, re-established after pcscd restarts."""

    def __init__(self) -> None:
        self._handle = None

    def get(self):
        if self._handle is None:
            hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != scard.SCARD_S_SUCCESS:
                raise CardAbsent(f"PC/SC service (pcscd) not reachable: {_pcsc_message(hresult)}; "
                                 "start pcscd (card.testbed.ensure_pcscd) and retry")
            self._handle = handle
        return self._handle

    def drop(self) -> None:
        if self._handle is not None:
            scard.SCardReleaseContext(self._handle)
            self._handle = None

    def readers(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self.get(), [])
        code = hresult & _M
        if code == scard.SCARD_E_NO_READERS_AVAILABLE & _M:
            return []
        if code in _SERVICE_GONE:
            self.drop()
            hresult, names = scard.SCardListReaders(self.get(), [])
            if hresult & _M == scard.SCARD_E_NO_READERS_AVAILABLE & _M:
                return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise CardAbsent(f"cannot list PC/SC readers: {_pcsc_message(hresult)}")
        return list(names)


class _Card:
    """A connection to the card in one reader."""

    def __init__(self, ctx: _Context, reader: str):
        self.reader = reader
        hresult, self._hcard, self._protocol = scard.SCardConnect(
            ctx.get(), reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS)
        code = hresult & _M
        if code in _SERVICE_GONE:
            ctx.drop()
        if hresult != scard.SCARD_S_SUCCESS:
            if code in _ABSENT or code in _SERVICE_GONE:
                raise CardAbsent(f"no card in reader {reader!r}: {_pcsc_message(hresult)}")
            raise SignerError(f"cannot connect to the card in reader {reader!r}: {_pcsc_message(hresult)}")

    def present(self) -> bool:
        hresult = scard.SCardStatus(self._hcard)[0]
        return hresult == scard.SCARD_S_SUCCESS

    def transmit(self, cmd: apdu.Command, operation: str) -> tuple[bytes, int]:
        """Send one command, following 61xx (GET RESPONSE) and 6Cxx (retry with Le)."""
        log.debug("card %s: %s %s", self.reader, operation, cmd.header())
        data, sw = self._exchange(cmd, operation)
        if sw >> 8 == 0x6C:
            data, sw = self._exchange(apdu.Command(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, (sw & 0xFF) or 256),
                                      operation)
        while sw >> 8 == 0x61:
            more, sw = self._exchange(apdu.get_response(sw & 0xFF), operation)
            data += more
        return data, sw

    def _exchange(self, cmd: apdu.Command, operation: str) -> tuple[bytes, int]:
        hresult, rapdu = scard.SCardTransmit(self._hcard, self._protocol, list(cmd.encode()))
        if hresult != scard.SCARD_S_SUCCESS:
            code = hresult & _M
            if code == _RESET:
                raise _CardWasReset()
            if code in _ABSENT or code in _SERVICE_GONE:
                raise CardAbsent(f"{operation}: card in reader {self.reader!r} is gone: {_pcsc_message(hresult)}")
            raise SignerError(f"{operation}: PC/SC transmit to reader {self.reader!r} failed: {_pcsc_message(hresult)}")
        return apdu.split_response(bytes(rapdu))

    def disconnect(self, reset: bool = False) -> None:
        scard.SCardDisconnect(self._hcard, scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD)


class _CardWasReset(SignerError):
    """Someone reset the card under us: reconnect, the PIN state is lost."""


def _select_and_read_info(card: _Card) -> apdu.CardProfile:
    _, sw = card.transmit(apdu.select(), "SELECT swgw application")
    apdu.check_sw(sw, f"SELECT swgw application in reader {card.reader!r}")
    data, sw = card.transmit(apdu.get_card_info(), "GET CARD INFO")
    apdu.check_sw(sw, "GET CARD INFO")
    return apdu.decode_card_info(data)


def _read_certificate(card: _Card, length: int) -> bytes:
    cert = b""
    while len(cert) < length:
        chunk, sw = card.transmit(apdu.read_certificate(len(cert), min(256, length - len(cert))), "READ CERTIFICATE")
        apdu.check_sw(sw, f"READ CERTIFICATE at offset {len(cert)}")
        if not chunk:
            raise SignerError(f"READ CERTIFICATE: the card stopped at {len(cert)} of {length} bytes")
        cert += chunk
    return cert


def _to_info(profile: apdu.CardProfile, reader: str) -> CardInfo:
    return CardInfo(media_no=profile.media_no, holder=profile.holder,
                    enterprise_code=profile.enterprise_code, cert_no=profile.cert_no, reader=reader)


# --- module functions -----------------------------------------------------------------

def list_readers() -> list[str]:
    """Names of the PC/SC readers (empty if none). CardAbsent if pcscd is not reachable."""
    ctx = _Context()
    try:
        return ctx.readers()
    finally:
        ctx.drop()


def card_info(reader: str) -> CardInfo:
    """What the card in `reader` says about itself. CardAbsent if no card is there,
    CardError (a SignerError, sw 6A82) if it is not a swgw-profile card."""
    ctx = _Context()
    try:
        card = _Card(ctx, reader)
        try:
            return _to_info(_select_and_read_info(card), reader)
        except _CardWasReset:
            raise CardAbsent(f"the card in reader {reader!r} was reset while being read; retry") from None
        finally:
            card.disconnect()
    finally:
        ctx.drop()


def find_card(media_no: str) -> str:
    """The reader holding the swgw card with this media number; CardAbsent if none does."""
    for reader in list_readers():
        try:
            if card_info(reader).media_no == media_no:
                return reader
        except SignerError:
            continue
    raise CardAbsent(f"no card with media number {media_no} in any reader")


# --- the signer ---------------------------------------------------------------------

class PcscSigner(Signer):
    """Signs with the swgw-profile card chosen by reader name substring and/or media number.

    pin: the PIN as bytes/str, or a callable returning it (called when the PIN is
    presented). reader: a substring of the reader name (None: any reader).
    media_no: the card's media number 介质号 (None: whichever swgw card is found first;
    once seen, the signer sticks to that card). enterprise_code: when given, a card
    bound to another enterprise raises CardMismatch.
    """

    def __init__(self, pin: PinSource, *, reader: str | None = None, media_no: str | None = None,
                 enterprise_code: str | None = None):
        self._pin = _Pin(pin)
        self._reader_filter = reader
        self._media_no = media_no
        self._enterprise_code = enterprise_code
        self._lock = threading.RLock()
        self._ctx = _Context()
        self._card: _Card | None = None
        self._profile: apdu.CardProfile | None = None
        self._cert: bytes | None = None
        self._verified = False          # PIN verified in the current card session
        self._pin_accepted = False      # this PIN was accepted by this card once
        self._pin_failure: PinError | None = None

    def __repr__(self) -> str:
        return (f"PcscSigner(reader={self._reader_filter!r}, media_no={self._media_no!r}, "
                f"connected={self._card.reader if self._card else None!r})")

    # -- Signer interface --
    @property
    def algorithm(self) -> str:  # type: ignore[override]
        """The card's algorithm; connects if not known yet (CardAbsent if no card)."""
        with self._lock:
            if self._profile is None:
                self._run(self._connected)
            return self._profile.algorithm if self._profile else SM2_SM3

    def info(self) -> CardInfo:
        with self._lock:
            card = self._run(self._connected)
            return _to_info(self._profile, card.reader)

    def certificate(self) -> bytes:
        with self._lock:
            if self._cert is None:
                self._run(self._connected)
            return self._cert

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self._refuse_after_pin_failure()
            return self._run(lambda: self._sign_once(data))

    def _run(self, operation):
        """Run a card operation; when another program resets the card under us,
        reconnect (re-verifying the accepted PIN) and run it once more."""
        for attempt in (1, 2):
            try:
                return operation()
            except _CardWasReset:
                self._forget_card()
                if attempt == 2:
                    raise SignerError("the card was reset twice in a row by another program; retry later") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Disconnect, resetting the card so that its PIN state does not outlive us."""
        with self._lock:
            if self._card is not None:
                self._card.disconnect(reset=True)
                self._card = None
            self._verified = False
            self._ctx.drop()

    # -- PIN management --
    def verify_pin(self) -> None:
        """Present the PIN now (e.g. `swgw card verify`); PinError/CardAbsent as for sign."""
        with self._lock:
            self._refuse_after_pin_failure()

            def present_pin():
                self._connected()
                self._verify()
            self._run(present_pin)

    def reset_pin(self, new_pin: PinSource) -> None:
        """Operator action after a PinError: use this PIN from now on; the next
        operation presents it once. Does not talk to the card."""
        with self._lock:
            self._pin = _Pin(new_pin)
            self._pin_failure = None
            self._pin_accepted = False
            self._verified = False

    @property
    def pin_failure(self) -> PinError | None:
        """The PinError that stopped this signer, until reset_pin()."""
        return self._pin_failure

    def pin_tries_left(self) -> int | None:
        """Tries left on the card (VERIFY without data: uses no try). None when the PIN
        is verified in the current card session (the card does not say the count then)."""
        with self._lock:
            _, sw = self._run(lambda: self._connected().transmit(apdu.verify_status(), "VERIFY (status)"))
            if sw == apdu.SW_OK:
                return None
            if sw & 0xFFF0 == 0x63C0:
                return sw & 0x0F
            if sw == apdu.SW_PIN_BLOCKED:
                return 0
            apdu.check_sw(sw, "VERIFY (status)")
            return None

    # -- internals --
    def _refuse_after_pin_failure(self) -> None:
        if self._pin_failure is not None:
            f = self._pin_failure
            raise PinError(f"signing stopped after a PIN failure ({f}); the signer will not present "
                           "the PIN again until the operator resets it", tries_left=f.tries_left)

    def _sign_once(self, data: bytes) -> bytes:
        card = self._connected()
        if not self._verified:
            self._verify()
        digest = digests.signing_input(self._profile.algorithm, self._cert, data)
        sig, sw = card.transmit(apdu.sign_hash(digest), "SIGN HASH")
        if sw == apdu.SW_SECURITY_NOT_SATISFIED and self._pin_accepted:
            # the card lost its PIN state without a reset we saw; present the known-good PIN once
            self._verified = False
            self._verify()
            sig, sw = card.transmit(apdu.sign_hash(digest), "SIGN HASH")
        apdu.check_sw(sw, f"SIGN HASH on card {self._profile.media_no}")
        expected = {SM2_SM3: 64, ECDSA_SHA256: 64}.get(self._profile.algorithm)
        if expected and len(sig) != expected:
            raise SignerError(f"SIGN HASH: the card returned {len(sig)} bytes, expected a {expected}-byte r||s")
        return sig

    def _verify(self) -> None:
        """Present the PIN once, after checking the card is not blocked."""
        self._refuse_after_pin_failure()
        card, media = self._card, self._profile.media_no
        _, sw = card.transmit(apdu.verify_status(), "VERIFY (status)")
        if sw == apdu.SW_OK:
            self._verified = True
            return
        try:
            if sw == apdu.SW_PIN_BLOCKED or sw == 0x63C0:
                apdu.check_sw(apdu.SW_PIN_BLOCKED, f"VERIFY PIN on card {media}")
            _, sw = card.transmit(apdu.verify(self._pin.get()), "VERIFY PIN")
            apdu.check_sw(sw, f"VERIFY PIN on card {media}")
        except PinError as exc:
            self._pin_failure = exc
            self._verified = False
            log.error("card %s: %s", media, exc)
            raise
        self._verified = True
        self._pin_accepted = True
        log.info("card %s: PIN verified", media)

    def _forget_card(self) -> None:
        if self._card is not None:
            try:
                self._card.disconnect()
            except Exception:  # the handle may already be dead
                pass
        self._card = None
        self._verified = False

    def _connected(self) -> _Card:
        """The live card connection, (re)connecting and checking identity as needed."""
        if self._card is not None:
            if self._card.present():
                return self._card
            self._forget_card()
        try:
            card, profile = self._find()
        except _CardWasReset:
            raise CardAbsent("the card was reset while connecting; retry") from None
        try:
            self._check_identity(profile, card.reader)
            cert = _read_certificate(card, profile.cert_length)
        except BaseException:
            card.disconnect()
            raise
        if self._cert is not None and cert != self._cert:
            card.disconnect()
            raise CardMismatch(f"the card in reader {card.reader!r} (media number {profile.media_no}) now "
                               "holds another certificate than before; refusing to use it")
        crypto_kind = crypto.summary(cert).key_algorithm
        if {"sm2": SM2_SM3, "ec": ECDSA_SHA256, "rsa": RSA_SHA1}[crypto_kind] != profile.algorithm:
            card.disconnect()
            raise SignerError(f"card {profile.media_no} says {profile.algorithm} but its certificate holds "
                              f"an {crypto_kind} key")
        self._card, self._profile, self._cert = card, profile, cert
        self._media_no = profile.media_no  # stick to this card from now on
        self._verified = False
        log.info("card %s connected in reader %r", profile.media_no, card.reader)
        return card

    def _find(self) -> tuple[_Card, apdu.CardProfile]:
        readers = [r for r in self._ctx.readers() if not self._reader_filter or self._reader_filter in r]
        if not readers:
            where = f"matching {self._reader_filter!r}" if self._reader_filter else "at all"
            raise CardAbsent(f"no PC/SC reader {where}; connect the reader")
        mismatches = []
        for reader in readers:
            try:
                card = _Card(self._ctx, reader)
            except CardAbsent:
                continue
            try:
                profile = _select_and_read_info(card)
            except (SignerError, _CardWasReset):
                card.disconnect()
                continue
            if self._media_no is None or profile.media_no == self._media_no:
                return card, profile
            mismatches.append(f"{reader!r} holds {profile.media_no}")
            card.disconnect()
        wanted = f"card {self._media_no}" if self._media_no else "swgw card"
        if mismatches and self._reader_filter:
            raise CardMismatch(f"{wanted} is not in the reader: {'; '.join(mismatches)}; insert the right card")
        raise CardAbsent(f"no {wanted} in reader(s) {', '.join(repr(r) for r in readers)}; insert the card "
                         "(signing resumes when it is back)")

    def _check_identity(self, profile: apdu.CardProfile, reader: str) -> None:
        if self._enterprise_code and profile.enterprise_code != self._enterprise_code:
            raise CardMismatch(f"card {profile.media_no} in reader {reader!r} is bound to enterprise "
                               f"{profile.enterprise_code}, not {self._enterprise_code}")
