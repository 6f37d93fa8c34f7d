"""AMQP transport, intake and receipt publisher against the real local RabbitMQ."""
from __future__ import annotations

import threading
import time

import pika
import pytest

from amqp_helpers import close_amqp_connections
from gateway.receipts.publish import ReceiptPublisher, routing_key
from gateway.sources.amqp import AmqpIntake
from gateway.transports.amqp import AmqpTransport
from gateway.transports.base import Outgoing, TransportError


def item(n, data=None, key="") -> Outgoing:
    name = n if isinstance(n, str) else f"MSG-{n:04d}"
    return Outgoing(name=name, data=data or f"<DxpMsg n='{name}'/>".encode(), cop_msg_id=f"COP{name}",
                    doc_type="declaration", business_key=key or f"KEY-{name}")


@pytest.fixture
def raw(amqp_url):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()                         # test publishes are on the queue when they return
    yield ch
    if conn.is_open:
        conn.close()


def drain(ch, queue):
    """Everything on `queue` (acked), as (method, properties, body)."""
    got = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((method, props, body))


def depth(ch, queue) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def make_amqp(amqp_url, amqp_names):
    made = []

    def make(**kw):
        args = dict(url=amqp_url, backoff_initial=0.2, backoff_max=1, connect_timeout=5,
                    connection_name=f"swgw-test-{amqp_names.tag}")
        args.update(kw)
        t = AmqpTransport(**args)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_publish_with_confirms_arrives_with_properties(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    make_amqp(outgoing_queue=out, incoming_queue=inc).send(item("A1", b"<DxpMsg/>", "CLIENTSEQ1"))
    [(method, props, body)] = drain(raw, out)
    assert body == b"<DxpMsg/>"
    assert props.message_id == "A1" and props.correlation_id == "CLIENTSEQ1"
    assert props.delivery_mode == 2 and props.content_type == "application/xml"
    assert props.headers["cop_msg_id"] == "COPA1" and props.headers["doc_type"] == "declaration"


def test_gateway_and_swapped_peer_exchange_messages(make_amqp, amqp_names, raw):
    a, b = amqp_names("to-sw"), amqp_names("from-sw")
    gateway = make_amqp(outgoing_queue=a, incoming_queue=b)
    peer = make_amqp(outgoing_queue=b, incoming_queue=a)        # the sandbox: directions swapped
    gateway.send(item("E1"))
    [env] = peer.receive()
    assert env.name == "E1" and env.meta["correlation_id"] == "KEY-E1"
    peer.send(item("R1", b"<DxpRep/>", "KEY-E1"))
    peer.ack(env.ref)
    [rec] = gateway.receive()
    assert rec.data == b"<DxpRep/>" and rec.meta["headers"]["cop_msg_id"] == "COPR1"
    gateway.ack(rec.ref)
    gateway.close()
    peer.close()
    assert depth(raw, a) == 0 and depth(raw, b) == 0


def test_receive_holds_until_ack_and_acks_are_idempotent(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    producer = make_amqp(outgoing_queue=inc, incoming_queue=out)
    for n in range(5):
        producer.send(item(n))
    t = make_amqp(outgoing_queue=out, incoming_queue=inc, prefetch=3)
    first = t.receive(limit=10)
    assert [i.name for i in first] == ["MSG-0000", "MSG-0001", "MSG-0002"]    # bounded by prefetch
    assert [i.ref for i in t.receive(limit=10)] == [i.ref for i in first]     # not removed
    t.ack(first[0].ref)
    t.ack(first[0].ref)                          # twice: no second basic.ack (would kill the channel)
    nxt = t.receive(limit=10)
    assert [i.name for i in nxt] == ["MSG-0001", "MSG-0002", "MSG-0003"]
    for i in nxt:
        t.ack(i.ref)
    [last] = t.receive()
    t.ack(last.ref)
    assert t.receive() == []
    t.close()
    assert depth(raw, inc) == 0


def test_unacked_messages_come_back_after_the_connection_drops(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    producer = make_amqp(outgoing_queue=inc, incoming_queue=out)
    for n in range(3):
        producer.send(item(n))
    t = make_amqp(outgoing_queue=out, incoming_queue=inc, connection_name=f"swgw-test-{amqp_names.tag}-c")
    old = t.receive()
    assert [i.meta["redelivered"] for i in old] == [False] * 3
    assert close_amqp_connections(f"swgw-test-{amqp_names.tag}-c") == 1
    with pytest.raises(TransportError) as err:
        t.receive()                               # notices the dead link
    assert err.value.retryable
    time.sleep(0.3)                               # backoff
    again = t.receive()
    assert [i.name for i in again] == [i.name for i in old]
    assert all(i.meta["redelivered"] for i in again)
    for i in old:
        t.ack(i.ref)                              # stale refs: no-op, must not ack other messages
    assert len(t.receive()) == 3                  # still held
    for i in again:
        t.ack(i.ref)
    assert t.receive() == []
    t.close()
    assert depth(raw, inc) == 0


def _retrying(call, deadline, errors):
    while True:
        try:
            return call()
        except TransportError as exc:
            assert exc.retryable, exc             # a broker outage is never a permanent error
            errors.append(str(exc))
            assert time.monotonic() < deadline, f"stuck: {errors[-1]}"
            time.sleep(0.05)


def test_connection_loss_mid_publish_loses_nothing(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    conn_name = f"swgw-test-{amqp_names.tag}-pub"
    t = make_amqp(outgoing_queue=out, incoming_queue=inc, connection_name=conn_name)
    n_items, errors, closer = 300, [], None
    started = time.monotonic()
    deadline = started + 60
    for n in range(n_items):
        if n == 100:
            closer = threading.Thread(target=close_amqp_connections, args=(conn_name,))
            closer.start()
        if closer is not None and closer.is_alive():
            time.sleep(0.01)                      # keep publishing while the broker cuts us off
        if n == 200:
            closer.join()                         # rabbitmqctl may take longer than 100 sends: the last
            # third goes after the cut, so the cut always lands mid-publish
        _retrying(lambda: t.send(item(n)), deadline, errors)
    closer.join()
    elapsed = time.monotonic() - started
    got = drain(raw, out)
    ids = [p.message_id for _, p, _ in got]
    assert errors, "the connection was never cut"
    assert set(ids) == {f"MSG-{n:04d}" for n in range(n_items)}          # nothing lost
    for _, p, body in got:
        assert body == item(p.message_id).data
    dupes = len(ids) - len(set(ids))
    assert dupes <= 1          # only a publish whose confirm was lost in the cut may repeat
    print(f"publish {n_items} over a forced disconnect: {len(errors)} retryable errors, "
          f"{dupes} duplicates, {elapsed:.1f}s")


def test_connection_loss_mid_consumption_loses_nothing(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    producer = make_amqp(outgoing_queue=inc, incoming_queue=out)
    n_items = 300
    for n in range(n_items):
        producer.send(item(n))
    conn_name = f"swgw-test-{amqp_names.tag}-con"
    t = make_amqp(outgoing_queue=out, incoming_queue=inc, connection_name=conn_name, prefetch=50)
    seen: dict[str, int] = {}
    redelivered_dupes, errors, rounds, cut = 0, [], 0, False
    started = time.monotonic()
    deadline = started + 60
    while True:
        batch = _retrying(lambda: t.receive(limit=20), deadline, errors)
        if not batch:
            break
        rounds += 1
        for i in batch:
            if i.name in seen:
                assert i.meta["redelivered"], f"{i.name} delivered twice without a connection reset"
                redelivered_dupes += 1
            seen[i.name] = seen.get(i.name, 0) + 1
        if rounds == 3 and not cut:               # the gateway stored the batch, then the link dies
            assert close_amqp_connections(conn_name) == 1
            cut = True
        for i in batch:
            try:
                t.ack(i.ref)
            except TransportError as exc:
                assert exc.retryable, exc
                errors.append(str(exc))
    elapsed = time.monotonic() - started
    t.close()
    assert cut and errors
    assert set(seen) == {f"MSG-{n:04d}" for n in range(n_items)}            # nothing lost
    assert depth(raw, inc) == 0                   # everything acked exactly where it counted
    print(f"consume {n_items} over a forced disconnect: {len(errors)} retryable errors, "
          f"{redelivered_dupes} redeliveries (deduped by the gateway), {elapsed:.1f}s")


def test_oversized_message_goes_to_the_dead_letter_queue(make_amqp, amqp_names, raw):
    out, inc = amqp_names("out"), amqp_names("in")
    producer = make_amqp(outgoing_queue=inc, incoming_queue=out)
    producer.send(item("BIG", b"x" * 5000))
    producer.send(item("OK", b"ok"))
    t = make_amqp(outgoing_queue=out, incoming_queue=inc, max_bytes=1000)
    got = t.receive()
    assert [i.name for i in got] == ["OK"]
    t.ack(got[0].ref)
    [(_, props, body)] = drain(raw, f"{inc}.dlq")
    assert props.message_id == "BIG" and len(body) == 5000
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_errors_are_clear_and_never_show_the_password(amqp_url, amqp_names):
    q = amqp_names("q")
    bad = AmqpTransport("amqp://guest@127.0.0.1:5672/%2F", incoming_queue=q, outgoing_queue=q,
                        password="Wr0ng-Pa55", connection_name=f"swgw-test-{amqp_names.tag}")
    with pytest.raises(TransportError) as err:
        bad.send(item("X"))
    assert err.value.retryable is False and "login refused for user 'guest'" in str(err.value)
    assert "Wr0ng-Pa55" not in str(err.value) + repr(bad) + repr(vars(bad)) + repr(vars(bad.link))
    nowhere = AmqpTransport(amqp_url, incoming_queue=q, exchange=amqp_names("missing", "exchange"),
                            routing_key="k", connection_name=f"swgw-test-{amqp_names.tag}")
    with pytest.raises(TransportError) as err:
        nowhere.send(item("Y"))
    assert err.value.retryable is False and "404" in str(err.value) and "missing" in str(err.value)
    assert "guest:guest" not in str(err.value)
    nowhere.close()


def test_check_reports_login_and_queues(make_amqp, amqp_names):
    out, inc = amqp_names("out"), amqp_names("in")
    t = make_amqp(outgoing_queue=out, incoming_queue=inc)
    checks = t.check()                 # changes nothing on the broker: the queues are not there yet
    assert [c.ok for c in checks] == [True, False, False]
    assert "404" in checks[1].detail and "declares what it uses when it starts" in checks[1].detail
    t.receive(1)                       # the transport declares its queues when it connects
    checks = t.check()
    assert [c.ok for c in checks] == [True, True, True]
    assert "guest:guest" not in " ".join(c.what + c.detail for c in checks)


def test_intake_poison_goes_to_dlq_with_reason(amqp_url, amqp_names, raw):
    qd, qo, dlq = amqp_names("erp-declaration"), amqp_names("erp-origin"), amqp_names("erp-dlq")
    intake = AmqpIntake(amqp_url, {"declaration": qd, "origin": qo}, dlq=dlq,
                        connection_name=f"swgw-test-{amqp_names.tag}")
    try:
        assert intake.fetch() == []               # declares the queues
        for q, mid, body in [(qd, "d1", b'{"ok": 1}'), (qd, "d2", b"{not json"), (qo, "o1", b"<Origin/>")]:
            raw.basic_publish("", q, body, pika.BasicProperties(message_id=mid, delivery_mode=2,
                                                                content_type="application/json",
                                                                headers={"erp": "sap"}))
        got = intake.fetch(10)
        assert sorted((m.doc_type, m.message_id) for m in got) == [
            ("declaration", "d1"), ("declaration", "d2"), ("origin", "o1")]
        assert [m.doc_type for m in got[:2]] == ["declaration", "origin"]   # round-robin
        for m in got:
            if m.message_id == "d2":
                intake.reject_to_dlq(m.ref, "line 1: invalid JSON: Expecting property name")
            else:
                intake.ack(m.ref)
        assert intake.fetch(10) == []
    finally:
        intake.close()
    assert depth(raw, qd) == 0 and depth(raw, qo) == 0
    [(_, props, body)] = drain(raw, dlq)
    assert body == b"{not json" and props.message_id == "d2"
    assert props.headers["x-swgw-reason"] == "line 1: invalid JSON: Expecting property name"
    assert props.headers["x-swgw-original-queue"] == qd
    assert props.headers["x-swgw-doc-type"] == "declaration" and props.headers["erp"] == "sap"


def test_receipts_topic_routing(amqp_url, amqp_names, raw):
    exchange = amqp_names("receipts", "exchange")
    pub = ReceiptPublisher(amqp_url, exchange=exchange, connection_name=f"swgw-test-{amqp_names.tag}")
    pub.publish("declaration", "dec-result", "ENT1", b"<x/>", message_id="warmup")   # declares it
    by_ent, by_kind = amqp_names("by-enterprise"), amqp_names("by-kind")
    for q, key in [(by_ent, "*.*.ENT1"), (by_kind, "declaration.dec-result.*")]:
        raw.queue_declare(q, durable=True)
        raw.queue_bind(q, exchange, routing_key=key)
    sent = [("declaration", "dec-result", "ENT1"), ("declaration", "dec-result", "ENT2"),
            ("origin", "audit", "ENT1"), ("declaration", "dxprep", "ENT2")]
    for n, (t, k, e) in enumerate(sent):
        assert pub.publish(t, k, e, f"<r{n}/>".encode(), message_id=f"R{n}", business_key=f"BK{n}",
                           content_type="application/xml") == f"{t}.{k}.{e}"
    pub.close()
    ent = drain(raw, by_ent)
    kind = drain(raw, by_kind)
    assert sorted(m.routing_key for m, _, _ in ent) == ["declaration.dec-result.ENT1", "origin.audit.ENT1"]
    assert sorted(m.routing_key for m, _, _ in kind) == ["declaration.dec-result.ENT1",
                                                         "declaration.dec-result.ENT2"]
    _, props, body = next(x for x in ent if x[1].message_id == "R2")
    assert body == b"<r2/>" and props.correlation_id == "BK2" and props.delivery_mode == 2
    assert props.content_type == "application/xml" and props.headers["receipt_kind"] == "audit"
    with pytest.raises(ValueError):
        routing_key("declaration", "dec.result", "ENT1")


def test_broker_restart_mid_publish_and_consume(make_amqp, amqp_names):
    import subprocess

    out, inc = amqp_names("out"), amqp_names("in")
    a = make_amqp(outgoing_queue=out, incoming_queue=inc, backoff_max=1)
    b = make_amqp(outgoing_queue=inc, incoming_queue=out, backoff_max=1)   # the peer
    n_items, errors = 100, []
    deadline = time.monotonic() + 120

    def restart():
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)

    started = time.monotonic()
    restarter = None
    seen: set[str] = set()
    for n in range(n_items):
        if n == 30:
            restarter = threading.Thread(target=restart)
            restarter.start()
        _retrying(lambda: a.send(item(n)), deadline, errors)
        if n % 10 == 9:                            # the peer consumes as we go
            for i in _retrying(lambda: b.receive(limit=50), deadline, errors):
                seen.add(i.name)
                try:
                    b.ack(i.ref)
                except TransportError as exc:
                    errors.append(str(exc))
    restarter.join()
    while True:
        batch = _retrying(lambda: b.receive(limit=50), deadline, errors)
        if not batch:
            break
        for i in batch:
            seen.add(i.name)
            _retrying(lambda: b.ack(i.ref), deadline, errors)
    b.close()
    elapsed = time.monotonic() - started
    assert errors
    assert seen == {f"MSG-{n:04d}" for n in range(n_items)}
    print(f"broker restart: {n_items} messages, {len(errors)} retryable errors, {elapsed:.1f}s")
