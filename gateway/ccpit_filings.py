"""The enterprise's CCPIT product filings (商品备案) as a certificate of origin checks them.

A preferential certificate names, for every good, a filing approved for its agreement
(「已备案并审核通过」). The filings live in the store (table `ccpit_filings`), one row per filing
with a status per preferential area (优惠区域备案状态):

- a filing receipt swgw gets for a filing it sent (FilingAuditResult) writes the row at once —
  the areas approved, the areas returned with their reasons — so the next certificate in the same
  daemon run can use it;
- `mappings/reference/ccpit_filings.csv` stays as an import format: its rows are read as before,
  and a stored row of the same filing number wins.

The mapping's reference table `ccpit_filings` is overlaid with the store (`Registry.rows`), so the
certificate's rule reads one table: `areas` lists only the approved areas, `status` is `approved`
while at least one area is.
"""
from __future__ import annotations

import threading
import time

from lxml import etree
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, select

from gateway import xmlsafe
from gateway.store.models import CcpitFiling, Message, utcnow

TABLE = "ccpit_filings"
APPROVED = "审核通过"


class Registry:
    """The stored filings as reference rows; re-read when a receipt changed them or every `ttl` s."""

    def __init__(self, sessions, ttl: float = 2.0):
        self.sessions = sessions
        self.ttl = ttl
        self._rows: dict[str, dict[str, str]] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._at = 0.0

    def rows(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return self._rows
        try:
            with self.sessions() as s:
                if not _has_table(s):   # a dry run before `swgw db upgrade`: only the CSV
                    return {}
                rows = {f.filing_no: as_row(f) for f in s.scalars(select(CcpitFiling))}
        except (sa_exc.OperationalError, sa_exc.ProgrammingError):
            return dict(self._rows)  # the store is away: what we had
        with self._lock:
            self._rows, self._at = rows, time.monotonic()
        return rows


def _has_table(s) -> bool:
    bind = s.get_bind()
    if bind.dialect.name == "sqlite" and bind.url.database and bind.url.database != ":memory:":
        from pathlib import Path

        if not Path(bind.url.database).exists():
            return False
    return inspect(bind).has_table(CcpitFiling.__tablename__)


def as_row(f: CcpitFiling) -> dict[str, str]:
    approved = [a["area"] for a in (f.areas or []) if a.get("status") == "approved"]
    return {"code": f.filing_no, "hs_code": f.hs_code, "name_en": f.name_en, "areas": " ".join(approved),
            "status": "approved" if approved else "returned", "source": f.source}


def _filing_head(document: bytes | None) -> dict[str, str]:
    if not document:
        return {}
    head = xmlsafe.parse(document).find("{*}FilingHead")
    if head is None:
        return {}
    return {etree.QName(c).localname: (c.text or "").strip() for c in head if isinstance(c.tag, str)}


def record_audit(rt, s, msg: Message, fields: dict, receipt_id: int | None = None) -> CcpitFiling | None:
    """A filing receipt for `msg`: store what it approved, per area. Returns the row (None when the
    receipt gives no filing number)."""
    number = fields.get("FilingNo", "")
    if not number:
        return None
    head = _filing_head(msg.document)
    if fields.get("AreaResult"):
        areas = [{"area": a.get("PrefArea", ""), "status": "approved" if a.get("Status") == APPROVED else "returned",
                  "reason": a.get("Reason", "")} for a in fields["AreaResult"]]
    elif fields.get("Status") == APPROVED:
        areas = [{"area": a, "status": "approved", "reason": ""} for a in head.get("PrefAreas", "").split()]
    else:
        return None
    row = s.scalar(select(CcpitFiling).where(CcpitFiling.filing_no == number))
    if row is None:
        row = CcpitFiling(filing_no=number)
        s.add(row)
    row.enterprise = msg.enterprise
    row.hs_code = head.get("HsCode", row.hs_code or "")[:10]
    row.name_en = head.get("NameEn", row.name_en or "")[:200]
    row.areas = areas
    row.source = f"receipt {receipt_id}" if receipt_id else f"message {msg.id}"
    row.updated_at = utcnow()
    registry = getattr(rt, "filings", None)
    if registry is not None:
        registry.invalidate()
    return row
