"""Opening a zip from outside: names that stay inside, no links, bounded count and expanded size.

Used for spreadsheets (an .xlsx is a zip) and for attachment packages. The expanded size
is measured while decompressing, never taken from the zip's headers (a zip bomb lies in
them); a member is read only up to what is left of the budget, plus one byte to know it
went over.
"""
from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

MAGIC = b"PK\x03\x04"
CHUNK = 64 * 1024


class UnsafeZip(Exception):
    """The package is refused as a whole, or one member of it (`member` names which)."""

    def __init__(self, message: str, member: str | None = None):
        super().__init__(message)
        self.member = member


@dataclass(frozen=True)
class Limits:
    max_members: int = 50
    max_member_bytes: int = 20 * 1024 * 1024      # one member, expanded
    max_total_bytes: int = 100 * 1024 * 1024      # all members together, expanded


def is_zip(data: bytes) -> bool:
    return data[:4] == MAGIC


def check_name(name: str) -> str:
    """The member's name, or UnsafeZip if it is absolute, climbs out (`..`) or is odd."""
    if not name or "\0" in name or "\\" in name:
        raise UnsafeZip(f"member name {name!r} is not a plain relative name", name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeZip(f"member {name!r} has an absolute path", name)
    if ".." in PurePosixPath(name).parts:
        raise UnsafeZip(f"member {name!r} climbs out of the package (..)", name)
    return name


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def open_zip(data: bytes, limits: Limits = Limits()) -> zipfile.ZipFile:
    """The archive, after checking the member count, every name and that none is a link."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnsafeZip(f"not a readable zip: {exc}") from None
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeZip(f"{len(infos)} members, at most {limits.max_members} allowed")
    for info in infos:
        check_name(info.filename)
        if _is_link(info):
            raise UnsafeZip(f"member {info.filename!r} is a symbolic link", info.filename)
    return zf


class Budget:
    """The expanded bytes still allowed for a whole package."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.left = limits.max_total_bytes

    def read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        """The member's bytes, stopping as soon as it passes its own limit or the package's."""
        cap = min(self.limits.max_member_bytes, self.left)
        out = bytearray()
        try:
            with zf.open(info) as fh:
                while True:
                    chunk = fh.read(min(CHUNK, cap + 1 - len(out)))
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > cap:
                        which = ("its own limit" if cap == self.limits.max_member_bytes
                                 else "what is left of the package's limit")
                        raise UnsafeZip(f"member {info.filename!r} expands past {cap} bytes ({which}; "
                                        f"a zip bomb is refused by what it expands to)", info.filename)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
            raise UnsafeZip(f"member {info.filename!r} cannot be read: {exc}", info.filename) from None
        self.left -= len(out)
        return bytes(out)


def expanded_size(data: bytes, limits: Limits) -> int:
    """Decompress every member against the budget without keeping it; the total expanded size."""
    zf = open_zip(data, limits)
    budget = Budget(limits)
    total = 0
    for info in zf.infolist():
        cap = min(limits.max_member_bytes, budget.left)
        n = 0
        try:
            with zf.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    n += len(chunk)
                    if n > cap:
                        raise UnsafeZip(f"member {info.filename!r} expands past {cap} bytes (a zip bomb is "
                                        f"refused by what it expands to)", info.filename)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
            raise UnsafeZip(f"member {info.filename!r} cannot be read: {exc}", info.filename) from None
        budget.left -= n
        total += n
    return total
