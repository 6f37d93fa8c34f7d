"""Leases: which `swgw run` process works a message now.

Several processes on one PostgreSQL store take a stage's batch with
`SELECT … FOR UPDATE SKIP LOCKED` and mark its rows with a lease (owner, expiry) in the same
short transaction; the batch then works outside any transaction, as it does alone. Another
process skips leased rows until their lease expires — so a batch of a process that died is
taken over after `[cluster] lease_seconds`.

A live owner renews its lease while a long batch works (`Held.renew`, at most a third of the
lease after the last renewal) and works only the rows the renewal still returns; at its commit
it keeps only the rows it still holds (`Held.keep`, with the rows locked). So a batch whose
lease ran out (the process stalled longer than a lease) never sends a message another
process has taken. The commit releases the lease with the state change.

On SQLite (one process, see gateway/cluster.py) the batch is taken as before: nothing is leased.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm.attributes import set_committed_value

from gateway.store.models import Message


@dataclass(frozen=True)
class Lease:
    owner: str          # the process (gateway/cluster.py member id)
    seconds: float


def clustered(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def free():
    """Messages no live batch holds."""
    return or_(Message.lease_until.is_(None), Message.lease_until < func.now())


@dataclass
class Held:
    """The messages a batch took, while it works them."""

    lease: Lease | None
    rows: list[Message] = field(default_factory=list)
    renewed: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return self.lease is not None and time.monotonic() - self.renewed > self.lease.seconds / 3

    def renew(self, session, pending: list[Message]) -> list[Message]:
        """Extend the lease of the batch's rows (commits the session); returns those of `pending`
        still held, in order."""
        if self.lease is None or not pending:
            return pending
        ids = set(session.scalars(
            update(Message).where(Message.id.in_([m.id for m in self.rows]), Message.lease_owner == self.lease.owner)
            .values(lease_until=func.now() + dt.timedelta(seconds=self.lease.seconds))
            .returning(Message.id).execution_options(synchronize_session=False)))
        session.commit()
        self.renewed = time.monotonic()
        return [m for m in pending if m.id in ids]

    def keep(self, session, worked: list[Message]) -> list[Message]:
        """In the batch's closing transaction: lock the rows of `worked` this batch still holds,
        release their lease with the commit, and return them (the others belong to another process now)."""
        if self.lease is None or not worked:
            return worked
        with session.no_autoflush:   # the batch's changes go in one UPDATE after this (repo.save), not row by row
            ids = set(session.scalars(select(Message.id).where(
                Message.id.in_([m.id for m in worked]), Message.lease_owner == self.lease.owner).with_for_update()))
        kept = [m for m in worked if m.id in ids]
        for m in kept:
            m.lease_owner, m.lease_until = "", None
        return kept

    def release(self, session) -> None:
        """Give back what the batch holds and did not finish (parked, a link down), in its own commit.
        Not the rows its closing commit released (`keep`): the next stage of this process, under
        the same owner, may have leased them since. (After a rollback they read as still held.)"""
        if self.lease is None or not self.rows:
            return
        unfinished = [m.id for m in self.rows if m.lease_owner == self.lease.owner]
        if not unfinished:
            return
        session.execute(update(Message).where(Message.id.in_(unfinished), Message.lease_owner == self.lease.owner)
                        .values(lease_owner="", lease_until=None).execution_options(synchronize_session=False))
        session.commit()


def take(session, query, lease: Lease | None) -> Held:
    """The rows of `query` (a select of Message) no other batch holds, leased to `lease.owner`.
    The caller commits (that ends the row locks; the lease stays)."""
    if lease is None or not clustered(session):
        return Held(None, list(session.scalars(query)))
    rows = list(session.scalars(query.where(free()).with_for_update(skip_locked=True, of=Message)))
    if rows:
        session.execute(update(Message).where(Message.id.in_([m.id for m in rows]))
                        .values(lease_owner=lease.owner,
                                lease_until=func.now() + dt.timedelta(seconds=lease.seconds))
                        .execution_options(synchronize_session=False))
        until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=lease.seconds)
        for m in rows:   # what the rows now say, so that releasing them at the commit is a change
            set_committed_value(m, "lease_owner", lease.owner)
            set_committed_value(m, "lease_until", until)
    return Held(lease, rows)


def exclusive(session, *names: str) -> None:
    """For the rest of the session's transaction, no other process holds any of `names` (a
    PostgreSQL transaction advisory lock each, taken in a fixed order). Intake stores under it:
    two processes taking the same content at once would otherwise both miss the other's
    uncommitted rows and store it twice. SQLite: its write lock serialises already."""
    if not clustered(session):
        return
    for name in sorted(set(names)):
        session.execute(text("SELECT pg_advisory_xact_lock(7270416, hashtext(:n))"), {"n": name})
