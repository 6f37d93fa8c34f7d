"""Engine, sessions and schema upgrades (Alembic, run from code)."""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, readonly: bool = False) -> Engine:
    """`readonly`: for a process that only reads (the console's pages, `swgw status`): on SQLite its
    transactions begin deferred, so reading never takes the write lock the daemon needs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None hands transaction control to SQLAlchemy, and every transaction
        # begins IMMEDIATE: with several threads writing (signing workers, the main loop), a
        # deferred read transaction that later writes would fail at once with SQLITE_BUSY
        # instead of waiting for the lock.
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not only a crash
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        # several processes may open the store at once (the daemon, `swgw status`): one upgrades,
        # the others wait and then find nothing to do. SQLite's BEGIN IMMEDIATE serialises them.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270401)")  # any fixed key, ours
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


@dataclass
class Store:
    """The store alone (engine and sessions), for what needs nothing else of the runtime:
    `swgw status`, `trace`, `subscriptions`, the console."""

    engine: Engine
    sessions: sessionmaker


def open_store(url: str, readonly: bool = False) -> Store:
    """The store at `url`; a store without any schema gets it (Alembic). A store with an older
    schema is upgraded by the daemon when it starts, or `swgw db upgrade`."""
    engine = make_engine(url, readonly=readonly)
    if not inspect(engine).has_table("messages"):
        upgrade(make_engine(url))
    return Store(engine, sessions(engine))
