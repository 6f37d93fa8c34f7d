"""MOFCOM licences end to end: the ERP's JSON export through the real daemon and the sandbox peer
(approval flow, licence customs status, 报关单核注 write-offs), and the return path."""
from __future__ import annotations

import base64
import json

import pytest
from lxml import etree

from card import crypto
from support import ROOT, SHARED, Workspace, drain, import_declaration

DXP = "{http://www.chinaport.gov.cn/dxp}"
LIC = "{urn:swgw:licence}"
REFERENCE = SHARED / "erp-samples" / "export-license.json"


@pytest.fixture
def ws(tmp_path, pki):
    w = Workspace(tmp_path, pki, families=["export-license", "me-import-license", "auto-import-license"])
    yield w
    w.stop_all()



def business_documents(ws) -> list[etree._Element]:
    out = []
    for path in ws.received_envelopes():
        data = base64.b64decode(etree.parse(str(path)).getroot().findtext(f"{DXP}Data"))
        out.append(etree.fromstring(data))
    return out


def outbox(ws, key, kind="") -> list:
    return sorted(ws.outbox_of(key).glob(f"*.{kind}*.xml" if kind else "*.xml"))


def by_key(ws) -> dict:
    return {r["key"]: r for r in ws.status()}


def test_reference_export_licence_is_approved_enters_customs_and_is_written_off(ws):
    ws.start_sandbox()
    ws.drop_to("export-license", "export-license.json", REFERENCE.read_bytes())
    drain(ws)
    # what the Single Window received: one signed application, valid against our schema
    (doc,) = business_documents(ws)
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "licence.xsd")))
    assert schema.validate(doc), schema.error_log
    assert doc.tag == f"{LIC}ExportLicenseMessage"
    assert doc.findtext(f"{LIC}LicenseHead/{LIC}SupervisionCode") == "4"
    assert doc.findtext(f"{LIC}LicenseHead/{LIC}TotalAmount") == "244.42"          # 11.11 × 22
    assert doc.findtext(f"{LIC}LicenseLines/{LIC}LicenseLine/{LIC}Total") == "244.42"
    assert doc.findtext(f"{LIC}LicenseSign/{LIC}MofcomCode") == "2102776367555"
    # 上报并签章: the MOFCOM key's enveloped signature over the application, in LicenseSign
    from gateway.documents import family
    verified = family("export-license").verify_licence_signature(doc)
    assert verified.certificate == crypto.to_der((ws.var / "keys" / "mofcom.pem").read_bytes())
    # the store: approved with a licence number, in customs, then used up by one entry (一批一证)
    row = by_key(ws)["EL2026000101"]
    assert row["type"] == "export-license" and row["state"] == "written-off", row
    licence_no = row["keys"]["LicenseNo"]
    assert len(row["keys"]["EntryId"]) == 18 and "报关余量 0" in row["last_receipt"]
    assert "一批一证" in row["last_receipt"] and "of 22 approved" in row["last_receipt"]
    # the outbox: every receipt, named by the application number
    approvals = outbox(ws, "export-license", "licence-approval")
    assert [etree.parse(str(p)).findtext(f"{LIC}Status") for p in approvals] == ["待初审", "审批中", "审批通过"]
    assert etree.parse(str(approvals[-1])).findtext(f"{LIC}LicenseNo") == licence_no
    customs = [etree.parse(str(p)).findtext(f"{LIC}CustomsStatus") for p in outbox(ws, "export-license",
                                                                                    "licence-customs")]
    assert customs == ["暂未到达海关", "海关入库成功", "报关单核注"]
    assert all(p.name.startswith("EL2026000101.") for p in outbox(ws, "export-license"))
    # status and trace by the licence number as well as by the application number
    by_licence = json.loads(ws.swgw("status", "--json", "--key", licence_no, check=True).stdout)
    assert [r["key"] for r in by_licence] == ["EL2026000101"]
    trace = ws.swgw("trace", licence_no, check=True).stdout
    for step in ("acknowledged -> pending-review", "pending-review -> under-review", "under-review -> approved",
                 "approved -> customs-pending", "customs-pending -> customs-accepted",
                 "customs-accepted -> written-off"):
        assert step in trace, trace


