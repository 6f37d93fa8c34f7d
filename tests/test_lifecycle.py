"""The receipt lifecycle through the real daemon and sandbox: overdue receipts, resends,
transmit retries with backoff, subscriptions, housekeeping, graceful shutdown."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import time
import uuid
import zipfile

import pytest
import sqlalchemy as sa

from support import SAMPLE_CSV, Workspace, csv_rows, postgres_database, wait_for

SILENT = """
[[declaration.rules]]
when = { ClientSeqNo = "^SIL" }
silent = true
"""
AMQP_URL = "amqp://guest@127.0.0.1:5672/%2F"
ENV = {"SWGW_TEST_AMQP_PASSWORD": "guest"}


def configure(ws: Workspace, lifecycle: str = "", deadlines: str = "") -> None:
    """Append [lifecycle] settings and the declaration's deadlines to the workspace config."""
    text = ws.config.read_text()
    text += "\n[lifecycle]\nsweep_interval = 0.3\nsubscription_reload = 0.3\n" + lifecycle.strip() + "\n"
    if deadlines:
        text += "\n[documents.declaration.deadlines]\n" + deadlines.strip() + "\n"
    ws.config.write_text(text)
    # the schema first: a daemon and a CLI both creating it on a fresh database would race
    ws.swgw("db", "upgrade", check=True)


def row(ws: Workspace, key: str) -> dict:
    return next(r for r in ws.status() if r["key"] == key)


def state_of(ws: Workspace, key: str):
    rows = [r for r in ws.status() if r["key"] == key]
    return rows[0]["state"] if rows else None


def alarms(ws: Workspace, kind: str) -> list[dict]:
    folder = ws.root / "outbox" / "alarms"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob(f"*-{kind}.json"))]


def trace(ws: Workspace, ref: str) -> str:
    return ws.swgw("trace", ref, check=True).stdout


@pytest.fixture
def ws(tmp_path, pki):
    w = Workspace(tmp_path, pki, extra_rules=SILENT)
    yield w
    w.stop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ws(request, tmp_path, pki):
    """A workspace on SQLite, then on PostgreSQL (the job store and pruning on both)."""
    if request.param == "sqlite":
        w = Workspace(tmp_path, pki, extra_rules=SILENT)
        yield w
        w.stop_all()
        return
    with postgres_database() as url:
        w = Workspace(tmp_path, pki, store_url=url, extra_rules=SILENT)
        yield w
        w.stop_all()


@pytest.fixture
def rabbit():
    """A channel on the machine's RabbitMQ and a fresh queue name, deleted afterwards."""
    pika = pytest.importorskip("pika")
    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=0"))
    ch = conn.channel()
    names = []

    def new_queue(prefix: str) -> str:
        names.append(f"{prefix}.{uuid.uuid4().hex[:8]}")
        ch.queue_declare(names[-1], durable=True)  # as the gateway declares it
        return names[-1]

    yield ch, new_queue
    for name in names:
        ch.queue_delete(name)
    conn.close()


def drain_queue(ch, queue: str) -> list[tuple]:
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((props, body))


# -- deadlines ----------------------------------------------------------------------
def test_silent_authority_is_flagged_overdue_alarmed_and_reported(ws, rabbit):
    ch, new_queue = rabbit
    alarm_queue = new_queue("swgw.test.alarms")
    configure(ws, f"""
        [lifecycle.amqp]
        url = "{AMQP_URL}"
        password = {{ env = "SWGW_TEST_AMQP_PASSWORD" }}
        alarm_queue = "{alarm_queue}"
        """, "platform_response = 1\nauthority_response = 2\nfinal = 120")
    ws.start_sandbox()
    ws.start_daemon(env=ENV)
    ws.drop("silent.csv", csv_rows(1, prefix="SIL"))
    ws.drop("fine.csv", csv_rows(1, prefix="OK"))
    wait_for(lambda: state_of(ws, "OK0000000") == "closed", 30, what="the answered declaration closed")
    # the platform answered (DxpRep), the customs never do: past 2 s it is overdue for the authority
    wait_for(lambda: (row(ws, "SIL0000000")["overdue"] == "authority-response"), 15, what="overdue flag")
    overdue = json.loads(ws.swgw("status", "--overdue", "--json", check=True).stdout)
    assert [r["key"] for r in overdue] == ["SIL0000000"]
    assert overdue[0]["state"] == "acknowledged" and overdue[0]["overdue_since"]
    table = ws.swgw("status", "--overdue", check=True).stdout
    assert "SIL0000000" in table and "OVERDUE: authority-response" in table and "OK0000000" not in table
    assert "overdue: no response from the authority within 2s" in trace(ws, "SIL0000000")
    (alarm,) = [a for a in alarms(ws, "overdue") if a["business_key"] == "SIL0000000"]
    assert alarm["step"] == "authority-response" and alarm["cop_msg_id"] == overdue[0]["cop_msg_id"]
    got = wait_for(lambda: drain_queue(ch, alarm_queue), 10, what="the alarm on its queue")
    assert json.loads(got[0][1])["business_key"] == "SIL0000000" and got[0][0].type == "overdue"
    # the platform did answer: nothing is re-sent, and the answered declaration is not flagged
    assert "resend" not in trace(ws, "SIL0000000")
    assert len(ws.received_envelopes()) == 2
    assert row(ws, "OK0000000")["overdue"] is None
    assert not [a for a in alarms(ws, "overdue") if a["business_key"] == "OK0000000"]


