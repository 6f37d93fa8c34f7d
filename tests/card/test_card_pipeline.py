"""The daemon signing with virtual cards over the real PC/SC stack (pyscard -> pcscd -> vpcd)."""
from __future__ import annotations

import base64
import re
import signal
import time

import pytest
from lxml import etree

from card import crypto, testbed
from support import SAMPLE_CSV, Workspace, csv_rows, wait_for

ENT = "91210200MA0QC8N67X"
ENT2 = "91210200MA0QC9XX1Y"  # a USCC has no I, O, S, V or Z
PIN = b"246810"
DXP = "{http://www.chinaport.gov.cn/dxp}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def issue(pki_dir, tmp_path, name, media_no, enterprise=ENT, **opts) -> testbed.CardSpec:
    spec = testbed.issue_card(pki_dir, name, media_no=media_no, holder="王丹", enterprise=enterprise, pin=PIN, **opts)
    import dataclasses

    return dataclasses.replace(spec, state_file=tmp_path / f"{media_no}.state.json")


@pytest.fixture
def workspaces():
    """Workspaces made in a test; every process they started is stopped afterwards."""
    made: list[Workspace] = []
    yield made
    for ws in made:
        ws.stop_all()


@pytest.fixture
def card_workspace(workspaces, tmp_path, pki, pki_dir):
    def make(signers: dict[str, dict], enterprises=((ENT, "op-a"),)) -> Workspace:
        ws = _card_workspace(tmp_path, pki, pki_dir, signers, enterprises)
        workspaces.append(ws)
        return ws
    return make


def _card_workspace(tmp_path, pki, pki_dir, signers: dict[str, dict], enterprises) -> Workspace:
    """A workspace whose operators sign with PC/SC cards; the sandbox trusts the cards' CA."""
    ws = Workspace(tmp_path / "ws", pki)
    text = ws.config.read_text()
    head, rest = text.split("[[enterprise]]", 1)
    tail = rest[rest.index("[transports.exchange]"):]
    blocks = []
    for i, (code, signer) in enumerate(enterprises):
        blocks.append(f'[[enterprise]]\ncode = "{code}"\nname = "企业{i}"\ncustoms_code = "210293000{i}"\n'
                      f'dxp_sender_id = "DXPENT000001234{i}"\n  [[enterprise.operators]]\n  name = "王丹"\n'
                      f'  signer = "{signer}"\n')
    for name, s in signers.items():
        blocks.append(f'[signers.{name}]\nkind = "pcsc"\nmedia_no = "{s["media_no"]}"\n'
                      f'pin = {{ file = "{s["pin_file"]}" }}\nenterprise = "{s["enterprise"]}"\n')
    ws.config.write_text(head + "\n".join(blocks) + "\n" + tail)
    sb = ws.sandbox_config.read_text()
    ws.sandbox_config.write_text(sb.replace('trust = ["var/sandbox/ca/ca.pem"]',
                                            f'trust = ["var/sandbox/ca/ca.pem", "{pki_dir / "ca.pem"}"]'))
    return ws


def pin_file(tmp_path, name, pin: bytes) -> str:
    p = tmp_path / f"{name}.pin"
    p.write_bytes(pin + b"\n")
    p.chmod(0o600)
    return str(p)


def envelope_card(path) -> tuple[str, str, bytes]:
    root = etree.parse(str(path)).getroot()
    return (root.findtext(f"{DXP}AddInfo/{DXP}IcCard"), root.findtext(f"{DS}Signature/{DS}KeyInfo/{DS}KeyName"),
            base64.b64decode(root.findtext(f"{DXP}Data")))


def tries_left(spec: testbed.CardSpec) -> int:
    import json

    return json.loads(spec.state_file.read_text())["tries_left"]


@pytest.fixture
def card_one(bed, pki_dir, tmp_path):
    spec = issue(pki_dir, tmp_path, "pipe-a", "ZK0000000101A")
    card = bed.insert(spec, slot=0)
    yield spec, card
    bed.eject(0)


