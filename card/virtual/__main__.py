"""Run a virtual swgw card in a vpcd reader slot.

    python -m card.virtual --key K --cert C --pin-file F --media-no N --holder H \
        --enterprise E [--cert-no X] [--port 35963] [--sign-latency-ms 240] [--tries 3] \
        [--state-file S] [--unblock]

The PIN comes from --pin-file (first line) or the SWGW_CARD_PIN environment
variable, never from the command line. The try counter persists in --state-file
(default: <key>.card-state.json). SIGUSR1 removes/reinserts the card; SIGTERM stops it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from card import apdu, crypto
from card.virtual.applet import Applet, Identity
from card.virtual.keystore import CardKey, CardKeyError
from card.virtual.state import TriesCounter
from card.virtual.vpcd import DEFAULT_PORT, VpcdLink

PIN_ENV = "SWGW_CARD_PIN"


def _read_pin(pin_file: str | None) -> bytes:
    if pin_file:
        try:
            lines = Path(pin_file).read_bytes().splitlines()
        except OSError as exc:
            raise SystemExit(f"virtual card: cannot read the PIN file {pin_file}: {exc.strerror}")
        pin = lines[0].strip() if lines else b""
    else:
        pin = os.environ.get(PIN_ENV, "").encode()
    if not pin:
        raise SystemExit(f"virtual card: no PIN; give --pin-file or set {PIN_ENV}")
    return pin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m card.virtual", description=__doc__.split("\n\n")[0])
    p.add_argument("--key", required=True, help="the card's private key (PEM)")
    p.add_argument("--cert", required=True, help="the card's certificate (PEM or DER)")
    p.add_argument("--pin-file", help=f"file whose first line is the PIN (else ${PIN_ENV})")
    p.add_argument("--media-no", required=True, help=f"介质号, at most {apdu.MEDIA_NO_MAX} characters")
    p.add_argument("--holder", required=True)
    p.add_argument("--enterprise", required=True, help="enterprise code the card is bound to")
    p.add_argument("--cert-no", help="certificate number (default: the certificate serial, hex)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="vpcd slot port (35963, 35964, ...)")
    p.add_argument("--sign-latency-ms", type=float, default=0.0, help="minimum SIGN HASH response time")
    p.add_argument("--tries", type=int, default=3, help="PIN tries before the card blocks")
    p.add_argument("--state-file", help="persistent try counter (default <key>.card-state.json)")
    p.add_argument("--unblock", action="store_true", help="issuer action: reset the try counter at start")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s virtual-card[%(process)d] %(levelname)s %(message)s")

    if len(args.media_no) > apdu.MEDIA_NO_MAX or not args.media_no.isascii():
        p.error(f"--media-no must be ASCII and at most {apdu.MEDIA_NO_MAX} characters")
    pin = _read_pin(args.pin_file)
    try:
        key = CardKey(Path(args.key), Path(args.cert))
    except CardKeyError as exc:
        raise SystemExit(f"virtual card: {exc}")
    state_file = Path(args.state_file) if args.state_file else Path(args.key + ".card-state.json")
    try:
        tries = TriesCounter(state_file, args.tries)
    except ValueError as exc:
        raise SystemExit(f"virtual card: {exc}")
    if args.unblock:
        tries.reset()
    identity = Identity(args.media_no, args.holder, args.enterprise,
                        args.cert_no or crypto.summary(key.cert_der).serial_hex)
    applet = Applet(key, identity, pin, tries, sign_latency_s=args.sign_latency_ms / 1000)
    link = VpcdLink(applet, args.host, args.port)
    link.install_signal_handlers()
    logging.info("card %s (%s, %s) for vpcd %s:%d, %d/%d PIN tries left",
                 identity.media_no, key.algorithm, identity.holder, args.host, args.port,
                 tries.left, tries.max_tries)
    link.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
