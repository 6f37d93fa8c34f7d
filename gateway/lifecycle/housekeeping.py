"""Housekeeping: the store and the drop folders do not grow without bound.

- Payloads of settled messages (final or locally final states, unchanged for
  `payload_age`): the business document, the signed envelope and the raw receipts are
  written to a zip archive first, then emptied in the store (`pruned_at` set, an event
  per message). Unmatched receipts older than `payload_age` are archived and pruned too.
- Drop files in `inbox/<type>/.archive/` older than `inbox_archive_age`: zipped, then removed.
- Archives older than `archive_age` (when set) are deleted.
Events are never deleted: the audit trail stays whole; a summary event records each run.
A crash between writing an archive and the commit archives the same payloads again into a
new zip on the next run; nothing is pruned that is not in an archive first.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import zipfile
from pathlib import Path

from sqlalchemy import and_, or_, select

from gateway import fsutil
from gateway.lifecycle import clock
from gateway.log import get_logger
from gateway.store import repo, states
from gateway.store.models import Message, Receipt, SubscriptionPending

log = get_logger("housekeeping")
MAX_BATCHES = 20   # per run: a long backlog is worked off over several runs


def archive_root(rt) -> Path:
    cfg = rt.config.lifecycle.housekeeping
    return Path(cfg.archive_dir) if cfg.archive_dir else rt.config.var_dir / "archive"


def run(rt) -> dict[str, int]:
    cfg = rt.config.lifecycle.housekeeping
    done = {"messages": 0, "receipts": 0, "drop_files": 0, "archives_deleted": 0}
    archives: list[str] = []
    for _ in range(MAX_BATCHES):
        n_msgs, n_recs, path = _prune_payloads(rt, cfg.batch)
        done["messages"] += n_msgs
        done["receipts"] += n_recs
        if path:
            archives.append(str(path))
        if n_msgs + n_recs < cfg.batch:
            break
    n_files, path = _prune_drop_archives(rt)
    done["drop_files"] = n_files
    if path:
        archives.append(str(path))
    done["archives_deleted"] = _expire_archives(rt)
    if any(done.values()):
        with rt.sessions.begin() as s:
            repo.note(s, None, "housekeeping",
                      f"pruned payloads of {done['messages']} messages and {done['receipts']} receipts, "
                      f"{done['drop_files']} archived drop files; {done['archives_deleted']} expired archives "
                      f"deleted" + (f"; archived to {', '.join(archives)}" if archives else ""))
        log.info("housekeeping", **done, archives=archives)
    return done


# -- payloads ---------------------------------------------------------------------
def _settled(rt):
    conds = [and_(Message.doc_type == key, Message.state.in_((*d.family.final_states, *states.LOCAL_FINAL)))
             for key, d in rt.doc_types.items()]
    return or_(*conds) if conds else Message.id.is_(None)


def _prune_payloads(rt, batch: int) -> tuple[int, int, Path | None]:
    cfg = rt.config.lifecycle.housekeeping
    now = clock.now()
    cutoff = now - dt.timedelta(seconds=cfg.payload_age)
    with rt.sessions() as s:
        msgs = list(s.scalars(select(Message).where(Message.pruned_at.is_(None), Message.updated_at < cutoff,
                                                    _settled(rt)).order_by(Message.id).limit(batch)))
        ids = [m.id for m in msgs]
        waiting = select(SubscriptionPending.receipt_id)  # a copy still to deliver keeps its payload
        msgs = [m for m in msgs if not s.scalar(select(Receipt.id).where(Receipt.message_id == m.id,
                                                                        Receipt.id.in_(waiting)).limit(1))]
        ids = [m.id for m in msgs]
        recs = list(s.scalars(select(Receipt).where(Receipt.message_id.in_(ids), Receipt.pruned_at.is_(None))
                              .order_by(Receipt.id))) if ids else []
        room = max(batch - len(msgs), 0)
        if room:
            recs += list(s.scalars(select(Receipt).where(Receipt.message_id.is_(None), Receipt.pruned_at.is_(None),
                                                         Receipt.routed_at.is_not(None), Receipt.received_at < cutoff)
                                   .order_by(Receipt.id).limit(room)))
        s.commit()  # no transaction held while the archive is written
        if not msgs and not recs:
            return 0, 0, None
        path = _write_payload_archive(rt, msgs, recs, now) if cfg.archive else None
        where = f"archived to {path}" if path else "not archived (housekeeping.archive = false)"
        for m in msgs:
            sizes = f"document {len(m.document or b'')} bytes, envelope {len(m.envelope or b'')} bytes"
            m.document = m.envelope = None
            for a in m.attachments:   # the hash, size and names stay: the trace still says what went
                a.content = None
            m.pruned_at = now
            n_recs = sum(1 for r in recs if r.message_id == m.id)
            repo.note(s, m, "pruned", f"payloads pruned by housekeeping ({sizes}, {n_recs} receipts); {where}")
        for r in recs:
            r.raw = b""
            r.pruned_at = now
        s.commit()
    return len(msgs), len(recs), path


def _write_payload_archive(rt, msgs: list[Message], recs: list[Receipt], now: dt.datetime) -> Path:
    path = archive_root(rt) / f"{now:%Y}" / f"{now:%m}" / f"payloads-{now:%Y%m%dT%H%M%S%f}.zip"
    manifest = {"created": now.isoformat(), "messages": [], "receipts": []}

    def fill(zf: zipfile.ZipFile) -> None:
        for m in msgs:
            stem = f"messages/{m.id:08d}-{m.cop_msg_id}"
            if m.document:
                zf.writestr(f"{stem}.document.xml", m.document)
            if m.envelope:
                zf.writestr(f"{stem}.envelope.xml", m.envelope)
            for a in m.attachments:
                if a.content is not None:
                    zf.writestr(f"{stem}.attachments/{a.carried_as or a.seq}", a.content)
            manifest["messages"].append({"id": m.id, "doc_type": m.doc_type, "business_key": m.business_key,
                                         "enterprise": m.enterprise, "cop_msg_id": m.cop_msg_id, "state": m.state,
                                         "source": m.source_ref})
        for r in recs:
            name = f"receipts/{r.id:08d}-{r.kind}.xml"
            zf.writestr(name, r.raw)
            manifest["receipts"].append({"id": r.id, "message_id": r.message_id, "kind": r.kind,
                                         "remote_name": r.remote_name, "sha256": r.sha256, "file": name})
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))

    _atomic_zip(path, fill)
    return path


# -- drop files -------------------------------------------------------------------
def _prune_drop_archives(rt) -> tuple[int, Path | None]:
    cfg = rt.config.lifecycle.housekeeping
    now = clock.now()
    limit = now.timestamp() - cfg.inbox_archive_age
    old: list[tuple[str, Path, Path]] = []   # (doc type, .archive folder, file)
    for key, d in rt.doc_types.items():
        base = Path(d.source.inbox) / ".archive"
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            if path.stat().st_mtime < limit:
                old.append((key, base, path))
    if not old:
        return 0, None
    path = None
    if cfg.archive:
        path = archive_root(rt) / f"{now:%Y}" / f"{now:%m}" / f"drop-files-{now:%Y%m%dT%H%M%S%f}.zip"
        _atomic_zip(path, lambda zf: [zf.write(f, f"{key}/{f.relative_to(base)}") for key, base, f in old])
    for _, base, f in old:
        f.unlink(missing_ok=True)
        parent = f.parent
        while parent != base and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return len(old), path


def _expire_archives(rt) -> int:
    cfg = rt.config.lifecycle.housekeeping
    root = archive_root(rt)
    if not cfg.archive_age or not root.is_dir():
        return 0
    limit = clock.now().timestamp() - cfg.archive_age
    n = 0
    for path in root.rglob("*.zip"):
        if path.is_file() and path.stat().st_mtime < limit:
            path.unlink()
            n += 1
    return n


def _atomic_zip(path: Path, fill) -> None:
    """Write a zip so that a reader sees it whole or not at all (temp + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        fill(zf)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsutil.fsync_dir(path.parent)
