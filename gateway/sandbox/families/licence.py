"""MOFCOM licences (出口许可证, 机电/非机电自动进口许可证), in each family's own words: the approval
flow, the electronic licence (电子许可证), the licence's customs status, then 报关单核注 write-offs —
from the declarations that name the licence (families/declaration.py calls `write_off`), or, for
scenarios without declarations, `write_offs` synthetic entries.

Before anything, MOFCOM checks the 签章 in LicenseSign against the electronic key bound to the
applicant's MOFCOM code ([mofcom] keys), the filing the family needs ([mofcom] filings, or one
it registered), and the form: a schema error, a bulk good without its 大宗合同许可证申领号 or an
over-long 备注 hands the application back (the family's draft word, 未上报 / 暂存, with 审批意见).
Withdrawals (LicenseWithdrawal) are answered with 撤销状态: 撤销成功, or 撤销失败 once approved.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal

from card import crypto
from gateway import fsutil, signing
from gateway.sandbox import receipts
from gateway.sandbox.families import Play, match

ROOTS = ("ExportLicenseMessage", "MeImportLicenseMessage", "AutoImportLicenseMessage", "LicenseWithdrawal",
         "MofcomFiling")
# root -> (scenario attribute, 监管代码, licence number prefix, default flow, draft word, filing)
KINDS = {
    "ExportLicenseMessage": ("export_license", "4", "AB", ["待初审", "审批中", "审批通过"], "未上报", ""),
    "MeImportLicenseMessage": ("me_import_license", "O", "601", ["审批中", "审批通过"], "暂存", "me"),
    "AutoImportLicenseMessage": ("auto_import_license", "7", "701", ["待初审", "复审通过", "已打印或生成电子许可证"],
                                 "暂存", "agri"),
}
APPROVED = ("审批通过", "复审通过", "已复审通过")
BULK = ("0401", "0402", "0404", "0201", "0202", "0203", "0204", "0206", "1201", "1205", "1507", "1511", "1514",
        "2304")
REGISTRY = "mofcom-licences.json"
FILINGS = "mofcom-filings.json"


def _load(peer, name) -> dict:
    try:
        return json.loads((peer.archive / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save(peer, name, data) -> None:
    fsutil.atomic_write(peer.archive / name, json.dumps(data, ensure_ascii=False, indent=1).encode())


def play(p: Play) -> None:
    if p.root_name == "LicenseWithdrawal":
        return withdraw(p)
    if p.root_name == "MofcomFiling":
        return file(p)
    attr, code, prefix, default_flow, draft, filing = KINDS[p.root_name]
    sc = getattr(p.settings, attr)
    rule = match(sc.rules, p.text)
    if rule and rule.silent:
        return
    apply_no = p.text("ApplyNo")
    keys = {"ApplyNo": apply_no}
    n = p.serial()
    yy = time.strftime("%y")
    mofcom_code = p.text("MofcomCode")
    mofcom_apply_no = f"2{mofcom_code or '0' * 13}{n:07d}"[:21]
    licence_no = f"{yy}{prefix}{n:0{8 - len(prefix)}d}"
    flow = rule.flow if rule and rule.flow else (sc.flow or default_flow)
    opinion = rule.opinion if rule else ""
    problem = _problem(p, mofcom_code, filing)
    if problem:
        flow, opinion = [draft], problem
    base = p.base
    at = sc.first_delay
    total = p.text("TotalQty") or "0"
    approved = False
    for i, status in enumerate(flow, start=1):
        approved = approved or status in APPROVED
        last = i == len(flow)
        payload = receipts.licence_approval(code, apply_no, status, mofcom_apply_no,
                                            licence_no if approved else "", opinion if last else "",
                                            total if approved else "")
        p.later(at, f"Licence_{base}_{i}_approval.xml", p.reply("LicenseApprovalResult", payload, keys))
        at += sc.delay
    if not approved:
        _remember(p, apply_no, {"state": flow[-1] if flow else "", "approved": False, "base": base})
        return
    keys = {"ApplyNo": apply_no, "LicenseNo": licence_no}
    if p.text("Medium") in ("1", "") and p.text("PaperMode") in ("1", ""):   # 电子版: the electronic licence
        fmt = p.settings.mofcom.licence_format
        content = _licence_pdf(licence_no, apply_no, total) if fmt == "pdf" else _licence_xml(p, licence_no)
        p.later(at, f"Licence_{base}_e_licence.xml",
                p.reply("LicenseDocument", receipts.licence_document(code, licence_no, apply_no, fmt, content), keys))
        at += sc.delay
    customs = rule.customs if rule and rule.customs is not None else sc.customs
    step = len(flow)
    for status in customs:
        step += 1
        payload = receipts.licence_customs(code, licence_no, apply_no, status,
                                           note=rule.opinion if rule and status != "海关入库成功" else "")
        p.later(at, f"Licence_{base}_{step}_customs.xml", p.reply("LicenseCustomsStatus", payload, keys))
        at += sc.delay
    usable = "海关入库成功" in customs
    _remember(p, apply_no, {"state": "approved", "approved": True, "licence_no": licence_no, "code": code,
                            "total": total, "used": "0", "batch": p.text("BatchMode"), "usable": usable,
                            "sender": p.env.trans.sender_id if p.env else "", "entries": []})
    if not usable:
        return
    parts = rule.write_offs if rule and rule.write_offs is not None else sc.write_offs
    if p.text("BatchMode") == "1":
        parts = min(parts, 1)
    qty, used = Decimal(total), Decimal(0)
    port = p.text("CustomsPort") or "0000"
    ie = "0" if p.root_name == "ExportLicenseMessage" else "1"
    for k in range(1, parts + 1):
        part = qty - used if k == parts else (qty / parts).quantize(Decimal("0.00001"))
        used += part
        step += 1
        entry_id = f"{port}{time.strftime('%Y')}{ie}{n:06d}{k:03d}"[:18]
        payload = receipts.licence_customs(code, licence_no, apply_no, "报关单核注", entry_id, _fmt(part),
                                           _fmt(used), _fmt(qty - used))
        p.later(at, f"Licence_{base}_{step}_writeoff.xml", p.reply("LicenseCustomsStatus", payload, keys))
        at += sc.delay
    if parts:
        _update(p.peer, apply_no, used=_fmt(used))


def _problem(p: Play, mofcom_code: str, filing: str) -> str:
    """Why MOFCOM hands the application back, or ''."""
    errors = p.schema_errors()
    if errors:
        return f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    bad = _key_problem(p, mofcom_code)
    if bad:
        return bad
    if filing and filing not in _filings_of(p, mofcom_code):
        return f"企业尚未完成{'企业信息备案' if filing == 'me' else '重农信息备案'}"
    if p.root_name == "AutoImportLicenseMessage":
        codes = [el.text or "" for el in p.doc.iter() if isinstance(el.tag, str) and el.tag.endswith("}GoodsCode")]
        if any(c[:4] in BULK for c in codes) and not p.text("BulkContractNo"):
            return "申领商品属大宗商品，请填写备案系统生成的大宗合同许可证申领号"
        if len(p.text("Remark")) > 32:
            return "备注最多录入32个字"
    return ""


def _key_problem(p: Play, mofcom_code: str) -> str:
    """The 签章 in LicenseSign against the electronic key bound to `mofcom_code`: '' or what is wrong."""
    registered = p.settings.mofcom.keys.get(mofcom_code)
    if registered is None:
        return f"企业代码 {mofcom_code} 未绑定商务部电子钥匙，无法申请"
    try:
        verified = p.peer._family(_any_licence_family()).verify_licence_signature(p.doc)
    except signing.SignatureError as exc:
        return f"电子钥匙签章验证失败: {exc}"
    try:
        bound = crypto.to_der(registered.read_bytes())
    except OSError:
        return f"企业代码 {mofcom_code} 的电子钥匙证书无法读取"
    if verified.certificate != bound:
        return "签章所用证书不是该企业绑定的商务部电子钥匙"
    return ""


def _any_licence_family():
    from gateway.documents import FAMILIES
    from gateway.documents.licence import Licence

    return next(f for f in FAMILIES.values() if issubclass(f, Licence))


def _filings_of(p: Play, mofcom_code: str) -> set[str]:
    uscc = p.text("ImporterScc") or p.text("ExporterScc")
    known = set(p.settings.mofcom.filings.get(mofcom_code, [])) | set(p.settings.mofcom.filings.get(uscc, []))
    return known | set(_load(p.peer, FILINGS).get(uscc, []))


def _remember(p: Play, apply_no: str, entry: dict) -> None:
    data = _load(p.peer, REGISTRY)
    data[apply_no] = entry
    _save(p.peer, REGISTRY, data)


def _update(peer, apply_no: str, **changes) -> None:
    data = _load(peer, REGISTRY)
    if apply_no in data:
        data[apply_no].update(changes)
        _save(peer, REGISTRY, data)


def licence_by_number(peer, number: str) -> tuple[str, dict] | None:
    for apply_no, entry in _load(peer, REGISTRY).items():
        if entry.get("licence_no") == number:
            return apply_no, entry
    return None


def write_off(p: Play, number: str, entry_id: str, qty: Decimal, at: float) -> str:
    """An entry that names licence `number` is released: 报关单核注 for it. '' or why customs refuses."""
    found = licence_by_number(p.peer, number)
    if found is None:
        return ""      # not a licence this MOFCOM issued: customs checks it elsewhere
    apply_no, lic = found
    if not lic.get("usable"):
        return f"许可证 {number} 未海关入库成功"
    total, used = Decimal(lic["total"]), Decimal(lic["used"])
    one_batch = lic.get("batch") == "1"
    if (one_batch and lic["entries"]) or used >= total:
        return f"许可证 {number} 已核销完毕"
    part = total - used if one_batch else min(qty, total - used)
    used += part
    payload = receipts.licence_customs(lic["code"], number, apply_no, "报关单核注", entry_id, _fmt(part), _fmt(used),
                                       _fmt(total - used))
    keys = {"ApplyNo": apply_no, "LicenseNo": number}
    data = receipts.wrap(p.settings.peer.platform_id, lic.get("sender") or "UNKNOWN", "LicenseCustomsStatus",
                         payload, keys)
    p.later(at, f"Licence_{apply_no}_{entry_id}_writeoff.xml", data)
    _update(p.peer, apply_no, used=_fmt(used), entries=[*lic["entries"], entry_id])
    return ""


def withdraw(p: Play) -> None:
    """撤回/撤销: the enterprise withdraws an application MOFCOM has not approved."""
    apply_no = p.text("ApplyNo")
    code = p.text("SupervisionCode")
    word = "撤销" if code == "7" else "撤回"      # 非机电 撤销申请; 出口 / 机电 撤回申请
    lic = _load(p.peer, REGISTRY).get(apply_no)
    bad = _key_problem(p, p.text("MofcomCode"))
    if bad:
        status, reason = f"{word}失败", bad
    elif lic is None:
        status, reason = f"{word}失败", "无此申请"
    elif lic.get("approved"):
        status, reason = f"{word}失败", f"申请已审批通过（许可证号 {lic.get('licence_no')}），不能{word}"
    elif lic.get("state") == "撤销":
        status, reason = f"{word}失败", f"申请已{word}"
    else:
        status, reason = f"{word}成功", ""
        _update(p.peer, apply_no, state="撤销")
        p.peer.cancel(f"Licence_{lic.get('base')}_")   # what MOFCOM would still have said about it
    payload = receipts.licence_withdrawal(code, apply_no, status, reason)
    p.later(p.settings.peer.ack_delay + 0.05, f"Licence_{p.base}_withdrawal.xml",
            p.reply("LicenseWithdrawalResult", payload, {"ApplyNo": apply_no}))


def file(p: Play) -> None:
    """企业信息备案 / 重农信息备案: registered, or refused with the reason."""
    kind, uscc = p.text("FilingKind"), p.text("EnterpriseScc")
    reason = p.settings.mofcom.refuse_filings.get(uscc, "")
    errors = p.schema_errors()
    if errors:
        reason = f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    if not reason:
        data = _load(p.peer, FILINGS)
        data[uscc] = sorted(set(data.get(uscc, [])) | {kind})
        _save(p.peer, FILINGS, data)
    payload = receipts.filing_result(kind, p.text("FilingNo"), uscc, "未通过" if reason else "已注册", reason)
    p.later(p.settings.peer.ack_delay + 0.05, f"Filing_{p.base}_result.xml",
            p.reply("MofcomFilingResult", payload, {"FilingNo": p.text("FilingNo")}))


def _licence_xml(p: Play, licence_no: str) -> bytes:
    """The electronic licence as data: the application as approved, with its number."""
    from lxml import etree

    doc = etree.fromstring(etree.tostring(p.doc))
    q = doc.nsmap.get(None, "")
    head = doc.find(f"{{{q}}}LicenseHead")
    el = etree.SubElement(head, f"{{{q}}}LicenseNo")
    el.text = licence_no
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")


def _licence_pdf(licence_no: str, apply_no: str, total: str) -> bytes:
    text = f"Licence {licence_no} application {apply_no} quantity {total}"
    stream = f"BT /F1 12 Tf 50 750 Td ({text}) Tj ET".encode()
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R>>endobj\n"
            b"4 0 obj<</Length " + str(len(stream)).encode() + b">>stream\n" + stream + b"\nendstream endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
