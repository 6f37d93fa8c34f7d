"""End to end through the real daemon and the sandbox peer, as separate processes."""
from __future__ import annotations

import base64
import collections
import json
import re
import signal
import time

import pytest
import sqlalchemy as sa
from lxml import etree

from support import DXP_XSD, ROOT, SAMPLE_CSV, Workspace, csv_rows, drain, postgres_database, wait_for

DXP = "{http://www.chinaport.gov.cn/dxp}"
PER_DECLARATION = {"dxp-rep": 1, "import-response": 1, "dec-result": 5}


def client_seq_of(envelope_path) -> str:
    root = etree.parse(str(envelope_path)).getroot()
    data = base64.b64decode(root.findtext(f"{DXP}Data"))
    return re.search(rb"<ClientSeqNo>([^<]+)</ClientSeqNo>", data).group(1).decode()


def receipts_by_key(ws: Workspace) -> dict[str, collections.Counter]:
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name in ws.outbox_files():
        key, kind, _ = name.rsplit(".", 3)[:3]
        out[key][kind] += 1
    return out



@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def ws(tmp_path, pki, store_url):
    w = Workspace(tmp_path, pki, store_url=store_url)
    yield w
    w.stop_all()


def test_reference_export_goes_out_signed_and_receipts_come_back(ws):
    ws.start_sandbox()
    ws.drop("declaration.csv", SAMPLE_CSV.read_bytes())
    out = drain(ws).stdout
    assert "2 closed" in out
    schema = etree.XMLSchema(etree.parse(str(DXP_XSD)))
    envelopes = ws.received_envelopes()
    assert len(envelopes) == 2
    for path in envelopes:
        assert schema.validate(etree.parse(str(path))), schema.error_log
    assert sorted(client_seq_of(p) for p in envelopes) == ["DL2026110100001", "DL2026110100002"]
    assert receipts_by_key(ws) == {k: collections.Counter(PER_DECLARATION)
                                   for k in ("DL2026110100001", "DL2026110100002")}
    rows = {r["key"]: r for r in ws.status()}
    assert rows["DL2026110100001"]["state"] == "closed"
    assert rows["DL2026110100001"]["keys"]["SeqNo"].startswith("0900")
    assert len(rows["DL2026110100001"]["keys"]["EntryId"]) == 18
    assert (ws.inbox / ".archive").exists() and not list(ws.inbox.glob("*.csv"))
    # the outbox statuses arrive in the customs order 7 -> L -> J -> P -> R, as the platform sends them:
    # bare <DEC_RESULT>, CUS_CIQ_NO the unified number the import response gave
    results = [etree.parse(str(p)).getroot() for p in sorted(ws.outbox.glob("DL2026110100001.dec-result.*.xml"))]
    assert [r.findtext("CHANNEL") for r in results] == ["7", "L", "J", "P", "R"]
    assert {r.tag for r in results} == {"DEC_RESULT"}
    assert {r.findtext("CUS_CIQ_NO") for r in results} == {rows["DL2026110100001"]["keys"]["SeqNo"]}
    trace = ws.swgw("trace", "DL2026110100001", check=True).stdout
    for step in ("received -> prepared", "prepared -> signed", "signed -> sent", "sent -> acknowledged",
                 "sent -> acknowledged", "imported -> declared", "declared -> customs-accepted",
                 "released -> closed"):
        assert step in trace


