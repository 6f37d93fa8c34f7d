"""Licences on declarations (「如果状态是“海关入库成功”，企业可使用许可证申报报关单」).

A declaration names its licences in DecLicenseDocus/LicenseDocu (DocuCode 4/O/7 …, CertCode):
the licence number, or the application number (ApplyNo) of a licence swgw sent. Intake puts a
declaration that names any licence in `awaiting-licence`; each pass, `release_batch` looks at
what it names:

- no licence of ours: it goes on as it is (prepared);
- a licence of ours that is 海关入库成功 (customs-accepted, or in-use with quantity left): the
  licence number replaces an application number in CertCode, the declaration is prepared again
  and gets the LicenseNo key;
- a licence of ours that failed at customs, was returned, withdrawn or used up: the declaration
  fails with that reason;
- otherwise it keeps waiting; past `[documents.declaration.deadlines] licence` (default 7 days)
  it is flagged overdue (`swgw status --overdue`) and alarmed once.

Each 报关单核注 write-off of a licence finds the declaration by its entry number: the declaration
gets the LicenseNo key and an event, the licence the EntryId key and an event, so `swgw trace`
of either shows the other.
"""
from __future__ import annotations

from lxml import etree
from sqlalchemy import select

from gateway import alarms, xmlsafe
from gateway.documents.licence import UNUSABLE, USABLE
from gateway.lifecycle import clock
from gateway.lifecycle.settings import describe
from gateway.store import repo, states
from gateway.store.models import Message, MessageKey, utcnow

AWAITING = "awaiting-licence"
DECLARATION = "declaration"
LICENCE_TYPES = ("export-license", "me-import-license", "auto-import-license")
MARK = b"LicenseDocu"


def on_intake(s, msg: Message) -> None:
    """A declaration that names licences waits until release_batch has looked at them."""
    if msg.doc_type == DECLARATION and msg.state == states.PREPARED and msg.document and MARK in msg.document:
        repo.transition(s, msg, AWAITING, "names licences (DecLicenseDocus): checking them before it goes")


def _docus(root):
    return [el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == "LicenseDocu"]


def _child(el, name):
    return next((c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name), None)


def _licence(s, ref: str) -> Message | None:
    """Our latest licence known by `ref` (its ApplyNo, or its LicenseNo key)."""
    q = (select(Message).where(Message.doc_type.in_(LICENCE_TYPES), Message.state != states.INVALID,
                               Message.id.in_(select(MessageKey.message_id).where(
                                   MessageKey.name.in_(("ApplyNo", "LicenseNo")), MessageKey.value == ref)))
         .order_by(Message.id.desc()).limit(1))
    return s.scalars(q).first()


def _licence_no(lic: Message) -> str:
    return next((k.value for k in lic.keys if k.name == "LicenseNo"), "")


def release_batch(rt, limit: int = 200) -> int:
    """Look at the licences of waiting declarations: release, fail or keep waiting."""
    moved, late = 0, []
    doc = rt.config.documents.get(DECLARATION)
    wait_limit = doc.deadlines.licence if doc else 0
    with rt.sessions() as s:
        for msg in repo.in_state(s, AWAITING, limit):
            moved += _look(s, msg)
            if msg.state == AWAITING and wait_limit and not msg.overdue and _waited(msg) > wait_limit:
                msg.overdue, msg.overdue_since = "licence", utcnow()
                why = f"overdue: still waiting for its licence after {describe(wait_limit)} ({msg.last_receipt})"
                repo.note(s, msg, "overdue", why)
                late.append((msg, why))
            elif msg.state != AWAITING and msg.overdue == "licence":
                repo.note(s, msg, "overdue-cleared", f"no longer waiting for its licence: state {msg.state}")
                msg.overdue, msg.overdue_since = "", None
        s.commit()
    for msg, why in late:
        alarms.raise_alarm(rt, "overdue", f"message {msg.id} (declaration {msg.business_key}) {why}",
                           message_id=msg.id, business_key=msg.business_key, step="licence", state=msg.state)
    return moved


def _waited(msg: Message) -> float:
    return (utcnow() - clock.aware(msg.created_at)).total_seconds()


