"""Subscriptions (状态推送): rules in the store that send copies of matching receipts to an
extra folder (atomic write, same file name as the outbox) or a durable queue.

A rule matches by business document number (any key a message is known by), by enterprise
(any of its codes) and/or by operator (name or card number); empty fields match anything,
and `kinds` limits the receipt kinds. The daemon re-reads the rules every
[lifecycle] subscription_reload seconds, so `swgw subscribe` / `unsubscribe` need no restart.

A copy to a queue whose broker is away waits in `subscription_pending` and is retried with
the transmit backoff ([lifecycle.retries]) until it goes (an alarm when it has failed
`limit` times; housekeeping keeps its payload meanwhile). A copy that cannot succeed by
waiting (a folder that cannot be written, a refused login) is recorded and alarmed at once.
Either way the receipt is routed to its outbox and `swgw trace` shows what happened.
"""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import select

from gateway import alarms
from gateway.lifecycle import clock, retries
from gateway.lifecycle.rules import Rule
from gateway.log import get_logger
from gateway.receipts import route as routing
from gateway.store import repo
from gateway.receipts import orders
from gateway.store.models import Message, Receipt, Subscription, SubscriptionPending
from gateway.transports.base import TransportError

log = get_logger("subscriptions")


class Rules:
    """The rules as last loaded; `reload` is the scheduler's job, `current` loads on first use."""

    def __init__(self):
        self._rules: tuple[Rule, ...] | None = None
        self._lock = threading.Lock()

    def reload(self, rt) -> tuple[Rule, ...]:
        with rt.sessions() as s:
            rules = tuple(Rule.of(sub) for sub in s.scalars(select(Subscription).order_by(Subscription.id)))
        with self._lock:
            if self._rules is not None and rules != self._rules:
                log.info("subscriptions changed", rules=len(rules))
            self._rules = rules
        return rules

    def current(self, rt) -> tuple[Rule, ...]:
        with self._lock:
            rules = self._rules
        return rules if rules is not None else self.reload(rt)


# -- matching ---------------------------------------------------------------------
def _enterprise_codes(rt, code: str) -> set[str]:
    ent = rt.config.enterprise(code)
    codes = {code}
    if ent:
        codes |= {c for c in (ent.code, ent.customs_code, ent.ciq_code, ent.ccpit_code, ent.mofcom_code) if c}
    return codes


def _operators(rt, msg: Message) -> set[str]:
    """The operator of a message: names of the enterprise's operators signing with its signer, and the card."""
    out = set()
    ent = rt.config.enterprise(msg.enterprise)
    for op in ent.operators if ent else ():
        if op.signer == msg.signer:
            out.add(op.name)
    sc = rt.config.signers.get(msg.signer)
    if sc is not None:
        out.add(sc.media_no)
    return out


def matches(rt, rule: Rule, receipt: Receipt, msg: Message) -> bool:
    if rule.kinds and receipt.kind not in rule.kinds:
        return False
    if rule.business_key and rule.business_key != msg.business_key \
            and rule.business_key not in {k.value for k in msg.keys}:
        return False
    if rule.enterprise and not (_enterprise_codes(rt, rule.enterprise) & _enterprise_codes(rt, msg.enterprise)):
        return False
    if rule.operator and rule.operator not in _operators(rt, msg):
        return False
    return True


# -- delivery (the route stage's hook) ---------------------------------------------
def deliver(rt, session, receipt: Receipt, msg: Message | None) -> int:
    """Copy one routed receipt to every matching subscription; returns how many got it. `msg` may be
    the stand-in of an inspection order without its declaration (receipts.orders.Subject)."""
    if msg is None:
        return 0
    rules = rt.subscription_rules.current(rt)
    n = 0
    for rule in rules:
        if not matches(rt, rule, receipt, msg):
            continue
        try:
            where = _copy(rt, rule, receipt, msg)
        except TransportError as exc:
            if not exc.retryable:
                _failed(rt, session, rule, receipt, msg, str(exc))
                continue
            session.add(SubscriptionPending(subscription_id=rule.id, receipt_id=receipt.id, attempts=1,
                                            last_error=str(exc)[:500], next_attempt_at=_next(rt, 1)))
            repo.note(session, msg, "subscription-waiting", f"subscription {rule.id}: {receipt.kind} receipt "
                      f"{receipt.id} waits for {rule.target()} ({exc}); retried with backoff")
            continue
        except OSError as exc:
            _failed(rt, session, rule, receipt, msg, exc.strerror or str(exc))
            continue
        repo.note(session, msg, "subscription", f"subscription {rule.id}: {receipt.kind} receipt {receipt.id} "
                  f"-> {where}")
        n += 1
    return n


