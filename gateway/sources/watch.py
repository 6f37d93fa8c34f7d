"""Waking the daemon when a drop folder changes, instead of sleeping a poll interval.

On Linux the folders are watched with inotify (inotify_simple: a thin ctypes wrapper of the
kernel calls, no thread, no debouncing); a file written, moved in or its `.done` marker made wakes
the loop at once. The poll interval stays the longest sleep either way, so a folder whose changes
inotify cannot see (a network share written from another machine) is still polled, and where
inotify does not exist (`[gateway] watch = "poll"`, another platform, the kernel's watch limit
reached) the loop polls as before. How long a file must stay unchanged before it is taken
(`stable_seconds`, or the `.done` marker) is the source's rule, not the watcher's.
"""
from __future__ import annotations

import os
import select
import time
from pathlib import Path

from gateway.log import get_logger

log = get_logger("watch")


class Wakeup:
    """wait(timeout, stop) -> True when a watched folder changed or poke() was called (another
    thread has work for the loop: a signer signed), False at the timeout or when stop is set."""

    SLICE = 0.05   # how often a wait looks at the stop flag

    def __init__(self, folders: list[Path], mode: str = "auto"):
        self.inotify = None
        self.mode = "poll"
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        if mode == "poll" or not folders:
            return
        try:
            from inotify_simple import INotify, flags
        except ImportError:
            log.warning("inotify is not available here; polling", folders=[str(f) for f in folders])
            return
        try:
            ino = INotify()
            mask = flags.CLOSE_WRITE | flags.MOVED_TO | flags.CREATE | flags.ATTRIB
            for folder in {Path(f) for f in folders}:
                ino.add_watch(str(folder), mask)
        except OSError as exc:   # no inotify in this kernel, the watch limit reached
            log.warning("cannot watch the folders; polling", error=str(exc))
            return
        self.inotify, self.mode = ino, "inotify"

    def poke(self) -> None:
        try:
            os.write(self._w, b"!")
        except (BlockingIOError, OSError):   # full (already poked) or closed
            pass

    def wait(self, timeout: float, stop=None) -> bool:
        deadline = time.monotonic() + timeout
        fds = [self._r] + ([self.inotify.fileno()] if self.inotify is not None else [])
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False
            ready, _, _ = select.select(fds, [], [], min(remaining, self.SLICE))
            if ready:
                self._drain(ready)
                return True

    def _drain(self, ready) -> None:
        if self._r in ready:
            try:
                while os.read(self._r, 4096):
                    pass
            except BlockingIOError:
                pass
        if self.inotify is not None and self.inotify.fileno() in ready:
            self.inotify.read(timeout=0)

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
