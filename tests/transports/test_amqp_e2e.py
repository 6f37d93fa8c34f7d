"""The daemon and the sandbox over the real RabbitMQ, with the PostgreSQL store: ERP records
from an intake queue, envelopes and receipts over queues, receipts out on the topic exchange
to a consumer — and RabbitMQ restarted in the middle of it all, twice."""
from __future__ import annotations

import base64
import collections
import csv
import io
import json
import re
import subprocess
import threading
import time

import pika
import pika.exceptions
from lxml import etree

from support import ROOT, Workspace, csv_rows, postgres_database, use_transport, wait_for

DXP = "{http://www.chinaport.gov.cn/dxp}"
N = 24


def restart_rabbitmq() -> None:
    """Stop and start the broker application: every connection drops; durable queues and
    persistent messages survive, as in a real restart."""
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    time.sleep(0.5)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)


def records(n: int) -> list[bytes]:
    """One JSON record per declaration, rows keyed like the ERP's CSV columns."""
    rows = list(csv.DictReader(io.StringIO(csv_rows(n, lines=2, prefix="AMQ"))))
    by_key = collections.defaultdict(list)
    for row in rows:
        by_key[row["client_seq_no"]].append(row)
    return [json.dumps({"rows": group}, ensure_ascii=False).encode() for group in by_key.values()]


