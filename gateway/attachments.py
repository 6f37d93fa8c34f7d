"""Attachments: files carried beside a document (随附单据, 佐证材料, 合同/附件).

A mapping's `[attachments]` table names the column that lists a document's files:

    [attachments]
    column = "attachments"          # "00000001:invoice.pdf; 00000004:contract.pdf" (code:name; name)
    default_code = "00000001"       # the type code when an entry gives none (optional)
    codes = "edoc_code"             # the code table the type codes must be in (optional)

The files come from the drop itself when it is a .zip holding the data file and its
attachments (a `Package`), or else from the inbox's `attachments/` folder (a `Folder`).
Attachments are untrusted input: each is checked for a plain name that stays inside its
folder or package (no `..`, no absolute path, no link), its size and the document's count,
its type by its content (PDF, JPEG, PNG, OFD; the name's extension must agree), and hashed
(SHA-256, stored with the message). A bad attachment refuses its own document with an error
located at the row and column that named it; the other documents of the file go on.

How a family carries them is the family's (declarations: EdocRealation entries, the files
packed with the DecMessage in one .zip — `package()` — sent as the DxpMsg's data and, on the
desktop client's folders, as the OutBox package).
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gateway import zipsafe
from gateway.mapping.errors import FieldError, Origin

DATA_SUFFIXES = (".csv", ".json", ".xml", ".xlsx", ".txt")


@dataclass(frozen=True)
class Policy:
    max_count: int = 10                      # per document
    max_bytes: int = 4 * 1024 * 1024         # per file
    max_package_bytes: int = 60 * 1024 * 1024  # a .zip drop, all members expanded
    types: tuple[str, ...] = ("pdf", "jpeg", "png", "ofd")


# type -> the extensions a file of that content may carry
EXTENSIONS = {"pdf": (".pdf",), "jpeg": (".jpg", ".jpeg"), "png": (".png",), "ofd": (".ofd",),
              "tiff": (".tif", ".tiff")}
MEDIA = {"pdf": "application/pdf", "jpeg": "image/jpeg", "png": "image/png", "ofd": "application/ofd",
         "tiff": "image/tiff"}


def sniff(data: bytes) -> str | None:
    """The file's type by its content (magic bytes), or None."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if zipsafe.is_zip(data):  # OFD (GB/T 33190) is a zip with OFD.xml at its root
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        return "ofd" if "OFD.xml" in names else None
    return None


@dataclass(frozen=True)
class Named:
    """One entry of the attachments column: its type code, the file name, where it was named."""

    code: str
    name: str
    origin: Origin


@dataclass(frozen=True)
class Attachment:
    code: str
    name: str            # as the ERP named it (the enterprise's file name)
    kind: str            # pdf, jpeg, png, ofd …
    data: bytes
    sha256: str
    origin: Origin = Origin()    # the row and column that named it

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def suffix(self) -> str:
        return EXTENSIONS[self.kind][0]


class Refused(Exception):
    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


