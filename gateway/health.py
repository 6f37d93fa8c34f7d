"""What the running daemon knows of its parts — each transport link up or down since when, each
signer present, absent or halted (PIN refused) — kept in the store (table `components`) so the
console, another process, can show it. The daemon calls `publish` at start and every few seconds;
a row changes its `since` only when its state changes."""
from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import select

from gateway.log import get_logger
from gateway.transports import links

log = get_logger("health")
_signers: dict[str, tuple[str, str, float]] = {}   # name -> (present | absent | halted, detail, since)
_lock = threading.Lock()
_last_publish = 0.0


def signer(name: str, state: str, detail: str = "") -> None:
    with _lock:
        prev = _signers.get(name)
        since = prev[2] if prev and prev[0] == state else time.time()
        _signers[name] = (state, detail[:300], since)


def signer_states() -> dict[str, tuple[str, str, float]]:
    with _lock:
        return dict(_signers)


def snapshot(rt) -> list[tuple[str, str, str, str, float]]:
    """(name, kind, state, detail, since) of every link and signer."""
    out = []
    seen = links.states()
    for name in rt.transports:
        seen.setdefault(name, ("up", time.time(), "not used yet"))
    for name, (state, since, detail) in sorted(seen.items()):
        out.append((f"link {name}", "link", state, detail, since))
    halted = getattr(rt, "signing_halted", "")
    sigs = signer_states()
    for name in rt.signer_configs:
        state, detail, since = sigs.get(name, ("absent", "not opened yet", time.time()))
        if halted and halted.startswith(f"signer {name}:"):
            state, detail = "halted", halted
        out.append((f"signer {name}", "signer", state, detail, since))
    return out


def publish(rt, every: float = 0.0) -> None:
    """Write the snapshot to the store (at most once per `every` seconds)."""
    global _last_publish
    now = time.time()
    if every and now - _last_publish < every:
        return
    _last_publish = now
    from gateway.store.models import Component

    stamp = dt.datetime.now(dt.timezone.utc)
    try:
        with rt.sessions.begin() as s:
            rows = {c.name: c for c in s.scalars(select(Component))}
            for name, kind, state, detail, since in snapshot(rt):
                row = rows.get(name)
                when = dt.datetime.fromtimestamp(since, dt.timezone.utc)
                if row is None:
                    s.add(Component(name=name, kind=kind, state=state, detail=detail, since=when, seen_at=stamp))
                    continue
                if row.state != state:
                    row.since = when
                row.state, row.detail, row.seen_at = state, detail, stamp
    except Exception as exc:  # the store may be busy or not migrated yet: next time
        log.warning("component states not stored", error=f"{type(exc).__name__}: {exc}"[:300])
