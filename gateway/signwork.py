"""Signing workers: threads per signer, so each card signs continuously while the main
loop takes files, transmits and handles receipts — and two cards sign in parallel.

A card signs one thing at a time (a real UKey ~4 signatures/s), so the worker for a card
is the only caller of that card; the store hands each worker only its signer's messages.
A software key has `threads` workers (default 2): its SM2 signatures release the GIL, so
one worker signs while another parses, validates and stores, and the process spends the
second core on what would otherwise wait. The workers of one signer split its messages by
id (worker i of n takes the ids that are i modulo n): never the same message twice, on
SQLite (one process, no leases) as on PostgreSQL (where leases split the work between
processes as well).
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
        self.signed = signed             # called after a pass that signed: the main loop transmits
        self.threads, self._ready = [], []   # each worker's event, set when the main loop prepared messages
        for name in rt.operator_signers:
            n = getattr(rt.signer_configs[name], "threads", 1)
            for i in range(n):
                ready = threading.Event()
                self._ready.append(ready)
                self.threads.append(threading.Thread(target=self._run, args=(name, (i, n), ready), daemon=True,
                                                     name=f"sign-{name}" + (f"-{i}" if n > 1 else "")))

    def nudge(self) -> None:
        """Messages were prepared: sign them now rather than at the next poll (every worker: one
        that clears its event never swallows another's wake-up)."""
        for ready in self._ready:
            ready.set()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float = 10) -> None:
        for t in self.threads:
            t.join(timeout)

    def _run(self, signer: str, part: tuple[int, int], ready: threading.Event) -> None:
        interval = self.rt.config.gateway.poll_interval
        while not self.stop.is_set():
            ready.clear()
            try:
                with metrics.timed("sign"):
                    n = metrics.count("sign", pipeline.sign_batch(self.rt, self.batch, signer=signer, part=part))
            except Exception as exc:  # keep signing for the other messages; report
                log.error("signing pass failed; continuing", signer=signer, error=f"{type(exc).__name__}: {exc}")
                n = 0
            if n and self.signed is not None:
                self.signed()
            if not n:
                ready.wait(interval)
