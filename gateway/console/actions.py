"""What an operator does from the console, through the same code as the CLI (resend,
subscriptions, alarms), each recorded with the user's name. Refusals are ActionRefused with a
sentence the page shows."""
from __future__ import annotations

from gateway import alarms as alarm_store
from gateway.lifecycle import resend as resending, subscriptions
from gateway.store import repo
from gateway.store.models import Message


class ActionRefused(Exception):
    pass


def _by(who) -> str:
    return f"{who.name} ({who.role}, console)"


def resend(rt, who, message_id: int, new_submission: bool = False) -> str:
    try:
        m = resending.request(rt, str(message_id), new_submission=new_submission, by=_by(who))
    except resending.Refused as exc:
        raise ActionRefused(str(exc)) from None
    if m.already_queued:
        return f"message {m.id} is already queued to send again (asked {m.already_queued}); it is sent once"
    how = "as a new submission with CopMsgId" if new_submission else "with the same CopMsgId"
    return f"message {m.id} queued to send again {how} {m.cop_msg_id}"


def resend_failed(rt, who, doc_type: str | None) -> str:
    msgs = resending.all_failed(rt, doc_type or None, by=_by(who))
    what = f"failed {doc_type} message(s)" if doc_type else "failed message(s)"
    return f"{len(msgs)} {what} queued to send again with the same CopMsgId"


def acknowledge(rt, who, alarm_id: int) -> str:
    alarm = alarm_store.acknowledge(rt.sessions, alarm_id, who.name)
    if alarm is None:
        raise ActionRefused(f"no alarm {alarm_id}")
    if alarm.acked_by != who.name:
        return f"alarm {alarm_id} was acknowledged already by {alarm.acked_by}"
    with rt.sessions.begin() as s:
        msg = s.get(Message, alarm.message_id) if alarm.message_id else None
        repo.note(s, msg, "alarm-acknowledged", f"alarm {alarm.id} ({alarm.kind}) acknowledged by {_by(who)}")
    return f"alarm {alarm_id} acknowledged"


def subscribe(rt, who, *, business_key="", enterprise="", operator="", kinds="", folder="", queue="") -> str:
    kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
    try:
        sub = subscriptions.add(rt, business_key=business_key.strip(), enterprise=enterprise.strip(),
                                operator=operator.strip(), kinds=kind_list, folder=folder.strip(),
                                queue=queue.strip(), by=_by(who))
    except ValueError as exc:
        raise ActionRefused(str(exc).replace("--key", "a key").replace("--enterprise", "an enterprise")
                            .replace("--operator", "an operator").replace("--folder DIR", "a folder")
                            .replace("--queue NAME", "a queue").replace("--queue", "a queue")) from None
    return f"subscription {sub.id} added: {subscriptions.Rule.of(sub).describe()}"


def unsubscribe(rt, who, sub_id: int) -> str:
    if subscriptions.remove(rt, sub_id, by=_by(who)) is None:
        raise ActionRefused(f"no subscription {sub_id}")
    return f"subscription {sub_id} removed"
