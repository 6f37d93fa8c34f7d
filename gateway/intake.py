"""Intake: a claimed drop file becomes messages in the store, or a located error report.

One transaction per file: the file's record, every document it maps to (prepared,
or invalid with its errors) and their first events commit together; only then is
the file moved to .archive/ or .error/. A crash before the move leaves the file in
.work/, and recovery finishes the move without taking it twice.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from gateway import attachments, faults, fsutil, licence_use, metrics, zipsafe
from gateway.documents.base import Context
from gateway.log import get_logger
from gateway.mapping import native
from gateway.mapping.engine import Mapped
from gateway.mapping import readers_xlsx
from gateway.mapping.errors import FieldError, InputError
from gateway.runtime import DocType, Runtime
from gateway.sources.folder import Claimed
from gateway.store import bulk, leases, repo, states
from gateway.store.models import IntakeFile

log = get_logger("intake")
TAKEN = ("accepted", "partial", "duplicate")
FILES_PER_TRANSACTION = 50   # files claimed in one poll are stored together, up to this many
BYTES_PER_TRANSACTION = 256 * 1024   # … and up to about this much (a file is never split)


def take_file(rt: Runtime, dt: DocType, claimed: Claimed) -> dict:
    """Process one claimed file; returns the report (also written for refused files)."""
    return take_files(rt, dt, [claimed])[0]


def take_files(rt: Runtime, dt: DocType, claimed: list[Claimed]) -> list[dict]:
    """Process claimed files: map and evaluate each outside any transaction, store them all in
    one transaction, then archive or refuse each. Returns one report per file, in order."""
    reports: dict[int, dict] = {}
    work = []
    for i, c in enumerate(claimed):
        try:
            data = fsutil.read_bounded(c.path, dt.max_file_bytes)
        except (fsutil.UnsafePath, OSError) as exc:
            reports[i] = {"file": c.name, "document": dt.key, "outcome": "error", "error": str(exc)}
            dt.source.refuse(c, reports[i])
            continue
        sha = hashlib.sha256(data).hexdigest()
        faults.hit("after-claim")
        work.append((i, c, data, sha, _evaluate_file(rt, dt, data)))  # the CPU work, before any transaction
    if work:
        stored = _store_isolating(rt, [(dt, c, data, sha, evaluated, None) for _, c, data, sha, evaluated in work])
        reports.update({i: report for (i, *_), report in zip(work, stored)})
        for i, c, _, _, _ in work:
            faults.hit("after-intake-commit")
            report = reports[i]
            if report["outcome"] in ("accepted", "duplicate"):
                dt.source.archive(c)
            else:
                dt.source.refuse(c, report)
            log.info("file taken", file=c.name, document=dt.key, outcome=report["outcome"],
                     accepted=len(report.get("accepted", [])), rejected=len(report.get("rejected", [])))
    return [reports[i] for i in range(len(claimed))]


def _store_isolating(rt: Runtime, items) -> list[dict]:
    """Store a batch in one transaction; if that fails for a reason other than the database
    itself, store each item alone, so one item that trips a fault cannot hold the rest back
    pass after pass. An item that fails alone is refused with what went wrong."""
    try:
        with rt.sessions.begin() as s:
            return _store_batch(rt, s, items)
    except (sa_exc.OperationalError, sa_exc.InterfaceError):
        raise                     # the store is away: the whole batch waits for the next pass
    except Exception as exc:
        if len(items) == 1:
            dt, claimed = items[0][0], items[0][1]
            log.error("could not store; refused", file=claimed.name, document=dt.key,
                      error=f"{type(exc).__name__}: {exc}")
            return [{"file": claimed.name, "document": dt.key, "outcome": "error",
                     "error": f"internal error while storing it ({type(exc).__name__}: {exc}); "
                              f"nothing was sent — report this, then drop the file again"}]
        log.warning("batch could not be stored; storing its items one by one", items=len(items),
                    error=f"{type(exc).__name__}: {exc}")
        return [report for item in items for report in _store_isolating(rt, [item])]


def _store_batch(rt: Runtime, s, items) -> list[dict]:
    """Store evaluated files/records — items of (doc type, claimed, data, sha, evaluated,
    source) — in session `s` with one lookup of earlier contents and keys per document type and
    one INSERT per table for them all (gateway/store/bulk.py). Returns one report per item."""
    leases.exclusive(s, *(f"intake {it[0].key}" for it in items))   # several processes: one stores at a time
    previous: dict[str, dict] = {}
    existing: dict[str, dict] = {}
    for dt in {id(it[0]): it[0] for it in items}.values():
        mine = [it for it in items if it[0] is dt]
        previous[dt.key] = _taken_before(s, dt, [it[3] for it in mine])
        keys = [ev.mapped.key for it in mine if not isinstance(it[4], InputError) for ev in it[4][1]]
        existing[dt.key] = repo.by_keys(s, dt.key, keys)
    batch = bulk.Batch()
    reports = [_record(rt, dt, s, batch, claimed, data, sha, evaluated, previous[dt.key], existing[dt.key], source)
               for dt, claimed, data, sha, evaluated, source in items]
    batch.write(s)   # the ids, then the rows: the reports name their messages when they are stored
    return reports


def _taken_before(s, dt: DocType, shas: list[str]) -> dict[str, IntakeFile]:
    """The first file taken with each content hash (what makes a later one a duplicate)."""
    rows = s.scalars(select(IntakeFile).where(IntakeFile.doc_type == dt.key, IntakeFile.sha256.in_(set(shas)),
                                              IntakeFile.outcome.in_(TAKEN)).order_by(IntakeFile.id))
    out: dict[str, IntakeFile] = {}
    for row in rows:
        out.setdefault(row.sha256, row)
    return out


def _record(rt: Runtime, dt: DocType, s, batch: bulk.Batch, claimed: Claimed, data: bytes, sha: str, evaluated,
            previous: dict[str, IntakeFile | bulk.NewIntake], existing: dict, source: str | None = None) -> dict:
    """Record one file in `batch`: its intake record and messages; returns its report."""
    prior = previous.get(sha)
    if prior is not None and claimed.recovered and prior.name == claimed.name \
            and _committed_from_work(s, prior, claimed):
        return {**(prior.report or {}), "outcome": prior.outcome}
    if prior is not None:
        report = {"file": claimed.name, "document": dt.key, "outcome": "duplicate",
                  "same_as": prior.name, "taken_at": prior.received_at.isoformat(),
                  "message": f"same content as {prior.name}, taken {prior.received_at:%Y-%m-%d %H:%M:%S}; "
                             f"nothing sent again"}
        batch.intake(bulk.NewIntake(doc_type=dt.key, source=source or str(dt.source.inbox), name=claimed.name,
                                    sha256=sha, size=len(data), outcome="duplicate", report=report))
        return report
    report, intake = _store_file(rt, dt, s, batch, claimed, data, sha, evaluated, existing, source)
    if report["outcome"] in TAKEN:  # a second copy in the same batch is a duplicate of this one
        previous[sha] = intake
    return report


def _committed_from_work(s, previous: IntakeFile, claimed: Claimed) -> bool:
    """A crash after commit and before the move: the same file is back in .work/ (a file of the
    same name and content dropped again later is claimed anew: a duplicate, recorded as such)."""
    return (previous.report or {}).get("claimed_as") == claimed.path.name


def read_documents(rt: Runtime, dt: DocType, data: bytes, mapping=None, stream: bool = False
                   ) -> tuple[str, list[Mapped], str]:
    """The documents of a file or record: (encoding, mapped documents, what read them). The reader
    is chosen by the content: the family's own XML document (a DecMessage another builder wrote)
    is taken as it is; anything else goes through the type's mapping (CSV, JSON, XML records).
    `stream`: the documents one at a time as the mapping makes them (an iterator), not a list."""
    mapping = mapping or dt.mapping
    if dt.family.native_key and native.sniff(data, dt.family.root_name):
        encoding, documents = native.read(data, dt.family, mapping, rt.enterprise)
        return encoding, documents, f"{dt.family.root_name} as written"
    table = mapping.read(data, dt.encoding)
    documents = mapping.documents(table) if stream else mapping.apply(table)
    return table.encoding, documents, f"mapping {mapping.path.name}"


def _evaluate_file(rt: Runtime, dt: DocType, data: bytes, mapping=None) -> tuple[str, list[Evaluation]] | InputError:
    """Read, map and evaluate every document of a file: (encoding, evaluations), or the input error."""
    try:
        data, files = unpack(dt, data)
        encoding, documents, _ = read_documents(rt, dt, data, mapping, stream=True)
        evaluations = []
        for mapped in documents:   # one at a time: what is kept of each is its document and key
            ev = evaluate(rt, dt, mapped, files)
            ev.mapped = mapped.settled()
            evaluations.append(ev)
        return encoding, evaluations
    except InputError as exc:
        return exc


def unpack(dt: DocType, data: bytes):
    """A .zip drop (not a spreadsheet) is a package: its data file, and its attachments by name.
    Any other drop takes attachments from the document's attachments folder."""
    if zipsafe.is_zip(data) and not readers_xlsx.is_xlsx(data):
        policy = dt.attachment_policy or attachments.Policy()
        try:
            package = attachments.Package(data, policy, "the .zip package")
        except zipsafe.UnsafeZip as exc:
            raise InputError(f"package refused: {exc}") from None
        return package.data, package
    return data, attachments.Folder(dt.attachments_dir) if dt.attachments_dir else None


