"""Queries and state changes. Every state change writes an event in the same transaction."""
from __future__ import annotations

from sqlalchemy import bindparam, inspect, insert, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, selectinload

from gateway.store.bulk import NewMessage
from gateway.store.models import Event, Message, MessageKey, Receipt, utcnow


def transition(session: Session, msg: Message | NewMessage, to_state: str, detail: str = "") -> None:
    _add_event(session, msg, "state", msg.state, to_state, detail)
    msg.state = to_state
    msg.updated_at = utcnow()


def note(session: Session, msg: Message | NewMessage | None, kind: str, detail: str) -> None:
    if not isinstance(msg, (Message, NewMessage)):   # None, or a stand-in (an inspection order without its declaration)
        msg = None
    if msg is None:
        session.add(Event(kind=kind, from_state="", to_state="", detail=detail))
    else:
        _add_event(session, msg, kind, msg.state, msg.state, detail)


def _add_event(session: Session, msg: Message | NewMessage, kind: str, from_state: str, to_state: str,
               detail: str) -> None:
    """An event is a row naming its message (msg.events, the write-only collection, would build a
    query each time): a plain row, no ORM object and no unit of work, inserted with the batch's
    others in one executemany INSERT once its message has its id — at the next flush (a new
    message's id comes with it; a bulk.NewMessage's when its batch is written) or commit, in the
    session's transaction, in the order noted."""
    if not session.in_transaction():
        session.begin()   # as session.add would: a rollback before the next commit drops the row
    if msg.id is None and isinstance(msg, Message) and msg not in session:
        session.add(msg)  # as the relationship's cascade did: the event stores its new message
    session.info.setdefault(_PENDING, []).append(
        (msg, {"at": utcnow(), "kind": kind, "from_state": from_state, "to_state": to_state, "detail": detail}))


_PENDING = "swgw pending events"


@sa_event.listens_for(Session, "after_flush")
@sa_event.listens_for(Session, "before_commit")
def _insert_pending_events(session: Session, *_) -> None:
    """The pending events whose messages have their ids (those of a message still unflushed wait
    for the flush that commit runs next)."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    ready = [{**row, "message_id": msg.id} for msg, row in pending if msg.id is not None]
    session.info[_PENDING] = [(msg, row) for msg, row in pending if msg.id is None]
    if ready:
        session.execute(insert(Event.__table__), ready)


@sa_event.listens_for(Session, "after_transaction_end")
def _drop_pending_events(session: Session, transaction) -> None:
    if transaction.parent is None:   # committed (inserted above), or rolled back: they go with it
        session.info.pop(_PENDING, None)


def save(session: Session, msgs: list[Message]) -> None:
    """Write what changed in many loaded messages with one executemany UPDATE per set of changed
    columns (a stage's batch changes the same ones in each), where the ORM's flush would track
    every object on its own. Afterwards they are clean; a message with other changes (its keys)
    is left to the flush."""
    groups: dict[tuple[str, ...], list[Message]] = {}
    for msg in msgs:
        state = inspect(msg)
        changed = tuple(sorted(state.committed_state))
        if changed and state.persistent and all(c in _COLUMNS for c in changed):
            groups.setdefault(changed, []).append(msg)
    table = Message.__table__
    for columns, group in groups.items():
        rows = [{"b_id": msg.id, **{c: msg.__dict__[c] for c in columns}} for msg in group]
        with session.no_autoflush:   # a flush first would write them one by one
            session.execute(update(table).where(table.c.id == bindparam("b_id")), rows)
        for msg in group:   # written: what the ORM itself does after its flush (none waits for the next)
            state = inspect(msg)
            state._commit_all(state.dict, session.identity_map)


_COLUMNS = frozenset(Message.__table__.c.keys())


def add_key(msg: Message, name: str, value: str) -> None:
    if value and not any(k.name == name and k.value == value for k in msg.keys):
        msg.keys.append(MessageKey(name=name, value=value))


def by_keys(session: Session, doc_type: str, keys: list[str]) -> dict[tuple[str, str], list[Message]]:
    """Existing messages for many business keys at once: (enterprise, key) -> messages."""
    out: dict[tuple[str, str], list[Message]] = {}
    for chunk in range(0, len(keys), 500):
        q = select(Message).where(Message.doc_type == doc_type,
                                  Message.business_key.in_(keys[chunk:chunk + 500])).order_by(Message.id)
        for m in session.scalars(q):
            out.setdefault((m.enterprise, m.business_key), []).append(m)
    return out


def in_state(session: Session, state: str, limit: int, **where) -> list[Message]:
    """Messages in `state`; with `due` (a time), only those whose next attempt is due by then."""
    return list(session.scalars(state_query(state, limit, **where)))


def state_query(state: str, limit: int, doc_type: str | None = None,
                signer: str | None = None, transports: list[str] | None = None,
                not_transports: list[str] | None = None, due=None, part: tuple[int, int] = (0, 1)):
    """The select of `in_state` (gateway/store/leases.py takes it with leases); `part` (i, n):
    only the ids that are i modulo n."""
    q = select(Message).where(Message.state == state).order_by(Message.id).limit(limit)
    if part[1] > 1:
        q = q.where(Message.id % part[1] == part[0])
    if transports is not None:
        q = q.where(Message.transport.in_(transports))
    if not_transports:
        q = q.where(Message.transport.not_in(not_transports))
    if due is not None:
        q = q.where(or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= due))
    if doc_type:
        q = q.where(Message.doc_type == doc_type)
    if signer:
        q = q.where(Message.signer == signer)
    return q


def find(session: Session, ref: str) -> list[Message]:
    """Messages known by `ref`: an id, a CopMsgId, or any business key."""
    conds = [Message.cop_msg_id == ref, Message.business_key == ref,
             Message.id.in_(select(MessageKey.message_id).where(MessageKey.value == ref))]
    if ref.isdigit() and len(ref) < 12:
        conds.append(Message.id == int(ref))
    q = select(Message).where(or_(*conds)).options(selectinload(Message.keys)).order_by(Message.id)
    return list(session.scalars(q))


def by_key(session: Session, doc_type: str, enterprise: str, business_key: str) -> list[Message]:
    q = select(Message).where(Message.doc_type == doc_type, Message.enterprise == enterprise,
                              Message.business_key == business_key).order_by(Message.id)
    return list(session.scalars(q))


def events(session: Session, message_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.message_id == message_id).order_by(Event.id)))


def receipts(session: Session, message_id: int) -> list[Receipt]:
    return list(session.scalars(select(Receipt).where(Receipt.message_id == message_id).order_by(Receipt.id)))


def unrouted_receipts(session: Session, limit: int) -> list[Receipt]:
    q = select(Receipt).where(Receipt.routed_at.is_(None)).order_by(Receipt.id).limit(limit)
    return list(session.scalars(q))


def listing(session: Session, doc_type: str | None = None, state: str | None = None,
            key: str | None = None, limit: int = 1000, overdue: bool = False) -> list[Message]:
    q = select(Message).order_by(Message.id).options(selectinload(Message.keys))
    if overdue:
        q = q.where(Message.overdue != "")
    if doc_type:
        q = q.where(Message.doc_type == doc_type)
    if state:
        q = q.where(Message.state == state)
    if key:
        q = q.where(or_(Message.business_key == key,
                        Message.id.in_(select(MessageKey.message_id).where(MessageKey.value == key))))
    return list(session.scalars(q.limit(limit)))
