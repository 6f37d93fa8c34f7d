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
    return Needs(s.scalar(select(func.count()).select_from(Message).where(Message.overdue != "")) or 0,
                 s.scalar(select(func.count()).select_from(Message).where(Message.state == states.FAILED)) or 0,
                 s.scalar(select(func.count()).select_from(Message)
                          .where(Message.next_attempt_at.is_not(None))) or 0)


def oldest_unanswered(s):
    """The message sent longest ago that still waits for an answer (a Row: id, doc_type,
    business_key, state, sent_at), or None."""
    q = (select(Message.id, Message.doc_type, Message.business_key, Message.state, Message.sent_at)
         .where(Message.sent_at.is_not(None), Message.state.not_in(sorted(settled_states())))
         .order_by(Message.sent_at).limit(1))
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
