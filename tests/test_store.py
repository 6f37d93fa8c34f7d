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


def test_migration_creates_schema_and_events_refuse_change(engine):
    db.upgrade(engine)
    assert db.current_revision(engine) == "0001"
    db.upgrade(engine)  # idempotent
    names = set(sa.inspect(engine).get_table_names())
    assert {"messages", "events", "receipts", "intake_files", "message_keys"} <= names
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO events (at, kind, from_state, to_state, detail) "
                          "VALUES (CURRENT_TIMESTAMP, 'state', 'a', 'b', 'x')"))
    for stmt in ("UPDATE events SET detail = 'rewritten'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as c:
                c.execute(sa.text(stmt))
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT detail FROM events")).scalar_one() == "x"