def test_rejection_legacy_receipts_and_unknown_codes_and_roots_are_kept_shown_and_alarmed(ws):
    """One drain: a customs rejection (E) with its reason; a declaration answered in the legacy DEC_DATA
    form (GB2312, SEQ_NO) reaches closed; one that gets a CHANNEL swgw does not know (twice) keeps its
    state, shows the raw code on its trace and raises one alarm; a receipt of an unknown root is kept,
    routed to the unmatched outbox and alarmed."""
    ws.write_config(extra_rules="""
            [[declaration.rules]]
            when = { ClientSeqNo = "^LEG" }
            receipt_form = "legacy"
            [[declaration.rules]]
            when = { ClientSeqNo = "^UNK" }
            channels = ["7", "L", "Q9", "Q9", "J", "P", "R"]
            """)
    # this operator's signer writes the CEB-2018 form (w3.org sm2-sm3, SHA-1 digest); the sandbox checks it
    ws.config.write_text(ws.config.read_text().replace('holder = "王丹"\n', 'holder = "王丹"\nxmldsig = "ceb-2018"\n', 1))
    ws.start_sandbox()
    ws.drop("mixed.csv", csv_rows(1, prefix="REJ") + csv_rows(1, prefix="LEG").split("\n", 1)[1]
            + csv_rows(1, prefix="UNK").split("\n", 1)[1])
    (ws.exchange / "from-sw").mkdir(parents=True, exist_ok=True)
    unknown_root = ROOT / "tests" / "fixtures" / "receipts" / "generic_unknown.xml"
    (ws.exchange / "from-sw" / "CusTaxReturn_1.xml").write_bytes(unknown_root.read_bytes())
    drain(ws)
    states = {r["key"]: r["state"] for r in ws.status()}
    assert states == {"REJ0000000": "rejected", "LEG0000000": "closed", "UNK0000000": "closed"}
    last = etree.parse(str(sorted(ws.outbox.glob("REJ0000000.dec-result.*.xml"))[-1]))
    assert last.findtext(".//CHANNEL") == "E" and last.findtext(".//NOTE") == "申报要素不全"
    assert "申报要素不全" in ws.swgw("trace", "REJ0000000", check=True).stdout
    legacy = [etree.parse(str(p)) for p in sorted(ws.outbox.glob("LEG0000000.dec-result.*.xml"))]
    assert [d.getroot().tag for d in legacy] == ["DEC_DATA"] * 5
    assert legacy[0].docinfo.encoding.upper() == "GB2312" and legacy[0].findtext(".//SEQ_NO")
    trace = ws.swgw("trace", "UNK0000000", check=True).stdout
    # both Q9 receipts, each on its receipt event and in the receipt list; the flow went on past them
    assert trace.count("CHANNEL 'Q9': a code swgw does not know") == 4 and "concluded -> released" in trace
    alarms = [json.loads(p.read_text(encoding="utf-8")) for p in (ws.root / "outbox" / "alarms").glob("*.json")]
    assert sorted(a["kind"] for a in alarms) == ["unknown-receipt", "unknown-status"], alarms
    assert "'Q9'" in next(a for a in alarms if a["kind"] == "unknown-status")["message"]
    unmatched = list((ws.root / "outbox" / "unmatched").glob("unmatched.generic.*.xml"))
    assert len(unmatched) == 1 and unmatched[0].read_bytes() == unknown_root.read_bytes()
    ds = "{http://www.w3.org/2000/09/xmldsig#}"
    methods = {(etree.parse(str(p)).find(f"{ds}Signature/{ds}SignedInfo/{ds}SignatureMethod").get("Algorithm"),
                etree.parse(str(p)).find(f".//{ds}DigestMethod").get("Algorithm")) for p in ws.received_envelopes()}
    assert methods == {("http://www.w3.org/2000/09/xmldsig#sm2-sm3", "http://www.w3.org/2000/09/xmldsig#sha1")}


