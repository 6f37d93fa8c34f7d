"""File-system helpers shared by the folder-facing parts: atomic writes, safe listing."""
from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path


class UnsafePath(Exception):
    pass


def atomic_write(path: Path, data: bytes, fsync: bool = True, sync_dir: bool = True) -> None:
    """Write `data` to `path` so readers see the whole file or nothing.

    The temp file is a dot-file in the same folder (readers skip dot-files), then
    renamed over the target. With fsync the data and the rename survive a crash; a
    caller writing many files may pass sync_dir=False and call fsync_dir once after.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if fsync and sync_dir:
        fsync_dir(path.parent)


class Staged:
    """Files made visible and durable together: `add` writes each to a temp file (a dot-file) beside
    its target; `commit` fsyncs them all, renames each over its target and fsyncs each folder
    once. So a reader sees a whole file or none, as with atomic_write, and after `commit` every
    file and its name survive a crash — with the fsync waits of a batch overlapping (a few
    threads, each syncing its share: the disk takes them together) instead of one after another."""

    def __init__(self):
        self.files: dict[Path, Path] = {}   # target -> its temp file, in the order added

    def add(self, path: Path, data: bytes) -> None:
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:   # the folder went away: made again, as atomic_write does
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        self.files[path] = tmp   # the same target again: its latest data, once

    def commit(self) -> None:
        """Make what was added visible and durable (on an error, what was not renamed is removed)."""
        files, self.files = self.files, {}
        try:
            _fsync_all(list(files.values()))
            for path, tmp in files.items():
                os.replace(tmp, path)
            for directory in {path.parent for path in files}:
                fsync_dir(directory)
        except OSError:
            _remove(files.values())
            raise


def remove_stale_temps(directory: Path, older_than: float) -> int:
    """Remove the temp files (atomic_write's, Staged's) a process killed mid-write or mid-batch
    left in `directory`, if untouched for `older_than` seconds (a live writer's are younger)."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    now = time.time()
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def _remove(paths) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


_SYNCERS = 4
_pool: tuple[int, ThreadPoolExecutor] | None = None   # (the process it was made in, the pool)
_pool_lock = threading.Lock()


def _fsync_all(paths: list[Path]) -> None:
    """fsync every file, in up to _SYNCERS threads at once (fsync releases the GIL)."""
    def sync(share: list[Path]) -> None:
        for path in share:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    if len(paths) < 2 * _SYNCERS:
        sync(paths)
        return
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():   # a forked child has none of its parent's threads
            _pool = (os.getpid(), ThreadPoolExecutor(_SYNCERS, thread_name_prefix="fsync"))
        pool = _pool[1]
    shares = [pool.submit(sync, paths[i::_SYNCERS]) for i in range(_SYNCERS)]
    wait(shares)
    for share in shares:
        share.result()   # the first error, once every share has finished


def size(path: Path) -> int:
    """The file's size; 0 if it is gone (whoever reads it next reports that)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def regular_files(directory: Path) -> list[Path]:
    """Visible regular files directly in `directory`, oldest first; never follows links."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    files = []
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime_ns, entry.name, Path(entry.path)))
    return [p for _, _, p in sorted(files)]


def inside(base: Path, name: str) -> Path:
    """`base/name`, refusing names that climb out or contain separators."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafePath(f"unsafe file name {name!r}")
    return base / name


def read_bounded(path: Path, limit: int) -> bytes:
    """Read a regular file of at most `limit` bytes, refusing links and larger files."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{path.name}: not a regular file")
        if st.st_size > limit:
            raise UnsafePath(f"{path.name}: {st.st_size} bytes is over the limit of {limit} bytes")
        return fh.read(limit + 1)[:limit]
