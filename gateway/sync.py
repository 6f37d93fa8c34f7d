"""数据同步 with CCPIT: 同步商品备案信息 (the enterprise's registered product filings) and 同步企业信息
(its registration data), requested from the platform; the answer updates the reference data.

`swgw sync ccpit filings|enterprise [--enterprise CODE]` queues a request (table `sync_requests`,
status `queued`, requested by the user who ran it); the daemon signs it with the operator who signs
the enterprise's certificates of origin, wraps it in a DxpMsg (CcpitSyncRequest) and sends it over
the `origin` document type's transport (status `requested`). The answer (CcpitSyncResult,
correlated by RequestId) replaces the enterprise's filings in the store's `ccpit_filings` — also
filings registered elsewhere, e.g. on the platform's own screens — or writes the registration data
and the registered signatories (手签员 已备案 / 已注销) into the store's `ccpit_profiles`, which the
next certificate's signatory check reads (gateway/ccpit_profile.py); the request becomes `done` with
the count, or `failed` with the reason. Both messages have a schema (xsd/origin.xsd): a request is
validated before it is sent (invalid: `failed`, nothing sent), an answer when it is parsed (invalid:
the receipt is kept raw, the request `failed` with the schema's error, an alarm raised; nothing updated). A daily job (`[lifecycle]
ccpit_sync`) requests the filings of every enterprise with a CCPIT code. `swgw sync --history`
lists type, status, requested by, time and count.
"""
from __future__ import annotations

import datetime as dt
import getpass
import uuid

from lxml import etree
from sqlalchemy import select

from gateway import alarms, ccpit_profile, envelope, signing, xmlsafe
from gateway.log import get_logger
from gateway.store.models import CcpitFiling, SyncRequest, utcnow

log = get_logger("sync")
NS = "urn:swgw:origin"
KIND = "ccpit-sync"
TYPES = {"filings": "同步商品备案信息", "enterprise": "同步企业信息"}
DOC_TYPE = "origin"


class SyncError(Exception):
    pass


def request(rt, sync_type: str, enterprise: str = "", requested_by: str | None = None) -> list[SyncRequest]:
    """Queue one request per enterprise (the one given, or every one with a CCPIT code)."""
    if sync_type not in TYPES:
        raise SyncError(f"sync type {sync_type!r} is not one of {', '.join(TYPES)}")
    if DOC_TYPE not in rt.doc_types:
        raise SyncError(f"no [documents.{DOC_TYPE}] in {rt.config.source.name}: CCPIT requests go over its transport")
    if enterprise:
        ent = rt.enterprise(enterprise)
        if ent is None:
            raise SyncError(f"enterprise {enterprise!r} is not configured in {rt.config.source.name} [[enterprise]]")
        ents = [ent]
    else:
        ents = [e for e in rt.config.enterprises if e.ccpit_code]
    for ent in ents:
        if not ent.ccpit_code:
            raise SyncError(f"enterprise {ent.code} has no ccpit_code (贸促会企业编码) to sync with")
    who = requested_by or _user()
    rows = []
    with rt.sessions.begin() as s:
        for ent in ents:
            row = SyncRequest(request_id=uuid.uuid4().hex[:20].upper(), sync_type=sync_type, enterprise=ent.code,
                              requested_by=who[:60], status="queued", count=0, detail="")
            s.add(row)
            rows.append(row)
        s.flush()
        for row in rows:
            s.expunge(row)
    return rows


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): say so
        return "unknown"


def scheduled(rt) -> None:
    """The daily job: request the filings of every enterprise with a CCPIT code."""
    if DOC_TYPE in rt.doc_types and any(e.ccpit_code for e in rt.config.enterprises):
        request(rt, "filings", requested_by="scheduler")


def send_queued(rt, limit: int = 20) -> int:
    """Sign and send queued requests (the daemon's loop); returns how many went."""
    if DOC_TYPE not in rt.doc_types or rt.signing_halted:
        return 0
    with rt.sessions() as s:
        queued = list(s.scalars(select(SyncRequest).where(SyncRequest.status == "queued")
                                .order_by(SyncRequest.id).limit(limit)))
        done = 0
        for row in queued:
            try:
                _send(rt, row)
                row.status = "requested"
                done += 1
            except Exception as exc:  # the request fails with its reason; the daemon goes on
                row.status, row.detail = "failed", f"could not send: {type(exc).__name__}: {exc}"[:500]
                log.warning("sync request not sent", request=row.request_id, error=str(exc))
            row.updated_at = utcnow()
        s.commit()
    return done