def _store_file(rt: Runtime, dt: DocType, s, batch: bulk.Batch, claimed: Claimed, data: bytes, sha: str,
                evaluated, existing: dict, source: str | None = None) -> tuple[dict, bulk.NewIntake]:
    report: dict = {"file": claimed.name, "document": dt.key, "claimed_as": claimed.path.name,
                    "accepted": [], "rejected": [], "duplicates": []}
    intake = batch.intake(bulk.NewIntake(doc_type=dt.key, source=source or str(dt.source.inbox), name=claimed.name,
                                         sha256=sha, size=len(data), outcome="error", report=report))
    if isinstance(evaluated, InputError):
        exc = evaluated
        report.update(outcome="error", error=str(exc), **({"row": exc.row} if exc.row else {}))
        return report, intake
    report["encoding"], evaluations = evaluated
    for ev in evaluations:
        outcome = store(dt, s, ev, intake, claimed.name, existing, batch=batch)
        report[outcome["bucket"]].append(outcome["entry"])
        msg = outcome.pop("_msg", None)
        if msg is not None and msg.state != states.INVALID:  # a later file of this batch with the same key meets it
            existing.setdefault((msg.enterprise, msg.business_key), []).append(msg)
    if not report["rejected"]:
        report["outcome"] = "accepted"
    elif report["accepted"] or report["duplicates"]:
        report["outcome"] = "partial"
    else:
        report["outcome"] = "error"
    intake.outcome = report["outcome"]
    return report, intake


