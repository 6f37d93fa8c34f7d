"""MOFCOM licences (出口许可证, 机电/非机电自动进口许可证): the approval flow, then the licence's
customs status, then 报关单核注 write-offs that bring the remaining quantity (报关余量) down.

An application that fails its schema is returned (退回) with the schema error as 审批意见.
"""
from __future__ import annotations

import time
from decimal import Decimal

from gateway.sandbox import receipts
from gateway.sandbox.families import Play, match

ROOTS = ("ExportLicenseMessage", "MeImportLicenseMessage", "AutoImportLicenseMessage")
# root -> (scenario attribute, 监管代码, licence number prefix)
KINDS = {
    "ExportLicenseMessage": ("export_license", "4", "AB"),
    "MeImportLicenseMessage": ("me_import_license", "O", "601"),
    "AutoImportLicenseMessage": ("auto_import_license", "7", "701"),
}
APPROVED = ("审批通过", "已复审通过")


def play(p: Play) -> None:
    attr, code, prefix = KINDS[p.root_name]
    sc = getattr(p.settings, attr)
    rule = match(sc.rules, p.text)
    if rule and rule.silent:
        return
    apply_no = p.text("ApplyNo")
    keys = {"ApplyNo": apply_no}
    n = p.serial()
    yy = time.strftime("%y")
    mofcom_apply_no = f"2{p.text('ExporterCode') or p.text('ImporterCode') or '0' * 13}{n:07d}"[:21]
    licence_no = f"{yy}{prefix}{n:0{8 - len(prefix)}d}"
    flow = rule.flow if rule and rule.flow else sc.flow
    opinion = rule.opinion if rule else ""
    errors = p.schema_errors()
    if errors:
        flow, opinion = ["退回"], f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    base = p.base
    at = sc.first_delay
    total = p.text("TotalQty") or "0"
    approved = False
    for i, status in enumerate(flow, start=1):
        approved = status in APPROVED
        payload = receipts.licence_approval(
            code, apply_no, status, mofcom_apply_no, licence_no if approved else "", opinion if i == len(flow) else "", total if approved else "")
        p.later(at, f"Licence_{base}_{i}_approval.xml", p.reply("LicenseApprovalResult", payload, keys))
        at += sc.delay
    if not approved:
        return
    keys = {"ApplyNo": apply_no, "LicenseNo": licence_no}
    customs = rule.customs if rule and rule.customs is not None else sc.customs
    step = len(flow)
    for status in customs:
        step += 1
        payload = receipts.licence_customs(code, licence_no, apply_no, status,
                                           note=rule.opinion if rule and status != "海关入库成功" else "")
        p.later(at, f"Licence_{base}_{step}_customs.xml", p.reply("LicenseCustomsStatus", payload, keys))
        at += sc.delay
    if "海关入库成功" not in customs:
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


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