def _failed(rt, session, rule: Rule, receipt: Receipt, msg: Message, detail: str) -> None:
    repo.note(session, msg, "subscription-failed", f"subscription {rule.id}: {receipt.kind} receipt "
              f"{receipt.id} not delivered to {rule.target()}: {detail}")
    alarms.raise_alarm(rt, "subscription-failed", f"subscription {rule.id} could not deliver receipt "
                       f"{receipt.id} ({msg.business_key} {receipt.kind}) to {rule.target()}: {detail}",
                       subscription=rule.id, receipt_id=receipt.id, business_key=msg.business_key)


def _next(rt, attempts: int) -> dt.datetime:
    return clock.now() + dt.timedelta(seconds=retries.delay(rt.config.lifecycle.retries, attempts))


def retry_pending(rt, limit: int = 200) -> int:
    """The scheduler's job: try the waiting copies that are due again; returns how many went."""
    rules = {r.id: r for r in rt.subscription_rules.current(rt)}
    cfg = rt.config.lifecycle.retries
    done = 0
    with rt.sessions() as s:
        due = list(s.scalars(select(SubscriptionPending).where(SubscriptionPending.next_attempt_at <= clock.now())
                             .order_by(SubscriptionPending.id).limit(limit)))
        for p in due:
            receipt = s.get(Receipt, p.receipt_id)
            msg = s.get(Message, receipt.message_id) if receipt and receipt.message_id else \
                (orders.subject(receipt) if receipt else None)   # an order that names only its enterprise
            rule = rules.get(p.subscription_id)
            if rule is None or msg is None:
                repo.note(s, msg, "subscription", f"subscription {p.subscription_id}: removed; receipt "
                          f"{p.receipt_id} no longer waits for it")
                s.delete(p)
                continue
            try:
                where = _copy(rt, rule, receipt, msg)
            except (OSError, TransportError) as exc:
                p.attempts += 1
                p.last_error = str(exc)[:500]
                p.next_attempt_at = _next(rt, p.attempts)
                if p.attempts == cfg.limit:
                    alarms.raise_alarm(rt, "subscription-waiting", f"subscription {rule.id}: receipt {receipt.id} "
                                       f"({msg.business_key} {receipt.kind}) still not delivered to {rule.target()} "
                                       f"after {p.attempts} attempts: {exc}; still retrying",
                                       subscription=rule.id, receipt_id=receipt.id, business_key=msg.business_key)
                if isinstance(exc, TransportError) and not exc.retryable:
                    break  # the same for every copy: try again at the next run
                continue
            repo.note(s, msg, "subscription", f"subscription {rule.id}: {receipt.kind} receipt {receipt.id} "
                      f"-> {where} (after {p.attempts} failed attempt(s))")
            s.delete(p)
            done += 1
        s.commit()
    return done


def _copy(rt, rule: Rule, receipt: Receipt, msg: Message) -> str:
    if rule.folder:  # the same file name as in the outbox, written atomically
        return str(routing.route_to_folder(Path(rule.folder), receipt, msg, receipt.raw, fsync=True))
    name = routing.file_name(receipt, msg)
    from gateway.lifecycle import queues

    queues.publisher(rt).publish(rule.queue, receipt.raw, message_id=f"receipt-{receipt.id}",
                                 correlation_id=msg.business_key, kind=receipt.kind, content_type="application/xml",
                                 headers={"doc_type": msg.doc_type, "receipt_kind": receipt.kind,
                                          "enterprise": msg.enterprise, "subscription": rule.id, "file_name": name})
    return f"queue {rule.queue}"


# -- managing (the CLI) ------------------------------------------------------------
def add(rt, *, business_key: str = "", enterprise: str = "", operator: str = "", kinds: list[str] = (),
        folder: str = "", queue: str = "", by: str = "") -> Subscription:
    if not (business_key or enterprise or operator):
        raise ValueError("say what to subscribe to: --key, --enterprise and/or --operator")
    if bool(folder) == bool(queue):
        raise ValueError("give exactly one target: --folder DIR or --queue NAME")
    if queue and rt.config.lifecycle.amqp is None:
        raise ValueError(f"--queue needs [lifecycle.amqp] (url, password) in {rt.config.source}")
    if folder:
        folder = str(Path(folder).resolve())
    sub = Subscription(business_key=business_key, enterprise=enterprise, operator=operator,
                       kinds=",".join(sorted(set(kinds))), folder=folder, queue=queue)
    with rt.sessions.begin() as s:
        s.add(sub)
        s.flush()
        who = f" by {by}" if by else ""
        repo.note(s, None, "subscription", f"subscription {sub.id} added{who}: {Rule.of(sub).describe()}")
    return sub


def remove(rt, sub_id: int, by: str = "") -> Subscription | None:
    with rt.sessions.begin() as s:
        sub = s.get(Subscription, sub_id)
        if sub is None:
            return None
        who = f" by {by}" if by else ""
        repo.note(s, None, "subscription", f"subscription {sub.id} removed{who}: {Rule.of(sub).describe()}")
        s.query(SubscriptionPending).filter(SubscriptionPending.subscription_id == sub.id).delete()
        s.delete(sub)
    return sub


def listing(rt) -> list[Rule]:
    return list(rt.subscription_rules.reload(rt))
