"""New rows written in bulk: what an intake batch stores, one executemany INSERT per table.

Intake makes many new rows at once — a record per file, and per document a message, its key,
its attachments and its first events. As ORM objects each would go through the unit of work
on its own (history, dependency sorting, a RETURNING per page of rows); here each is a plain
record, its id is drawn before the INSERT (`new_ids`), and each table gets one INSERT without
RETURNING for the whole batch (on PostgreSQL the driver pipelines it, no per-row round trip).

A record offers what the rest of intake reads of a message or intake file (state, keys, ids for
the report); `repo.transition`/`repo.note` work on a NewMessage as on a Message (its events wait
in the session's pending events until its id is drawn, and go in the order noted).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from sqlalchemy import func, insert, select, text

from gateway.store.models import IntakeFile, Message, MessageAttachment, MessageKey, utcnow


class Key(NamedTuple):
    name: str
    value: str


@dataclass(eq=False)
class NewIntake:
    """A file (or queued record) taken in this batch: an `intake_files` row once written."""

    doc_type: str
    source: str
    name: str
    sha256: str
    size: int
    outcome: str
    report: dict | None
    received_at: dt.datetime = field(default_factory=utcnow)
    id: int | None = None


@dataclass(eq=False)
class NewMessage:
    """A message made in this batch: a `messages` row (with its keys and attachments) once written."""

    doc_type: str
    enterprise: str
    business_key: str
    cop_msg_id: str
    state: str
    intake: NewIntake | int | None
    source_ref: str
    content_sha256: str
    document: bytes | None
    signer: str
    transport: str
    keys: list[Key]
    attachments: list[dict] = field(default_factory=list)   # message_attachments columns, without ids
    errors: list | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime | None = None
    id: int | None = None


class Batch:
    """The new rows of one transaction, and the report entries that name them (filled with their
    ids when they are written)."""

    def __init__(self):
        self.intakes: list[NewIntake] = []
        self.messages: list[NewMessage] = []
        self.names: list[tuple[dict, NewMessage]] = []   # (report entry, message): entry["message"] = id

    def intake(self, rec: NewIntake) -> NewIntake:
        self.intakes.append(rec)
        return rec

    def message(self, msg: NewMessage) -> NewMessage:
        self.messages.append(msg)
        return msg

    def name_in(self, entry: dict, msg) -> None:
        """`entry["message"]` is the id of `msg` (a stored Message, or a NewMessage once written)."""
        if isinstance(msg, NewMessage) and msg.id is None:
            self.names.append((entry, msg))
        else:
            entry["message"] = msg.id

    def write(self, session) -> None:
        """Draw the ids, fill in the report entries, then INSERT every table once. The messages'
        events go with the session's pending events (at the next flush or the commit)."""
        for rec, id_ in zip(self.intakes, new_ids(session, IntakeFile, len(self.intakes))):
            rec.id = id_
        for msg, id_ in zip(self.messages, new_ids(session, Message, len(self.messages))):
            msg.id = id_
        for entry, msg in self.names:
            entry["message"] = msg.id
        if self.intakes:
            session.execute(insert(IntakeFile.__table__), [
                {"id": r.id, "doc_type": r.doc_type, "source": r.source, "name": r.name, "sha256": r.sha256,
                 "size": r.size, "outcome": r.outcome, "report": r.report, "received_at": r.received_at}
                for r in self.intakes])
        if not self.messages:
            return
        session.execute(insert(Message.__table__), [_message_row(m) for m in self.messages])
        keys = [{"message_id": m.id, "name": k.name, "value": k.value} for m in self.messages for k in m.keys]
        if keys:
            session.execute(insert(MessageKey.__table__), keys)
        attachments = [{**a, "message_id": m.id} for m in self.messages for a in m.attachments]
        if attachments:
            session.execute(insert(MessageAttachment.__table__), attachments)


def _defaults(table, given: set[str]) -> dict:
    """What a new row of `table` holds in each column a record does not give: the model's default,
    else NULL — read from the model, so that a column added to it is written as the ORM would
    write it. A column the record must give (no scalar default, not nullable) fails here, at import."""
    out = {}
    for c in table.columns:
        if c.name in given:
            continue
        d = c.default
        if (d is not None and not d.is_scalar) or (d is None and not c.nullable and c.server_default is None):
            raise TypeError(f"{table.name}.{c.name}: the bulk insert has no value for it (gateway/store/bulk.py)")
        if d is not None:
            out[c.name] = d.arg
        elif c.server_default is None:
            out[c.name] = None
        # else: left out, for the server's default — every row leaves it out alike
    return out


def _message_given(m: NewMessage) -> dict:
    return {"id": m.id, "doc_type": m.doc_type, "enterprise": m.enterprise, "business_key": m.business_key,
            "cop_msg_id": m.cop_msg_id, "state": m.state,
            "intake_file_id": getattr(m.intake, "id", m.intake),   # a NewIntake, an IntakeFile, an id or None
            "source_ref": m.source_ref, "content_sha256": m.content_sha256, "document": m.document,
            "errors": m.errors, "signer": m.signer, "transport": m.transport, "created_at": m.created_at,
            "updated_at": m.updated_at or m.created_at}


_MESSAGE_DEFAULTS = _defaults(Message.__table__,   # the columns a record gives: those _message_given fills
                              set(_message_given(NewMessage(**{f.name: None for f in fields(NewMessage)}))))


def _message_row(m: NewMessage) -> dict:
    """Every column (one executemany needs the same keys in every row): the record's, and the model's defaults."""
    return {**_MESSAGE_DEFAULTS, **_message_given(m)}


def new_ids(session, model, n: int) -> list[int]:
    """`n` ids for new rows of `model`, ascending. PostgreSQL: from the table's sequence (other
    processes draw their own). SQLite: after the highest, as SQLite itself would — the caller's
    transaction holds the write lock (every writing transaction begins IMMEDIATE, see db.py)."""
    if n <= 0:
        return []
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        return sorted(session.scalars(text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) "
                                           "FROM generate_series(1, :n)"), {"t": table.name, "n": n}))
    first = session.scalar(select(func.coalesce(func.max(table.c.id), 0))) + 1
    return list(range(first, first + n))