@dataclass
class Evaluation:
    """What one mapped document became: its XML, or the errors that stop it."""

    mapped: Mapped
    enterprise: str
    signer: str
    document: bytes | None
    errors: list[FieldError]
    attachments: list = field(default_factory=list)   # attachments.Attachment, checked and hashed


def evaluate(rt: Runtime, dt: DocType, mapped: Mapped, files=None) -> Evaluation:
    """Profile -> enrich -> attachments -> rules -> build -> XSD for one document. Touches no store.
    `files`: where the attachments it names are (a .zip package or the attachments folder)."""
    errors: list[FieldError] = list(mapped.errors)
    carried = []
    built = None
    ent = rt.enterprise(mapped.enterprise)
    if ent is None:
        col = mapped.enterprise_field or dt.mapping.enterprise or "enterprise"
        errors.append(FieldError.at(mapped.key_origin, col, "profile",
                                    f"enterprise {mapped.enterprise!r} is not configured in "
                                    f"{rt.config.source.name} [[enterprise]]", mapped.enterprise))
    op = rt.operator(ent, dt.key) if ent else None
    if ent and op is None:
        errors.append(FieldError.at(mapped.key_origin, "operator", "profile",
                                    f"enterprise {ent.code} has no operator who signs {dt.key}"))
    if ent and op:
        # rules run beside field errors so a user sees every problem at once; the schema
        # check runs only on a clean document, where it finds what the mapping cannot
        ctx = Context(ent, op, rt.media_no(op.signer), dt.submit,   # the synced signatories, when a rule asks
                      signatories_of=(lambda: rt.profiles.signatories(ent)) if rt.profiles is not None else None)
        errors.extend(dt.family.enrich(mapped, ctx) or [])
        if mapped.attachments:
            carried, refused = attachments.resolve(mapped.attachments, files, dt.attachment_policy
                                                   or attachments.Policy())
            errors.extend(refused or dt.family.carry(mapped, carried, ctx))
        errors.extend(dt.family.profile_rules(mapped, ctx))
        errors.extend(dt.family.rules(mapped))
        if not errors:
            built = dt.family.build(mapped)
            errors.extend(dt.family.locate(built, dt.family.schema.errors(built.root)))
    document = None
    if built is not None:   # the text the tree was parsed from is its serialization (Built.serialized)
        document = built.serialized or etree.tostring(built.root, xml_declaration=True, encoding="UTF-8")
    return Evaluation(mapped, ent.code if ent else mapped.enterprise, op.signer if op else "", document, errors,
                      carried if document is not None else [])


