"""The enterprise's own MOFCOM actions, as outbound messages the pipeline signs and sends:

- `withdraw`: 撤回申请 / 撤销申请 of an application MOFCOM has not approved (LicenseWithdrawal,
  signed with the MOFCOM key); MOFCOM's 撤销状态 then moves the application to `withdrawn`, or
  leaves it as it was with the reason;
- `file`: 机电企业信息备案 (`me`) / 重农信息备案 (`agri`) built from the profile (MofcomFiling);
  MOFCOM answers registered (已注册) or refused (未通过, with the reason).

Each becomes a message of the family it belongs to (prepared; the daemon signs and sends it).
"""
from __future__ import annotations

import hashlib
import uuid

from lxml import etree
from sqlalchemy import select

from gateway.store import repo, states
from gateway.store.models import Message, MessageKey

NS = "urn:swgw:licence"
LICENCE_TYPES = ("export-license", "me-import-license", "auto-import-license")
WITHDRAWABLE = (states.SENT, states.ACKNOWLEDGED, "pending-review", "under-review")   # not yet approved


class ActionError(Exception):
    """The action cannot be taken (with what to do instead)."""


def _el(parent, name, text):
    if text:
        etree.SubElement(parent, f"{{{NS}}}{name}").text = str(text)


def _new(rt, s, doc_type: str, enterprise: str, business_key: str, root, signer: str, keys: dict, why: str) -> Message:
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    errors = rt.doc_types[doc_type].family.schema.errors(root)
    if errors:
        raise ActionError(f"{root.tag}: {errors[0].path}: {errors[0].reason}")
    msg = Message(doc_type=doc_type, enterprise=enterprise, business_key=business_key, cop_msg_id=uuid.uuid4().hex,
                  state=states.RECEIVED, source_ref=why[:400], content_sha256=hashlib.sha256(document).hexdigest(),
                  document=document, signer=signer, transport=rt.doc_types[doc_type].transport, attempts=0,
                  last_receipt="", keys=[MessageKey(name=k, value=v) for k, v in keys.items()])
    s.add(msg)
    repo.note(s, msg, "received", why)
    repo.transition(s, msg, states.PREPARED, f"built by swgw ({etree.QName(root).localname})")
    return msg


def withdraw(rt, s, key: str, reason: str = "") -> tuple[Message, Message]:
    """Queue the withdrawal of the application known by `key`; (application, withdrawal message)."""
    q = (select(Message).where(Message.doc_type.in_(LICENCE_TYPES), Message.id.in_(
        select(MessageKey.message_id).where(MessageKey.name.in_(("ApplyNo", "LicenseNo", "MofcomApplyNo")),
                                            MessageKey.value == key))).order_by(Message.id.desc()).limit(1))
    app = s.scalars(q).first()
    if app is None:
        raise ActionError(f"no licence application is known by {key!r}")
    if app.doc_type not in rt.doc_types:
        raise ActionError(f"{app.doc_type} is not configured under [documents]")
    if app.state not in WITHDRAWABLE:
        raise ActionError(f"application {app.business_key} is {app.state}: only an application MOFCOM has not "
                          f"approved can be withdrawn (states {', '.join(WITHDRAWABLE)})")
    fam = rt.doc_types[app.doc_type].family
    ent = rt.enterprise(app.enterprise)
    op = rt.operator(ent, app.doc_type) if ent else None
    if ent is None or op is None:
        raise ActionError(f"enterprise {app.enterprise} (or an operator for {app.doc_type}) is not configured")
    root = etree.Element(f"{{{NS}}}LicenseWithdrawal", nsmap={None: NS})
    _el(root, "SupervisionCode", fam.supervision_code)
    _el(root, "ApplyNo", app.business_key)
    _el(root, "MofcomApplyNo", next((k.value for k in app.keys if k.name == "MofcomApplyNo"), ""))
    _el(root, "Reason", reason[:255])
    sign = etree.SubElement(root, f"{{{NS}}}LicenseSign")
    _el(sign, "MofcomCode", ent.mofcom_code)
    _el(sign, "OperName", op.name)
    _el(sign, "ICCode", rt.media_no(op.signer))
    msg = _new(rt, s, app.doc_type, app.enterprise, app.business_key, root, op.signer,
               {"WithdrawalOf": app.business_key}, f"swgw withdraw {app.business_key}")
    repo.note(s, app, "withdrawal", f"撤回/撤销 requested (message {msg.cop_msg_id})" + (f": {reason}" if reason else ""))
    return app, msg


def file(rt, s, kind: str, enterprise: str | None = None) -> Message:
    """Queue the enterprise's 机电企业信息备案 (me) or 重农信息备案 (agri)."""
    from gateway.mofcom_filings import DOC_TYPES, NAMES

    ents = [e for e in rt.config.enterprises if enterprise in (None, e.code, e.mofcom_code, e.customs_code)]
    if not ents:
        raise ActionError(f"no enterprise {enterprise!r} in {rt.config.source}")
    if len(ents) > 1:
        raise ActionError("several enterprises are configured: name one with --enterprise CODE")
    ent = ents[0]
    doc_type = DOC_TYPES[kind]
    if doc_type not in rt.doc_types:
        raise ActionError(f"{NAMES[kind]} travels as {doc_type}, which is not configured under [documents]")
    if not ent.mofcom_code:
        raise ActionError(f"enterprise {ent.code} has no mofcom_code (商务部企业代码)")
    f = ent.filing
    if f is None:
        raise ActionError(f"enterprise {ent.code} has no [enterprise.filing] profile (address, contact_name, "
                          f"contact_phone …) for the {NAMES[kind]}")
    op = rt.operator(ent, doc_type)
    if op is None:
        raise ActionError(f"enterprise {ent.code} has no operator who signs {doc_type}")
    filing_no = f"{kind.upper()}{ent.mofcom_code}{uuid.uuid4().hex[:6].upper()}"
    root = etree.Element(f"{{{NS}}}MofcomFiling", nsmap={None: NS})
    for name, value in (("FilingKind", kind), ("FilingNo", filing_no), ("EnterpriseCode", ent.mofcom_code),
                        ("EnterpriseScc", ent.code), ("EnterpriseName", ent.name), ("OrgCode", f.org_code),
                        ("CustomsCode", ent.customs_code), ("BusinessLicenceNo", f.business_licence_no),
                        ("RegisteredCapital", f.registered_capital), ("Address", f.address),
                        ("BusinessScope", f.business_scope), ("Email", f.email), ("ContactName", f.contact_name),
                        ("ContactPhone", f.contact_phone), ("ContactMobile", f.contact_mobile), ("Fax", f.fax),
                        ("PostCode", f.post_code), ("MeAccount", f.me_account if kind == "me" else ""),
                        ("MeOffice", f.me_office if kind == "me" else "")):
        _el(root, name, value)
    return _new(rt, s, doc_type, ent.code, f"FILING-{kind}-{ent.mofcom_code}", root, op.signer,
                {"FilingNo": filing_no, "FilingKind": kind}, f"swgw enterprise file {kind}")
