"""Cards on other hosts: the central `swgw run` signs with two `swgw signer` agents over the real
RabbitMQ — one serving a virtual card over the real PC/SC stack, one a software key — for two
enterprises; every declaration reaches the sandbox exactly once, also when an agent is killed and
restarted mid-signing and when RabbitMQ restarts mid-signing.

Run the RabbitMQ restart under `flock /tmp/swgw-rabbit.lock` (and all of these under
`flock /tmp/swgw-pcsc.lock`)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid

import pika
import pytest

from card import testbed
from gateway import signer_wire as wire
from support import Workspace, csv_rows, wait_for

ENT = "91210200MA0QC8N67X"
ENT2 = "91210200MA0QC9XX1Y"
PIN = b"246810"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
SECRETS = {"SWGW_TEST_SECRET_A": "secret-of-card-host-a-" + uuid.uuid4().hex,
           "SWGW_TEST_SECRET_B": "secret-of-card-host-b-" + uuid.uuid4().hex}
DXP = "{http://www.chinaport.gov.cn/dxp}"


class Site:
    """A central gateway (sandbox as the platform) and two card hosts on this machine."""

    def __init__(self, ws: Workspace, card: testbed.CardSpec, media_b: str, pki_dir):
        self.ws, self.card, self.media_b = ws, card, media_b
        self.agents: dict[str, subprocess.Popen] = {}
        root = ws.root
        (root / "a.pin").write_bytes(PIN + b"\n")
        (root / "host-a.toml").write_text(f"""
[agent]
url = "{AMQP}"
secret = {{ env = "SWGW_TEST_SECRET_A" }}
state_dir = "var/host-a"
heartbeat_interval = 0.5
name = "pc-a"
[card]
kind = "pcsc"
media_no = "{card.media_no}"
pin = {{ file = "a.pin" }}
enterprise = "{ENT}"
[log]
format = "json"
""")
        (root / "host-b.toml").write_text(f"""