def test_returned_application_reaches_the_outbox_with_the_approval_opinion(ws):
    ws.start_sandbox()
    batch = json.loads(REFERENCE.read_text(encoding="utf-8"))
    batch["applications"][0]["apply_no"] = "RET2026000102"
    ws.drop_to("export-license", "returned.json", json.dumps(batch, ensure_ascii=False))
    drain(ws)
    row = by_key(ws)["RET2026000102"]
    assert row["state"] == "returned" and "LicenseNo" not in row["keys"]
    last = etree.parse(str(outbox(ws, "export-license", "licence-approval")[-1]))
    assert last.findtext(f"{LIC}Status") == "未上报"      # handed back to the enterprise, with the opinion
    assert last.findtext(f"{LIC}Opinion") == "规格型号与批复单不符，请核实后重新申报"
    assert not outbox(ws, "export-license", "licence-customs")
    assert "规格型号与批复单不符" in ws.swgw("trace", "RET2026000102", check=True).stdout


def test_a_wrong_line_total_is_refused_with_its_json_path(ws):
    batch = json.loads(REFERENCE.read_text(encoding="utf-8"))
    good = json.loads(json.dumps(batch["applications"][0]))
    bad = json.loads(json.dumps(good))
    bad["apply_no"] = "EL2026000199"
    bad["lines"].append({"spec": "纯度99.9%", "unit_price": 12.5, "qty": 10, "total": 130})
    batch["applications"] = [good, bad]
    ws.start_sandbox()
    ws.drop_to("export-license", "mixed.json", json.dumps(batch, ensure_ascii=False))
    drain(ws)
    rows = by_key(ws)
    assert rows["EL2026000199"]["state"] == "invalid"
    assert rows["EL2026000101"]["state"] == "written-off", "the good application still goes"
    (report,) = (ws.inbox_of("export-license") / ".error").glob("*.error.json")
    errors = json.loads(report.read_text())["rejected"][0]["errors"]
    assert {"field": "LicenseLine/Total", "rule": "price*qty", "value": "130",
            "path": "$.applications[1].lines[1].total"}.items() <= errors[0].items(), errors
    dry = ws.swgw("map", "--dry-run", "--type", "export-license", str(ws.inbox_of("export-license") / ".error" / "mixed.json"))
    assert "$.applications[1].lines[1].total" in dry.stdout and "12.5 × quantity 10 = 125" in dry.stdout


