"""What the store says about the gateway as a whole: counts by type and state, what needs an
operator (overdue, failed, retrying), the oldest message still waiting for an answer, open
alarms, component states, recent intake. Read by the console's dashboard, the daemon's
/metrics gauges and `swgw doctor` — plain queries, no runtime."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from gateway.store import states
from gateway.store.models import Alarm, Component, IntakeFile, Message


def settled_states() -> set[str]:
    """States after which nobody waits for an answer (each family's final states, local finals)."""
    from gateway.documents import FAMILIES

    out = set(states.LOCAL_FINAL)
    for fam in FAMILIES.values():
        out |= set(fam.final_states)
    return out


def counts(s) -> list[tuple[str, str, int]]:
    """(doc_type, state, n), every pair that exists."""
    q = select(Message.doc_type, Message.state, func.count()).group_by(Message.doc_type, Message.state)
    return [(t, st, n) for t, st, n in s.execute(q.order_by(Message.doc_type, Message.state))]


@dataclass
class Needs:
    overdue: int
    failed: int
    retrying: int


def needs(s) -> Needs:
    """One pass over the messages for the three counts."""
    row = s.execute(select(func.count().filter(Message.overdue != ""),
                           func.count().filter(Message.state == states.FAILED),
                           func.count().filter(Message.next_attempt_at.is_not(None))).select_from(Message)).one()
    return Needs(row[0] or 0, row[1] or 0, row[2] or 0)


def oldest_unanswered(s, present: list[str] | None = None):
    """The message sent longest ago that still waits for an answer (a Row: id, doc_type,
    business_key, state, sent_at), or None. `present`: the states in the store, if known (the
    query then names the unsettled ones, and reads only their rows by the state index)."""
    settled = settled_states()
    if present is None:
        present = list(s.scalars(select(Message.state).distinct()))
    waiting = sorted(set(present) - settled)
    if not waiting:
        return None
    q = (select(Message.id, Message.doc_type, Message.business_key, Message.state, Message.sent_at)
         .where(Message.state.in_(waiting), Message.sent_at.is_not(None)).order_by(Message.sent_at).limit(1))
    return s.execute(q).first()


def open_alarms(s) -> int:
    return s.scalar(select(func.count()).select_from(Alarm).where(Alarm.acked_at.is_(None))) or 0


def components(s) -> list[Component]:
    return list(s.scalars(select(Component).order_by(Component.kind, Component.name)))


def intake_since(s, since: dt.datetime) -> list[tuple[str, str, int]]:
    """(doc_type, outcome, files) of the files and records taken since `since`."""
    q = (select(IntakeFile.doc_type, IntakeFile.outcome, func.count()).where(IntakeFile.received_at >= since)
         .group_by(IntakeFile.doc_type, IntakeFile.outcome).order_by(IntakeFile.doc_type))
    return [tuple(r) for r in s.execute(q)]
