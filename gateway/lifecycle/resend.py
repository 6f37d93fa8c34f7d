"""`swgw resend`: send a message again on purpose, recorded in the event log.

By default with the same CopMsgId (the platform drops a true duplicate, so this is safe
when it is unclear whether the first copy arrived). `new_submission` gives the message a
new CopMsgId and signs it again: the platform treats it as a new submission (e.g. after
a platform-side failure answered with an error). The old CopMsgId stays a key of the message.

Asked twice in a row (a double click in the console, a repeated command), the second request
finds the message still queued by the first and does nothing: it is sent once. `by` names who
asked (the console user; the CLI leaves it to "operator").
"""
from __future__ import annotations

import uuid

from gateway.lifecycle import clock, retries
from sqlalchemy import select

from gateway.store import repo, states
from gateway.store.models import Event, Message

SAME_ID_FROM = (states.SENT, states.SIGNED, states.FAILED, states.PREPARED)
NEW_ID_FROM = (*SAME_ID_FROM, states.REJECTED)


class Refused(Exception):
    pass


def request(rt, ref: str, new_submission: bool = False, by: str = "") -> Message:
    """Queue one message to be sent again. The returned message's `already_queued` is the time of
    the earlier request when this one found it still waiting (nothing changed), else ""."""
    with rt.sessions.begin() as s:
        msgs = repo.find(s, ref)
        if len(msgs) != 1:
            which = ", ".join(str(m.id) for m in msgs[:10])
            raise Refused(f"{ref!r} names {len(msgs)} messages{f' ({which})' if which else ''}; give the message id")
        m = msgs[0]
        if m.pruned_at is not None:
            raise Refused(f"message {m.id} has no payload any more: housekeeping archived and pruned it on "
                          f"{clock.stamp(m.pruned_at)} (see `swgw trace {m.id}`); drop the file again to resend")
        m.already_queued = _queued(s, m, new_submission)
        if m.already_queued:
            return m
        if new_submission:
            _new_submission(s, m, by)
        else:
            _same_id(s, m, f"resend requested by {by or 'operator'} (same CopMsgId)")
        retries.reset(m)
    return m


def _queued(s, m: Message, new_submission: bool) -> str:
    """When the last thing that happened to `m` is a resend request of this kind that has not
    been acted on yet (the message still waits in the state it put it in): that request's time."""
    last = s.scalars(select(Event).where(Event.message_id == m.id).order_by(Event.id.desc()).limit(1)).first()
    if last is None or last.kind != "state" or last.to_state != m.state or m.state not in (states.SIGNED,
                                                                                          states.PREPARED):
        return ""
    asked = "as a new submission" in last.detail if new_submission else (
        last.detail.startswith("resend") and "(same CopMsgId)" in last.detail)
    return clock.stamp(last.at) if asked else ""


def all_failed(rt, doc_type: str | None = None, by: str = "") -> list[Message]:
    """Queue every failed message that still has its payload (same CopMsgId): after an outage."""
    with rt.sessions.begin() as s:
        msgs = [m for m in repo.listing(s, doc_type, states.FAILED, limit=100_000) if m.pruned_at is None]
        for m in msgs:
            _same_id(s, m, f"resend of all failed messages requested by {by or 'operator'} (same CopMsgId)")
            retries.reset(m)
    return msgs


def _same_id(s, m: Message, why: str) -> None:
    if m.state not in SAME_ID_FROM:
        raise Refused(f"message {m.id} is {m.state}: the platform has answered it already, and a resend "
                      f"with the same CopMsgId would be dropped as a duplicate"
                      + (" (use --new-submission to send it as a new one)" if m.state in NEW_ID_FROM else ""))
    if m.envelope is not None:
        target = states.SIGNED
    elif m.document:
        target = states.PREPARED
    else:
        raise Refused(f"message {m.id} is {m.state} and has no document to send; fix the file and drop it again")
    repo.transition(s, m, target, why)


def _new_submission(s, m: Message, by: str = "") -> None:
    if m.state not in NEW_ID_FROM:
        raise Refused(f"message {m.id} is {m.state}: the authority has taken it; a new submission would "
                      f"declare it twice. Use a new business key for a new declaration")
    if not m.document:
        raise Refused(f"message {m.id} has no document to send; fix the file and drop it again")
    old = m.cop_msg_id
    repo.add_key(m, "PriorCopMsgId", old)
    m.cop_msg_id = uuid.uuid4().hex
    m.envelope = None
    m.overdue, m.overdue_since = "", None
    repo.transition(s, m, states.PREPARED, f"resend requested by {by or 'operator'} as a new submission: CopMsgId {old} "
                    f"-> {m.cop_msg_id} (signed again)")
