"""CCPIT: audits product filings (审核通过 with a filing number, or 退回) and certificates of origin
(审核通过 with a certificate number, 退回 with the reason, or 作废 after issue when a rule says so).

A preferential certificate is returned when a good's FilingNo is not a filing this peer approved
(archive_dir/ccpit-filings.json, so a restart remembers) or a configured known one; an amend-and-
reissue application (改证重发) voids the certificate it replaces."""
from __future__ import annotations

import base64
import json
import time

from gateway import fsutil
from gateway.sandbox import receipts
from gateway.sandbox.families import Play, match

ROOTS = ("OriginCertMessage", "OriginFilingMessage", "CcpitSyncRequest")
REGISTRY = "ccpit-filings.json"
NS = "urn:swgw:origin"


def _filings(peer) -> dict:
    try:
        return json.loads((peer.archive / REGISTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def play(p: Play) -> None:
    {"OriginFilingMessage": _filing, "CcpitSyncRequest": _sync}.get(p.root_name, _certificate)(p)


def _registered(p: Play) -> dict:
    """Every filing the platform knows: approved here, or registered elsewhere (configured)."""
    out = {f["filing_no"]: {"hs_code": f.get("hs_code", ""), "name_en": f.get("name_en", ""),
                            "areas": list(f.get("areas", []))} for f in p.settings.origin.registered_filings}
    out.update(_filings(p.peer))
    return out


def _sync(p: Play) -> None:
    """数据同步: the enterprise's registered filings, or its registration data."""
    sc = p.settings.origin
    request_id, sync_type = p.text("RequestId"), p.text("SyncType")
    values = [("RequestId", request_id), ("SyncType", sync_type), ("CcpitEntCode", p.text("CcpitEntCode")),
              ("EnterpriseCode", p.text("EnterpriseCode")), ("Status", "成功")]
    schema = p.peer.schema_for("OriginCertMessage")   # the request's schema is the certificate's (origin.xsd)
    errors = schema.errors(p.doc) if schema is not None else []
    if errors:
        values[-1] = ("Status", "失败")
        values.append(("Reason", f"报文格式错误: {errors[0].path}: {errors[0].reason}"[:500]))
    elif sync_type == "filings":
        filings = _registered(p)
        values.append(("Count", str(len(filings))))
        values += [("Filing", [("FilingNo", no), ("HsCode", f["hs_code"]), ("NameEn", f.get("name_en", "")),
                               ("PrefAreas", " ".join(f["areas"]))]) for no, f in filings.items()]
    elif sync_type == "enterprise":
        values += [("Count", "1"), ("EntName", sc.enterprise_name), ("Address", sc.enterprise_address)]
        values += [("Signatory", [("Name", g.get("name", "")), ("Status", g.get("status", "已备案"))])
                   for g in sc.signatories]
    else:
        values[-1] = ("Status", "失败")
        values.append(("Reason", f"不支持的同步类型 {sync_type}"))
    p.later(sc.delay, f"Sync_{p.base}.xml", p.reply("CcpitSyncResult", receipts.ccpit_result("CcpitSyncResult", values),
                                                    {"RequestId": request_id}))


def _materials_problem(p: Play, product=None, material: str = "FilingMaterial") -> str:
    """The platform's check of 原材料 (a filing's, or a certificate good's 加工工序 materials): every one
    has its 从价百分比, = CIF单价 / the product's 单价 × 100 (±0.01)."""
    product = p.doc if product is None else product
    try:
        price = float(product.findtext(f"{{{NS}}}UnitPrice") or (p.text("UnitPrice") if product is p.doc else 0) or 0)
    except ValueError:
        price = 0.0
    for m in product.iter(f"{{{NS}}}{material}"):
        pct, cif = m.findtext(f"{{{NS}}}ValuePercent"), m.findtext(f"{{{NS}}}CifUsd")
        if not pct:
            return "原材料信息不完整：缺少从价百分比"
        if price > 0 and cif and abs(float(pct) - float(cif) / price * 100) > 0.011:
            return f"原材料 {m.findtext(f'{{{NS}}}HsCode4')} 的从价百分比 {pct} 与CIF单价 {cif} 不符"
    return ""


def _filing(p: Play) -> None:
    sc = p.settings.origin
    apply_no = p.text("FilingApplyNo")
    keys = {"FilingApplyNo": apply_no}
    rule = match(sc.filing_rules, p.text)
    if rule and rule.silent:
        return
    errors = p.schema_errors()
    areas = p.text("PrefAreas").split()
    returned = [a for a in areas if rule and a in rule.return_areas]    # 优惠区域备案状态, per area
    reason = f"报文格式错误: {errors[0].path}: {errors[0].reason}" if errors else \
        (rule.reason if rule and not rule.return_areas else "") or _materials_problem(p)
    approved = [] if reason else [a for a in areas if a not in returned]
    filing_no = ""
    if approved:
        n = p.serial()
        filing_no = f"{time.strftime('%y')}S{p.text('CcpitOrgCode')[:4]}M9997/{n:05d}"
        filings = _filings(p.peer)
        filings[filing_no] = {"hs_code": p.text("HsCode"), "areas": approved}
        fsutil.atomic_write(p.peer.archive / REGISTRY, json.dumps(filings, indent=1).encode())
    status = "退回" if not approved else "部分审核通过" if returned else "审核通过"
    per_area = [("AreaResult", [("PrefArea", a), ("Status", "审核通过" if a in approved else "退回"),
                                ("Reason", rule.reason if rule and a in returned else reason)]) for a in areas]
    payload = receipts.ccpit_result("FilingAuditResult", [
        ("FilingApplyNo", apply_no), ("FilingNo", filing_no), ("Status", status),
        ("Reason", reason or (f"{' '.join(returned)}: {rule.reason}" if returned else "")), *per_area])
    p.later(sc.delay, f"Filing_{p.base}.xml", p.reply("FilingAuditResult", payload, keys))


def _certificate_pdf(cert_no: str, invoice_no: str) -> bytes:
    """A one-page PDF naming the certificate (what the platform's print service would hand out)."""
    text = f"CERTIFICATE OF ORIGIN {cert_no} INVOICE {invoice_no}".replace("(", "").replace(")", "")
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _certificate(p: Play) -> None:
    sc = p.settings.origin
    invoice_no, cert_type = p.text("InvoiceNo"), p.text("CertType")
    keys = {"InvoiceNo": invoice_no}
    rule = match(sc.rules, p.text)
    if rule and rule.silent:
        return
    errors = p.schema_errors()
    reason = f"报文格式错误: {errors[0].path}: {errors[0].reason}" if errors else ""
    if not reason and cert_type != "C":
        known = _registered(p)
        for item in p.doc.iter(f"{{{NS}}}CertGoods"):
            filing = (item.findtext(f"{{{NS}}}FilingNo") or "").strip()
            if filing not in known and filing not in sc.known_filings:
                reason = f"商品 {item.findtext(f'{{{NS}}}HsCode')} 的备案号 {filing or '(空)'} 未审核通过"
                break
            if filing in known and cert_type not in known[filing].get("areas", []):
                reason = f"备案号 {filing} 的优惠区域 {cert_type} 未审核通过"
                break
    for item in p.doc.iter(f"{{{NS}}}CertGoods") if not reason else ():   # 加工工序: the materials' 从价百分比
        reason = _materials_problem(p, item, "ProcessMaterial")
        if reason:
            reason = f"商品 {item.findtext(f'{{{NS}}}GNo')} 加工工序: {reason}"
            break
    if not reason and rule:
        reason = rule.reason
    at = sc.delay
    if reason:
        p.later(at, f"Origin_{p.base}_1.xml", p.reply("OriginAuditResult", receipts.ccpit_result(
            "OriginAuditResult", [("InvoiceNo", invoice_no), ("CertType", cert_type), ("Status", "退回"),
                                  ("Reason", reason)]), keys))
        return
    n = p.serial()
    cert_no = f"{time.strftime('%y')}{p.text('CcpitOrgCode')}{cert_type}{n:06d}"
    old = p.text("OriCertNo")
    if p.text("ApplyType") == "2" and old:  # 改证重发: the replaced certificate is voided as the new one issues
        p.later(at, f"Origin_{p.base}_0_void.xml", p.reply(
            "OriginAuditResult", receipts.ccpit_result(
                "OriginAuditResult", [("CertType", cert_type), ("CertNo", old), ("Status", "作废"),
                                      ("Reason", f"改证重发, replaced by {cert_no}")]), {}))
        at += sc.delay / 2
    p.later(at, f"Origin_{p.base}_1.xml", p.reply("OriginAuditResult", receipts.ccpit_result(
        "OriginAuditResult", [("InvoiceNo", invoice_no), ("CertType", cert_type), ("CertNo", cert_no),
                              ("Status", "审核通过")]), keys))
    if sc.print_certificates:  # 证书自助打印: the certificate as issued, a PDF for the enterprise to print
        p.later(at + sc.delay / 4, f"Print_{p.base}.xml", p.reply("CertificatePrint", receipts.ccpit_result(
            "CertificatePrint", [("InvoiceNo", invoice_no), ("CertType", cert_type), ("CertNo", cert_no),
                                 ("FileType", "PDF"), ("FileName", f"{cert_no}.pdf"),
                                 ("Content", base64.b64encode(_certificate_pdf(cert_no, invoice_no)).decode())]),
            keys))
    if rule is not None and rule.void:
        p.later(at + sc.delay, f"Origin_{p.base}_2.xml", p.reply(
            "OriginAuditResult", receipts.ccpit_result(
                "OriginAuditResult", [("InvoiceNo", invoice_no), ("CertType", cert_type), ("CertNo", cert_no),
                                      ("Status", "作废"), ("Reason", rule.void)]), keys))