[agent]
url = "{AMQP}"
secret = {{ env = "SWGW_TEST_SECRET_B" }}
state_dir = "var/host-b"
heartbeat_interval = 0.5
name = "pc-b"
[card]
kind = "software"
key_file = "var/keys/operator.key"
cert_file = "var/keys/operator.pem"
media_no = "{media_b}"
holder = "李明"
enterprise = "{ENT2}"
[log]
format = "json"
""")
        text = ws.config.read_text()
        head, rest = text.split("[[enterprise]]", 1)
        tail = rest[rest.index("[transports.exchange]"):]
        blocks = []
        for i, (code, signer) in enumerate(((ENT, "card-a"), (ENT2, "card-b"))):
            blocks.append(f'[[enterprise]]\ncode = "{code}"\nname = "企业{i}"\ncustoms_code = "210293000{i}"\n'
                          f'dxp_sender_id = "DXPENT000001234{i}"\n  [[enterprise.operators]]\n  name = "王丹"\n'
                          f'  signer = "{signer}"\n')
        for name, media, ent, env, ca in (("card-a", card.media_no, ENT, "SWGW_TEST_SECRET_A", pki_dir / "ca.pem"),
                                          ("card-b", media_b, ENT2, "SWGW_TEST_SECRET_B", "var/sandbox/ca/ca.pem")):
            blocks.append(f'[signers.{name}]\nkind = "remote"\nmedia_no = "{media}"\nenterprise = "{ent}"\n'
                          f'url = "{AMQP}"\nsecret = {{ env = "{env}" }}\nca_file = "{ca}"\n'
                          f'request_timeout = 4.0\nheartbeat_timeout = 2.0\nflag_after = 2.0\n')
        ws.config.write_text(head + "\n".join(blocks) + "\n" + tail)
        sb = ws.sandbox_config.read_text()
        ws.sandbox_config.write_text(sb.replace('trust = ["var/sandbox/ca/ca.pem"]',
                                                f'trust = ["var/sandbox/ca/ca.pem", "{pki_dir / "ca.pem"}"]'))

    def start_agent(self, host: str) -> subprocess.Popen:
        self.agents[host] = self.ws.start("signer", "--config", str(self.ws.root / f"host-{host}.toml"), env=SECRETS)
        return self.agents[host]

    def start(self) -> None:
        self.ws.start_sandbox()
        self.start_agent("a")
        self.start_agent("b")
        self.ws.start_daemon(env=SECRETS)

    def drop(self, name: str, prefix_a: str, prefix_b: str, n: int) -> list[str]:
        text = csv_rows(n, prefix=prefix_a) + "\n".join(csv_rows(n, prefix=prefix_b).splitlines()[1:]).replace(ENT, ENT2)
        self.ws.drop(name, text + "\n")
        return [f"{p}{i:07d}" for p in (prefix_a, prefix_b) for i in range(n)]

    def states(self) -> dict[str, str]:
        return {r["key"]: r["state"] for r in self.ws.status()}

    def received(self) -> list[tuple[str, str]]:
        """(ClientSeqNo, IcCard) of every envelope the sandbox received, duplicates kept."""
        from lxml import etree
        import base64

        out = []
        for path in self.ws.received_envelopes():
            root = etree.parse(str(path)).getroot()
            data = base64.b64decode(root.findtext(f"{DXP}Data"))
            out.append((re.search(rb"<ClientSeqNo>([^<]+)", data).group(1).decode(),
                        root.findtext(f"{DXP}AddInfo/{DXP}IcCard")))
        return sorted(out)

    def audit(self, host: str) -> list[dict]:
        path = self.ws.root / "var" / f"host-{host}" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def cleanup(self) -> None:
        self.ws.stop_all()
        conn = pika.BlockingConnection(pika.URLParameters(AMQP))
        ch = conn.channel()
        for media in (self.card.media_no, self.media_b):
            ch.queue_delete(wire.queue_name(media))
        conn.close()


@pytest.fixture
def site(bed, pki, pki_dir, tmp_path):
    import dataclasses

    media_a = "ZKR" + uuid.uuid4().hex[:10].upper()
    spec = testbed.issue_card(pki_dir, "remote-a", media_no=media_a, holder="王丹", enterprise=ENT, pin=PIN,
                              sign_latency_ms=150)
    spec = dataclasses.replace(spec, state_file=tmp_path / f"{media_a}.state.json")
    bed.insert(spec, slot=0)
    s = Site(Workspace(tmp_path / "ws", pki), spec, "ZKS" + uuid.uuid4().hex[:10].upper(), pki_dir)
    yield s
    s.cleanup()
    bed.eject(0)


def _all_closed(site, keys):
    states = site.states()
    return len(states) == len(keys) and set(states.values()) == {"closed"}


def test_two_card_hosts_sign_two_enterprises_each_declaration_once_even_when_an_agent_is_killed(site):
    site.start()
    keys = site.drop("first.csv", "RMA", "RMB", 4)
    wait_for(lambda: any(st in ("sent", "closed") for st in site.states().values()), 60, what="the first sent")
    site.agents["a"].send_signal(signal.SIGKILL)      # the card host of enterprise A dies mid-signing
    site.agents["a"].wait(5)
    keys += site.drop("second.csv", "RMC", "RMD", 2)
    wait_for(lambda: all(site.states().get(k) == "closed" for k in keys if k.startswith(("RMB", "RMD"))), 60,
             what="enterprise B's declarations closed while A's card host is away")
    time.sleep(2.5)   # past heartbeat_timeout and flag_after
    waiting = {k: st for k, st in site.states().items() if k.startswith("RMC")}
    assert set(waiting.values()) == {"prepared"}, "A's messages wait unsigned for its card host"
    shown = site.ws.swgw("status", "--signers", "--json", check=True)
    signers = {r["signer"]: r for r in json.loads(shown.stdout)}
    assert signers["card-a"]["state"] == "absent" and signers["card-b"]["state"] == "present"
    assert "pc-b" in signers["card-b"]["detail"]
    flagged = list((site.ws.root / "outbox" / "alarms").glob("*-signer-away.json"))
    assert flagged and "card-a" in flagged[0].read_text()
    site.start_agent("a")                              # back: what waited goes now
    wait_for(lambda: _all_closed(site, keys), 90, what="all closed after the card host returned")
    got = site.received()
    assert [k for k, _ in got] == sorted(keys), "every declaration arrived exactly once"
    assert {ic for k, ic in got if k.startswith(("RMA", "RMC"))} == {site.card.media_no}
    assert {ic for k, ic in got if k.startswith(("RMB", "RMD"))} == {site.media_b}
    signed = {e["business_key"] for e in site.audit("a") if e["result"] == "signed"}
    assert signed == {k for k in keys if k.startswith(("RMA", "RMC"))}
    logs = "".join(site.ws.output(p) for p in site.ws.procs)
    assert all(secret not in logs for secret in SECRETS.values()) and PIN.decode() not in logs


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    time.sleep(0.5)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)


def test_rabbitmq_restarting_mid_signing_loses_and_doubles_nothing(site):
    site.start()
    keys = site.drop("many.csv", "RQA", "RQB", 8)
    before = wait_for(lambda: (lambda st: st if len(st) == len(keys) and "prepared" in st.values() and
                               any(v in ("signed", "sent", "closed") for v in st.values()) else None)(site.states()),
                      60, interval=0.05, what="signing under way")
    restart_rabbitmq()
    assert [k for k, v in before.items() if v == "prepared" and k.startswith("RQA")], "restarted mid-signing"
    wait_for(lambda: _all_closed(site, keys), 120, what="all closed after the broker restart")
    got = site.received()
    assert [k for k, _ in got] == sorted(keys), "every declaration arrived exactly once"
    doctor = site.ws.swgw("doctor", env=SECRETS)
    assert re.search(r"ok\s+signer card-a: card " + site.card.media_no + r".*card host pc-a", doctor.stdout), doctor.stdout
    assert re.search(r"ok\s+signer card-b: card " + site.media_b + r".*card host pc-b", doctor.stdout), doctor.stdout


def test_a_refused_pin_halts_the_card_host_and_alarms_centrally(site):
    (site.ws.root / "a.pin").write_bytes(b"999999\n")    # the operator's PIN file on the card host is wrong
    site.start()
    keys = site.drop("pin.csv", "RPA", "RPB", 2)
    wait_for(lambda: list((site.ws.root / "outbox" / "alarms").glob("*-pin-refused.json")), 60,
             what="the central pin-refused alarm")
    time.sleep(1.5)
    states = site.states()
    assert {states[k] for k in keys if k.startswith("RPA")} == {"prepared"}, "nothing signed, nothing lost"
    assert json.loads(site.card.state_file.read_text())["tries_left"] == 2, "exactly one PIN try was used"
    shown = {r["signer"]: r for r in json.loads(site.ws.swgw("status", "--signers", "--json", check=True).stdout)}
    assert shown["card-a"]["state"] == "halted"
    alarm = next((site.ws.root / "outbox" / "alarms").glob("*-pin-refused.json")).read_text()
    logs = "".join(site.ws.output(p) for p in site.ws.procs)
    assert "999999" not in alarm + logs and PIN.decode() not in logs
