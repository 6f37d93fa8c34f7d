"""Several `swgw run` processes with the same config, one PostgreSQL store and one RabbitMQ
broker: 400 declarations of two enterprises, dropped into one shared folder, each reach the
sandbox peer once — with every process working, with a worker killed mid-batch and the
leader killed, and with RabbitMQ restarted while they sign and send.

What arrived at the peer is counted from its archive (one file per CopMsgId) and its
duplicates.log (every later arrival of a CopMsgId it had, which it drops)."""
from __future__ import annotations

import base64
import re
import signal
import threading
import time

from lxml import etree

from support import Workspace, csv_rows, postgres_database, store_rows as store, use_transport, wait_for
from test_amqp_e2e import restart_rabbitmq

DXP = "{http://www.chinaport.gov.cn/dxp}"
ENT1 = "91210200MA0QC8N67X"
ENT2 = "91210200MA0QD5XY2K"
FILES, PER_FILE = 4, 50   # per enterprise: 2 x 4 x 50 = 400 declarations
N = 2 * FILES * PER_FILE
LEASE, FAILOVER = 3.0, 2.0

SECOND_ENTERPRISE = f"""
[[enterprise]]
code = "{ENT2}"
name = "大连北方机电设备进出口有限公司"
customs_code = "2102930002"
dxp_sender_id = "DXPENT0000012346"
  [[enterprise.operators]]
  name = "赵敏"
  signer = "op2"
[signers.op2]
kind = "software"
key_file = "var/keys/operator.key"
cert_file = "var/keys/operator.pem"
media_no = "8930000012346"
holder = "赵敏"
enterprise = "{ENT2}"
[cluster]
lease_seconds = {LEASE}
failover_seconds = {FAILOVER}
heartbeat_seconds = 0.5
"""


def cluster_workspace(tmp_path, pki, url, amqp_url, amqp_names) -> Workspace:
    ws = Workspace(tmp_path, pki, store_url=url, channels='["7", "L"]', delay=0.05)
    to_sw, from_sw = amqp_names("to-sw"), amqp_names("from-sw")
    use_transport(ws, f'[transports.exchange]\nkind = "amqp"\nurl = "{amqp_url}"\n'
                      f'outgoing_queue = "{to_sw}"\nincoming_queue = "{from_sw}"\n',
                  f'[transport]\nkind = "amqp"\nurl = "{amqp_url}"\n'
                  f'outgoing_queue = "{from_sw}"\nincoming_queue = "{to_sw}"\n')
    ws.config.write_text(ws.config.read_text() + SECOND_ENTERPRISE)
    ws.swgw("db", "upgrade", check=True)   # the schema, before the processes race to it
    return ws


def drop_all(ws: Workspace, again: bool = False) -> None:
    for f in range(FILES):
        ws.drop(f"ent1-{f}.csv", csv_rows(PER_FILE, lines=1, prefix=f"A{f}"))
        ws.drop(f"ent2-{f}.csv", csv_rows(PER_FILE, lines=1, prefix=f"B{f}").replace(ENT1, ENT2))
        if again:   # the ERP exports a file twice under two names: taken once, the other a duplicate
            ws.drop(f"ent1-{f}-again.csv", csv_rows(PER_FILE, lines=1, prefix=f"A{f}"))


def expected() -> list[str]:
    return sorted(f"{p}{f}{i:07d}" for p in "AB" for f in range(FILES) for i in range(PER_FILE))


def arrivals(ws: Workspace) -> tuple[list[str], list[str]]:
    """(ClientSeqNo of each envelope the peer kept, CopMsgId of each later arrival it dropped)."""
    keys = []
    for path in ws.received_envelopes():
        data = base64.b64decode(etree.parse(str(path)).getroot().findtext(f"{DXP}Data"))
        keys.append(re.search(rb"<ClientSeqNo>([^<]+)", data).group(1).decode())
    dup_log = ws.received / "duplicates.log"
    dups = [line.split()[1] for line in dup_log.read_text().splitlines()] if dup_log.exists() else []
    return keys, dups


def leader_pid(url: str) -> int | None:
    rows = store(url, "SELECT pid FROM cluster_members WHERE leader = 1 AND stopped_at IS NULL "
                      "AND heartbeat_at > now() - interval '2 seconds'")
    return rows[0][0] if len(rows) == 1 else None


def enterprise_counts(url: str) -> dict[str, int]:
    return dict(store(url, "SELECT enterprise, count(*) FROM messages GROUP BY enterprise"))