class Erp:
    """An ERP publishing records with confirms, reconnecting when the broker goes away."""

    def __init__(self, url: str, queue: str):
        self.url, self.queue = url, queue
        self.conn = None

    def publish(self, body: bytes, message_id: str, deadline: float) -> None:
        while True:
            try:
                if self.conn is None or self.conn.is_closed:
                    self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
                    self.ch = self.conn.channel()
                    self.ch.confirm_delivery()
                    self.ch.queue_declare(self.queue, durable=True)
                self.ch.basic_publish("", self.queue, body, pika.BasicProperties(
                    delivery_mode=2, message_id=message_id, content_type="application/json"))
                return
            except pika.exceptions.AMQPError:
                self.conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def close(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except pika.exceptions.AMQPError:
            pass  # the broker dropped it already


def drain_queue(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((props, body))
    conn.close()
    return out


def test_rabbitmq_restarted_mid_intake_and_mid_receipts(amqp_url, amqp_names, tmp_path, pki):
    intake_q, dlq = amqp_names("erp-declaration"), amqp_names("erp-dlq")
    to_sw, from_sw = amqp_names("to-sw"), amqp_names("from-sw")
    exchange, consumer_q = amqp_names("receipts", "exchange"), amqp_names("wms")
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))  # the consumer binds before anything flows
    ch = conn.channel()
    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
    ch.queue_declare(consumer_q, durable=True)
    ch.queue_bind(consumer_q, exchange, routing_key="declaration.#")
    conn.close()
    amqp = f'url = "{amqp_url}"\nbackoff_initial = 0.2\nbackoff_max = 1.0\n'
    with postgres_database() as url:
        ws = Workspace(tmp_path, pki, store_url=url)
        use_transport(ws, f'[transports.exchange]\nkind = "amqp"\nurl = "{amqp_url}"\n'
                          f'outgoing_queue = "{to_sw}"\nincoming_queue = "{from_sw}"\n',
                      f'[transport]\nkind = "amqp"\nurl = "{amqp_url}"\n'
                      f'outgoing_queue = "{from_sw}"\nincoming_queue = "{to_sw}"\n')
        cfg = ws.config.read_text().replace(
            'transport = "exchange"',
            f'transport = "exchange"\nrecord_mapping = "{ROOT / "mappings" / "declaration-json.toml"}"')
        ws.config.write_text(cfg + f'\n[amqp_intake]\n{amqp}queues = {{ declaration = "{intake_q}" }}\n'
                                   f'dead_letter_queue = "{dlq}"\n'
                                   f'[receipt_exchange]\n{amqp}exchange = "{exchange}"\n')
        erp = Erp(amqp_url, intake_q)
        deadline = time.monotonic() + 150
        bodies = records(N)
        try:
            ws.start_sandbox()
            ws.start_daemon()
            for body in bodies[:N // 3]:
                erp.publish(body, f"rec-{bodies.index(body)}", deadline)
            wait_for(lambda: len(ws.status()) >= 2, 60, what="the first records taken")
            restarter = threading.Thread(target=restart_rabbitmq)
            restarter.start()                 # in the middle of intake: the ERP is still publishing
            for i, body in enumerate(bodies[N // 3:], start=N // 3):
                erp.publish(body, f"rec-{i}", deadline)
                time.sleep(0.05)
            restarter.join()
            erp.publish(body, f"rec-{N - 1}", deadline)  # the ERP sends its last record twice
            wait_for(lambda: len(ws.status()) == N and any(r["state"] != "sent" for r in ws.status()), 90,
                     what="all records taken and receipts coming in")
            restart_rabbitmq()                # in the middle of receipt consumption
            wait_for(lambda: len(ws.status()) == N and {r["state"] for r in ws.status()} == {"closed"}, 120,
                     what=f"all {N} declarations closed")
            wait_for(lambda: not ws.swgw("status", "--json").returncode and _unrouted(url) == 0, 30,
                     what="every receipt routed")
        finally:
            erp.close()
            ws.stop_all()
        statuses = ws.status()
        with_receipts = _store_receipts(url)

    keys = []
    for path in ws.received_envelopes():
        data = base64.b64decode(etree.parse(str(path)).getroot().findtext(f"{DXP}Data"))
        keys.append(re.search(rb"<ClientSeqNo>([^<]+)", data).group(1).decode())
    assert sorted(keys) == [f"AMQ{i:07d}" for i in range(N)], "each declaration reached the peer exactly once"
    assert {r["key"] for r in statuses} == set(keys)

    got = drain_queue(amqp_url, consumer_q)
    ids = [props.message_id for props, _ in got]
    # a publish the broker stored but whose confirm the restart cut off is published again, under
    # the same message_id (the receipt's hash) for the consumer to drop: one in flight, so at most
    # one repeat per restart (two here), and a repeat is the same receipt byte for byte
    bodies_by_id: dict[str, set[bytes]] = {}
    for props, body in got:
        bodies_by_id.setdefault(props.message_id, set()).add(body)
    assert len(ids) - len(set(ids)) <= 2, "at most the one receipt in flight at each broker restart came twice"
    assert all(len(b) == 1 for b in bodies_by_id.values()), "a repeated message_id is the same receipt"
    assert len(set(ids)) == N * 7 == len(with_receipts), "the consumer got every receipt (7 per declaration)"
    per_key = collections.defaultdict(list)
    for props, _ in got:
        per_key[props.correlation_id].append(props.message_id)
    for key, stored in with_receipts_by_key(with_receipts).items():
        assert per_key[key] == stored, f"{key}: receipts in the order they were stored"
    assert drain_queue(amqp_url, dlq) == [], "nothing went to the dead-letter queue"


def _unrouted(url: str) -> int:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.connect() as c:
        n = c.exec_driver_sql("SELECT count(*) FROM receipts WHERE routed_at IS NULL").scalar()
    eng.dispose()
    return n


def _store_receipts(url: str) -> list[tuple[str, str]]:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = c.exec_driver_sql("SELECT m.business_key, r.sha256 FROM receipts r JOIN messages m "
                                 "ON m.id = r.message_id ORDER BY r.id").all()
    eng.dispose()
    return [tuple(r) for r in rows]


def with_receipts_by_key(rows) -> dict[str, list[str]]:
    out = collections.defaultdict(list)
    for key, sha in rows:
        out[key].append(sha)
    return out


def test_a_poison_record_goes_to_the_dead_letter_queue_and_the_rest_go_on(amqp_url, amqp_names, tmp_path, pki):
    intake_q, dlq = amqp_names("erp-declaration"), amqp_names("erp-dlq")
    ws = Workspace(tmp_path, pki, sandbox_mode="inprocess")
    cfg = ws.config.read_text().replace(
        'transport = "exchange"',
        f'transport = "exchange"\nrecord_mapping = "{ROOT / "mappings" / "declaration-json.toml"}"')
    ws.config.write_text(cfg + f'\n[amqp_intake]\nurl = "{amqp_url}"\nqueues = {{ declaration = "{intake_q}" }}\n'
                               f'dead_letter_queue = "{dlq}"\n')
    good = records(3)
    bad_row = json.loads(good[1])
    bad_row["rows"][1]["hs_code"] = "84818"          # not 10 digits
    erp = Erp(amqp_url, intake_q)
    deadline = time.monotonic() + 60
    erp.publish(good[0], "good-0", deadline)
    erp.publish(b"{not json", "garbage", deadline)
    erp.publish(json.dumps(bad_row, ensure_ascii=False).encode(), "bad-hs", deadline)
    erp.publish(good[2], "good-2", deadline)
    erp.close()
    try:
        ws.start_daemon()
        wait_for(lambda: {r["key"]: r["state"] for r in ws.status()}.get("AMQ0000002") == "closed"
                 and {r["key"]: r["state"] for r in ws.status()}.get("AMQ0000000") == "closed", 60,
                 what="the good records answered")
    finally:
        ws.stop_all()
    dead = {props.message_id: props.headers for props, _ in drain_queue(amqp_url, dlq)}
    assert set(dead) == {"garbage", "bad-hs"}
    assert "not valid JSON" in dead["garbage"]["x-swgw-reason"]
    reason = dead["bad-hs"]["x-swgw-reason"]
    assert "$.rows[1].hs_code" in reason and "HS code must be 10 digits" in reason and "'84818'" in reason, reason
    assert dead["bad-hs"]["x-swgw-original-queue"] == intake_q
    states = {r["key"]: r["state"] for r in ws.status()}
    assert states["AMQ0000001"] == "invalid"
    assert drain_queue(amqp_url, intake_q) == [], "the queue is not blocked: nothing left in it"


def test_doctor_checks_the_broker_queues_and_the_receipt_exchange(amqp_url, amqp_names, tmp_path, pki):
    intake_q, dlq = amqp_names("erp-declaration"), amqp_names("erp-dlq")
    to_sw, from_sw = amqp_names("to-sw"), amqp_names("from-sw")
    exchange = amqp_names("receipts", "exchange")
    ws = Workspace(tmp_path, pki)
    use_transport(ws, f'[transports.exchange]\nkind = "amqp"\nurl = "{amqp_url}"\n'
                      f'outgoing_queue = "{to_sw}"\nincoming_queue = "{from_sw}"\n', '[transport]\nkind="folder"\n'
                      'outgoing = "a"\nincoming = "b"\n')
    ws.config.write_text(ws.config.read_text() + f'\n[amqp_intake]\nurl = "{amqp_url}"\n'
                         f'queues = {{ declaration = "{intake_q}" }}\ndead_letter_queue = "{dlq}"\n'
                         f'[receipt_exchange]\nurl = "{amqp_url}"\nexchange = "{exchange}"\n')
    before = ws.swgw("doctor")
    assert before.returncode == 1
    assert f"FAIL amqp intake: amqp queue {intake_q}" in before.stdout and "404" in before.stdout
    assert f"FAIL receipt exchange: amqp exchange {exchange}" in before.stdout
    assert "guest:guest" not in before.stdout + before.stderr, "the password never shows"
    ws.swgw("db", "upgrade", check=True)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))   # what the daemon declares when it starts
    ch = conn.channel()
    for q in (intake_q, dlq, to_sw, from_sw):
        ch.queue_declare(q, durable=True)
    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
    ch.basic_publish("", intake_q, b"{}")
    conn.close()
    after = ws.swgw("doctor")
    assert after.returncode == 0, after.stdout
    assert f"ok   amqp intake: amqp queue {intake_q}: 1 messages, 0 consumers" in after.stdout
    assert f"ok   receipt exchange: amqp exchange {exchange}" in after.stdout
    assert f"ok   transport exchange: amqp queue {to_sw}" in after.stdout


def test_xml_records_from_a_queue_go_through_the_family_mapping(amqp_url, amqp_names, tmp_path, pki):
    """A record is the same shape a drop file would be: the non-M&E licence sample (XML, its
    own mapping) published to the licence's intake queue is applied for and written off; a
    malformed XML record goes to the dead-letter queue with the XML parser's reason."""
    intake_q, dlq = amqp_names("erp-auto-import-license"), amqp_names("erp-dlq")
    ws = Workspace(tmp_path, pki, families=["auto-import-license"])
    ws.config.write_text(ws.config.read_text() + f'\n[amqp_intake]\nurl = "{amqp_url}"\n'
                         f'queues = {{ auto-import-license = "{intake_q}" }}\ndead_letter_queue = "{dlq}"\n')
    erp = Erp(amqp_url, intake_q)
    deadline = time.monotonic() + 60
    erp.publish((ROOT / "samples" / "auto-import-license.xml").read_bytes(), "ai-1", deadline)
    erp.publish(b"<Applications><Application>", "broken", deadline)
    erp.close()
    try:
        ws.start_sandbox()
        ws.start_daemon()
        wait_for(lambda: [(r["key"], r["state"]) for r in ws.status()] == [("AI2026000201", "written-off")], 60,
                 what="the licence from the queue written off")
    finally:
        ws.stop_all()
    [(props, _)] = drain_queue(amqp_url, dlq)
    assert props.message_id == "broken" and props.headers["x-swgw-doc-type"] == "auto-import-license"
    assert props.headers["x-swgw-reason"].startswith("broken: not well-formed XML"), props.headers
    assert "from ai-1 rows 1-2" in ws.swgw("trace", "AI2026000201", check=True).stdout, "the record it came from"
