"""The enterprise's CCPIT registration as 同步企业信息 last answered it: its registration data and its
registered signatories (手签员), each 已备案 or 已注销.

The answer to `swgw sync ccpit enterprise` (CcpitSyncResult) writes the store's `ccpit_profiles`
row of the enterprise (`record`). A certificate of origin's signatory check reads the signatories
through `Registry.signatories`: the config's [[enterprise.signatories]], with every signatory the
sync answered overriding the one of the same name (已注销 = cancelled) and adding those registered
elsewhere. So a signatory registered on the platform's own screens lets the next certificate go
once synced, and one the sync says is cancelled refuses the next certificate before it is sent.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, select

from gateway.config import Enterprise, Signatory
from gateway.store.models import CcpitProfile, utcnow

REGISTERED, CANCELLED = "已备案", "已注销"


def record(s, enterprise: str, fields: dict, source: str) -> CcpitProfile:
    """Write the enterprise's registration from a sync answer's fields (the caller commits)."""
    row = s.scalar(select(CcpitProfile).where(CcpitProfile.enterprise == enterprise))
    if row is None:
        row = CcpitProfile(enterprise=enterprise)
        s.add(row)
    row.ent_name = (fields.get("EntName") or row.ent_name or "")[:200]
    row.address = (fields.get("Address") or row.address or "")[:400]
    row.signatories = [{"name": g.get("Name", ""), "status": g.get("Status", "")}
                       for g in fields.get("Signatory") or [] if g.get("Name")]
    row.source = source[:60]
    row.updated_at = utcnow()
    return row


def merged(configured: list[Signatory], synced: list[dict] | None) -> list[Signatory]:
    """The config's signatories, each one the sync answered replaced by what it said."""
    if synced is None:
        return list(configured)
    answered = {g["name"]: Signatory(name=g["name"], cancelled=g.get("status") == CANCELLED) for g in synced}
    return [answered.pop(s.name, s) for s in configured] + list(answered.values())


class Registry:
    """The stored profiles' signatories by enterprise; re-read when a sync changed them or every `ttl` s."""

    def __init__(self, sessions, ttl: float = 2.0):
        self.sessions = sessions
        self.ttl = ttl
        self._rows: dict[str, list[dict]] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._at = 0.0

    def _synced(self) -> dict[str, list[dict]]:
        with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return self._rows
        try:
            with self.sessions() as s:
                if not _has_table(s):   # a dry run before `swgw db upgrade`: the config alone
                    return {}
                rows = {p.enterprise: list(p.signatories or []) for p in s.scalars(select(CcpitProfile))
                        if p.signatories is not None}
        except (sa_exc.OperationalError, sa_exc.ProgrammingError):
            return dict(self._rows)   # the store is away: what we had
        with self._lock:
            self._rows, self._at = rows, time.monotonic()
        return rows

    def signatories(self, ent: Enterprise) -> list[Signatory]:
        return merged(ent.signatories, self._synced().get(ent.code))


def _has_table(s) -> bool:
    bind = s.get_bind()
    if bind.dialect.name == "sqlite" and bind.url.database and bind.url.database != ":memory:":
        from pathlib import Path

        if not Path(bind.url.database).exists():   # inspecting would create the file
            return False
    return inspect(bind).has_table(CcpitProfile.__tablename__)
