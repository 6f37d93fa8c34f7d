"""Customs inspection end to end: the sandbox inspects a declaration (C) and pushes an inspection
order; the gateway stores it with the declaration and routes it; the yard system's container-shift
feedback goes out, linked to the order, and its receipt time is recorded; a wrong feedback is
returned with its reason."""
from __future__ import annotations

import base64
import json

import pytest
from lxml import etree

from support import ROOT, Workspace, csv_rows, drain

DXP = "{http://www.chinaport.gov.cn/dxp}"
INS = "{urn:swgw:inspection}"
HEADER = (ROOT / "samples" / "inspection-feedback.csv").read_text(encoding="utf-8").splitlines()[0]


@pytest.fixture
def ws(tmp_path, pki):
    w = Workspace(tmp_path, pki, families=["inspection-feedback"])
    yield w
    w.stop_all()



def status(ws, *args) -> list[dict]:
    return json.loads(ws.swgw("status", "--json", *args, check=True).stdout)


def feedback_csv(message_no, inspection_no, entry_id, containers, status="1", reason="") -> str:
    rows = [HEADER]
    for cid in containers:
        rows.append(f"{message_no},{inspection_no},{entry_id},0900,DLCY01,2102930001,大连远洋五金进出口有限公司,"
                    f"2026-11-22 14:30:00,{cid},{status},INSP-A-03,{reason},")
    return "\n".join(rows) + "\n"


def inspected_declaration(ws) -> etree._Element:
    ws.start_sandbox()
    ws.drop("ins.csv", csv_rows(1, prefix="INS"))
    drain(ws)
    (order_file,) = ws.outbox.glob("INS0000000.inspection-order.*.xml")
    return etree.parse(str(order_file)).getroot()


def test_inspection_order_is_stored_routed_and_answered_by_the_yard_feedback(ws):
    order = inspected_declaration(ws)
    inspection_no, entry_id = order.findtext(f"{INS}InspectionNo"), order.findtext(f"{INS}EntryId")
    containers = [c.text for c in order.iter(f"{INS}ContainerId")]
    assert containers == ["CSLU0000000"] and order.findtext(f"{INS}InspCustoms") == "0900"
    (decl,) = status(ws, "--key", inspection_no)
    assert decl["key"] == "INS0000000" and decl["keys"]["EntryId"] == entry_id
    assert "customs inspection order " + inspection_no in ws.swgw("trace", inspection_no, check=True).stdout

    ws.drop_to("inspection-feedback", "feedback.csv", feedback_csv("FB0001", inspection_no, entry_id, containers))
    drain(ws)
    rows = {r["key"]: r for r in status(ws, "--type", "inspection-feedback")}
    fb = rows["FB0001"]
    assert fb["state"] == "feedback-received", fb
    assert len(fb["keys"]["ReceiptTime"]) == 14 and fb["keys"]["InspectionNo"] == inspection_no
    (receipt,) = ws.outbox_of("inspection-feedback").glob("FB0001.feedback-receipt.*.xml")
    assert etree.parse(str(receipt)).findtext(f"{INS}Status") == "成功"
    # linked: the order's number finds the declaration and its feedback
    assert sorted(r["type"] for r in status(ws, "--key", inspection_no)) == ["declaration", "inspection-feedback"]
    # what the Single Window received is a valid feedback naming the order
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "inspection.xsd")))
    docs = [etree.fromstring(base64.b64decode(etree.parse(str(p)).getroot().findtext(f"{DXP}Data")))
            for p in ws.received_envelopes()]
    (sent,) = [d for d in docs if d.tag == f"{INS}InspectionFeedbackMessage"]
    assert schema.validate(sent), schema.error_log
    assert sent.findtext(f"{INS}FeedbackHead/{INS}InspectionNo") == inspection_no


def test_feedback_for_an_unknown_order_is_returned_with_its_reason(ws):
    order = inspected_declaration(ws)
    entry_id = order.findtext(f"{INS}EntryId")
    ws.drop_to("inspection-feedback", "wrong.csv", feedback_csv("FB0002", "09002026C9999999", entry_id,
                                                                ["CSLU0000000"]))
    ws.drop_to("inspection-feedback", "rule.csv", feedback_csv("FBRET3", order.findtext(f"{INS}InspectionNo"),
                                                               entry_id, ["CSLU0000000"]))
    drain(ws)
    rows = {r["key"]: r for r in status(ws, "--type", "inspection-feedback")}
    assert rows["FB0002"]["state"] == "returned" and rows["FBRET3"]["state"] == "returned"
    (receipt,) = ws.outbox_of("inspection-feedback").glob("FB0002.feedback-receipt.*.xml")
    assert etree.parse(str(receipt)).findtext(f"{INS}Reason") == "查验指令编号 09002026C9999999 不存在"
    (receipt,) = ws.outbox_of("inspection-feedback").glob("FBRET3.feedback-receipt.*.xml")
    assert etree.parse(str(receipt)).findtext(f"{INS}Reason") == "调箱信息与查验指令不符：集装箱未在查验区"
    assert "查验指令编号 09002026C9999999 不存在" in ws.swgw("trace", "FB0002", check=True).stdout


def test_a_container_that_cannot_be_shifted_needs_its_reason(ws):
    ws.drop_to("inspection-feedback", "bad.csv", feedback_csv("FB0003", "09002026C0000001", "090020261000000001",
                                                              ["CSLU0000000"], status="无法调箱"))
    drain(ws)
    (row,) = status(ws, "--type", "inspection-feedback")
    assert row["state"] == "invalid"
    (report,) = (ws.inbox_of("inspection-feedback") / ".error").glob("*.error.json")
    (error,) = json.loads(report.read_text())["rejected"][0]["errors"]
    assert error["field"] == "FeedbackContainer/Reason" and error["row"] == 2 and error["column"] == "shift_status"
