"""A drop folder: take a file only when complete, claim it atomically, archive after commit.

Layout under the inbox folder:
  <name>            dropped by the ERP
  .work/<name>      claimed (renamed) before anything else; a crash leaves it here
  .archive/<date>/  taken and committed
  .error/           refused, beside <name>.error.json saying why

With several `swgw run` processes on one folder (gateway/cluster.py) each claims into its own
.work/<process>/: the rename is the claim, so each file is taken once; the leader takes over
(`adopt`) the claimed files of a process that died.

A file is complete when its size and mtime have not changed for `stable_seconds`
(measured by our own clock across polls), or, with `done_marker`, once `<name>.done`
exists. Links and non-regular files are never taken.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from gateway import fsutil


@dataclass(frozen=True)
class Claimed:
    name: str          # original name in the inbox
    path: Path         # where it is now (.work/...)
    recovered: bool = False   # found in .work/ at start (claimed before a crash), not claimed now


class FolderSource:
    def __init__(self, inbox: Path, stable_seconds: float = 2.0, done_marker: bool = False):
        self.inbox = Path(inbox)
        self.stable_seconds = stable_seconds
        self.done_marker = done_marker
        self.work = self.inbox / ".work"
        self._seen: dict[str, tuple[int, int, float]] = {}
        self.peers = 1     # processes polling this folder (gateway/cluster.py)
        for d in (self.inbox, self.work):
            d.mkdir(parents=True, exist_ok=True)

    def own(self, name: str) -> None:
        """Claim into .work/<name>/ (one of several processes on this folder)."""
        self.work = self.inbox / ".work" / name
        self.work.mkdir(parents=True, exist_ok=True)

    def adopt(self, alive: set[str]) -> int:
        """Move into our work folder the files claimed by processes not in `alive` (work-folder
        names), and those claimed before the folder was shared; `recover` then takes them."""
        top = self.inbox / ".work"
        if self.work == top:
            return 0
        n = 0
        folders = [top] + [d for d in top.iterdir() if d.is_dir() and not d.is_symlink() and d.name not in alive]
        for folder in folders:
            for path in fsutil.regular_files(folder):
                target = self._free_name(path.name)
                try:
                    os.rename(path, target)   # atomic: two leaders in a split second cannot both take it
                    n += 1
                except FileNotFoundError:
                    continue
            if folder != top:
                try:
                    folder.rmdir()
                except OSError:
                    pass
        return n

    def recover(self) -> list[Claimed]:
        """Files claimed before a crash and not yet archived."""
        return [Claimed(p.name, p, recovered=True) for p in fsutil.regular_files(self.work)]

    def poll(self, now: float | None = None, budget: int | None = None) -> list[Claimed]:
        """Claim the ready files (all, or about `budget` bytes of them: at least one); the rest
        stay in the inbox, ready for the next poll."""
        now = time.monotonic() if now is None else now
        files = fsutil.regular_files(self.inbox)
        names = {p.name for p in files}
        ready = []
        for path in files:
            if path.name.endswith(".done"):
                continue
            if self.done_marker:
                marker = path.with_name(path.name + ".done")
                if not marker.exists():
                    continue
            else:
                st = path.stat()
                sig = (st.st_size, st.st_mtime_ns)
                prev = self._seen.get(path.name)
                if prev is None or prev[:2] != sig:
                    self._seen[path.name] = (*sig, now)
                    continue
                if now - prev[2] < self.stable_seconds:
                    continue
            ready.append(path)
        if self.peers > 1:   # take a share, so that the other processes have files to work on too
            random.shuffle(ready)
            ready = ready[:-(-len(ready) // self.peers)]
        claimed, size = [], 0
        for path in ready:
            if budget is not None and claimed and size >= budget:
                break
            c = self._claim(path)
            if c:
                claimed.append(c)
                if budget is not None:
                    size += fsutil.size(c.path)
        for gone in set(self._seen) - names:
            self._seen.pop(gone, None)
        return claimed

    def _free_name(self, name: str) -> Path:
        """A name in the work folder no claimed file has: `name`, else `name~1`, `name~2` …"""
        target, n = self.work / name, 1
        while target.exists():
            target, n = self.work / f"{name}~{n}", n + 1
        return target

    def _claim(self, path: Path) -> Claimed | None:
        target = self._free_name(path.name)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        self._seen.pop(path.name, None)
        if self.done_marker:
            path.with_name(path.name + ".done").unlink(missing_ok=True)
        return Claimed(path.name, target)

    def _move(self, claimed: Claimed, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / claimed.name
        n = 1
        while target.exists():
            stem, dot, ext = claimed.name.partition(".")
            target = folder / f"{stem}~{n}{dot}{ext}"
            n += 1
        os.rename(claimed.path, target)
        return target

    def archive(self, claimed: Claimed) -> Path:
        return self._move(claimed, self.inbox / ".archive" / dt.date.today().strftime("%Y%m%d"))

    def refuse(self, claimed: Claimed, report: dict) -> Path:
        target = self._move(claimed, self.inbox / ".error")
        fsutil.atomic_write(target.with_name(target.name + ".error.json"),
                            json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"))
        return target