def test_unanswered_declaration_is_resent_with_the_same_copmsgid_up_to_the_limit(ws):
    configure(ws, "", "platform_response = 2\nmax_resends = 1")
    ws.start_daemon()
    ws.drop("one.csv", csv_rows(1, prefix="LOST"))
    envelope = wait_for(lambda: next((ws.exchange / "to-sw").glob("*.xml"), None), 20, interval=0.02,
                        what="the envelope on the exchange")
    original = envelope.read_bytes()
    envelope.unlink()  # the exchange lost it; nobody will ever answer
    sent = row(ws, "LOST0000000")
    assert sent["state"] == "sent" and envelope.stem == sent["cop_msg_id"]
    wait_for(envelope.exists, 10, what="the automatic resend")
    assert envelope.read_bytes() == original, "resent as it was signed: same CopMsgId, same envelope"
    r = wait_for(lambda: (x := row(ws, "LOST0000000"))["overdue"] and x, 10, what="overdue flag")
    assert r["overdue"] == "platform-response" and r["resends"] == 1
    text = trace(ws, "LOST0000000")
    assert "resend 1 of 1: no platform response within 2s (same CopMsgId" in text
    assert "no longer overdue" not in text, "a resend restarts the clock, not the wait"
    # the limit: lost again, it is not re-sent a second time, it stays overdue
    envelope.unlink()
    time.sleep(4.5)
    assert not envelope.exists()
    r = row(ws, "LOST0000000")
    assert r["resends"] == 1 and r["overdue"] == "platform-response" and r["state"] == "sent"
    # the operator resends on purpose; the peer answers; the flag clears itself
    out = ws.swgw("resend", "LOST0000000", check=True).stdout
    assert sent["cop_msg_id"] in out
    wait_for(envelope.exists, 10, what="the operator's resend")
    ws.start_sandbox()
    wait_for(lambda: state_of(ws, "LOST0000000") == "closed", 30, what="closed after the resend")
    wait_for(lambda: row(ws, "LOST0000000")["overdue"] is None, 10, what="flag cleared")
    assert ws.swgw("status", "--overdue", check=True).stdout.strip() == "no overdue messages"
    text = trace(ws, "LOST0000000")
    assert "no longer overdue (platform-response)" in text and "resend requested by operator" in text
    assert [p.stem for p in ws.received_envelopes()] == [sent["cop_msg_id"]]