def prepare(rt: Runtime, dt: DocType, s, mapped: Mapped, intake_id: int | None, file_name: str,
            existing: dict | None = None) -> dict:
    """Evaluate one document and store it as prepared, or invalid with its errors."""
    batch = bulk.Batch()
    result = store(dt, s, evaluate(rt, dt, mapped), intake_id, file_name, existing, batch=batch)
    batch.write(s)
    result.pop("_msg", None)
    return result


def store(dt: DocType, s, ev: Evaluation, intake: bulk.NewIntake | int | None, file_name: str,
          existing: dict | None = None, *, batch: bulk.Batch) -> dict:
    """Store one evaluated document in `batch` as prepared, or invalid with its errors (the
    caller writes the batch, which fills in the report entry's message id; the new message is
    result["_msg"]).

    `existing` (from repo.by_keys) lets a caller look up many keys in one query."""
    mapped = ev.mapped
    errors, document, enterprise = list(ev.errors), ev.document, ev.enterprise
    content_sha = hashlib.sha256(document or repr(sorted(mapped.rows)).encode()).hexdigest()
    source_ref = f"{file_name} rows {_rows(mapped.rows)}" if mapped.rows else f"{file_name} ({dt.family.root_name})"
    if existing is None:
        existing = repo.by_keys(s, dt.key, [mapped.key])

    replaced = []
    if not errors:
        for prior in existing.get((enterprise, mapped.key), []):
            if prior.state == states.INVALID:
                continue
            if prior.content_sha256 == content_sha:
                entry = {"key": mapped.key, "message": None, "note": "same document already taken; not sent again"}
                batch.name_in(entry, prior)   # a message of this batch: its id once written
                return {"bucket": "duplicates", "entry": entry}
            if prior.state in dt.family.resubmittable_states:
                continue  # returned by the authority: an amended document goes again under the same key
            if dt.family.replaces(prior, mapped):
                replaced.append(prior)  # e.g. 改证重发: the new application replaces the approved one
                continue
            errors.append(FieldError.at(mapped.key_origin, dt.family.key_name, "unique",
                                        f"{dt.family.key_name} {mapped.key} was already used by message {prior.id} "
                                        f"(state {prior.state}) with different content; use a new "
                                        f"{dt.family.key_name}", mapped.key))
            break

    msg = batch.message(bulk.NewMessage(
        doc_type=dt.key, enterprise=enterprise[:40], business_key=mapped.key[:100], cop_msg_id=uuid.uuid4().hex,
        state=states.RECEIVED, intake=intake, source_ref=source_ref[:400], content_sha256=content_sha,
        document=document, signer=ev.signer, transport=dt.transport, keys=[bulk.Key(dt.family.key_name, mapped.key)]))
    carried_as = _carried_names(document) if ev.attachments and not errors else []
    msg.attachments = [{"seq": seq, "code": att.code, "name": att.name[:255], "carried_as": as_name,
                        "media_type": attachments.MEDIA[att.kind], "size": att.size, "sha256": att.sha256,
                        "content": att.data}
                       for seq, (att, as_name) in enumerate(zip(ev.attachments, carried_as), start=1)]
    repo.note(s, msg, "received", source_ref)
    for prior in replaced if not errors else []:
        keys = ", ".join(f"{k.name} {k.value}" for k in prior.keys if k.name != dt.family.key_name)
        repo.note(s, msg, "replaces", f"replaces message {prior.id} ({prior.business_key}, {keys}, state "
                                      f"{prior.state}) under the same {dt.family.key_name}")
        repo.note(s, prior, "replaced", f"replaced by a new application under the same {dt.family.key_name} "
                                        f"(message {msg.cop_msg_id}, from {source_ref}); voided when that is approved")
    if msg.attachments:
        repo.note(s, msg, "attachments", "; ".join(f"{a['name']} as {a['carried_as']} ({a['code']}, "
                                                   f"{a['media_type']}, {a['size']} bytes, sha256 {a['sha256']})"
                                                   for a in msg.attachments))
    if errors:
        msg.errors = [e.to_dict() for e in errors]
        repo.transition(s, msg, states.INVALID, f"{len(errors)} error(s): " + "; ".join(
            e.located(file_name) for e in errors[:3]))
        result = {"bucket": "rejected", "entry": {"key": mapped.key, "rows": mapped.rows, "errors": msg.errors}}
    else:
        how = dt.family.describe(document)
        repo.transition(s, msg, states.PREPARED,
                        f"mapped and validated ({dt.mapping.path.name if mapped.rows else dt.family.root_name + ' as written'}"
                        f", {dt.family.xsd_name})" + (f"; {how}" if how else ""))
        licence_use.on_intake(s, msg)   # a declaration naming licences waits for them
        result = {"bucket": "accepted", "entry": {"key": mapped.key, "cop_msg_id": msg.cop_msg_id,
                                                  "rows": mapped.rows}}
    batch.name_in(result["entry"], msg)
    result["_msg"] = msg
    return result


