"""A local exchange directory pair: envelopes out to one folder, receipts in from another.

The embedded default and the sandbox use it; the sandbox opens the same pair with
the directions swapped.
"""
from __future__ import annotations

import os
from pathlib import Path

from gateway import fsutil
from gateway.transports.base import Check, Incoming, Outgoing, Transport, TransportError


STALE_TEMP_SECONDS = 3600


class FolderTransport(Transport):
    def __init__(self, outgoing: Path, incoming: Path, on_ack: str = "delete",
                 max_bytes: int = 50 * 1024 * 1024, fsync: bool = True, name: str = "folder"):
        self.name = name
        self.outgoing = Path(outgoing)
        self.incoming = Path(incoming)
        self.on_ack = on_ack
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._staged = fsutil.Staged()   # sent, visible and durable at flush()
        for d in (self.outgoing, self.incoming):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError:  # reported where it matters: send/receive errors, `swgw doctor`
                pass
        try:   # what a process killed before its flush left (another process's batch is younger)
            fsutil.remove_stale_temps(self.outgoing, STALE_TEMP_SECONDS)
        except OSError:
            pass

    def send(self, item: Outgoing) -> None:
        """With fsync (the default) the file is written now and appears at flush(), durable with
        the rest of the batch; without, it appears now."""
        path = fsutil.inside(self.outgoing, item.name)
        try:
            if self.fsync:
                self._staged.add(path, item.data)
            else:
                fsutil.atomic_write(path, item.data, fsync=False)
        except OSError as exc:
            raise TransportError(f"folder {self.outgoing}: cannot write {item.name}: {exc.strerror}") from None

    def flush(self) -> None:
        """The files sent since the last flush appear in the folder, fsynced with their names; if
        that fails, none of those not yet renamed does (TransportError: send them again)."""
        try:
            self._staged.commit()
        except OSError as exc:
            raise TransportError(f"folder {self.outgoing}: cannot make the files sent durable: {exc}") from None

    def receive(self, limit: int = 100) -> list[Incoming]:
        out = []
        for path in fsutil.regular_files(self.incoming)[:limit]:
            try:
                data = fsutil.read_bounded(path, self.max_bytes)
            except FileNotFoundError:
                continue
            except fsutil.UnsafePath as exc:
                raise TransportError(f"folder {self.incoming}: {exc}", retryable=False) from None
            out.append(Incoming(ref=path.name, name=path.name, data=data))
        return out

    def ack(self, ref: str) -> None:
        path = fsutil.inside(self.incoming, ref)
        try:
            if self.on_ack == "move":
                done = self.incoming / ".done"
                done.mkdir(exist_ok=True)
                os.replace(path, done / ref)
            else:
                path.unlink()
        except FileNotFoundError:
            pass

    def check(self) -> list[Check]:
        checks = []
        for label, d in (("outgoing", self.outgoing), ("incoming", self.incoming)):
            ok = d.is_dir() and os.access(d, os.W_OK)
            checks.append(Check(f"folder {label} {d}", ok, "" if ok else "missing or not writable"))
        return checks
