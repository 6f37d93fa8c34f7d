"""Signing workers: one thread per signer, so each card signs continuously while the main
loop takes files, transmits and handles receipts — and two cards sign in parallel.

A card signs one thing at a time (a real UKey ~4 signatures/s), so the worker for a card
is the only caller of that card; the store hands each worker only its signer's messages.
"""
from __future__ import annotations

import threading

from gateway import metrics, pipeline
from gateway.log import get_logger

log = get_logger("signing")


class SigningWorkers:
    def __init__(self, rt, stop: threading.Event, batch: int = 50, signed=None):
        self.rt = rt
        self.stop = stop
        self.batch = batch
        self.ready = threading.Event()   # set by the main loop when it prepared messages
        self.signed = signed             # called after a pass that signed: the main loop transmits
        self.threads = [threading.Thread(target=self._run, args=(name,), name=f"sign-{name}", daemon=True)
                        for name in rt.operator_signers]

    def nudge(self) -> None:
        """Messages were prepared: sign them now rather than at the next poll."""
        self.ready.set()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float = 10) -> None:
        for t in self.threads:
            t.join(timeout)

    def _run(self, signer: str) -> None:
        interval = self.rt.config.gateway.poll_interval
        while not self.stop.is_set():
            self.ready.clear()
            try:
                with metrics.timed("sign"):
                    n = metrics.count("sign", pipeline.sign_batch(self.rt, self.batch, signer=signer))
            except Exception as exc:  # keep signing for the other messages; report
                log.error("signing pass failed; continuing", signer=signer, error=f"{type(exc).__name__}: {exc}")
                n = 0
            if n and self.signed is not None:
                self.signed()
            if not n:
                self.ready.wait(interval)
