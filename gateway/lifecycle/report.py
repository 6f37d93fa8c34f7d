"""What `swgw status` shows of the lifecycle: overdue flags, retry times, pruned payloads."""
from __future__ import annotations

from gateway.lifecycle import clock
from gateway.store.models import Message


def fields(m: Message) -> dict:
    return {"overdue": m.overdue or None,
            "overdue_since": _iso(m.overdue_since),
            "sent_at": _iso(m.sent_at),
            "transmit_failures": m.transmit_failures or 0,
            "next_attempt_at": _iso(m.next_attempt_at),
            "resends": m.resends or 0,
            "pruned_at": _iso(m.pruned_at)}


def flag(row: dict) -> str:
    """A suffix for the status table line."""
    out = ""
    if row.get("overdue"):
        out += f"  [OVERDUE: {row['overdue']} since {row['overdue_since'][:19]}]"
    if row.get("next_attempt_at"):
        out += f"  [retry {row['transmit_failures']} at {row['next_attempt_at'][:19]}]"
    if row.get("resends"):
        out += f"  [resent {row['resends']}x]"
    return out


def _iso(value) -> str | None:
    value = clock.aware(value)
    return value.isoformat() if value else None


def doctor(rt) -> list[tuple[bool, str, str]]:
    """`swgw doctor` lines: what needs an operator (overdue, failed), and the scheduled jobs."""
    import datetime as dt

    from sqlalchemy import func, select, text

    from gateway.store import states
    from gateway.store.models import Message, Subscription

    out = []
    with rt.sessions() as s:
        overdue = s.scalar(select(func.count()).select_from(Message).where(Message.overdue != ""))
        failed = s.scalar(select(func.count()).select_from(Message).where(Message.state == states.FAILED))
        retrying = s.scalar(select(func.count()).select_from(Message).where(Message.next_attempt_at.is_not(None)))
        subs = s.scalar(select(func.count()).select_from(Subscription))
        jobs = s.execute(text("SELECT id, next_run_time FROM apscheduler_jobs ORDER BY id")).all()
    out.append((True, "messages", f"{overdue} overdue (swgw status --overdue), {failed} failed "
                                  f"(swgw resend --all-failed), {retrying} waiting to retry; {subs} subscriptions"))
    if not jobs:
        out.append((True, "scheduled jobs", "none stored yet: the daemon creates them when it starts"))
    for job_id, when in jobs:
        at = dt.datetime.fromtimestamp(when, dt.timezone.utc) if when is not None else None
        out.append((True, f"job {job_id}", f"next run {clock.stamp(at)}" if at else "paused"))
    return out
