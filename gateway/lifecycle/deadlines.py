"""Deadlines: each document type expects its receipts within configured times, counted from
when the message was (last) sent. The sweep flags a message past a deadline `overdue`
(the step it misses: platform-response, authority-response, final), records it as an
event, raises an alarm, and — where the type allows it — sends again a message the
platform never answered at all (same CopMsgId: the platform drops true duplicates).
A flag clears itself (with an event) once the awaited receipt arrives.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from gateway import alarms
from gateway.lifecycle import clock, retries
from gateway.lifecycle.settings import DeadlineConfig, describe
from gateway.log import get_logger
from gateway.store import repo, states
from gateway.store.models import Message

log = get_logger("deadlines")

PLATFORM, AUTHORITY, FINAL = "platform-response", "authority-response", "final"
WHAT = {PLATFORM: "no platform response (DxpRep)",
        AUTHORITY: "no response from the authority",
        FINAL: "no final receipt"}
NOT_SENT = (states.RECEIVED, states.PREPARED, states.SIGNED)   # (re)sending: the clock is not running


def missed(msg: Message, dl: DeadlineConfig, final_states, now: dt.datetime) -> str | None:
    """The first deadline `msg` has missed, or None. Not called for messages not (re)sent yet."""
    if msg.state in final_states or msg.state in states.LOCAL_FINAL:
        return None
    sent = clock.aware(msg.sent_at or msg.updated_at)
    age = (now - sent).total_seconds()
    if msg.state == states.SENT and dl.platform_response and age > dl.platform_response:
        return PLATFORM
    if msg.state in (states.SENT, states.ACKNOWLEDGED) and dl.authority_response and age > dl.authority_response:
        return AUTHORITY
    if dl.final and age > dl.final:
        return FINAL
    return None


def waiting_for(step: str, state: str, final_states) -> bool:
    """Is a message in `state` still waiting for the receipt `step` names (whatever its clock says)?
    A flag stays until then: a resend restarts the clock, not the wait."""
    if state in final_states or state in states.LOCAL_FINAL:
        return False
    if step == PLATFORM:
        return state in (*NOT_SENT, states.SENT)
    if step == AUTHORITY:
        return state in (*NOT_SENT, states.SENT, states.ACKNOWLEDGED)
    return True


def _limit(dl: DeadlineConfig, step: str) -> float:
    return {PLATFORM: dl.platform_response, AUTHORITY: dl.authority_response, FINAL: dl.final}[step]


def sweep(rt, batch: int = 500) -> dict[str, int]:
    """One pass over every document type; returns counts of what it did."""
    done = {"overdue": 0, "cleared": 0, "resent": 0}
    now = clock.now()
    found: list[tuple[Message, str]] = []
    with rt.sessions() as s:
        for key, doc in rt.config.documents.items():
            dtype = rt.doc_types.get(key)
            if dtype is None:
                continue
            dl, final_states = doc.deadlines, dtype.family.final_states
            for msg in _candidates(s, key, dl, final_states, now, batch):
                did, why = _check(s, msg, dl, final_states, now)
                for what in did:
                    done[what] += 1
                if why:
                    found.append((msg, why))
        s.commit()
    for msg, why in found:  # after the commit: an alarm never names an unrecorded flag
        alarms.raise_alarm(rt, "overdue", f"message {msg.id} ({msg.doc_type} {msg.business_key}) {why}",
                           message_id=msg.id, doc_type=msg.doc_type, business_key=msg.business_key,
                           enterprise=msg.enterprise, cop_msg_id=msg.cop_msg_id, step=msg.overdue,
                           state=msg.state, resends=msg.resends)
    if any(done.values()):
        log.info("deadline sweep", **done)
    return done


def _check(s, msg: Message, dl: DeadlineConfig, final_states, now: dt.datetime) -> tuple[list[str], str]:
    """Flag, clear or resend one message; returns what it did (overdue, cleared, resent) and,
    when newly flagged, why."""
    did, why = [], ""
    step = missed(msg, dl, final_states, now)
    resend = step == PLATFORM and dl.resend_unanswered and msg.envelope is not None \
        and msg.resends < dl.max_resends
    if msg.overdue and waiting_for(msg.overdue, msg.state, final_states) or step == (msg.overdue or None):
        pass  # still overdue for the same receipt: a resend restarts the clock, not the wait
    elif step:
        msg.overdue, msg.overdue_since = step, now
        why = (f"overdue: {WHAT[step]} within {describe(_limit(dl, step))} of sending at "
                    f"{clock.stamp(msg.sent_at or msg.updated_at)} (state {msg.state})")
        repo.note(s, msg, "overdue", why)
        did.append("overdue")
    else:
        repo.note(s, msg, "overdue-cleared", f"no longer overdue ({msg.overdue}): state {msg.state}")
        msg.overdue, msg.overdue_since = "", None
        did.append("cleared")
    if resend:
        _resend(s, msg, dl)
        did.append("resent")
    return did, why


def _candidates(s, doc_type: str, dl: DeadlineConfig, final_states, now: dt.datetime, batch: int):
    """Messages whose overdue flag may change or that may need a resend: flagged ones, and
    open ones sent longer ago than the shortest deadline."""
    # FOR UPDATE (PostgreSQL; SQLite's transactions are IMMEDIATE already): a receipt committed
    # by the main loop meanwhile is seen before a resend could overwrite its state
    base = select(Message).where(Message.doc_type == doc_type).order_by(Message.id).limit(batch) \
        .with_for_update(of=Message)
    out = {m.id: m for m in s.scalars(base.where(Message.overdue != ""))}
    limits = [x for x in (dl.platform_response, dl.authority_response, dl.final) if x]
    if limits:
        cutoff = now - dt.timedelta(seconds=min(limits))
        closed = (*final_states, *states.LOCAL_FINAL, *NOT_SENT)
        q = base.where(Message.state.not_in(closed), Message.sent_at.is_not(None), Message.sent_at < cutoff)
        for m in s.scalars(q):
            out.setdefault(m.id, m)
    return [m for m in out.values() if m.state not in NOT_SENT]


def _resend(s, msg: Message, dl: DeadlineConfig) -> None:
    msg.resends += 1
    retries.reset(msg)
    repo.transition(s, msg, states.SIGNED, f"resend {msg.resends} of {dl.max_resends}: no platform response "
                    f"within {describe(dl.platform_response)} (same CopMsgId {msg.cop_msg_id})")
