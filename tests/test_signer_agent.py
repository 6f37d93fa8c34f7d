"""A card host's `swgw signer` agent and the gateway's RemoteSigner over the real RabbitMQ, with a
software key as the card: what the agent refuses (forged, replayed, expired, another enterprise),
what it logs, and a reply with a bad signature refused by the gateway."""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import pika
import pytest

from card import crypto
from card.signer import signing_for
from gateway import signer_wire as wire
from gateway.config import load_signer
from gateway.remote_signer import RemoteSigner, SignatureRefused, Trust
from gateway.signer_agent import open_agent

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
ENT = "91210200MA0QC8N67X"
SECRET = "s3cret-for-tests-only-0123456789"


def _media() -> str:
    return "ZT" + uuid.uuid4().hex[:11].upper()


@pytest.fixture
def agent_host(tmp_path, pki, monkeypatch):
    """A card host: signer.toml with a software key, the agent running on a thread."""
    monkeypatch.setenv("SWGW_TEST_SIGNER_SECRET", SECRET)
    media = _media()
    conf = tmp_path / "signer.toml"
    conf.write_text(f"""
[agent]
url = "{AMQP}"
secret = {{ env = "SWGW_TEST_SIGNER_SECRET" }}
state_dir = "state"
heartbeat_interval = 0.5
name = "pc-test"
[card]
kind = "software"
key_file = "{pki['key']}"
cert_file = "{pki['cert']}"
media_no = "{media}"
holder = "王丹"
enterprise = "{ENT}"
""")
    started = []

    def start():
        agent = open_agent(load_signer(conf))
        stop = threading.Event()
        t = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        t.start()
        started.append((agent, stop, t))
        return agent

    def stop_all():
        while started:
            agent, stop, t = started.pop()
            stop.set()
            t.join(5)
            agent.close()

    start.media = media
    start.state = tmp_path / "state"
    start.stop_all = stop_all
    yield start
    stop_all()
    ch = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch.channel().queue_delete(wire.queue_name(media))
    ch.close()


def _remote(agent_host, pki, **kw) -> RemoteSigner:
    return RemoteSigner("op-remote", url=AMQP, media_no=agent_host.media, enterprise=ENT, secret=kw.pop("secret", SECRET),
                        trust=Trust(ca_file=pki["ca_dir"] / "ca.pem"), request_timeout=kw.pop("timeout", 5.0), **kw)


