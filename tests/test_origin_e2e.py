"""CCPIT certificates of origin and product filings end to end through the real daemon and the
sandbox peer: the reference XML export unchanged (base-data codes resolved), audits with their
certificate / filing numbers, returns with their reasons, amend-and-reissue voiding the old one."""
from __future__ import annotations

import base64
import json

import pytest
from lxml import etree

from support import ROOT, SHARED, Workspace, drain

DXP = "{http://www.chinaport.gov.cn/dxp}"
ORG = "{urn:swgw:origin}"
REFERENCE = SHARED / "erp-samples" / "origin.xml"
FILING = ROOT / "samples" / "origin-filing.json"


@pytest.fixture
def ws(tmp_path, pki):
    w = Workspace(tmp_path, pki, families=["origin", "origin-filing"])
    yield w
    w.stop_all()



def rows(ws, *args) -> dict:
    return {r["key"]: r for r in json.loads(ws.swgw("status", "--json", *args, check=True).stdout)}


def sent_documents(ws, root: str) -> list:
    docs = [etree.fromstring(base64.b64decode(etree.parse(str(p)).getroot().findtext(f"{DXP}Data")))
            for p in ws.received_envelopes()]
    return [d for d in docs if d.tag == f"{ORG}{root}"]


def audit(path) -> etree._Element:
    return etree.parse(str(path)).getroot()


def test_reference_certificate_resolves_base_data_and_is_approved(ws):
    ws.start_sandbox()
    ws.drop_to("origin", "origin.xml", REFERENCE.read_bytes())
    drain(ws)
    (doc,) = sent_documents(ws, "OriginCertMessage")
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "origin.xsd")))
    assert schema.validate(doc), schema.error_log
    head = doc.find(f"{ORG}CertHead")
    assert head.findtext(f"{ORG}ExporterName") == "DAL INTERNATIONAL TRADING CO., LTD."
    assert head.findtext(f"{ORG}ImporterName") == "Die Bayerischen Motoren Werke AG"
    assert head.findtext(f"{ORG}ProducerAddress") == "No.23 GAN JING ZI ZONE,DALIAN,CHINA"
    assert head.findtext(f"{ORG}TransportRoute") == "FROM CNDLC TO VNHPH BY SEA"
    row = rows(ws)["INV-2026-0331"]
    assert row["type"] == "origin" and row["state"] == "approved", row
    cert_no = row["keys"]["CertNo"]
    (result,) = ws.outbox_of("origin").glob("INV-2026-0331.origin-audit.*.xml")
    assert audit(result).findtext(f"{ORG}Status") == "审核通过" and audit(result).findtext(f"{ORG}CertNo") == cert_no
    assert list(rows(ws, "--key", cert_no)) == ["INV-2026-0331"]
    assert "acknowledged -> approved" in ws.swgw("trace", cert_no, check=True).stdout


def test_product_filing_is_approved_with_its_number_and_a_return_carries_its_reason(ws):
    ws.start_sandbox()
    batch = json.loads(FILING.read_text(encoding="utf-8"))
    returned = json.loads(json.dumps(batch["filings"][0]))
    returned["apply_no"] = "PFRET0302"
    batch["filings"].append(returned)
    ws.drop_to("origin-filing", "filings.json", json.dumps(batch, ensure_ascii=False))
    drain(ws)
    (doc, _) = sent_documents(ws, "OriginFilingMessage")
    assert doc.findtext(f"{ORG}FilingHead/{ORG}PrefAreas") == "E K"
    got = rows(ws, "--type", "origin-filing")
    assert got["PF2026000301"]["state"] == "approved"
    filing_no = got["PF2026000301"]["keys"]["FilingNo"]
    assert filing_no.endswith(tuple("0123456789")) and "/" in filing_no
    assert got["PFRET0302"]["state"] == "returned" and "FilingNo" not in got["PFRET0302"]["keys"]
    (result,) = ws.outbox_of("origin-filing").glob("PFRET0302.filing-audit.*.xml")
    assert audit(result).findtext(f"{ORG}Reason") == "原材料信息不完整：缺少从价百分比"
    assert "原材料信息不完整" in ws.swgw("trace", "PFRET0302", check=True).stdout


def test_returned_certificate_reaches_the_outbox_with_its_reason(ws):
    ws.start_sandbox()
    ws.drop_to("origin", "ret.xml", REFERENCE.read_text(encoding="utf-8").replace("INV-2026-0331", "RET-0332"))
    drain(ws)
    row = rows(ws)["RET-0332"]
    assert row["state"] == "returned" and "CertNo" not in row["keys"]
    (result,) = ws.outbox_of("origin").glob("RET-0332.origin-audit.*.xml")
    assert audit(result).findtext(f"{ORG}Status") == "退回"
    assert audit(result).findtext(f"{ORG}Reason") == "发票金额与FOB值不符，请核实"


def test_amend_and_reissue_voids_the_certificate_it_replaces(ws):
    ws.start_sandbox()
    ws.drop_to("origin", "origin.xml", REFERENCE.read_bytes())
    drain(ws)
    old_no = rows(ws)["INV-2026-0331"]["keys"]["CertNo"]
    text = REFERENCE.read_text(encoding="utf-8").replace("INV-2026-0331", "INV-2026-0331R1").replace(
        "<CertType>E</CertType>", f"<CertType>E</CertType>\n    <OriCertNo>{old_no}</OriCertNo>")
    ws.drop_to("origin", "reissue.xml", text)
    drain(ws)
    got = rows(ws)
    assert got["INV-2026-0331R1"]["state"] == "approved"
    assert got["INV-2026-0331"]["state"] == "voided", got["INV-2026-0331"]
    (doc,) = [d for d in sent_documents(ws, "OriginCertMessage")
              if d.findtext(f"{ORG}CertHead/{ORG}InvoiceNo") == "INV-2026-0331R1"]
    assert doc.findtext(f"{ORG}CertHead/{ORG}ApplyType") == "2"
    assert doc.findtext(f"{ORG}CertHead/{ORG}OriCertNo") == old_no


def test_preferential_goods_need_an_approved_filing_and_known_base_data(ws):
    text = REFERENCE.read_text(encoding="utf-8")
    bad = text.replace("26S2102M9997/00054", "26S2102M9997/09999").replace(
        "<ExporterCode>010001</ExporterCode>", "<ExporterCode>999999</ExporterCode>")
    general = text.replace("INV-2026-0331", "INV-GEN-1").replace("<CertType>E</CertType>",
                                                                 "<CertType>C</CertType>").replace(
        "<FilingNo>26S2102M9997/00054</FilingNo>", "")
    ws.drop_to("origin", "bad.xml", bad)
    ws.drop_to("origin", "general.xml", general)
    ws.start_sandbox()
    drain(ws)
    got = rows(ws)
    assert got["INV-2026-0331"]["state"] == "invalid"
    assert got["INV-GEN-1"]["state"] == "approved", "a general certificate (C) needs no filing"
    (report,) = (ws.inbox_of("origin") / ".error").glob("bad.xml.error.json")
    errors = {e["field"]: e for e in json.loads(report.read_text())["rejected"][0]["errors"]}
    assert errors["CertGoods/FilingNo"]["rule"] == "filing"
    assert errors["CertGoods/FilingNo"]["path"] == \
        "/OriginApplications/Application/Goods/Item/FilingNo (line 39)"
    assert errors["CertHead/ExporterCode"]["value"] == "999999"
    assert "ccpit_exporters" in errors["CertHead/ExporterCode"]["message"]