def test_daemon_signs_with_the_card_and_the_pin_never_shows(bed, pki, pki_dir, tmp_path, card_workspace, card_one):
    spec, card = card_one
    ws = card_workspace({"op-a": {"media_no": spec.media_no, "enterprise": ENT,
                                                          "pin_file": pin_file(tmp_path, "a", PIN)}})
    try:
        ws.start_sandbox()
        daemon = ws.start_daemon()
        ws.drop("declaration.csv", SAMPLE_CSV.read_bytes())
        wait_for(lambda: [r["state"] for r in ws.status()] == ["closed", "closed"], 60, what="both closed")
        cmdline = open(f"/proc/{daemon.pid}/cmdline", "rb").read()
        assert PIN not in cmdline
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
        out = ws.output(daemon)
    finally:
        ws.stop_all()
    cert_no = crypto.summary(spec.cert.read_bytes()).serial_hex
    for path in ws.received_envelopes():
        ic_card, key_name, data = envelope_card(path)
        assert (ic_card, key_name) == (spec.media_no, cert_no)
        assert re.search(rb"<ICCode>ZK0000000101A</ICCode>", data) and b"<Sign>" in data
    assert PIN.decode() not in out
    assert PIN not in (ws.var / "swgw.db").read_bytes()
    assert tries_left(spec) == 3


def test_wrong_pin_stops_signing_after_one_try_and_raises_an_alarm(bed, pki, pki_dir, tmp_path, card_workspace, card_one):
    spec, card = card_one
    pin_path = pin_file(tmp_path, "a", b"999999")
    ws = card_workspace({"op-a": {"media_no": spec.media_no, "enterprise": ENT,
                                                          "pin_file": pin_path}})
    ws.start_sandbox()
    ws.drop("two.csv", csv_rows(3, prefix="PIN"))
    first = ws.swgw("run", "--drain", "--timeout", "6")
    assert first.returncode == 1, first.stdout + first.stderr
    assert {r["state"] for r in ws.status()} == {"prepared"}, "nothing signed, nothing lost"
    assert tries_left(spec) == 2, "exactly one PIN try was used"
    (alarm,) = list((ws.root / "outbox" / "alarms").glob("*-pin-refused.json"))
    assert "never retries a PIN" in alarm.read_text()
    assert ws.received_envelopes() == []
    assert "999999" not in first.stdout + first.stderr + alarm.read_text()
    # the operator fixes the PIN source and restarts: everything is signed, the card's tries are restored
    pin_file(tmp_path, "a", PIN)
    ok = ws.swgw("run", "--drain", "--timeout", "60", "--settle", "1.5")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert {r["state"] for r in ws.status()} == {"closed"}
    assert len(ws.received_envelopes()) == 3 and tries_left(spec) == 3


def test_removed_card_parks_messages_and_reinsertion_resumes(bed, pki, pki_dir, tmp_path, card_workspace, card_one):
    spec, card = card_one
    ws = card_workspace({"op-a": {"media_no": spec.media_no, "enterprise": ENT,
                                                          "pin_file": pin_file(tmp_path, "a", PIN)}})
    try:
        ws.start_sandbox()
        ws.start_daemon()
        ws.drop("first.csv", csv_rows(2, prefix="RMA"))
        wait_for(lambda: len(ws.status()) == 2 and {r["state"] for r in ws.status()} == {"closed"}, 60,
                 what="first batch closed")
        card.remove()
        ws.drop("second.csv", csv_rows(3, prefix="RMB"))
        wait_for(lambda: len(ws.status()) == 5, 30, what="second batch taken")
        time.sleep(2.0)
        parked = [r for r in ws.status() if r["key"].startswith("RMB")]
        assert {r["state"] for r in parked} == {"prepared"}, "no card: messages wait unsigned"
        card.reinsert()
        wait_for(lambda: {r["state"] for r in ws.status()} == {"closed"}, 60, what="all closed after reinsertion")
    finally:
        ws.stop_all()
    keys = sorted(re.search(rb"<ClientSeqNo>([^<]+)", envelope_card(p)[2]).group(1).decode()
                  for p in ws.received_envelopes())
    assert keys == ["RMA0000000", "RMA0000001", "RMB0000000", "RMB0000001", "RMB0000002"]
    assert tries_left(spec) == 3


