"""The daemon's loop wakes when a drop folder changes (inotify) or a signer pokes it, not a poll
interval later; with watch = "poll" only the interval wakes it."""
from __future__ import annotations

import threading
import time

import pytest

from gateway.sources.watch import Wakeup


def test_a_file_dropped_wakes_the_wait(tmp_path):
    w = Wakeup([tmp_path], "auto")
    if w.mode != "inotify":
        pytest.skip("inotify is not available on this platform")
    try:
        staged = tmp_path.parent / f"{tmp_path.name}.staged"
        staged.write_text("x")   # written elsewhere, then moved in: one event (MOVED_TO)
        threading.Timer(0.1, lambda: staged.rename(tmp_path / "a.csv")).start()
        t0 = time.monotonic()
        assert w.wait(5.0) is True
        assert time.monotonic() - t0 < 2.0
        assert w.wait(0.2) is False, "the event was taken; nothing else happened"
        threading.Timer(0.1, lambda: (tmp_path / "b.csv").write_text("y")).start()
        assert w.wait(5.0) is True, "a file written in place wakes it too (create, then close-write)"
    finally:
        w.close()


def test_poke_and_stop(tmp_path):
    w = Wakeup([tmp_path], "poll")
    try:
        assert w.mode == "poll"
        (tmp_path / "b.csv").write_text("x")     # polling: a file does not wake it
        t0 = time.monotonic()
        assert w.wait(0.3) is False and time.monotonic() - t0 >= 0.29
        threading.Timer(0.1, w.poke).start()
        t0 = time.monotonic()
        assert w.wait(5.0) is True and time.monotonic() - t0 < 2.0
        stop = threading.Event()
        threading.Timer(0.1, stop.set).start()
        t0 = time.monotonic()
        assert w.wait(5.0, stop) is False and time.monotonic() - t0 < 2.0
    finally:
        w.close()