def test_three_processes_share_the_work_and_send_each_declaration_once(amqp_url, amqp_names, tmp_path, pki):
    with postgres_database() as url:
        ws = cluster_workspace(tmp_path, pki, url, amqp_url, amqp_names)
        ws.start_sandbox()
        runs = [ws.start_daemon() for _ in range(3)]
        wait_for(lambda: len(store(url, "SELECT id FROM cluster_members")) == 3, 30, 0.2, "three processes")
        time.sleep(1.0)   # a heartbeat: each has counted the others, and takes its share of the folder
        drop_all(ws, again=True)
        wait_for(lambda: len(ws.received_envelopes()) >= N, 150, 0.5, f"{N} envelopes at the peer")
        wait_for(lambda: not store(url, "SELECT id FROM messages WHERE state IN ('prepared', 'signed') "
                                        "OR last_receipt = ''"), 60, 0.5, "every message sent and answered")
        doctor = ws.swgw("doctor").stdout
        ws.stop_all()
        keys, dups = arrivals(ws)
        assert sorted(keys) == expected() and dups == [], "each declaration arrived at the peer exactly once"
        assert enterprise_counts(url) == {ENT1: N // 2, ENT2: N // 2}
        assert doctor.count("cluster member") == 3 and doctor.count(", leader,") == 1, doctor
        outcomes = dict(store(url, "SELECT outcome, count(*) FROM intake_files GROUP BY outcome"))
        assert outcomes == {"accepted": 2 * FILES, "duplicate": FILES}, outcomes
        taken = [ws.output(p).count('"file taken"') for p in runs]
        assert sum(taken) == 3 * FILES and sum(1 for t in taken if t) >= 2, f"files taken per process: {taken}"


def test_a_worker_killed_mid_batch_and_then_the_leader(amqp_url, amqp_names, tmp_path, pki):
    with postgres_database() as url:
        ws = cluster_workspace(tmp_path, pki, url, amqp_url, amqp_names)
        ws.start_sandbox()
        first = ws.start_daemon()
        wait_for(lambda: leader_pid(url) == first.pid, 30, 0.2, "the first process leading")
        # a worker that SIGKILLs itself after its 25th send, before that batch commits, and one
        # killed as soon as it has claimed its share of the folder (its files wait in its .work/)
        worker = ws.start_daemon(env={"SWGW_FAILPOINTS": "after-send=25"})
        claimer = ws.start_daemon(env={"SWGW_FAILPOINTS": "after-claim=1"})
        third = ws.start_daemon()
        wait_for(lambda: len(store(url, "SELECT id FROM cluster_members")) == 4, 30, 0.2, "four processes")
        time.sleep(1.0)   # a heartbeat: each has counted the others
        # Each dies only if it gets its work: the claimer a file, the worker 25 sends. Woken together
        # by inotify, the others took all 8 files first at times, and under load first and third
        # leased every batch before the worker had sent 25 (a CI run). So the others are paused
        # while the files come and the claimer claims, then the worker runs alone until it dies.
        # (first keeps the leader's lock while stopped: the lock is its connection's.)
        for p in (first, worker, third):
            p.send_signal(signal.SIGSTOP)
        try:
            drop_all(ws)
            claimer.wait(60)
            assert claimer.returncode == -signal.SIGKILL
            orphaned = list((ws.inbox / ".work").glob("*/*.csv"))
            assert orphaned, "the killed process left claimed files behind"
            worker.send_signal(signal.SIGCONT)
            worker.wait(120)
        finally:
            for p in (first, worker, third):
                p.send_signal(signal.SIGCONT)
        assert worker.returncode == -signal.SIGKILL
        wait_for(lambda: len(ws.received_envelopes()) >= N // 2, 120, 0.2, "half of them at the peer")
        first.send_signal(signal.SIGKILL)   # the leader, in the middle of its receipts and batches
        killed = time.monotonic()
        wait_for(lambda: leader_pid(url) == third.pid, FAILOVER + 3, 0.05, "the last process leading")
        failover = time.monotonic() - killed
        wait_for(lambda: len(ws.received_envelopes()) >= N, 150, 0.5, f"{N} envelopes at the peer")
        wait_for(lambda: not store(url, "SELECT id FROM messages WHERE state IN ('prepared', 'signed') "
                                        "OR last_receipt = ''"), 90, 0.5, "every message sent and answered")
        ws.stop_all()
        keys, dups = arrivals(ws)
        assert sorted(keys) == expected(), "each declaration reached the peer"
        assert enterprise_counts(url) == {ENT1: N // 2, ENT2: N // 2}, "each declaration taken once"
        assert not list((ws.inbox / ".work").glob("*/*.csv")), "the files claimed by the dead were taken over"
        assert "took over files claimed by a process that stopped" in ws.output(first) + ws.output(third)
        # sent but not yet recorded when a process was killed: sent again by the others after
        # its lease expired, with the same CopMsgId — the peer drops these (the existing guarantee)
        assert len(dups) == len(set(dups)) and len(dups) <= 2 * 50, dups
        assert failover <= FAILOVER + 1.0, f"failover took {failover:.1f}s"
        assert "scheduled jobs start here" in ws.output(third)


def test_rabbitmq_restarted_while_two_processes_sign_and_send(amqp_url, amqp_names, tmp_path, pki):
    with postgres_database() as url:
        ws = cluster_workspace(tmp_path, pki, url, amqp_url, amqp_names)
        ws.start_sandbox()
        runs = [ws.start_daemon() for _ in range(2)]
        wait_for(lambda: len(store(url, "SELECT id FROM cluster_members")) == 2, 30, 0.2, "two processes")
        drop_all(ws)
        wait_for(lambda: store(url, "SELECT count(*) FROM messages WHERE state = 'signed'")[0][0] > 0
                 or len(ws.received_envelopes()) >= 20, 60, 0.05, "signing under way")
        restarter = threading.Thread(target=restart_rabbitmq)
        restarter.start()
        restarter.join()
        wait_for(lambda: len(ws.received_envelopes()) >= N, 150, 0.5, f"{N} envelopes at the peer")
        wait_for(lambda: not store(url, "SELECT id FROM messages WHERE state IN ('prepared', 'signed') "
                                        "OR last_receipt = ''"), 90, 0.5, "every message sent and answered")
        assert all(p.poll() is None for p in runs), "both processes rode out the restart"
        ws.stop_all()
        keys, dups = arrivals(ws)
        assert sorted(keys) == expected(), "each declaration reached the peer"
        assert enterprise_counts(url) == {ENT1: N // 2, ENT2: N // 2}
        # a publish the broker took but could not confirm before it stopped is sent again
        assert len(dups) == len(set(dups)) and len(dups) <= 2 * 200, dups
