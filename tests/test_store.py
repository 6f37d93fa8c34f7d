"""The store: Alembic migrations on SQLite and PostgreSQL; the event log is append-only."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gateway.store import db

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 's.db'}")
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {schema}")
    eng = sa.create_engine(PG, connect_args={"options": f"-csearch_path={schema}"})
    yield eng
    eng.dispose()
    with admin.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


HEAD = _head()


def test_migration_creates_schema_and_events_refuse_change(engine):
    db.upgrade(engine)
    assert db.current_revision(engine) == HEAD
    db.upgrade(engine)  # idempotent
    names = set(sa.inspect(engine).get_table_names())
    assert {"messages", "events", "receipts", "intake_files", "message_keys", "message_attachments"} <= names
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO events (at, kind, from_state, to_state, detail) "
                          "VALUES (CURRENT_TIMESTAMP, 'state', 'a', 'b', 'x')"))
    for stmt in ("UPDATE events SET detail = 'rewritten'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as c:
                c.execute(sa.text(stmt))
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT detail FROM events")).scalar_one() == "x"


def test_migration_0002_adds_lifecycle_columns_to_a_store_with_messages(engine):
    db.upgrade(engine, "0001")
    with engine.begin() as c:
        c.execute(sa.text(
            "INSERT INTO messages (doc_type, enterprise, business_key, cop_msg_id, state, source_ref, "
            "content_sha256, signer, transport, attempts, last_receipt, created_at, updated_at) VALUES "
            "('declaration', 'E', 'K1', 'c1', 'sent', '', 'x', 'op', 'ex', 1, '', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        c.execute(sa.text("INSERT INTO events (at, kind, from_state, to_state, detail) "
                          "VALUES (CURRENT_TIMESTAMP, 'state', 'a', 'b', 'kept')"))
    db.upgrade(engine)
    assert db.current_revision(engine) == HEAD
    insp = sa.inspect(engine)
    cols = {c["name"] for c in insp.get_columns("messages")}
    assert {"next_attempt_at", "transmit_failures", "sent_at", "overdue", "resends", "pruned_at"} <= cols
    assert {"subscriptions", "apscheduler_jobs"} <= set(insp.get_table_names())
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT sent_at, updated_at, overdue, transmit_failures, resends "
                                "FROM messages")).one()
    assert row.sent_at is not None and row.overdue == "" and row.transmit_failures == 0 and row.resends == 0
    # the audit trail survives, and still refuses change
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as c:
            c.execute(sa.text("DELETE FROM events"))


def test_payloads_are_compressed_with_lz4_on_postgresql(engine):
    """PostgreSQL keeps the documents, envelopes, attachments and receipts with lz4 (this machine's
    server has it; migration 0009_lz4); SQLite has no such setting."""
    db.upgrade(engine)
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as c:
        found = dict(c.execute(sa.text(
            "SELECT a.attrelid::regclass::text || '.' || a.attname, a.attcompression FROM pg_attribute a "
            "WHERE a.attrelid IN ('messages'::regclass, 'message_attachments'::regclass, 'receipts'::regclass) "
            "AND a.attname IN ('document', 'envelope', 'content', 'raw')")).all())
        assert found == {"messages.document": "l", "messages.envelope": "l", "message_attachments.content": "l",
                         "receipts.raw": "l"}


def test_a_message_written_in_bulk_is_the_row_the_orm_writes(engine):
    """Intake writes its new messages with one INSERT (gateway/store/bulk.py), filling what a
    record does not give from the model's defaults: every column reads as the ORM's row does."""
    from sqlalchemy.orm import Session

    from gateway.store import bulk
    from gateway.store.models import Message

    db.upgrade(engine)
    given = dict(doc_type="declaration", enterprise="E", state="prepared", source_ref="f.csv#2",
                 content_sha256="ab", document=b"<x/>", signer="op", transport="exchange")
    with Session(engine) as s, s.begin():
        orm = Message(business_key="K1", cop_msg_id="C1", **given)
        s.add(orm)
        batch = bulk.Batch()
        batch.message(bulk.NewMessage(business_key="K2", cop_msg_id="C2", intake=None, keys=[], **given))
        batch.write(s)
    with engine.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(sa.select(Message.__table__).order_by(Message.id))]
    skip = {"id", "business_key", "cop_msg_id", "created_at", "updated_at"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in rows] == \
        [{k: v for k, v in rows[0].items() if k not in skip}] * 2
