"""The virtual card's side of vsmartcard's vpcd protocol (a TCP client of pcscd's vpcd driver).

vpcd (the reader driver inside pcscd) listens on 127.0.0.1:<port> (35963 for the
first slot, 35964 for the second); the card connects to it. Every message is a
2-byte big-endian length and a payload. A 1-byte payload is a control: 0 power off,
1 power on, 2 reset (no answer), 4 get ATR (answer: the ATR). Anything longer is a
C-APDU, answered with the R-APDU. While connected the reader shows a card; closing
the connection is removing the card.

Removal is simulated with SIGUSR1: it toggles the card between inserted (connected)
and removed (disconnected). TCP_NODELAY and TCP_QUICKACK (re-armed after every
recv, Linux clears it) keep each APDU round trip well under a millisecond; without
them delayed ACKs cost ~40 ms per APDU.
"""
from __future__ import annotations

import logging
import signal
import socket
import struct
import time

from card.virtual.applet import ATR, Applet

log = logging.getLogger("swgw.card.virtual")

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
DEFAULT_PORT = 35963


def _quickack(sock: socket.socket) -> None:
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        _quickack(sock)
        if not chunk:
            return None
        buf += chunk
    return buf


class VpcdLink:
    """Keeps one applet plugged into one vpcd slot until stopped."""

    def __init__(self, applet: Applet, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 retry_s: float = 0.2):
        self.applet = applet
        self.host, self.port = host, port
        self.retry_s = retry_s
        self.inserted = True
        # plain flags: signal handlers set them (a lock taken in a handler could deadlock)
        self._stopped = False
        self._sock: socket.socket | None = None

    # -- controls (signal handlers call these) --
    def toggle(self) -> None:
        self.inserted = not self.inserted
        log.info("card %s", "inserted" if self.inserted else "removed")
        if not self.inserted:
            self._drop()

    def stop(self) -> None:
        self._stopped = True
        self._drop()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGUSR1, lambda *_: self.toggle())
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())

    def _drop(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- main loop --
    def run(self) -> None:
        announced = False
        while not self._stopped:
            if not self.inserted:
                self._pause(0.5)
                continue
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError as exc:
                if not announced:
                    log.warning("vpcd not reachable on %s:%d (%s); is pcscd with vsmartcard-vpcd running? retrying",
                                self.host, self.port, exc.strerror or exc)
                    announced = True
                self._pause(self.retry_s)
                continue
            announced = False
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _quickack(sock)
            self._sock = sock
            log.info("card connected to vpcd %s:%d", self.host, self.port)
            try:
                self._serve(sock)
            except OSError as exc:
                log.info("vpcd connection lost: %s", exc)
            finally:
                self._sock = None
                sock.close()
                self.applet.reset()
            if not self._stopped and self.inserted:  # vpcd went away (pcscd restarted): reconnect
                self._pause(self.retry_s)

    def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when stopped or (re)inserted."""
        was_inserted = self.inserted
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopped and self.inserted == was_inserted:
            time.sleep(0.02)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stopped and self.inserted:
            header = _recv_exact(sock, 2)
            if header is None:
                return
            (length,) = struct.unpack(">H", header)
            payload = _recv_exact(sock, length)
            if payload is None:
                return
            if length == 1:
                ctrl = payload[0]
                if ctrl in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                    self.applet.reset()
                elif ctrl == CTRL_ATR:
                    self._send(sock, ATR)
                else:
                    log.warning("unknown vpcd control byte %d", ctrl)
                continue
            self._send(sock, self.applet.process(payload))

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)
