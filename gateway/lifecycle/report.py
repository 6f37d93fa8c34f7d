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