# -- retries ------------------------------------------------------------------------
def test_transmit_retries_back_off_then_fail_with_the_reason_and_resend_recovers(ws):
    configure(ws, "[lifecycle.retries]\ninitial = 0.3\nfactor = 2\nmax = 1\nlimit = 4")
    to_sw = ws.exchange / "to-sw"
    ws.start_daemon()
    wait_for(to_sw.is_dir, 20, what="the daemon opened its transport")
    time.sleep(0.5)
    shutil.rmtree(to_sw)
    to_sw.write_text("not a folder")  # the exchange is broken: every send fails
    ws.drop("one.csv", csv_rows(1, prefix="RTY"))
    wait_for(lambda: state_of(ws, "RTY0000000") == "failed", 30, what="failed after the retries")
    text = trace(ws, "RTY0000000")
    for n, wait in ((1, "0.3s"), (2, "0.6s"), (3, "1s")):  # 0.3 × 2^n, at most 1 s
        assert f"attempt {n} of 4 via exchange failed" in text and f"next attempt in {wait}" in text
    assert "signed -> failed" in text and "gave up after 4 attempts (limit 4)" in text
    retry_times = [line.split()[1] for line in text.splitlines() if "transmit-retry" in line]
    assert len(retry_times) == 3
    r = row(ws, "RTY0000000")
    assert r["next_attempt_at"] is None and "failed" in r["last_receipt"]
    (alarm,) = alarms(ws, "transmit-failed")
    assert alarm["business_key"] == "RTY0000000" and "cannot write" in alarm["message"]
    doctor = ws.swgw("doctor")
    assert doctor.returncode == 1 and "FAIL transport exchange: folder outgoing" in doctor.stdout
    assert "0 overdue (swgw status --overdue), 1 failed (swgw resend --all-failed)" in doctor.stdout
    assert "job swgw-deadlines: next run" in doctor.stdout
    # fixed, resent on purpose: it goes out with the same CopMsgId and closes
    to_sw.unlink()
    to_sw.mkdir()
    out = ws.swgw("resend", "--all-failed", check=True).stdout
    assert out.startswith("1 failed message(s) queued to send again") and r["cop_msg_id"] in out
    ws.start_sandbox()
    wait_for(lambda: state_of(ws, "RTY0000000") == "closed", 30, what="closed after the resend")
    assert [p.stem for p in ws.received_envelopes()] == [r["cop_msg_id"]]


def test_backoff_spaces_the_attempts_out(ws):
    configure(ws, "[lifecycle.retries]\ninitial = 0.5\nfactor = 3\nmax = 10\nlimit = 3")
    to_sw = ws.exchange / "to-sw"
    ws.start_daemon()
    wait_for(to_sw.is_dir, 20, what="the daemon opened its transport")
    time.sleep(0.5)
    shutil.rmtree(to_sw)
    to_sw.write_text("not a folder")
    ws.drop("one.csv", csv_rows(1, prefix="BO"))
    wait_for(lambda: state_of(ws, "BO0000000") == "failed", 30, what="failed")
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        times = [r.at for r in c.execute(sa.text(
            "SELECT e.at FROM events e JOIN messages m ON m.id = e.message_id WHERE m.business_key = 'BO0000000' "
            "AND (e.kind = 'transmit-retry' OR e.to_state = 'failed' AND e.kind = 'state') ORDER BY e.id"))]
    engine.dispose()
    times = [dt.datetime.fromisoformat(t) if isinstance(t, str) else t for t in times]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert len(gaps) == 2
    assert 0.4 <= gaps[0] < 1.4, gaps      # 0.5 s after the first failure
    assert 1.4 <= gaps[1] < 2.5, gaps      # 1.5 s after the second
    # fixed, and sent as a new submission: a new CopMsgId, signed again; the old one still finds it
    old = row(ws, "BO0000000")["cop_msg_id"]
    to_sw.unlink()
    to_sw.mkdir()
    out = ws.swgw("resend", "BO0000000", "--new-submission", check=True).stdout
    ws.start_sandbox()
    wait_for(lambda: state_of(ws, "BO0000000") == "closed", 30, what="closed")
    new = row(ws, "BO0000000")["cop_msg_id"]
    assert new != old and f"as a new submission with CopMsgId {new}" in out
    assert [p.stem for p in ws.received_envelopes()] == [new]
    text = trace(ws, old)
    assert f"new submission: CopMsgId {old} -> {new} (signed again)" in text
    assert text.count("prepared -> signed") == 2
    again = ws.swgw("resend", "BO0000000", "--new-submission")
    assert again.returncode == 1 and "the authority has taken it" in again.stderr


# -- subscriptions ------------------------------------------------------------------
def changes(log) -> list[int]:
    """The rule counts of the daemon's "subscriptions changed" log lines."""
    return [json.loads(line)["rules"] for line in list(log) if '"subscriptions changed"' in line]


def reloaded(log, rules: int, after: int = 0) -> None:
    wait_for(lambda: len(changes(log)) > after and changes(log)[-1] == rules, 10, what=f"{rules} rules reloaded")


