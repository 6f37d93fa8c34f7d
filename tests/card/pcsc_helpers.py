"""Raw APDU access for tests that talk to the card below PcscSigner."""
from __future__ import annotations

import contextlib

from smartcard import scard

from card import apdu

PIN = b"123456"
ENTERPRISE = "91210200MA0000000X"


@contextlib.contextmanager
def raw_session(reader: str):
    """Yield tx(Command) -> (data, sw) on a shared connection; leaves the card as it is."""
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS
    hr, hcard, proto = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED,
                                          scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)

    def tx(cmd: apdu.Command) -> tuple[bytes, int]:
        hr, resp = scard.SCardTransmit(hcard, proto, list(cmd.encode()))
        assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
        return apdu.split_response(bytes(resp))
    try:
        yield tx
    finally:
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(ctx)