def test_each_enterprise_signs_with_its_own_card(bed, pki, pki_dir, tmp_path, card_workspace):
    a = issue(pki_dir, tmp_path, "pipe-a", "ZK0000000201A")
    b = issue(pki_dir, tmp_path, "pipe-b", "ZK0000000202B", enterprise=ENT2)
    bed.insert(a, slot=0)
    bed.insert(b, slot=1)
    try:
        pf = pin_file(tmp_path, "p", PIN)
        ws = card_workspace({"op-a": {"media_no": a.media_no, "enterprise": ENT, "pin_file": pf},
                             "op-b": {"media_no": b.media_no, "enterprise": ENT2, "pin_file": pf}},
                            enterprises=((ENT, "op-a"), (ENT2, "op-b")))
        ws.start_sandbox()
        text = csv_rows(2, prefix="ENA") + "\n".join(csv_rows(2, prefix="ENB").splitlines()[1:]).replace(ENT, ENT2)
        ws.drop("two-enterprises.csv", text + "\n")
        out = ws.swgw("run", "--drain", "--timeout", "60", "--settle", "1.5")
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        bed.eject(1)
        bed.eject(0)
    by_key = {}
    for p in ws.received_envelopes():
        ic, _, data = envelope_card(p)
        by_key[re.search(rb"<ClientSeqNo>([^<]+)", data).group(1).decode()] = ic
    assert by_key == {"ENA0000000": a.media_no, "ENA0000001": a.media_no,
                      "ENB0000000": b.media_no, "ENB0000001": b.media_no}


def test_card_of_another_enterprise_never_signs(bed, pki, pki_dir, tmp_path, card_workspace):
    other = issue(pki_dir, tmp_path, "pipe-x", "ZK0000000301X", enterprise=ENT2)
    bed.insert(other, slot=0)
    try:
        ws = card_workspace({"op-a": {"media_no": other.media_no, "enterprise": ENT,
                                                              "pin_file": pin_file(tmp_path, "a", PIN)}})
        ws.start_sandbox()
        ws.drop("one.csv", csv_rows(1, prefix="MIS"))
        ws.swgw("run", "--drain", "--timeout", "15", "--settle", "1")
        (row,) = ws.status()
        assert row["state"] == "failed"
        trace = ws.swgw("trace", "MIS0000000").stdout
        assert ENT2 in trace and "refus" in trace.lower()
        assert ws.received_envelopes() == []
        assert tries_left(other) == 3, "the PIN is never sent to a card of another enterprise"
    finally:
        bed.eject(0)


def test_card_info_and_verify_commands(bed, pki, pki_dir, tmp_path, card_workspace, card_one):
    spec, card = card_one
    ws = card_workspace({"op-a": {"media_no": spec.media_no, "enterprise": ENT,
                                                          "pin_file": pin_file(tmp_path, "a", PIN)}})
    info = ws.swgw("card", "info")
    assert info.returncode == 0, info.stderr
    assert "ZK0000000101A" in info.stdout and "Virtual PCD" in info.stdout and "王丹" in info.stdout
    assert ws.swgw("card", "verify").stdout.strip() == "op-a: PIN ok (card ZK0000000101A)"
    pin_file(tmp_path, "a", b"111111")
    bad = ws.swgw("card", "verify")
    assert bad.returncode == 1 and "PIN refused" in bad.stderr and "Stopped" in bad.stderr
    assert tries_left(spec) == 2
