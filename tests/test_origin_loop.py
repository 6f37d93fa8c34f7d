"""CCPIT in one daemon run: a filing approved through swgw is used by the next preferential
certificate at once (no CSV edit, no restart); a partially approved filing allows only its approved
areas; 改证重发 under the same invoice number is approved and voids the original, both traces
showing the link."""
from __future__ import annotations

import json

from support import ROOT, Workspace, wait_for

FILING = ROOT / "samples" / "origin-filing.json"
REFERENCE = ROOT / "samples" / "origin.xml"


def rows(ws, *args) -> dict:
    return {r["key"]: r for r in json.loads(ws.swgw("status", "--json", *args, check=True).stdout)}


def certificate(invoice: str, cert_type: str, filing_no: str, extra: str = "") -> str:
    text = REFERENCE.read_text(encoding="utf-8").replace("INV-2026-0331", invoice)
    text = text.replace("<CertType>E</CertType>", f"<CertType>{cert_type}</CertType>{extra}")
    return text.replace("26S2102M9997/00054", filing_no)


def test_filings_close_the_loop_and_a_reissue_keeps_its_invoice_number(tmp_path, pki):
    ws = Workspace(tmp_path, pki, families=["origin", "origin-filing"])
    ws.sandbox_config.write_text(ws.sandbox_config.read_text() + '''
[[origin.filing_rules]]
when = { FilingApplyNo = "^PFPART" }
return_areas = ["K"]
reason = "东盟原产地标准不符：区域价值成分不足"
''')
    batch = json.loads(FILING.read_text(encoding="utf-8"))
    part = json.loads(json.dumps(batch["filings"][0]))
    part["apply_no"] = "PFPART0303"
    batch["filings"].append(part)
    try:
        ws.start_sandbox()
        ws.start_daemon()
        ws.drop_to("origin-filing", "filings.json", json.dumps(batch, ensure_ascii=False))
        got = wait_for(lambda: (r := rows(ws, "--type", "origin-filing")) and len(r) == 2 and all(
            x["state"] in ("approved", "partially-approved", "returned") for x in r.values()) and r, 60,
            what="both filings audited")
        assert got["PF2026000301"]["state"] == "approved"
        assert got["PFPART0303"]["state"] == "partially-approved"
        full, partial = got["PF2026000301"]["keys"]["FilingNo"], got["PFPART0303"]["keys"]["FilingNo"]
        trace = ws.swgw("trace", "PFPART0303", check=True).stdout
        assert "E 审核通过" in trace and "K 退回: 东盟原产地标准不符：区域价值成分不足" in trace

        # the same daemon run: certificates name the new filings (not in mappings/reference/ccpit_filings.csv)
        ws.drop_to("origin", "certs.xml", certificate("INV-LOOP-1", "E", full))
        ws.drop_to("origin", "partial-ok.xml", certificate("INV-LOOP-2", "E", partial))
        ws.drop_to("origin", "partial-bad.xml", certificate("INV-LOOP-3", "K", partial))
        got = wait_for(lambda: (r := rows(ws, "--type", "origin")) and len(r) == 3 and all(
            x["state"] in ("approved", "invalid", "returned") for x in r.values()) and r, 60,
            what="three certificates settled")
        assert got["INV-LOOP-1"]["state"] == "approved", got["INV-LOOP-1"]
        assert got["INV-LOOP-2"]["state"] == "approved", "the approved area E of a partial filing goes"
        assert got["INV-LOOP-3"]["state"] == "invalid", "its returned area K is refused before sending"
        report = json.loads(next((ws.inbox_of("origin") / ".error").glob("partial-bad.xml.error.json"))
                            .read_text(encoding="utf-8"))
        (err,) = report["rejected"][0]["errors"]
        assert err["rule"] == "filing-area" and f"filing {partial} covers E, not K" in err["message"]
        old_cert = got["INV-LOOP-1"]["keys"]["CertNo"]

        # 改证重发 under the same invoice number
        ws.drop_to("origin", "reissue.xml", certificate("INV-LOOP-1", "E", full,
                                                        f"\n    <OriCertNo>{old_cert}</OriCertNo>"))
        wait_for(lambda: sorted(r["state"] for r in json.loads(ws.swgw(
            "status", "--json", "--key", "INV-LOOP-1", check=True).stdout)) == ["approved", "voided"], 60,
            what="the reissue approved and the original voided")
    finally:
        ws.stop_all()
    msgs = json.loads(ws.swgw("status", "--json", "--key", "INV-LOOP-1", check=True).stdout)
    new = next(m for m in msgs if m["state"] == "approved")
    old = next(m for m in msgs if m["state"] == "voided")
    assert old["keys"]["CertNo"] == old_cert and new["keys"]["CertNo"] != old_cert
    trace = ws.swgw("trace", "INV-LOOP-1", check=True).stdout
    assert f"replaces message {old['id']} (INV-LOOP-1, CertNo {old_cert}, state approved)" in trace
    assert "replaced by a new application under the same InvoiceNo" in trace
    assert f"改证重发, replaced by {new['keys']['CertNo']}" in trace
    # 证书自助打印: each issued certificate is stored and routed to the origin outbox as its PDF
    pdfs = sorted(ws.outbox_of("origin").glob("INV-LOOP-1.certificate.*.pdf"))
    assert len(pdfs) == 2 and all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    assert any(new["keys"]["CertNo"].encode() in p.read_bytes() for p in pdfs)
    assert f"certificate {new['keys']['CertNo']} issued for printing (PDF, {new['keys']['CertNo']}.pdf)" in trace