def test_subscriptions_copy_matching_receipts_and_follow_changes_without_restart(ws, rabbit):
    ch, new_queue = rabbit
    queue = new_queue("swgw.test.sub")
    configure(ws, f"""
        [lifecycle.amqp]
        url = "{AMQP_URL}"
        password = {{ env = "SWGW_TEST_AMQP_PASSWORD" }}
        """)
    ws.start_sandbox()
    log = follow(ws.start_daemon(env=ENV))
    wait_for(lambda: any("scheduler started" in line for line in log), 20, what="the daemon")
    subs = ws.root / "subs"
    out = ws.swgw("subscribe", "--key", "SUB0000000", "--kinds", "dec-result", "--folder", str(subs / "by-key"),
                  check=True).stdout
    by_key = int(out.split()[1].rstrip(":"))
    ws.swgw("subscribe", "--enterprise", "2102930001", "--kinds", "dxp-rep", "--folder", str(subs / "by-ent"),
            check=True)
    ws.swgw("subscribe", "--operator", "王丹", "--kinds", "import-response", "--queue", queue, env=ENV, check=True)
    listed = json.loads(ws.swgw("subscriptions", "--json", check=True).stdout)
    assert [(s["key"], s["enterprise"], s["operator"], s["kinds"]) for s in listed] == [
        ("SUB0000000", None, None, ["dec-result"]), (None, "2102930001", None, ["dxp-rep"]),
        (None, None, "王丹", ["import-response"])]
    assert listed[2]["queue"] == queue and listed[0]["folder"] == str(subs / "by-key")
    reloaded(log, 3)  # the running daemon re-read the rules
    ws.drop("subs.csv", csv_rows(2, prefix="SUB"))
    wait_for(lambda: {r["state"] for r in ws.status()} == {"closed"} and len(ws.status()) == 2, 30,
             what="both closed")
    wait_for(lambda: len(list((subs / "by-key").glob("*.xml"))) == 5, 10, what="the key's copies")
    key_files = sorted(p.name for p in (subs / "by-key").glob("*.xml"))
    assert all(n.startswith("SUB0000000.dec-result.") for n in key_files)
    for name in key_files:  # the same bytes as the outbox copy
        assert (subs / "by-key" / name).read_bytes() == (ws.outbox / name).read_bytes()
    assert sorted(p.name.split(".")[:2] for p in (subs / "by-ent").glob("*.xml")) == [
        ["SUB0000000", "dxp-rep"], ["SUB0000001", "dxp-rep"]]
    got = wait_for(lambda: (m := drain_queue(ch, queue)) and len(m) >= 2 and m or None, 10, what="queue copies")
    assert sorted(p.correlation_id for p, _ in got) == ["SUB0000000", "SUB0000001"]
    assert {p.type for p, _ in got} == {"import-response"} and all(b"DecImportResponse" in b for _, b in got)
    assert "subscription 1: dec-result receipt" in trace(ws, "SUB0000000")
    # removed while the daemon runs: no more copies there; the others keep theirs
    assert ws.swgw("unsubscribe", str(by_key), check=True).stdout.strip() == f"subscription {by_key} removed"
    assert ws.swgw("unsubscribe", "999").returncode == 1
    seen = len(changes(log))
    ws.swgw("subscribe", "--key", "SUB0000001", "--folder", str(subs / "late"), check=True)
    reloaded(log, 3, after=seen)
    ws.drop("more.csv", csv_rows(1, prefix="SUB0"))  # SUB00000000: matches no key rule
    ws.drop("again.csv", csv_rows(1, prefix="SUC"))
    wait_for(lambda: len(ws.status()) == 4 and {r["state"] for r in ws.status()} == {"closed"}, 30,
             what="the later ones closed")
    wait_for(lambda: len(list((subs / "by-ent").glob("*.xml"))) == 4, 10, what="enterprise copies")
    assert len(list((subs / "by-key").glob("*.xml"))) == 5, "an unsubscribed rule gets nothing more"
    assert not (subs / "late").exists(), "a new key rule matches only its key"
    assert "subscription" in ws.swgw("subscriptions", check=True).stdout


def test_subscribe_refuses_unclear_rules(ws):
    out = ws.swgw("subscribe", "--folder", "x")
    assert out.returncode == 2 and "--key, --enterprise and/or --operator" in out.stderr
    out = ws.swgw("subscribe", "--key", "A", "--folder", "x", "--queue", "q")
    assert out.returncode == 2 and "exactly one target" in out.stderr
    out = ws.swgw("subscribe", "--key", "A", "--queue", "q")
    assert out.returncode == 2 and "[lifecycle.amqp]" in out.stderr
    assert ws.swgw("subscriptions", check=True).stdout.strip() == "no subscriptions"