def _send(rt, row: SyncRequest) -> None:
    from gateway.transports.base import Outgoing

    dt_ = rt.doc_types[DOC_TYPE]
    ent = rt.enterprise(row.enterprise)
    op = rt.operator(ent, DOC_TYPE) if ent else None
    if ent is None or op is None:
        raise SyncError(f"enterprise {row.enterprise} has no operator who signs {DOC_TYPE} documents")
    signer = rt.signer(op.signer)
    info = signer.info()
    now = dt.datetime.now().replace(microsecond=0)
    q = f"{{{NS}}}"
    root = etree.Element(q + "CcpitSyncRequest", nsmap={None: NS})
    for name, value in (("RequestId", row.request_id), ("SyncType", row.sync_type), ("CcpitEntCode", ent.ccpit_code),
                        ("EnterpriseCode", ent.code), ("RequestedBy", row.requested_by),
                        ("RequestTime", now.strftime("%Y-%m-%dT%H:%M:%S"))):
        etree.SubElement(root, q + name).text = value
    errors = dt_.family.schema.errors(root)
    if errors:
        raise SyncError(f"the request does not validate against {dt_.family.xsd_name}: "
                        + "; ".join(f"{e.path}: {e.reason}" for e in errors[:3]))
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    cop_msg_id = uuid.uuid4().hex
    env = envelope.Envelope(trans=envelope.TransInfo(cop_msg_id, ent.dxp_sender_id, [dt_.receiver_id], now,
                                                     "CcpitSyncRequest"),
                            data=data, file_name=f"{cop_msg_id}.xml", ic_card=info.media_no,
                            biz_keys={"RequestId": row.request_id})
    signed = signing.sign(envelope.wrap(env), signer, info.cert_no)
    transport = rt.transports[dt_.transport]
    transport.send(Outgoing(name=f"{cop_msg_id}.xml", data=signed, cop_msg_id=cop_msg_id, doc_type=DOC_TYPE))
    transport.flush()
    row.cop_msg_id = cop_msg_id


def invalid(rt, payload: bytes) -> str:
    """Why a CcpitSyncResult does not validate against the origin schema, or ""."""
    if DOC_TYPE not in rt.doc_types or not payload:
        return ""
    try:
        root = xmlsafe.parse(payload)
    except xmlsafe.UnsafeXml as exc:
        return str(exc)
    errors = rt.doc_types[DOC_TYPE].family.schema.errors(root)
    return "; ".join(f"{e.path}: {e.reason}" for e in errors[:3])


def record_answer(rt, s, fields: dict, payload: bytes = b"") -> str:
    """A CcpitSyncResult: update the reference data and the request; returns the receipt's summary.
    `payload`: the answer as received, validated first (an invalid one updates nothing)."""
    row = s.scalar(select(SyncRequest).where(SyncRequest.request_id == fields.get("RequestId", "")))
    problem = invalid(rt, payload)
    if problem:
        alarms.raise_alarm(rt, "sync-answer-invalid", f"CCPIT sync answer {fields.get('RequestId', '?')} does not "
                           f"validate against origin.xsd; kept raw, nothing updated: {problem}", session=s,
                           request_id=fields.get("RequestId", ""))
        if row is not None:
            row.answered_at = row.updated_at = utcnow()
            row.status, row.detail = "failed", f"invalid answer (kept raw, nothing updated): {problem}"[:500]
        return f"sync answer {fields.get('RequestId', '?')} invalid, kept raw, nothing updated: {problem}"
    if row is None:
        return f"sync answer for unknown request {fields.get('RequestId', '?')!r}: kept, nothing updated"
    row.answered_at = row.updated_at = utcnow()
    if fields.get("Status") not in ("成功", "success", "0"):
        row.status, row.detail = "failed", (fields.get("Reason") or f"status {fields.get('Status', '')!r}")[:500]
        return f"{TYPES.get(row.sync_type, row.sync_type)} {row.request_id} failed: {row.detail}"
    if row.sync_type == "filings":
        items = fields.get("Filing") or []
        for item in items:
            number = item.get("FilingNo", "")
            if not number:
                continue
            filing = s.scalar(select(CcpitFiling).where(CcpitFiling.filing_no == number))
            if filing is None:
                filing = CcpitFiling(filing_no=number)
                s.add(filing)
            filing.enterprise = row.enterprise
            filing.hs_code = item.get("HsCode", "")[:10]
            filing.name_en = item.get("NameEn", "")[:200]
            filing.areas = [{"area": a, "status": "approved", "reason": ""} for a in item.get("PrefAreas", "").split()]
            filing.source = f"sync {row.request_id}"
            filing.updated_at = utcnow()
        row.count = len(items)
        if rt.filings is not None:
            rt.filings.invalidate()
    else:
        ccpit_profile.record(s, row.enterprise, fields, f"sync {row.request_id}")
        data = {k: fields[k] for k in ("EntName", "CcpitEntCode", "EnterpriseCode", "Address") if fields.get(k)}
        signatories = fields.get("Signatory") or []
        if signatories:
            data["Signatories"] = ", ".join(f"{g.get('Name', '')} {g.get('Status', '')}" for g in signatories)
        row.count = 1
        row.detail = "; ".join(f"{k} {v}" for k, v in data.items())[:500]
        if rt.profiles is not None:
            rt.profiles.invalidate()
    row.status = "done"
    return f"{TYPES.get(row.sync_type, row.sync_type)} {row.request_id} done: {row.count} record(s)"


def history(s, limit: int = 100) -> list[dict]:
    return [{"id": r.id, "request_id": r.request_id, "type": r.sync_type, "type_name": TYPES.get(r.sync_type, ""),
             "enterprise": r.enterprise, "status": r.status, "requested_by": r.requested_by,
             "requested_at": r.requested_at.isoformat(), "answered_at": r.answered_at.isoformat() if r.answered_at
             else "", "count": r.count, "detail": r.detail}
            for r in s.scalars(select(SyncRequest).order_by(SyncRequest.id.desc()).limit(limit))]