@pytest.mark.parametrize("key,sample,apply_no,total", [
    ("me-import-license", "me-import-license.csv", "YS2026000000000101", "6"),
    ("auto-import-license", "auto-import-license.xml", "AI2026000201", "500000"),
])
def test_import_licence_not_one_batch_is_written_off_entry_by_entry(ws, key, sample, apply_no, total):
    """非一批一证: two entries each write off half; the licence stays in use until nothing remains."""
    ws.start_sandbox()
    ws.drop_to(key, sample, (ROOT / "samples" / sample).read_bytes())
    drain(ws)
    (doc,) = business_documents(ws)
    assert doc.findtext(f"{LIC}LicenseHead/{LIC}BatchMode") == "2"
    assert doc.findtext(f"{LIC}LicenseHead/{LIC}TotalQty") == total
    row = by_key(ws)[apply_no]
    assert row["type"] == key and row["state"] == "written-off", row
    writeoffs = [etree.parse(str(p)) for p in outbox(ws, key, "licence-customs")
                 if etree.parse(str(p)).findtext(f"{LIC}CustomsStatus") == "报关单核注"]
    assert len(writeoffs) == 2
    half = str(int(total) // 2)
    assert [w.findtext(f"{LIC}RemainingQty") for w in writeoffs] == [half, "0"]
    assert len({w.findtext(f"{LIC}EntryId") for w in writeoffs}) == 2
    trace = ws.swgw("trace", apply_no, check=True).stdout
    assert "customs-accepted -> in-use" in trace and "in-use -> written-off" in trace
    assert f"报关余量 {half}" in trace and "报关余量 0" in trace
    assert "报关余量 0" in row["last_receipt"], "status shows the current remaining quantity"


def test_returned_import_licence_from_xml_carries_the_opinion(ws):
    ws.start_sandbox()
    text = (ROOT / "samples" / "auto-import-license.xml").read_text(encoding="utf-8")
    ws.drop_to("auto-import-license", "ret.xml", text.replace("AI2026000201", "AIRET0202"))
    drain(ws)
    assert by_key(ws)["AIRET0202"]["state"] == "returned"
    last = etree.parse(str(outbox(ws, "auto-import-license", "licence-approval")[-1]))
    assert last.findtext(f"{LIC}Opinion") == "规格型号与批复单不符，请核实后重新申报"


def test_me_licence_without_equipment_state_is_refused_at_its_cell(ws):
    text = (ROOT / "samples" / "me-import-license.csv").read_text(encoding="utf-8")
    ws.drop_to("me-import-license", "bad.csv", text.replace(",新,", ",,"))
    drain(ws)
    assert by_key(ws)["YS2026000000000101"]["state"] == "invalid"
    (report,) = (ws.inbox_of("me-import-license") / ".error").glob("*.error.json")
    errors = json.loads(report.read_text())["rejected"][0]["errors"]
    assert {"field": "LicenseHead/EquipmentState", "rule": "required", "row": 2,
            "column": "equipment_state", "column_number": 30}.items() <= errors[0].items(), errors


def test_a_returned_application_amended_goes_again_under_the_same_number(ws):
    """退回 → the enterprise amends and declares again with the same 申请编号; the receipts follow the
    new attempt to approval, and the returned attempt keeps its history."""
    ws.start_sandbox()
    batch = json.loads(REFERENCE.read_text(encoding="utf-8"))
    app = batch["applications"][0]
    app["contract_no"] = "BAD-2026-1"          # the sandbox returns contracts it cannot match
    ws.drop_to("export-license", "first.json", json.dumps(batch, ensure_ascii=False))
    drain(ws)
    assert [r["state"] for r in ws.status()] == ["returned"]
    app["contract_no"] = "TEST1234"
    ws.drop_to("export-license", "amended.json", json.dumps(batch, ensure_ascii=False))
    drain(ws)
    attempts = sorted(ws.status(), key=lambda r: r["id"])
    assert [(r["key"], r["state"]) for r in attempts] == [("EL2026000101", "returned"),
                                                           ("EL2026000101", "written-off")]
    assert "LicenseNo" in attempts[1]["keys"] and "LicenseNo" not in attempts[0]["keys"]
    assert len(business_documents(ws)) == 2
    # the same amended content again is a duplicate, not a third application
    ws.drop_to("export-license", "again.json", json.dumps(batch, ensure_ascii=False, indent=1))
    drain(ws)
    assert len(ws.status()) == 2 and len(business_documents(ws)) == 2


# -- the MOFCOM key, filings, withdrawal, status words ------------------------------------------
def soybean(apply_no="AI2026000201", contract="BR-SOY-2611") -> str:
    text = (ROOT / "samples" / "auto-import-license.xml").read_text(encoding="utf-8")
    return text.replace("AI2026000201", apply_no).replace("BR-SOY-2611", contract)


def alarms(ws, kind) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws.root / "outbox" / "alarms").glob(f"*-{kind}.json"))]