# -- housekeeping -------------------------------------------------------------------
def test_housekeeping_archives_then_prunes_payloads_and_drop_files_keeping_the_event_log(any_ws):
    ws = any_ws
    configure(ws, "[lifecycle.housekeeping]\ninterval = 0.5\npayload_age = 1\ninbox_archive_age = 1")
    ws.start_sandbox()
    ws.start_daemon()
    ws.drop("declaration.csv", SAMPLE_CSV.read_bytes())
    wait_for(lambda: len(ws.status()) == 2 and all(r["pruned_at"] for r in ws.status()), 40,
             what="payloads pruned")
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        msgs = c.execute(sa.text("SELECT id, cop_msg_id, document, envelope FROM messages")).all()
        raws = c.execute(sa.text("SELECT raw, pruned_at FROM receipts")).all()
        n_events = c.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    assert all(m.document is None and m.envelope is None for m in msgs)
    assert len(raws) == 14 and all(r.raw == b"" and r.pruned_at is not None for r in raws)
    zips = sorted((ws.var / "archive").rglob("payloads-*.zip"))
    assert zips
    names: dict[str, bytes] = {}
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            names.update({n: zf.read(n) for n in zf.namelist()})
    for env in ws.received_envelopes():  # what the peer got is in the archive, byte for byte
        (name,) = [n for n in names if n.endswith(f"{env.stem}.envelope.xml")]
        assert names[name] == env.read_bytes()
    assert len([n for n in names if n.startswith("receipts/")]) == 14
    assert sum(1 for n in names if n.endswith(".document.xml")) == 2
    # archived drop files: zipped, then gone from inbox/declaration/.archive
    wait_for(lambda: not [p for p in (ws.inbox / ".archive").rglob("*") if p.is_file()], 10,
             what="archived drop files pruned")
    drops = sorted((ws.var / "archive").rglob("drop-files-*.zip"))
    with zipfile.ZipFile(drops[0]) as zf:
        (member,) = [n for n in zf.namelist() if n.endswith("declaration.csv")]
        assert zf.read(member) == SAMPLE_CSV.read_bytes()
    # the audit trail is whole, and says what happened
    text = trace(ws, "DL2026110100001")
    for step in ("received -> prepared", "signed -> sent", "released -> closed", "payloads pruned by housekeeping"):
        assert step in text
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM events")).scalar_one() >= n_events
        summary = c.execute(sa.text("SELECT detail FROM events WHERE kind = 'housekeeping'")).scalars().all()
    engine.dispose()
    assert any("pruned payloads of 2 messages and 14 receipts" in s for s in summary)


# -- shutdown and persistence -------------------------------------------------------
def _jobs(ws: Workspace) -> dict[str, float]:
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    engine.dispose()
    return dict(rows)


class follow:
    """The lines a process has logged so far (support.Workspace logs each process to a file)."""

    def __init__(self, proc):
        self.proc = proc

    def __iter__(self):
        return iter(Workspace.output(self.proc).splitlines())


def test_sigterm_stops_cleanly_and_persisted_jobs_keep_their_times_across_a_restart(any_ws):
    ws = any_ws
    configure(ws, "shutdown_timeout = 10\n[lifecycle.housekeeping]\ninterval = 3600")
    ws.start_sandbox()
    daemon = ws.start_daemon()
    log = follow(daemon)
    ws.drop("one.csv", csv_rows(3, prefix="SIG"))
    # housekeeping runs 5 s after the first start, then hourly
    wait_for(lambda: _jobs(ws).get("swgw-housekeeping", 0) > time.time() + 3000, 20, what="the first housekeeping")
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    text = "\n".join(log)
    assert '"stopping"' in text and "Traceback" not in text, text[-4000:]
    jobs = _jobs(ws)
    assert set(jobs) == {"swgw-deadlines", "swgw-housekeeping"}
    first = jobs["swgw-housekeeping"]
    daemon = ws.start_daemon()
    log = follow(daemon)
    wait_for(lambda: any("scheduler started" in line for line in log), 20, what="the restarted scheduler")
    wait_for(lambda: {r["state"] for r in ws.status()} == {"closed"}, 30, what="all closed")
    assert _jobs(ws)["swgw-housekeeping"] == first, "the restart kept the job's next run time"
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0


