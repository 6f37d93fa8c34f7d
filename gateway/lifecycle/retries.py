"""Transmit retries: a failed send waits an exponentially growing delay (per message,
kept in `messages.next_attempt_at`, so a restart keeps it) and after the configured
number of attempts the message is `failed` with the reason. Every attempt is an event.
"""
from __future__ import annotations

import datetime as dt

from gateway import alarms
from gateway.lifecycle import clock
from gateway.lifecycle.settings import RetryConfig, describe
from gateway.log import get_logger
from gateway.store import repo, states
from gateway.store.models import Message

log = get_logger("retries")


def delay(cfg: RetryConfig, failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt (1, 2, …)."""
    return min(cfg.initial * cfg.factor ** max(failures - 1, 0), cfg.max)


def failed(rt, session, msg: Message, transport: str, exc: Exception) -> bool:
    """Record one failed transmit attempt; True when the message gave up (now `failed`)."""
    cfg = rt.config.lifecycle.retries
    msg.transmit_failures = (msg.transmit_failures or 0) + 1
    n = msg.transmit_failures
    if n >= cfg.limit:
        msg.next_attempt_at = None
        reason = f"transmit via {transport} failed {n} times, last: {exc}"
        msg.errors = [{"rule": "transmit", "message": reason}]
        msg.last_receipt = f"failed: {exc}"[:300]
        repo.transition(session, msg, states.FAILED, f"gave up after {n} attempts (limit {cfg.limit}): {exc}. "
                        f"Fix the transport, then `swgw resend {msg.id}`")
        alarms.raise_alarm(rt, "transmit-failed", f"message {msg.id} ({msg.doc_type} {msg.business_key}) failed: "
                           f"{reason}", message_id=msg.id, business_key=msg.business_key, transport=transport)
        return True
    wait = delay(cfg, n)
    msg.next_attempt_at = clock.now() + dt.timedelta(seconds=wait)
    repo.note(session, msg, "transmit-retry", f"attempt {n} of {cfg.limit} via {transport} failed: {exc}; "
              f"next attempt in {describe(round(wait, 3))} at {clock.stamp(msg.next_attempt_at)}")
    return False


def sent(msg: Message) -> None:
    """The transport took the message: reset the retry state, start the deadline clock."""
    msg.transmit_failures = 0
    msg.next_attempt_at = None
    msg.sent_at = clock.now()


def reset(msg: Message) -> None:
    """An operator's resend starts afresh."""
    msg.transmit_failures = 0
    msg.next_attempt_at = None