def test_without_the_mofcom_key_or_the_filing_the_application_fails_before_sending(tmp_path, pki):
    """No MOFCOM key bound: failed, nothing sent, alarmed. Unregistered enterprise: failed with the
    filing it lacks; `swgw enterprise file agri` registers it, and the application then goes."""
    ws = Workspace(tmp_path / "a", pki, families=["auto-import-license"])
    bound = ws.config.read_text()
    try:
        ws.config.write_text(bound.replace('mofcom_key = "mofcom"\n', ""))
        ws.start_sandbox()
        ws.drop_to("auto-import-license", "soy.xml", soybean("NOKEY0001"))
        drain(ws)
        (row,) = ws.status()
        assert row["state"] == "failed" and ws.received_envelopes() == []
        trace = ws.swgw("trace", "NOKEY0001", check=True).stdout
        assert "no MOFCOM electronic key (商务部电子钥匙)" in trace
        assert any("NOKEY0001" in a["message"] for a in alarms(ws, "licence-not-sent"))
        # a key bound to another MOFCOM code never signs either
        ws.config.write_text(bound.replace('enterprise = "2102776367555"', 'enterprise = "2102776360000"'))
        ws.swgw("resend", str(row["id"]), check=True)
        drain(ws)
        assert [r["state"] for r in ws.status()] == ["failed"] and ws.received_envelopes() == []
        assert "is bound to MOFCOM code 2102776360000" in ws.swgw("trace", "NOKEY0001", check=True).stdout
    finally:
        ws.stop_all()
    ws = Workspace(tmp_path / "b", pki, families=["auto-import-license"], mofcom_filings=())
    try:
        ws.config.write_text(ws.config.read_text().replace(
            'signer = "op"', 'signer = "op"\n            [enterprise.filing]\n            address = "辽宁省大连市中山区人民路1号"\n'
            '            contact_name = "王丹"\n            contact_phone = "0411-82345678"', 1))
        ws.start_sandbox()
        ws.drop_to("auto-import-license", "soy.xml", soybean("NOFILE0001"))
        drain(ws)
        (row,) = ws.status()
        assert row["state"] == "failed" and ws.received_envelopes() == []
        assert "no registered 重农信息备案" in ws.swgw("trace", "NOFILE0001", check=True).stdout
        filed = ws.swgw("enterprise", "file", "agri", check=True)
        assert "queued" in filed.stdout
        drain(ws)
        filing = next(r for r in ws.status() if r["key"].startswith("FILING-agri"))
        assert filing["state"] == "registered", filing
        ws.swgw("resend", str(row["id"]), check=True)
        drain(ws)
        app = next(r for r in ws.status() if r["key"] == "NOFILE0001")
        assert app["state"] == "written-off", app
    finally:
        ws.stop_all()


def test_a_withdrawn_application_is_resubmitted_under_the_same_number_and_approved(ws):
    """撤回/撤销 is the enterprise's: swgw withdraw sends it; 撤销成功 moves the application to
    withdrawn; a corrected application under the same ApplyNo is then taken, sent and approved."""
    sb = ws.sandbox_config.read_text()
    ws.sandbox_config.write_text(sb + '\n[[auto-import-license.rules]]\nwhen = { ImportContractNo = "^HOLD" }\n'
                                      'flow = ["待初审"]\n')
    ws.start_sandbox()
    ws.drop_to("auto-import-license", "first.xml", soybean("WD2026000001", "HOLD-1"))
    drain(ws)
    assert [r["state"] for r in ws.status()] == ["pending-review"]
    out = ws.swgw("withdraw", "WD2026000001", "--reason", "合同号填写错误", check=True)
    assert "queued" in out.stdout
    drain(ws)
    app = sorted(ws.status(), key=lambda r: r["id"])[0]
    assert app["state"] == "withdrawn", app
    trace = ws.swgw("trace", "WD2026000001", check=True).stdout
    assert "pending-review -> withdrawn" in trace and "撤销状态 撤销成功" in trace
    sent = business_documents(ws)   # in CopMsgId order, not the order they were sent
    withdrawals = [d for d in sent if d.tag == f"{LIC}LicenseWithdrawal"]
    assert len(sent) == 2 and len(withdrawals) == 1, [d.tag for d in sent]
    withdrawal = withdrawals[0]
    assert withdrawal.findtext(f"{LIC}Reason") == "合同号填写错误"
    from gateway.documents import family
    family("auto-import-license").verify_licence_signature(withdrawal)   # signed with the MOFCOM key
    # the corrected application under the same number is taken, sent and approved
    ws.drop_to("auto-import-license", "fixed.xml", soybean("WD2026000001", "BR-SOY-2611"))
    drain(ws)
    rows = sorted(ws.status(), key=lambda r: r["id"])
    assert [r["state"] for r in rows] == ["withdrawn", "withdrawal-sent", "written-off"], rows
    # an approved application cannot be withdrawn: swgw refuses before sending anything
    refused = ws.swgw("withdraw", "WD2026000001")
    assert refused.returncode == 1 and "only an application MOFCOM has not approved" in refused.stderr


