"""File-system helpers shared by the folder-facing parts: atomic writes, safe listing."""
from __future__ import annotations

import os
import stat
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
