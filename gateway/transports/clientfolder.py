"""The official Single Window desktop client's exchange folders.

The client (中国国际贸易单一窗口 客户端, with the operator's IC card inserted) watches
one folder tree, its "ImpPath", with a sub-folder per business module
(`DecCus001` = customs declarations; other modules have their own codes):

    <ImpPath>/<module>/
        OutBox/    we write the bare business XML here (e.g. a DecMessage); the
                   client picks it up, signs it with the card and sends it
        SentBox/   the client moves a file here once sent
        FailBox/   ... or here when it could not send it (bad XML, card, network)
        InBox/     the client writes what comes back: import responses named
                   `Successed_<file>` / `Failed_<file>`, and status receipts
        InBox/.processed/   (ours) receipts we have stored and acknowledged
        FailBox/.seen/      (ours) FailBox files we have reported
        .swgw-staging/      (ours) where files are written before being renamed
                            into OutBox/InBox

Gateway role (default):
- `send` writes `<name>` atomically into OutBox: the file is written and fsynced
  in `.swgw-staging/`, then renamed into OutBox (the same file system), so the
  client never picks up half a file (it may not skip dot files, so no temp file
  is ever created inside OutBox). If `SentBox/<name>` already holds the same
  bytes the item was already sent and nothing is written (a re-send after a
  crash does not send the declaration twice); same name with other bytes is a
  deliberate resend and is written.
- `receive` returns InBox files (ref `InBox/<name>`, name `<name>`) and files
  the client moved to FailBox (ref and name `FailBox/<name>`, so the gateway can
  mark that message failed). `meta` says `box`, `kind` (`import-success`,
  `import-failure`, `receipt`, `send-failed`) and `original` (the name without
  the `Successed_`/`Failed_` prefix), see `classify()`.
- `ack` moves an InBox file to `processed_dir` and a FailBox file to
  `FailBox/.seen/`.

Client role (`role="client"`, for the sandbox peer playing the desktop client):
`receive` reads OutBox, `ack` moves the file to SentBox (sent), `fail` moves it
to FailBox, and `send` writes a response atomically into InBox.

Only regular files directly in a box are read (no links followed, dot files
skipped) and sizes are bounded by `max_bytes`.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from gateway import fsutil
from gateway.transports.base import Check, Incoming, Outgoing, Transport, TransportError

BOXES = ("OutBox", "SentBox", "FailBox", "InBox")


# the client's timestamp on an answer's name: 202408191442314383412 (date, time, fraction)
_STAMP = re.compile(r"_(\d{14,})(?=(\.[A-Za-z]+)?$)")


def classify(name: str) -> tuple[str, str]:
    """(kind, original file name) of an InBox file name. The client names its answers after the
    OutBox file they answer: `Successed_<file>` / `Failed_<file>`, usually with its timestamp
    appended (`Successed_<file>_202408191442314383412`, before or after the file's extension)."""
    for prefix, kind in (("Successed_", "import-success"), ("Failed_", "import-failure")):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            m = _STAMP.search(rest)
            if m:
                rest = rest[:m.start()] + rest[m.end(1):]
            return kind, rest
    return "receipt", name


def find_module(imp_path: Path, module: str) -> str:
    """The module folder as it is spelled on disk: the client writes `DecCus001` on one machine
    and `Deccus001` on another, so the configured name is matched without regard to case."""
    if (Path(imp_path) / module).is_dir():
        return module
    try:
        for entry in os.scandir(imp_path):
            if entry.is_dir(follow_symlinks=False) and entry.name.lower() == module.lower():
                return entry.name
    except OSError:
        pass
    return module


class ClientFolderTransport(Transport):
    carries = "business"
    def __init__(self, imp_path: Path, module: str = "DecCus001", role: str = "gateway",
                 processed_dir: Path | None = None, create: bool = False, fsync: bool = True,
                 max_bytes: int = 50 * 1024 * 1024, stale_after: float = 600.0,
                 name: str = "clientfolder"):
        if role not in ("gateway", "client"):
            raise ValueError(f"role must be 'gateway' or 'client', not {role!r}")
        if not module or "/" in module or module.startswith("."):
            raise ValueError(f"bad client module name {module!r} (e.g. DecCus001)")
        self.name = name
        self.imp_path = Path(imp_path)
        self.module = find_module(self.imp_path, module)
        self.role = role
        self.root = self.imp_path / self.module
        self.box = {b: self.root / b for b in BOXES}
        self.staging = self.root / ".swgw-staging"
        self.processed = Path(processed_dir) if processed_dir else self.box["InBox"] / ".processed"
        self.seen = self.box["FailBox"] / ".seen"
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.stale_after = stale_after
        if create:
            for d in self.box.values():
                d.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ClientFolderTransport({str(self.root)!r}, role={self.role!r})"

    # ---- the Transport interface ---------------------------------------------------

    def send(self, item: Outgoing) -> None:
        target_box = "OutBox" if self.role == "gateway" else "InBox"
        try:
            target = fsutil.inside(self.box[target_box], item.name)
        except fsutil.UnsafePath as exc:
            raise TransportError(f"client folder: {exc}", retryable=False) from None
        self._require(target_box)
        if self.role == "gateway" and self._already_sent(item):
            return
        tmp = self.staging / f"{item.name}.{os.getpid()}.tmp"
        try:
            self.staging.mkdir(exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(item.data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
            if self.fsync:
                fsutil.fsync_dir(target.parent)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise TransportError(f"client folder {target.parent}: cannot write {item.name}: "
                                 f"{exc.strerror}", retryable=exc.errno not in (13, 1, 30)) from None

    def receive(self, limit: int = 100) -> list[Incoming]:
        if self.role == "client":
            return self._read_box("OutBox", limit, prefix=False)
        self._require("InBox")
        out = self._read_box("InBox", limit, prefix=False)
        if len(out) < limit:
            out += self._read_box("FailBox", limit - len(out), prefix=True)
        return out

    def ack(self, ref: str) -> None:
        box, name = self._split(ref)
        if self.role == "client":
            self._move(box, name, self.box["SentBox"])
        elif box == "InBox":
            self._move(box, name, self.processed)
        else:
            self._move(box, name, self.seen)

    def fail(self, ref: str) -> None:
        """Client role: the simulated client could not send this OutBox file."""
        if self.role != "client":
            raise TransportError("fail() is for the client role (the sandbox)", retryable=False)
        box, name = self._split(ref)
        self._move(box, name, self.box["FailBox"])

    def check(self) -> list[Check]:
        checks = []
        for b, d in self.box.items():
            ok = d.is_dir() and os.access(d, os.W_OK)
            checks.append(Check(f"client folder {b} {d}", ok, "" if ok else
                                "missing or not writable: set imp_path/module to the client's ImpPath "
                                "(client settings) and check permissions"))
        if self.box["OutBox"].is_dir():
            waiting = fsutil.regular_files(self.box["OutBox"])
            if waiting:
                age = time.time() - waiting[0].stat().st_mtime
                ok = age < self.stale_after
                checks.append(Check(f"client folder OutBox {self.box['OutBox']} drained", ok,
                                    f"{len(waiting)} file(s) waiting, oldest {age / 60:.0f} min" +
                                    ("" if ok else ": is the Single Window client running, logged in, "
                                     "with the IC card inserted?")))
        return checks

    # ---- helpers ----------------------------------------------------------------------

    def _require(self, box: str) -> None:
        if not self.box[box].is_dir():
            raise TransportError(f"client folder {self.box[box]} does not exist: set imp_path to the "
                                 f"client's ImpPath and module to its module folder (e.g. DecCus001)",
                                 retryable=False)

    def _already_sent(self, item: Outgoing) -> bool:
        sent = self.box["SentBox"] / item.name
        try:
            return sent.is_file() and not sent.is_symlink() and \
                sent.stat().st_size == len(item.data) and sent.read_bytes() == item.data
        except OSError:
            return False

    def _read_box(self, box: str, limit: int, prefix: bool) -> list[Incoming]:
        out = []
        for path in fsutil.regular_files(self.box[box]):
            if len(out) >= limit:
                break
            try:
                data = fsutil.read_bounded(path, self.max_bytes)
            except FileNotFoundError:
                continue
            except fsutil.UnsafePath as exc:
                raise TransportError(f"client folder {self.box[box]}: {exc}", retryable=False) from None
            if box == "FailBox":
                kind, original = "send-failed", path.name
            elif box == "InBox":
                kind, original = classify(path.name)
            else:
                kind, original = "outgoing", path.name
            out.append(Incoming(ref=f"{box}/{path.name}",
                                name=f"{box}/{path.name}" if prefix else path.name, data=data,
                                meta={"box": box, "kind": kind, "original": original}))
        return out

    def _split(self, ref: str) -> tuple[str, str]:
        box, _, name = ref.partition("/")
        allowed = ("OutBox",) if self.role == "client" else ("InBox", "FailBox")
        if box not in allowed or not name:
            raise TransportError(f"client folder: bad ref {ref!r} (expected one of "
                                 f"{', '.join(a + '/<name>' for a in allowed)})", retryable=False)
        return box, name

    def _move(self, box: str, name: str, dest_dir: Path) -> None:
        try:
            src = fsutil.inside(self.box[box], name)
            dest_dir.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest_dir / name)
        except FileNotFoundError:
            pass                                   # already moved: ack is idempotent
        except fsutil.UnsafePath as exc:
            raise TransportError(f"client folder: {exc}", retryable=False) from None
        except OSError as exc:
            raise TransportError(f"client folder: cannot move {box}/{name} to {dest_dir}: "
                                 f"{exc.strerror}", retryable=False) from None