def test_sigterm_during_a_hung_send_parks_within_the_timeout_and_the_restart_sends_once(ws):
    configure(ws, "shutdown_timeout = 2")
    daemon = ws.start_daemon(env={"SWGW_FAILPOINTS": "after-send=1:stall"})
    ws.drop("one.csv", csv_rows(1, prefix="HUNG"))
    # the folder transport writes the batch's files now and shows them at its flush, after the stall
    wait_for(lambda: list((ws.exchange / "to-sw").glob(".*.xml.*.tmp")), 20, what="the send in progress")
    time.sleep(0.5)
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 3, "past the shutdown timeout the daemon exits 3"
    assert 1.5 < time.monotonic() - started < 6
    assert "shutdown took longer than the timeout" in Workspace.output(daemon)
    (r,) = ws.status()
    assert r["state"] == "signed", "not recorded as sent: parked, to go again"
    ws.start_sandbox()
    ws.start_daemon()
    wait_for(lambda: state_of(ws, "HUNG0000000") == "closed", 30, what="closed after the restart")
    assert [p.stem for p in ws.received_envelopes()] == [r["cop_msg_id"]], "sent once, same CopMsgId"


def test_lifecycle_config_errors_name_the_key(ws):
    ws.config.write_text(ws.config.read_text() + '\n[lifecycle]\nsweep_interval = "soon"\n')
    out = ws.swgw("doctor")   # status reads the store alone; the commands that load the config check it
    assert out.returncode == 2 and "[lifecycle.sweep_interval]" in out.stderr and "'15m'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_subscription_that_cannot_deliver_is_recorded_and_alarmed_the_receipt_still_routed(ws):
    configure(ws)
    blocked = ws.root / "blocked"
    blocked.write_text("a file where the folder should be")
    ws.swgw("subscribe", "--enterprise", "91210200MA0QC8N67X", "--kinds", "dxp-rep", "--folder",
            str(blocked / "sub"), check=True)
    ws.start_sandbox()
    ws.start_daemon()
    ws.drop("one.csv", csv_rows(1, prefix="BLK"))
    wait_for(lambda: state_of(ws, "BLK0000000") == "closed", 30, what="closed")
    assert len(ws.outbox_files()) == 7, "every receipt reached the outbox"
    text = trace(ws, "BLK0000000")
    assert "subscription-failed" in text and "not delivered to folder" in text
    (alarm,) = alarms(ws, "subscription-failed")
    assert alarm["business_key"] == "BLK0000000" and alarm["subscription"] == 1


def test_a_queue_copy_waits_while_the_broker_is_away_and_goes_after_the_restart(ws, rabbit):
    ch, new_queue = rabbit
    queue = new_queue("swgw.test.wait")
    configure(ws, """
        [lifecycle.amqp]
        url = "amqp://guest@127.0.0.1:1/%2F"
        password = { env = "SWGW_TEST_AMQP_PASSWORD" }
        [lifecycle.retries]
        initial = 0.3
        max = 1
        """)
    ws.swgw("subscribe", "--key", "WAIT0000000", "--kinds", "dec-result", "--queue", queue, check=True)
    ws.start_sandbox()
    daemon = ws.start_daemon(env=ENV)
    ws.drop("one.csv", csv_rows(1, prefix="WAIT"))
    wait_for(lambda: state_of(ws, "WAIT0000000") == "closed", 30, what="closed")
    assert len(ws.outbox_files()) == 7, "the outbox does not wait for the subscription"
    wait_for(lambda: trace(ws, "WAIT0000000").count("subscription-waiting") == 5, 10, what="5 copies waiting")
    assert "cannot connect" in trace(ws, "WAIT0000000")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0
    # the broker is reachable now (the config pointed at a closed port): after the restart they go
    ws.config.write_text(ws.config.read_text().replace("127.0.0.1:1/", "127.0.0.1:5672/"))
    ws.start_daemon(env=ENV)
    got: list = []
    wait_for(lambda: got.extend(drain_queue(ch, queue)) or len(got) >= 5, 20, what="the 5 waiting copies")
    assert sorted(p.correlation_id for p, _ in got) == ["WAIT0000000"] * 5
    assert {p.type for p, _ in got} == {"dec-result"}
    wait_for(lambda: "failed attempt(s))" in trace(ws, "WAIT0000000"), 10, what="delivery recorded")
    engine = sa.create_engine(ws.store_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM subscription_pending")).scalar_one() == 0
    engine.dispose()