@pytest.mark.parametrize("family_key,words,states", [
    ("export-license", ["未上报", "待初审", "审批中", "审批通过"], ["returned", "pending-review", "under-review", "approved"]),
    ("me-import-license", ["暂存", "审批中", "审批通过"], ["returned", "under-review", "approved"]),
    ("auto-import-license", ["暂存", "待初审", "复审通过", "已复审通过", "已打印或生成电子许可证"],
     ["returned", "pending-review", "approved", "approved", "licence-issued"]),
])
def test_every_status_word_of_the_manual_moves_its_family(family_key, words, states):
    from gateway.documents import family

    fam = family(family_key)
    for word, state in zip(words, states):
        out = fam.on_receipt("licence-approval", {"Status": word, "LicenseNo": "26AB000001"}, "acknowledged")
        assert (out.state, out.unknown) == (state, ""), (word, out)
    assert fam.on_receipt("licence-approval", {"Status": "退回"}, "acknowledged").unknown
    assert fam.on_receipt("licence-approval", {"Status": "撤销"}, "acknowledged").state is None, \
        "撤销 is the enterprise's withdrawal, not a MOFCOM verdict"
    # 撤销状态: a withdrawal MOFCOM refuses leaves the state as it was, with the reason
    refused = fam.on_receipt("licence-withdrawal", {"WithdrawStatus": "撤销失败", "Reason": "已审批通过"}, "under-review")
    assert refused.state is None and "已审批通过" in refused.summary
    assert fam.on_receipt("licence-withdrawal", {"WithdrawStatus": "撤销成功"}, "under-review").state == "withdrawn"
    # filings: 已注册 registered, 未通过 refused with the reason, anything else unknown
    assert fam.on_receipt("filing-result", {"Status": "已注册", "FilingKind": "agri"}, "acknowledged").state == "registered"
    no = fam.on_receipt("filing-result", {"Status": "未通过", "Reason": "联系电话有误"}, "acknowledged")
    assert no.state == "filing-refused" and "联系电话有误" in no.summary
    assert fam.on_receipt("filing-result", {"Status": "处理中"}, "acknowledged").unknown
    # 一批一证: one entry uses the licence whatever remains; 非一批一证 by remaining quantity
    one = fam.on_receipt("licence-customs", {"CustomsStatus": "报关单核注", "EntryId": "0" * 18, "RemainingQty": "5",
                                             "_BatchMode": "1"}, "customs-accepted")
    assert one.state == "written-off"
    multi = fam.on_receipt("licence-customs", {"CustomsStatus": "报关单核注", "EntryId": "0" * 18, "RemainingQty": "5",
                                               "_BatchMode": "2", "_TotalQty": "10"}, "customs-accepted")
    assert multi.state == "in-use" and "of 10 approved" in multi.summary and "报关余量 5" in multi.summary


def test_an_unknown_status_word_is_stored_shown_raw_and_alarmed(ws):
    sb = ws.sandbox_config.read_text()
    ws.sandbox_config.write_text(sb + '\n[[auto-import-license.rules]]\nwhen = { ImportContractNo = "^HOLD" }\n'
                                      'flow = ["待初审"]\n')
    ws.config.write_text(ws.config.read_text().replace("[sandbox]", '[documents.declaration.deadlines]\nlicence = "1s"\n'
                                                                     '[sandbox]'))
    ws.start_sandbox()
    ws.drop_to("auto-import-license", "soy.xml", soybean("UNK2026000001", "HOLD-2"))
    ws.drop("import.csv", import_declaration("UNKDEC0001", "UNK2026000001"))
    drain(ws)
    # the declaration naming it waits, shown by status, and is flagged past its `licence` deadline
    waiting = json.loads(ws.swgw("status", "--json", "--overdue", check=True).stdout)
    assert [(r["key"], r["state"]) for r in waiting] == [("UNKDEC0001", "awaiting-licence")], waiting
    assert alarms(ws, "overdue") and "still waiting for its licence" in alarms(ws, "overdue")[0]["message"]
    incoming = ws.var / "exchange" / "from-sw"
    (incoming / "handwritten-unknown.xml").write_text(   # as MOFCOM might one day send it, written by hand
        '<?xml version="1.0" encoding="UTF-8"?>\n<LicenseApprovalResult xmlns="urn:swgw:licence">'
        '<SupervisionCode>7</SupervisionCode><ApplyNo>UNK2026000001</ApplyNo><Status>审核退回待补正</Status>'
        '<NoticeTime>2026-12-01T10:00:00</NoticeTime></LicenseApprovalResult>\n', encoding="utf-8")
    drain(ws)
    row = by_key(ws)["UNK2026000001"]
    assert row["state"] == "pending-review", "an unknown word leaves the state"
    assert "审核退回待补正" in row["last_receipt"]
    assert "审核退回待补正" in ws.swgw("trace", "UNK2026000001", check=True).stdout
    (alarm,) = alarms(ws, "unknown-status")
    assert "审核退回待补正" in alarm["message"]
    assert [p for p in ws.outbox_of("auto-import-license").glob("UNK2026000001.licence-approval.*.xml")
            if "审核退回待补正" in p.read_text(encoding="utf-8")], "routed to the outbox as it came"