def _look(s, msg: Message) -> int:
    root = xmlsafe.parse(msg.document)
    waiting, used, changed = [], [], False
    for docu in _docus(root):
        code_el, cert_el = _child(docu, "DocuCode"), _child(docu, "CertCode")
        ref = (cert_el.text or "").strip() if cert_el is not None else ""
        lic = _licence(s, ref) if ref else None
        if lic is None:
            continue   # not a licence swgw sent: the declaration names it as it is
        code = (code_el.text or "").strip() if code_el is not None else ""
        number = _licence_no(lic)
        what = f"licence {lic.business_key} ({lic.doc_type}{', ' + number if number else ''})"
        if lic.state in UNUSABLE:
            reason = lic.last_receipt or lic.state
            repo.transition(s, msg, states.FAILED, f"{what} cannot be used: {lic.state} ({reason})")
            msg.errors = [{"rule": "licence", "field": "LicenseDocu/CertCode", "value": ref,
                           "message": f"{what} is {lic.state}: {reason}"}]
            repo.note(s, lic, "licence-use", f"declaration {msg.business_key} failed: this licence is {lic.state}")
            return 1
        if lic.state not in USABLE or not number:
            waiting.append(f"{what} is {lic.state}")
            continue
        if ref != number:
            cert_el.text = number
            changed = True
        used.append((lic, number, code))
    if waiting:
        detail = "; ".join(waiting)
        if detail not in (msg.last_receipt or ""):
            repo.note(s, msg, "awaiting-licence", f"waits until 海关入库成功: {detail}")
            msg.last_receipt = f"awaiting licence: {detail}"[:300]
        return 0
    if changed:
        msg.document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for lic, number, code in used:
        repo.add_key(msg, "LicenseNo", number)
        repo.note(s, lic, "licence-use", f"named by declaration {msg.business_key} (message {msg.id}), "
                                         f"监管证件 {code} {number}")
    names = ", ".join(f"{code} {number} ({lic.business_key})" for lic, number, code in used)
    repo.transition(s, msg, states.PREPARED, f"licences ready (海关入库成功): {names}" if used
                    else "names no licence swgw sent; goes as it is")
    return 1


def after_receipt(s, msg: Message, kind: str, fields: dict, known: dict | None = None) -> None:
    """Link a 报关单核注 write-off and the declaration of its entry, both ways, whichever of the
    write-off and the declaration's entry number (DEC_RESULT ENTRY_ID) arrives first.
    `known`: keys given by receipts of the same batch, not yet in the store ((name, value) -> messages)."""
    if kind == "licence-customs" and fields.get("CustomsStatus") == "报关单核注" and fields.get("EntryId"):
        entry = fields["EntryId"]
        dec = next((m for m in reversed((known or {}).get(("EntryId", entry), [])) if m.doc_type == DECLARATION),
                   None)
        if dec is None:
            q = (select(Message).where(Message.doc_type == DECLARATION, Message.id.in_(
                select(MessageKey.message_id).where(MessageKey.name == "EntryId", MessageKey.value == entry)))
                 .order_by(Message.id.desc()).limit(1))
            dec = s.scalars(q).first()
        if dec is None:
            repo.note(s, msg, "write-off", f"entry {entry} wrote off {fields.get('WriteOffQty', '?')}; its "
                                           f"declaration is linked when swgw learns that entry number")
            return
        _link(s, msg, dec, entry, fields)
    elif kind == "dec-result" and msg.doc_type == DECLARATION and fields.get("ENTRY_ID"):
        entry = fields["ENTRY_ID"]
        for number in [k.value for k in msg.keys if k.name == "LicenseNo"]:   # only declarations naming ours
            if any(k.name == "LicenseWriteOff" and k.value == number for k in msg.keys):
                continue
            lic = _licence(s, number)
            if lic is not None and any(k.name == "EntryId" and k.value == entry for k in lic.keys):
                _link(s, lic, msg, entry, {})


def _link(s, lic: Message, dec: Message, entry: str, fields: dict) -> None:
    number = fields.get("LicenseNo") or _licence_no(lic)
    if any(k.name == "LicenseWriteOff" and k.value == number for k in dec.keys):
        return
    repo.add_key(dec, "LicenseNo", number)
    repo.add_key(dec, "LicenseWriteOff", number)
    repo.add_key(lic, "EntryId", entry)
    qty = f": {fields['WriteOffQty']}, 报关余量 {fields.get('RemainingQty', '?')}" if fields.get("WriteOffQty") else ""
    repo.note(s, dec, "write-off", f"licence {number} ({lic.doc_type} {lic.business_key}) written off by this "
                                   f"entry {entry}{qty}")
    repo.note(s, lic, "write-off", f"written off by declaration {dec.business_key} (entry {entry}, message {dec.id})")