def test_bad_row_rejects_only_its_declaration_with_a_located_report(ws):
    ws.start_sandbox()
    text = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    bad = text[3].split(",")  # row 4: the second declaration
    header = text[0].split(",")
    bad[header.index("unit")] = "999"
    bad[header.index("hs_code")] = "845811"
    bad[header.index("qty")] = "two"
    bad[header.index("goods_name")] = ""
    text[3] = ",".join(bad)
    ws.drop("mixed.csv", "\n".join(text) + "\n")
    drain(ws)
    states = {r["key"]: r["state"] for r in ws.status()}
    assert states == {"DL2026110100001": "closed", "DL2026110100002": "invalid"}
    assert [client_seq_of(p) for p in ws.received_envelopes()] == ["DL2026110100001"]
    report = json.loads((ws.inbox / ".error" / "mixed.csv.error.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "partial"
    assert [a["key"] for a in report["accepted"]] == ["DL2026110100001"]
    (rejected,) = report["rejected"]
    errs = {e["field"]: e for e in rejected["errors"]}
    assert {f: (e["row"], e["column"], e["rule"], e["value"]) for f, e in errs.items()} == {
        "DecList/GUnit": (4, "unit", "code", "999"),
        "DecList/CodeTS": (4, "hs_code", "pattern", "845811"),
        "DecList/GQty": (4, "qty", "type", "two"),
        "DecList/GName": (4, "goods_name", "required", ""),
    }
    trace = ws.swgw("trace", "DL2026110100002", check=True).stdout
    assert "row 4" in trace and "hs_code" in trace and "HS code must be 10 digits" in trace


def test_a_file_still_being_written_is_not_taken(tmp_path, pki):
    ws = Workspace(tmp_path, pki, stable_seconds=1.0)
    try:
        ws.start_sandbox()
        ws.start_daemon()
        data = csv_rows(4, lines=3, prefix="SLOW").encode()
        ws.inbox.mkdir(parents=True, exist_ok=True)
        chunks = [data[i:i + 120] for i in range(0, len(data), 120)]
        with open(ws.inbox / "slow.csv", "wb") as fh:
            for chunk in chunks:  # ~4 s of writing, a pause (0.25 s) far below stable_seconds
                fh.write(chunk)
                fh.flush()
                time.sleep(4.0 / len(chunks))
                assert (ws.inbox / "slow.csv").exists(), "the daemon took a file that was still being written"
        wait_for(lambda: len(ws.status()) == 4 and all(r["state"] == "closed" for r in ws.status()), 60,
                 what="4 declarations closed")
        assert not (ws.inbox / ".error").exists()
        assert len(ws.received_envelopes()) == 4
    finally:
        ws.stop_all()


def test_same_content_dropped_twice_is_sent_once(ws):
    ws.start_sandbox()
    ws.drop("a.csv", SAMPLE_CSV.read_bytes())
    drain(ws)
    ws.drop("a-again.csv", SAMPLE_CSV.read_bytes())
    drain(ws)
    assert len(ws.received_envelopes()) == 2
    assert len(ws.status()) == 2
    archived = sorted(p.name for p in (ws.inbox / ".archive").rglob("*.csv"))
    assert archived == ["a-again.csv", "a.csv"]
    # the same declaration inside a different file is not sent again either
    ws.drop("b.csv", SAMPLE_CSV.read_text(encoding="utf-8") + "\n\n")
    drain(ws)
    assert len(ws.received_envelopes()) == 2


# failpoint -> which hit kills: per file (intake), per batch commit (sign, receipts), per item (the rest)
FAILPOINTS = {"after-claim": 2, "after-intake-commit": 2, "after-sign-commit": 1, "after-send": 2,
              "before-receipt-commit": 2, "after-receipt-commit": 1, "after-route-write": 2}


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_kill_9_at_each_stage_then_restart_sends_each_declaration_exactly_once(ws, failpoint):
    ws.start_sandbox()
    ws.drop("one.csv", csv_rows(3, prefix="KA"))
    ws.drop("two.csv", csv_rows(3, prefix="KB"))
    first = ws.swgw("run", "--drain", "--timeout", "60",
                    env={"SWGW_FAILPOINTS": f"{failpoint}={FAILPOINTS[failpoint]}"})
    assert first.returncode == -signal.SIGKILL, f"the failpoint was not reached: {first.stdout}{first.stderr}"
    if failpoint in ("after-receipt-commit", "before-receipt-commit"):
        pending = list((ws.exchange / "from-sw").glob("*.xml"))
        assert pending, "the receipt being processed is still on the exchange after the crash"
    drain(ws)
    envelopes = ws.received_envelopes()
    keys = [client_seq_of(p) for p in envelopes]
    assert sorted(keys) == sorted(f"K{f}{i:07d}" for f in "AB" for i in range(3)), "each declaration exactly once"
    statuses = ws.status()
    assert len(statuses) == 6 and {r["state"] for r in statuses} == {"closed"}
    # the CopMsgId the peer archived is the one in the store
    assert {p.stem for p in envelopes} == {r["cop_msg_id"] for r in statuses}
    dup_log = ws.received / "duplicates.log"
    if dup_log.exists():
        dup_ids = {line.split()[1] for line in dup_log.read_text().splitlines()}
        assert dup_ids <= {p.stem for p in envelopes}, "a re-send carries the original CopMsgId"
    assert receipts_by_key(ws) == {r["key"]: collections.Counter(PER_DECLARATION) for r in statuses}


def test_receipts_are_in_the_store_before_they_leave_the_exchange(ws):
    ws.start_sandbox()
    ws.drop("one.csv", csv_rows(1, prefix="RC"))
    first = ws.swgw("run", "--drain", "--timeout", "60", env={"SWGW_FAILPOINTS": "after-receipt-commit=1"})
    assert first.returncode == -signal.SIGKILL
    pending = {p.name: p.read_bytes() for p in (ws.exchange / "from-sw").glob("*.xml")}
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT remote_name, raw FROM receipts")).all()
    engine.dispose()
    assert stored, "killed right after the first batch of receipts was committed, before their removal"
    for receipt in stored:
        assert receipt.remote_name in pending, "committed, and still on the exchange"
        if receipt.remote_name.startswith("DxpRep"):
            assert receipt.raw == pending[receipt.remote_name]  # a DxpRep is stored as it came
    drain(ws)
    with sa.create_engine(ws.store_url).connect() as c:
        n = c.execute(sa.text("SELECT count(*) FROM receipts")).scalar_one()
    assert n == 7 and not list((ws.exchange / "from-sw").glob("*.xml"))   # DxpRep, import, 7 L J P R


def test_random_kills_under_load_lose_and_duplicate_nothing(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    try:
        ws.start_sandbox()
        for f in range(4):
            ws.drop(f"batch{f}.csv", csv_rows(10, lines=2, prefix=f"R{f}"))
        for delay in (0.8, 1.3, 0.6):
            daemon = ws.start_daemon()
            time.sleep(delay)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        drain(ws)
        keys = [client_seq_of(p) for p in ws.received_envelopes()]
        assert len(keys) == 40 and len(set(keys)) == 40
        assert {r["state"] for r in ws.status()} == {"closed"} and len(ws.status()) == 40
    finally:
        ws.stop_all()


def test_tampered_envelopes_are_answered_1004_and_1001(ws):
    ws.drop("two.csv", csv_rows(2, prefix="TMP"))
    held = ws.swgw("run", "--drain", "--timeout", "4")  # no peer yet: the envelopes wait on the exchange
    assert held.returncode == 1
    sent = {r["key"]: r["cop_msg_id"] for r in ws.status()}
    data_file = ws.exchange / "to-sw" / f"{sent['TMP0000000']}.xml"
    sig_file = ws.exchange / "to-sw" / f"{sent['TMP0000001']}.xml"
    root = etree.parse(str(data_file)).getroot()
    data = root.find(f"{DXP}Data")
    data.text = base64.b64encode(base64.b64decode(data.text).replace(b"<GQty>10</GQty>", b"<GQty>99</GQty>")).decode()
    data_file.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    root = etree.parse(str(sig_file)).getroot()
    sv = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    raw = bytearray(base64.b64decode(sv.text))
    raw[5] ^= 0xFF
    sv.text = base64.b64encode(bytes(raw)).decode()
    sig_file.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    ws.start_sandbox()
    drain(ws)
    states = {r["key"]: (r["state"], r["last_receipt"]) for r in ws.status()}
    assert states["TMP0000000"][0] == "rejected" and "DxpRep 1004" in states["TMP0000000"][1]
    assert states["TMP0000001"][0] == "rejected" and "DxpRep 1001" in states["TMP0000001"][1]
    assert ws.received_envelopes() == [], "the peer accepted neither"


def test_resend_sends_again_with_the_same_copmsgid_and_refuses_answered_ones(ws):
    ws.drop("one.csv", csv_rows(1, prefix="RSD"))
    held = ws.swgw("run", "--drain", "--timeout", "3")  # no peer: the envelope waits, the message is sent
    assert held.returncode == 1
    (row,) = ws.status()
    assert row["state"] == "sent"
    pending = ws.exchange / "to-sw" / f"{row['cop_msg_id']}.xml"
    pending.unlink()  # the exchange lost it
    out = ws.swgw("resend", "RSD0000000", check=True)
    assert row["cop_msg_id"] in out.stdout
    ws.start_sandbox()
    drain(ws)
    (row2,) = ws.status()
    assert row2["state"] == "closed" and [p.stem for p in ws.received_envelopes()] == [row["cop_msg_id"]]
    again = ws.swgw("resend", "RSD0000000")
    assert again.returncode == 1 and "answered it already" in again.stderr
    assert "resend requested by operator" in ws.swgw("trace", "RSD0000000", check=True).stdout