class Caller:
    """Publishes raw requests to an agent's queue and collects the replies (an attacker's view)."""

    def __init__(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        self.ch = self.conn.channel()
        self.queue = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.exchange_declare(wire.REPLY_EXCHANGE, exchange_type="direct", durable=True)
        self.ch.queue_bind(self.queue, wire.REPLY_EXCHANGE, routing_key=self.queue)

    def ask(self, media: str, body: bytes, timeout: float = 5.0) -> dict:
        corr = uuid.uuid4().hex
        self.ch.queue_declare(wire.queue_name(media), durable=True)   # as the gateway does: requests wait there
        self.ch.basic_publish("", wire.queue_name(media), body,
                              pika.BasicProperties(reply_to=self.queue, correlation_id=corr, delivery_mode=2))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, reply = self.ch.basic_get(self.queue, auto_ack=True)
            if method:
                return json.loads(reply)
            self.conn.process_data_events(0.05)
        raise AssertionError("no reply from the agent")

    def close(self):
        self.conn.close()


def _request(media: str, data: bytes = b"<SignedInfo>x</SignedInfo>", enterprise: str = ENT,
             secret: str = SECRET, timeout: float = 10.0, business_key: str = "BK0001") -> bytes:
    return wire.request(correlation_id=uuid.uuid4().hex, media_no=media, enterprise=enterprise,
                        business_key=business_key, data=data, timeout=timeout, key=secret.encode())[0]


def _audit(state) -> list[dict]:
    path = state / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_remote_signature_verifies_and_the_agent_logs_what_it_signed(agent_host, pki):
    agent_host()
    remote = _remote(agent_host, pki)
    try:
        info = remote.info()
        data = b"<ds:SignedInfo>declaration BK42</ds:SignedInfo>"
        with signing_for(ENT, "BK42"):
            sig = remote.sign(data)
        crypto.verify(remote.algorithm, pki["cert"].read_bytes(), data, sig)   # the card's key, over these bytes
        assert info.media_no == agent_host.media and info.enterprise_code == ENT
        assert remote.certificate() == crypto.to_der(pki["cert"].read_bytes())
    finally:
        remote.close()
    (entry,) = _audit(agent_host.state)
    assert entry["result"] == "signed" and entry["business_key"] == "BK42"
    assert entry["sha256"] == wire.sha256_hex(data) and entry["at"]
    assert SECRET not in (agent_host.state / "audit.jsonl").read_text()


def test_forged_replayed_expired_and_foreign_requests_are_refused(agent_host, pki):
    agent_host()
    caller = Caller()
    try:
        forged = caller.ask(agent_host.media, _request(agent_host.media, secret="not-the-secret"))
        assert forged["error_kind"] == "refused" and "HMAC" in forged["error"] and not forged["signature"]
        body = _request(agent_host.media)
        first = caller.ask(agent_host.media, body)
        assert first["error_kind"] == "" and first["signature"]
        replayed = caller.ask(agent_host.media, body)
        assert replayed["error_kind"] == "refused" and "replayed" in replayed["error"]
        foreign = caller.ask(agent_host.media, _request(agent_host.media, enterprise="91210200MA0QC9XX1Y"))
        assert foreign["error_kind"] == "refused" and "enterprise" in foreign["error"]
        expired = caller.ask(agent_host.media, _request(agent_host.media, timeout=-1))
        assert expired["error_kind"] == "refused" and "deadline" in expired["error"]
        # the data swapped under an authentic request: the HMAC no longer matches
        tampered = json.loads(_request(agent_host.media))
        tampered["data"] = base64.b64encode(b"other bytes").decode()
        swapped = caller.ask(agent_host.media, json.dumps(tampered).encode())
        assert swapped["error_kind"] == "refused" and "HMAC" in swapped["error"]
    finally:
        caller.close()
    results = [e["result"] for e in _audit(agent_host.state)]
    assert results.count("signed") == 1 and results.count("refused") == 5


def test_a_replay_is_refused_after_the_agent_restarts(agent_host, pki):
    agent_host()
    caller = Caller()
    try:
        body = _request(agent_host.media)
        assert caller.ask(agent_host.media, body)["signature"]
        agent_host.stop_all()
        agent_host()          # the card host restarted: the nonces seen are on its disk
        again = caller.ask(agent_host.media, body)
    finally:
        caller.close()
    assert again["error_kind"] == "refused" and "replayed" in again["error"]
    assert [e["result"] for e in _audit(agent_host.state)] == ["signed", "refused"]


def test_a_reply_with_a_bad_signature_is_refused_by_the_gateway(agent_host, pki):
    """A card host that answers with a signature that is not the card's over these bytes (a
    broken agent, or one whose secret leaked): the gateway verifies and refuses it."""
    media = agent_host.media
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    ch.exchange_declare(wire.HEARTBEAT_EXCHANGE, exchange_type="topic", durable=True)
    ch.queue_declare(wire.queue_name(media), durable=True)
    cert = crypto.to_der(pki["cert"].read_bytes())
    key = SECRET.encode()

    def beat():
        ch.basic_publish(wire.HEARTBEAT_EXCHANGE, wire.heartbeat_key(media), wire.heartbeat(
            media_no=media, state="present", detail="", info={"media_no": media, "holder": "王丹",
                                                              "enterprise_code": ENT, "cert_no": "01"},
            certificate=cert, algorithm="sm2-sm3", agent="rogue", key=key))

    remote = _remote(agent_host, pki, first_heartbeat_wait=0.1)
    try:
        time.sleep(0.5)   # its heartbeat queue is bound
        beat()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
            try:
                remote.info()
                break
            except Exception:
                beat()
        result = {}

        def call():
            try:
                with signing_for(ENT, "BK-BAD"):
                    result["sig"] = remote.sign(b"<SignedInfo>the real bytes</SignedInfo>")
            except Exception as exc:
                result["error"] = exc

        t = threading.Thread(target=call)
        t.start()
        method = None
        deadline = time.monotonic() + 5
        while method is None and time.monotonic() < deadline:
            method, props, body = ch.basic_get(wire.queue_name(media), auto_ack=True)
            conn.process_data_events(0.05)
        assert method is not None, "the gateway's request reached the card's queue"
        req = wire.open_(wire.REQUEST, body, key)
        from card.software import SoftwareSigner
        from card.signer import CardInfo

        soft = SoftwareSigner(pki["key"], pki["cert"], CardInfo(media, "王丹", ENT, ""))
        wrong = soft.sign(b"<SignedInfo>other bytes</SignedInfo>")   # the card's key, but not over these bytes
        ch.basic_publish(wire.REPLY_EXCHANGE, props.reply_to, wire.reply(correlation_id=req["correlation_id"], media_no=media,
                                                        business_key=req["business_key"], sha256=req["sha256"],
                                                        signature=wrong, key=key),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        t.join(10)
    finally:
        remote.close()
        ch.queue_delete(wire.queue_name(media))
        conn.close()
    assert "sig" not in result
    assert isinstance(result["error"], SignatureRefused) and "does not verify" in str(result["error"])


def test_a_remote_signer_without_a_trusted_certificate_is_a_config_error(tmp_path):
    from gateway.config import ConfigError, load

    base = (ROOT / "config" / "gateway-remote.toml").read_text()
    cfg = load(ROOT / "config" / "gateway-remote.toml")     # the shipped example loads
    assert cfg.signers["operator-card"].kind == "remote"
    (tmp_path / "gateway.toml").write_text((ROOT / "config" / "gateway.toml").read_text()
                                           .replace('"../', f'"{ROOT}/'))
    (tmp_path / "remote.toml").write_text(base.replace('ca_file = "../var/sandbox/ca/ca.pem"', ""))
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "remote.toml")
    assert "signers.operator-card" in str(err.value) and "cert_file" in str(err.value)
    assert load_signer(ROOT / "config" / "signer.toml").card.kind == "pcsc"


def test_the_card_hosts_broker_user_reads_only_its_own_queue(agent_host, pki, tmp_path):
    """The README's `rabbitmqctl set_permissions` for a card host, on the real broker: the agent
    serves its card with them, and cannot read another card's queue or publish to any queue."""
    import subprocess

    media = agent_host.media
    user, password = f"swgw-test-card-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    other = _media()
    q = lambda name: name.replace(".", r"\.")  # noqa: E731
    ctl = lambda *a: subprocess.run(["rabbitmqctl", "-q", *a], check=True, capture_output=True, text=True)  # noqa: E731
    ctl("add_user", user, password)
    central = f"swgw-test-central-{uuid.uuid4().hex[:8]}"
    ctl("add_user", central, password)
    try:
        ctl("set_permissions", "-p", "/", central, r"^(swgw\..*|amq\.gen-.*)$",
            r"^(swgw\..*|amq\.gen-.*|amq\.default)$", r"^(swgw\..*|amq\.gen-.*)$")
        ctl("set_permissions", "-p", "/", user, f"^{q(wire.queue_name(media))}$",
            r"^swgw\.(signers|replies)$", f"^{q(wire.queue_name(media))}$")
        conf = (tmp_path / "signer.toml")
        conf.write_text(conf.read_text().replace(AMQP, f"amqp://{user}:{password}@127.0.0.1:5672/%2F"))
        remote = RemoteSigner("op-remote", url=f"amqp://{central}:{password}@127.0.0.1:5672/%2F", media_no=media,
                              enterprise=ENT, secret=SECRET, trust=Trust(ca_file=pki["ca_dir"] / "ca.pem"),
                              request_timeout=5.0)   # the central side, with the README's central user
        try:
            agent_host()
            with signing_for(ENT, "BK-PERM"):
                sig = remote.sign(b"<SignedInfo>with the card host's own user</SignedInfo>")
            assert len(sig) == 64
        finally:
            remote.close()
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://{user}:{password}@127.0.0.1:5672/%2F"))
        try:
            admin = pika.BlockingConnection(pika.URLParameters(AMQP))
            admin.channel().queue_declare(wire.queue_name(other), durable=True)
            admin.close()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                conn.channel().basic_get(wire.queue_name(other))
            assert refused.value.reply_code == 403
            ch = conn.channel()
            ch.confirm_delivery()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                ch.basic_publish("", wire.queue_name(other), b"x")   # the default exchange: every queue
            assert refused.value.reply_code == 403
        finally:
            conn.close()
            admin = pika.BlockingConnection(pika.URLParameters(AMQP))
            admin.channel().queue_delete(wire.queue_name(other))
            admin.close()
    finally:
        ctl("delete_user", user)
        ctl("delete_user", central)
