"""An inspection order (海关查验指令) for a declaration swgw did not send: stored under the enterprise
it names, routed to outbox/inspection-order/, copied to the enterprise's subscription, published
on the receipt exchange under the enterprise's code, listed by 查验关区 / 卸货地代码 — and attached
to the declaration once that declaration gets the order's 报关单号."""
from __future__ import annotations

import json
import os
import time
import uuid

import pika
import pytest

from support import Workspace, csv_rows, drain

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ENTERPRISE = "91210200MA0QC8N67X"


def order_xml(inspection_no: str, entry_id: str, customs="0900", unload="DLCY01") -> bytes:
    # written by hand: the order as the inspection push names its fields (查验编号, 报关单号, 查验关区,
    # 卸货地代码, 企业名称, time)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<InspectionOrder xmlns="urn:swgw:inspection">
  <InspectionNo>{inspection_no}</InspectionNo>
  <EntryId>{entry_id}</EntryId>
  <InspCustoms>{customs}</InspCustoms>
  <UnloadPlaceCode>{unload}</UnloadPlaceCode>
  <TradeName>大连远洋五金进出口有限公司</TradeName>
  <NoticeTime>20261201083000</NoticeTime>
  <Note>请于次日9时前将集装箱调至查验区</Note>
</InspectionOrder>
""".encode("utf-8")


@pytest.fixture
def broker():
    try:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except pika.exceptions.AMQPError:
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    ch = conn.channel()
    tag = uuid.uuid4().hex[:8]
    exchange, queue = f"test.orders.{tag}", f"test.orders.{tag}"
    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange, routing_key=f"*.inspection-order.{ENTERPRISE}")
    yield ch, exchange, queue
    ch.queue_delete(queue)
    ch.exchange_delete(exchange)
    conn.close()


def test_an_order_for_an_unknown_declaration_reaches_the_enterprise_and_attaches_later(tmp_path, pki, broker):
    ch, exchange, queue = broker
    ws = Workspace(tmp_path, pki)
    ws.config.write_text(ws.config.read_text() + f'\n[receipt_exchange]\nurl = "{AMQP_URL}"\nexchange = "{exchange}"\n')
    subs = tmp_path / "subs"
    ws.swgw("subscribe", "--enterprise", ENTERPRISE, "--kinds", "inspection-order", "--folder", str(subs), check=True)
    # the first declaration the sandbox answers gets entry id <customs><year>0<serial 1>
    later_entry = f"0900{time.strftime('%Y')}0000000001"
    incoming = ws.exchange / "from-sw"
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "order-a.xml").write_bytes(order_xml("09002026C0000077", "090020269999999999"))
    (incoming / "order-b.xml").write_bytes(order_xml("09002026C0000078", later_entry, unload="DLDY02"))
    drain(ws)

    routed = sorted(p.name for p in (tmp_path / "outbox" / "inspection-order").iterdir())
    assert [n.split(".")[:2] for n in routed] == [["09002026C0000077", "inspection-order"],
                                                 ["09002026C0000078", "inspection-order"]]
    assert not (tmp_path / "outbox" / "unmatched").exists() or not list((tmp_path / "outbox" / "unmatched").iterdir())
    assert sorted(p.name for p in subs.iterdir()) == routed, "the enterprise's subscription got both"
    got = []
    for _ in range(2):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        assert method is not None, "published on the receipt exchange under the enterprise's code"
        got.append((method.routing_key, props.headers["enterprise"], b"InspectionNo" in body))
    assert got == [(f"declaration.inspection-order.{ENTERPRISE}", ENTERPRISE, True)] * 2

    orders = json.loads(ws.swgw("status", "--insp-customs", "0900", "--json", check=True).stdout)
    assert {(o["inspection_no"], o["enterprise"], o["declaration"]) for o in orders} == {
        ("09002026C0000077", ENTERPRISE, ""), ("09002026C0000078", ENTERPRISE, "")}
    only = json.loads(ws.swgw("status", "--unload-place", "DLDY02", "--json", check=True).stdout)
    assert [o["inspection_no"] for o in only] == ["09002026C0000078"]
    assert "no inspection orders" in ws.swgw("status", "--insp-customs", "2200", check=True).stdout

    # the declaration becomes known (declared now, through swgw): the waiting order attaches to it
    ws.start_sandbox()
    ws.drop("one.csv", csv_rows(1, lines=1, prefix="LATE"))
    drain(ws)
    (row,) = ws.status()
    assert row["key"] == "LATE0000000" and row["keys"]["EntryId"] == later_entry
    assert row["keys"]["InspectionNo"] == "09002026C0000078"
    trace = ws.swgw("trace", "LATE0000000", check=True).stdout
    assert "before the declaration had its entry id) attached" in trace and "-> inspection" in trace
    assert list(ws.outbox.glob("LATE0000000.inspection-order.*.xml")), "routed again beside its declaration"
    orders = {o["inspection_no"]: o["declaration"]
              for o in json.loads(ws.swgw("status", "--inspection-orders", "--json", check=True).stdout)}
    assert orders == {"09002026C0000077": "", "09002026C0000078": "LATE0000000"}


def test_an_order_before_the_receipt_giving_its_entry_id_in_the_same_batch_attaches(tmp_path, pki):
    """One receive batch: the order first, then the import response (SeqNo) and the status receipt
    that gives the declaration the order's 报关单号 — the order attaches to it in that same batch."""
    ws = Workspace(tmp_path, pki)
    ws.sandbox_config.write_text(ws.sandbox_config.read_text()
                                 + '\n[[declaration.rules]]\nwhen = { ClientSeqNo = "^SAME" }\nsilent = true\n')
    try:
        ws.start_sandbox()
        ws.drop("same.csv", csv_rows(1, lines=1, prefix="SAME"))
        drain(ws)
    finally:
        ws.stop_all()
    (row,) = ws.status()
    assert row["state"] == "acknowledged" and "EntryId" not in row["keys"], row
    entry_id = "090020260000009911"
    # written by hand from the public forms: the bare DecImportResponse and <DEC_RESULT> the desktop
    # client writes into its InBox (../shared/realworld, tests/fixtures/receipts)
    response = """<?xml version="1.0" encoding="UTF-8"?>
<DecImportResponse xmlns="http://www.chinaport.gov.cn/dec">
  <ResponseCode>0</ResponseCode><ErrorMessage>成功</ErrorMessage>
  <ClientSeqNo>SAME0000000</ClientSeqNo><SeqNo>I20260000990000001</SeqNo><TrnPreId></TrnPreId>
</DecImportResponse>""".encode("utf-8")
    status = f"""<?xml version="1.0" encoding="UTF-8"?>
<DEC_RESULT><CUS_CIQ_NO>I20260000990000001</CUS_CIQ_NO><ENTRY_ID>{entry_id}</ENTRY_ID>
<NOTICE_DATE>2026-12-01T09:40:43</NOTICE_DATE><CHANNEL>L</CHANNEL><NOTE>入库成功</NOTE>
<CUSTOM_MASTER>0900</CUSTOM_MASTER><I_E_DATE></I_E_DATE><D_DATE></D_DATE></DEC_RESULT>""".encode("utf-8")
    incoming = ws.exchange / "from-sw"
    incoming.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for i, (name, data) in enumerate((("a-order.xml", order_xml("09002026C0000099", entry_id)),
                                      ("b-response.xml", response), ("c-status.xml", status))):
        (incoming / name).write_bytes(data)
        os.utime(incoming / name, (now - 30 + i, now - 30 + i))   # oldest first: the order leads the batch
    drain(ws)
    (row,) = ws.status()
    assert row["keys"]["EntryId"] == entry_id and row["keys"]["InspectionNo"] == "09002026C0000099", row
    assert row["state"] == "inspection", row
    trace = ws.swgw("trace", "SAME0000000", check=True).stdout
    assert "before the declaration had its entry id) attached" in trace, trace
    orders = json.loads(ws.swgw("status", "--inspection-orders", "--json", check=True).stdout)
    assert [(o["inspection_no"], o["declaration"]) for o in orders] == [("09002026C0000099", "SAME0000000")]
    assert list(ws.outbox.glob("SAME0000000.inspection-order.*.xml")), "routed beside its declaration"