class Folder:
    """Files beside the drop folder (<inbox>/attachments/): plain names only, no links."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def where(self) -> str:
        return f"folder {self.directory}"

    def get(self, name: str, limit: int) -> bytes:
        _check_name(name)
        path = self.directory / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise Refused("attachment-missing", f"attachment {name!r} is not in {self.directory}") from None
        if stat.S_ISLNK(st.st_mode):
            raise Refused("attachment-name", f"attachment {name!r} is a symbolic link; links are never followed")
        if not stat.S_ISREG(st.st_mode):
            raise Refused("attachment-name", f"attachment {name!r} is not a regular file")
        if st.st_size > limit:
            raise Refused("attachment-size", f"attachment {name!r} is {st.st_size} bytes, at most {limit} allowed")
        # resolve the parents too: a linked sub-folder must not lead out
        if not path.resolve().is_relative_to(self.directory.resolve()):
            raise Refused("attachment-name", f"attachment {name!r} leads out of {self.directory}")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise Refused("attachment-size", f"attachment {name!r} is over {limit} bytes")
        return data


class Package:
    """A .zip drop: one data file (the ERP export) and the attachments it names. Member names
    are checked when a document names them; sizes are measured while decompressing."""

    def __init__(self, data: bytes, policy: Policy, label: str = "the package"):
        limits = zipsafe.Limits(max_members=policy.max_count * 20 + 1, max_member_bytes=policy.max_package_bytes,
                                max_total_bytes=policy.max_package_bytes)
        self.label = label
        self.policy = policy
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise zipsafe.UnsafeZip(f"not a readable zip: {exc}") from None
        infos = self.zf.infolist()
        if len(infos) > limits.max_members:
            raise zipsafe.UnsafeZip(f"{len(infos)} members, at most {limits.max_members} allowed")
        self.budget = zipsafe.Budget(limits)
        self.members = {i.filename: i for i in infos if not i.is_dir()}
        data_files = [n for n in self.members if "/" not in n and n.lower().endswith(DATA_SUFFIXES)]
        if len(data_files) != 1:
            raise zipsafe.UnsafeZip(f"a package holds exactly one data file ({', '.join(DATA_SUFFIXES)}) at its "
                                    f"top level beside the attachments; found {len(data_files)}"
                                    + (f": {', '.join(sorted(data_files))}" if data_files else ""))
        self.data_name = data_files[0]
        info = self.members[self.data_name]
        zipsafe.check_name(info.filename)
        if zipsafe._is_link(info):
            raise zipsafe.UnsafeZip(f"the data file {info.filename!r} is a symbolic link")
        self.data = self.budget.read(self.zf, info)

    def where(self) -> str:
        return self.label

    def get(self, name: str, limit: int) -> bytes:
        _check_name(name)
        info = self.members.get(name)
        if info is None:
            raise Refused("attachment-missing", f"attachment {name!r} is not in {self.label}")
        if zipsafe._is_link(info):
            raise Refused("attachment-name", f"attachment {name!r} is a symbolic link in {self.label}")
        capped = zipsafe.Budget(zipsafe.Limits(1, limit, min(limit, self.budget.left)))
        try:
            data = capped.read(self.zf, info)
        except zipsafe.UnsafeZip as exc:
            raise Refused("attachment-size", f"attachment {name!r}: {exc}") from None
        self.budget.left -= len(data)
        return data


def _check_name(name: str) -> None:
    try:
        zipsafe.check_name(name)
    except zipsafe.UnsafeZip as exc:
        raise Refused("attachment-name", f"attachment {exc}") from None
    if name.startswith("~") or any(p.startswith(".") for p in PurePosixPath(name).parts):
        raise Refused("attachment-name", f"attachment {name!r}: hidden or home-relative names are not taken")


def parse_column(text: str, origin: Origin, default_code: str | None) -> tuple[list[Named], list[FieldError]]:
    """`code:name; name` -> named entries (a name without a code takes default_code)."""
    out, errors = [], []
    for part in [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]:
        code, sep, name = part.partition(":")
        if not sep or "/" in code or "." in code:  # no code given (or the colon is the name's own)
            code, name = default_code or "", part
        code, name = code.strip(), name.strip()
        if not code:
            errors.append(FieldError.at(origin, "attachments", "attachment-code",
                                        f"attachment {name!r} has no type code (write code:name, e.g. "
                                        f"00000001:{name}) and the mapping sets no default_code", part))
            continue
        out.append(Named(code, name, origin))
    return out, errors


def resolve(named: list[Named], files, policy: Policy) -> tuple[list[Attachment], list[FieldError]]:
    """Read and check every named file; the attachments, and an error for each refused one."""
    atts, errors = [], []
    if len(named) > policy.max_count:
        errors.append(FieldError.at(named[0].origin, "attachments", "attachment-count",
                                    f"{len(named)} attachments, at most {policy.max_count} per document"))
        return [], errors
    seen = set()
    for n in named:
        def refuse(rule, message):
            errors.append(FieldError.at(n.origin, "attachments", rule, message, n.name))
        if n.name in seen:
            refuse("attachment-unique", f"attachment {n.name!r} is named twice")
            continue
        seen.add(n.name)
        if files is None:
            refuse("attachment-missing", f"attachment {n.name!r}: no attachments folder or package to take it from")
            continue
        try:
            data = files.get(n.name, policy.max_bytes)
        except Refused as exc:
            refuse(exc.rule, str(exc))
            continue
        if not data:
            refuse("attachment-empty", f"attachment {n.name!r} is empty")
            continue
        kind = sniff(data)
        if kind is None or kind not in policy.types:
            refuse("attachment-type", f"attachment {n.name!r} is not an allowed type "
                                      f"({', '.join(t.upper() for t in policy.types)}) by its content"
                                      + (f" (it is {kind.upper()})" if kind else ""))
            continue
        if PurePosixPath(n.name).suffix.lower() not in EXTENSIONS[kind]:
            refuse("attachment-type", f"attachment {n.name!r} holds {kind.upper()} content but is named "
                                      f"{PurePosixPath(n.name).suffix or 'without an extension'}")
            continue
        atts.append(Attachment(n.code, n.name, kind, data, hashlib.sha256(data).hexdigest(), n.origin))
    return atts, errors


# -- the package the format carries -----------------------------------------------------------
def package(document_name: str, document: bytes, files: list[tuple[str, bytes]]) -> bytes:
    """One .zip: the business message and its attachments by the names the message gives them.
    Deterministic (fixed timestamps), so a re-send is byte-identical."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in [(document_name, document), *files]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def unpack(data: bytes, limits: zipsafe.Limits = zipsafe.Limits()) -> tuple[str, bytes, dict[str, bytes]]:
    """(message name, message, {attachment name: bytes}) of a package: the one top-level .xml is
    the message."""
    zf = zipsafe.open_zip(data, limits)
    budget = zipsafe.Budget(limits)
    files = {i.filename: budget.read(zf, i) for i in zf.infolist() if not i.is_dir()}
    xmls = [n for n in files if "/" not in n and n.lower().endswith(".xml")]
    if len(xmls) != 1:
        raise zipsafe.UnsafeZip(f"a package holds one message (.xml) at its top level; found {len(xmls)}")
    message = files.pop(xmls[0])
    return xmls[0], message, files