def test_a_declaration_waiting_for_a_licence_that_fails_at_customs_fails_with_that_reason(tmp_path, pki):
    ws = Workspace(tmp_path, pki, families=["auto-import-license"])
    sb = ws.sandbox_config.read_text()
    ws.sandbox_config.write_text(sb + '\n[[auto-import-license.rules]]\nwhen = { ImportContractNo = "^CFAIL" }\n'
                                      'customs = ["暂未到达海关", "海关入库失败"]\nopinion = "许可证电子数据与海关备案不符"\n')
    try:
        ws.start_sandbox()
        ws.drop("import.csv", import_declaration("CFDEC0001", "CF2026000001"))
        ws.drop_to("auto-import-license", "soy.xml", soybean("CF2026000001", "CFAIL-1"))
        drain(ws)
    finally:
        ws.stop_all()
    rows = by_key(ws)
    assert rows["CF2026000001"]["state"] == "customs-failed"
    assert rows["CFDEC0001"]["state"] == "failed", rows["CFDEC0001"]
    trace = ws.swgw("trace", "CFDEC0001", check=True).stdout
    assert "awaiting-licence -> failed" in trace and "海关入库失败" in trace and "许可证电子数据与海关备案不符" in trace
    assert [d.tag for d in business_documents(ws)] == [f"{LIC}AutoImportLicenseMessage"], "the declaration never went"


def test_bulk_goods_need_the_bulk_contract_number_and_remarks_are_short(ws):
    text = soybean().replace("<BulkContractNo>DZ2026021000123</BulkContractNo>", "").replace(
        "<Remark>压榨用大豆，分两批到港</Remark>", "<Remark>" + "压榨" * 17 + "</Remark>")
    path = ws.root / "bad.xml"
    path.write_text(text, encoding="utf-8")
    out = ws.swgw("map", "--dry-run", "--type", "auto-import-license", str(path)).stdout
    assert "LicenseHead/BulkContractNo" in out and "大宗合同许可证申领号" in out and "1201901000" in out, out
    assert "LicenseHead/Remark" in out and "32" in out, out


def test_card_info_and_doctor_show_the_operator_card_and_the_mofcom_key(ws):
    info = ws.swgw("card", "info", check=True).stdout
    assert "role:        operator card of 王丹 (91210200MA0QC8N67X)" in info
    assert "role:        MOFCOM key of 91210200MA0QC8N67X (商务部电子钥匙, bound to 2102776367555)" in info
    doctor = ws.swgw("doctor").stdout
    assert "signer mofcom: card MOFCOM0000001" in doctor and "MOFCOM key of" in doctor, doctor


def test_the_electronic_licence_is_taken_out_of_its_receipt_as_the_platform_sends_it():
    """A LicenseDocument written by hand (a PDF licence, base64): the file routed beside it."""
    from gateway.receipts import route

    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    receipt = ('<LicenseDocument xmlns="urn:swgw:licence"><SupervisionCode>7</SupervisionCode>'
               '<LicenseNo>26AANW0001</LicenseNo><ApplyNo>AI1</ApplyNo><Format>PDF</Format><Content>'
               + base64.b64encode(pdf).decode() + '</Content><NoticeTime>2026-12-01T10:00:00</NoticeTime>'
               '</LicenseDocument>').encode()
    assert route.licence_document(receipt) == ("pdf", pdf)
    assert route.licence_document(receipt.replace(b"<Content>", b"<Content>!!")) is None
