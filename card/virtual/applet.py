"""The virtual card's application: the swgw card profile's APDUs (see `card.apdu`).

Pure logic, no I/O but the try counter's file: `process(c_apdu) -> r_apdu`.
Security state (application selected, PIN verified) lives until power-off or reset,
as on a real card; SELECT of this application again keeps it.
"""
from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

from card import apdu
from card.virtual.keystore import CardKey
from card.virtual.state import TriesCounter

log = logging.getLogger("swgw.card.virtual")


def make_atr(historical: bytes = b"SWGW") -> bytes:
    """TS=3B, T0 announces TD1 and the historical bytes, TD1: T=0 + TD2, TD2: T=1; TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3B" + body + bytes([tck])


ATR = make_atr()


@dataclass(frozen=True)
class Identity:
    media_no: str
    holder: str
    enterprise_code: str
    cert_no: str


class Applet:
    def __init__(self, key: CardKey, identity: Identity, pin: bytes, tries: TriesCounter,
                 sign_latency_s: float = 0.0):
        if not 1 <= len(pin) <= apdu.MAX_PIN_LENGTH:
            raise ValueError(f"the card PIN must be 1..{apdu.MAX_PIN_LENGTH} bytes")
        self._key = key
        self._pin = pin
        self._tries = tries
        self._latency = sign_latency_s
        self._info = apdu.encode_card_info(apdu.CardProfile(
            media_no=identity.media_no, holder=identity.holder,
            enterprise_code=identity.enterprise_code, cert_no=identity.cert_no,
            algorithm=key.algorithm, cert_length=len(key.cert_der)))
        self._pending = b""  # response bytes still to fetch with GET RESPONSE
        self.reset()

    def __repr__(self) -> str:
        return "Applet(<key and PIN hidden>)"

    def reset(self) -> None:
        """Power-on, power-off or reset: all security state is lost."""
        self._selected = False
        self._verified = False
        self._pending = b""

    def process(self, c_apdu: bytes) -> bytes:
        try:
            cmd = apdu.parse_command(c_apdu)
        except ValueError:
            return apdu.response(sw=apdu.SW_WRONG_LENGTH)
        try:
            data, sw = self._dispatch(cmd)
        except Exception:  # a bug must not kill the card; it answers 6F00 like a real one
            log.exception("card: internal error on %s", cmd.header())
            return apdu.response(sw=apdu.SW_UNKNOWN)
        if cmd.ins != apdu.INS_GET_RESPONSE:
            self._pending = b""
        if sw == apdu.SW_OK and cmd.le is not None and len(data) > cmd.le:
            data, self._pending = data[:cmd.le], data[cmd.le:]
            sw = 0x6100 | (min(len(self._pending), 256) & 0xFF)
        return apdu.response(data, sw)

    def _dispatch(self, cmd: apdu.Command) -> tuple[bytes, int]:
        if cmd.cla not in (apdu.CLA_ISO, apdu.CLA_PROPRIETARY):
            return b"", apdu.SW_CLA_NOT_SUPPORTED
        if cmd.ins == apdu.INS_SELECT:
            return self._select(cmd)
        if cmd.ins == apdu.INS_GET_RESPONSE:
            out, self._pending = self._pending[:cmd.le or 256], self._pending[cmd.le or 256:]
            if not out:
                return b"", apdu.SW_CONDITIONS_NOT_SATISFIED
            return out, (0x6100 | (min(len(self._pending), 256) & 0xFF)) if self._pending else apdu.SW_OK
        if not self._selected:
            return b"", apdu.SW_CONDITIONS_NOT_SATISFIED
        handler = {
            apdu.INS_VERIFY: self._verify,
            apdu.INS_GET_DATA: self._card_info,
            apdu.INS_READ_BINARY: self._read_certificate,
            apdu.INS_PSO: self._sign,
        }.get(cmd.ins)
        if handler is None:
            return b"", apdu.SW_INS_NOT_SUPPORTED
        return handler(cmd)

    def _select(self, cmd):
        if cmd.p1 != apdu.P1_SELECT_BY_AID:
            return b"", apdu.SW_WRONG_P1P2
        if cmd.data != apdu.AID:
            self._selected = self._verified = False
            return b"", apdu.SW_NOT_FOUND
        self._selected = True
        return b"", apdu.SW_OK

    def _verify(self, cmd):
        if (cmd.p1, cmd.p2) != (0x00, apdu.PIN_REF):
            return b"", apdu.SW_REFERENCE_NOT_FOUND
        if self._tries.blocked:
            return b"", apdu.SW_PIN_BLOCKED
        if not cmd.data:  # status query: never uses a try
            return b"", apdu.SW_OK if self._verified else 0x63C0 | self._tries.left
        if len(cmd.data) > apdu.MAX_PIN_LENGTH:
            return b"", apdu.SW_WRONG_LENGTH
        self._verified = False
        self._tries.consume()  # persisted before comparing
        if hmac.compare_digest(cmd.data, self._pin):
            self._tries.reset()
            self._verified = True
            return b"", apdu.SW_OK
        log.warning("card: wrong PIN presented, %d tries left", self._tries.left)
        return b"", 0x63C0 | self._tries.left

    def _card_info(self, cmd):
        if (cmd.p1, cmd.p2) != apdu.CARD_INFO_P1P2:
            return b"", apdu.SW_WRONG_P1P2
        return self._info, apdu.SW_OK

    def _read_certificate(self, cmd):
        offset = cmd.p1 << 8 | cmd.p2
        cert = self._key.cert_der
        if cmd.p1 & 0x80 or offset > len(cert):
            return b"", apdu.SW_WRONG_PARAMETERS
        return cert[offset:offset + (cmd.le or 256)], apdu.SW_OK

    def _sign(self, cmd):
        if (cmd.p1, cmd.p2) != apdu.PSO_SIGN_P1P2:
            return b"", apdu.SW_WRONG_P1P2
        if not self._verified:
            return b"", apdu.SW_SECURITY_NOT_SATISFIED
        if len(cmd.data) != self._key.hash_length:
            return b"", apdu.SW_WRONG_LENGTH
        started = time.monotonic()
        try:
            sig = self._key.sign_hash(cmd.data)
        except ValueError:
            return b"", apdu.SW_WRONG_DATA
        remaining = self._latency - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        return sig, apdu.SW_OK