CARRIED_AS = ("EdocID", "AttachName")   # the element that names an attachment in its package, per format


def _carried_names(document: bytes) -> list[str]:
    """The names the format gives the attachments, in order (declarations: EdocRealation/EdocID;
    certificates of origin: CertAttachment/AttachName)."""
    from gateway import xmlsafe

    root = xmlsafe.parse(document)
    return [e.text for e in root.iter() if isinstance(e.tag, str) and e.tag.rsplit("}", 1)[-1] in CARRIED_AS]


def _rows(rows: list[int]) -> str:
    if not rows:
        return "-"
    if rows == list(range(rows[0], rows[-1] + 1)) and len(rows) > 1:
        return f"{rows[0]}-{rows[-1]}"
    return ",".join(map(str, rows))


def take_records(rt: Runtime, queue_intake, limit: int = 200) -> int:
    """Take ERP records from the intake queues: map and evaluate each outside any transaction,
    store them all in one transaction, then ack each (or move it to the dead-letter queue with
    its reason). A crash before the ack means a redelivery, which the content hash finds taken."""
    records = queue_intake.fetch(limit)
    if not records:
        return 0
    work = []
    for rec in records:
        dt = rt.doc_types[rec.doc_type]
        sha = hashlib.sha256(rec.body).hexdigest()
        claimed = Claimed(name=rec.message_id, path=Path(queue_intake.queue_per_type[rec.doc_type]) / rec.message_id)
        work.append((rec, dt, claimed, sha, _evaluate_file(rt, dt, rec.body, dt.record_mapping)))
    reports = _store_isolating(rt, [(dt, claimed, rec.body, sha, evaluated, f"amqp:{claimed.path.parent}")
                                    for rec, dt, claimed, sha, evaluated in work])
    faults.hit("after-intake-commit")
    for (rec, dt, claimed, _, _), report in zip(work, reports):
        log.info("record taken", record=rec.message_id, document=dt.key, outcome=report["outcome"],
                 accepted=len(report.get("accepted", [])), rejected=len(report.get("rejected", [])))
        if report["outcome"] == "error":
            queue_intake.reject_to_dlq(rec.ref, _reason(report))
        else:
            queue_intake.ack(rec.ref)
    return len(records)


def _reason(report: dict) -> str:
    """Why a record was refused, in the user's terms (row, field, rule, value)."""
    if report.get("error"):
        return f"{report['file']}: " + (f"row {report['row']}: " if report.get("row") else "") + report["error"]
    parts = []
    for rejected in report.get("rejected", []):
        for err in rejected.get("errors", [])[:5]:
            parts.append(f"{rejected['key']}: " + FieldError(**err).located(report["file"]))
    return "; ".join(parts) or "refused"


def run_once(rt: Runtime, recover: bool = False) -> int:
    """Poll every drop folder once; returns how many files were taken."""
    n = 0
    for dt in rt.doc_types.values():
        # a transaction's worth a pass: the loop transmits what was signed meanwhile, then comes back
        claimed = dt.source.recover() if recover else dt.source.poll(budget=BYTES_PER_TRANSACTION)
        for chunk in _transactions(claimed):
            with metrics.timed("intake"):
                reports = take_files(rt, dt, chunk)
            metrics.count("intake", sum(len(r.get("accepted", [])) + len(r.get("rejected", [])) for r in reports))
            n += len(chunk)
    return n


def _transactions(claimed: list[Claimed]):
    """The claimed files in groups, each stored in one transaction: up to FILES_PER_TRANSACTION
    files and about BYTES_PER_TRANSACTION bytes. Forty files of fifty declarations each once went
    in one transaction, and signing waited for all 2,000 before its first; a group of about two
    hundred declarations is signed while the next is mapped."""
    chunk, size = [], 0
    for c in claimed:
        size += fsutil.size(c.path)   # gone: 0, and take_files reports it
        chunk.append(c)
        if len(chunk) >= FILES_PER_TRANSACTION or size >= BYTES_PER_TRANSACTION:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
