"""Several `swgw run` processes on one store: leases on the real PostgreSQL, the leader's
advisory lock, the process registry `swgw doctor` shows, and SQLite refusing a second process.
(The processes sharing 400 declarations over RabbitMQ: tests/transports/test_cluster_e2e.py.)"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway import cluster
from gateway.config import load
from gateway.runtime import Runtime
from gateway.store import leases, repo, states
from gateway.store.models import ClusterMember, Message
from support import Workspace, postgres_database, wait_for


def _messages(rt, n: int) -> list[int]:
    with rt.sessions.begin() as s:
        rows = [Message(doc_type="declaration", enterprise="E", business_key=f"K{i}", cop_msg_id=f"C{i:04d}",
                        state=states.SIGNED, content_sha256="x") for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [m.id for m in rows]


@pytest.fixture
def pg_rt(tmp_path, pki):
    with postgres_database() as url:
        ws = Workspace(tmp_path, pki, store_url=url)
        ws.config.write_text(ws.config.read_text() + "\n[cluster]\nlease_seconds = 1.5\nfailover_seconds = 1.5\n"
                                                     "heartbeat_seconds = 0.3\n")
        rt = Runtime.open(load(ws.config))
        yield ws, rt
        rt.close()


def test_two_batches_never_take_the_same_message_and_a_dead_owners_lease_expires(pg_rt):
    _, rt = pg_rt
    ids = _messages(rt, 10)
    a, b = leases.Lease("a", 1.5), leases.Lease("b", 1.5)
    with rt.sessions() as s1, rt.sessions() as s2:
        held_a = leases.take(s1, repo.state_query(states.SIGNED, 6), a)   # a's rows stay locked: not committed yet
        held_b = leases.take(s2, repo.state_query(states.SIGNED, 6), b)   # SKIP LOCKED: b takes the others
        s1.commit()
        s2.commit()
        got_a, got_b = {m.id for m in held_a.rows}, {m.id for m in held_b.rows}
        assert len(got_a) == 6 and len(got_b) == 4 and not got_a & got_b and got_a | got_b == set(ids)
        with rt.sessions() as s3:   # leased, committed: nobody else takes them while the leases run
            assert leases.take(s3, repo.state_query(states.SIGNED, 10), leases.Lease("c", 1.5)).rows == []
            s3.rollback()
        time.sleep(1.7)             # a "died": its lease runs out; b renews its own in time
        assert {m.id for m in held_b.renew(s2, held_b.rows)} == got_b
        with rt.sessions() as s3:
            held_c = leases.take(s3, repo.state_query(states.SIGNED, 10), leases.Lease("c", 1.5))
            s3.commit()
            assert {m.id for m in held_c.rows} == got_a, "a dead owner's messages are taken over after its lease"
        # a comes back (it only stalled): it holds nothing any more — it must neither send nor record
        assert held_a.renew(s1, held_a.rows) == []
        assert held_a.keep(s1, held_a.rows) == []
        s1.rollback()
        kept = held_b.keep(s2, held_b.rows)
        for m in kept:
            repo.transition(s2, m, states.SENT, "sent")
        s2.commit()
        assert {m.id for m in kept} == got_b
    with rt.sessions() as s:
        rows = {m.id: m for m in s.scalars(select(Message))}
        assert all(rows[i].state == states.SENT and rows[i].lease_owner == "" for i in got_b), "released at commit"
        assert all(rows[i].state == states.SIGNED and rows[i].lease_owner == "c" for i in got_a)


def test_a_batch_releasing_what_it_did_not_finish_leaves_what_the_next_stage_took_since(pg_rt):
    """One process signs and transmits with the same lease owner: a signing batch commits its
    messages signed (their leases released), the transmit batch leases them at once, and only
    then does the signing batch give back what it did not finish — that must not take the
    transmit batch's leases away (it would then see them lost and not record them sent)."""
    _, rt = pg_rt
    ids = _messages(rt, 6)
    me = leases.Lease("me", 30)
    with rt.sessions() as sign, rt.sessions() as transmit:
        signing = leases.take(sign, repo.state_query(states.SIGNED, 6), me)
        sign.commit()
        done, parked = signing.rows[:4], signing.rows[4:]   # a card went away after four
        assert signing.keep(sign, done) == done
        sign.commit()
        sending = leases.take(transmit, repo.state_query(states.SIGNED, 6), me)
        transmit.commit()
        assert {m.id for m in sending.rows} == {m.id for m in done}, "the parked two are still the signer's"
        signing.release(sign)
        assert sending.keep(transmit, sending.rows) == sending.rows, "still the transmit batch's"
        transmit.commit()
    with rt.sessions() as s:
        owners = {m.id: m.lease_owner for m in s.scalars(select(Message))}
    assert owners == {i: "" for i in ids}, "each released once, by the batch that held it"
    assert {m.id for m in parked} <= set(ids)


def test_intake_stores_of_two_processes_wait_for_each_other(pg_rt):
    import threading

    _, rt = pg_rt
    order = []
    with rt.sessions() as first:
        leases.exclusive(first, "intake declaration")

        def second():
            with rt.sessions() as s:
                leases.exclusive(s, "intake declaration", "intake origin")
                order.append("second")
                s.commit()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("first")   # still holding: the second waits
        first.commit()
        t.join(5)
    assert order == ["first", "second"]


def test_one_leader_at_a_time_and_failover_when_it_goes(pg_rt):
    ws, rt = pg_rt
    first = cluster.Member(rt).join()
    second = cluster.Member(rt)
    second.id += "-2"     # two members in one test process
    second.join()
    try:
        assert [first.leader, second.leader] == [True, False]
        first._leader_conn.invalidate()   # the leader's connection dies (its process was killed)
        first._stop.set()
        first._leader_conn = None
        started = time.monotonic()
        wait_for(lambda: second.leader, 5, 0.05, "the second member to take the lead")
        assert time.monotonic() - started <= rt.config.cluster.failover_seconds + 0.5
        with rt.sessions() as s:
            wait_for(lambda: s.get(ClusterMember, second.id, populate_existing=True).leader == 1, 5,
                     what="the new leader reported in the store")
            lines = cluster.report(s, rt.config.cluster)
        assert any(good and what.startswith("cluster member") and "leader" in detail for good, what, detail in lines)
    finally:
        second.leave()
        first.leave()


def test_doctor_lists_the_processes_and_warns_when_their_configs_differ(pg_rt):
    ws, rt = pg_rt
    other = ws.root / "other.toml"
    other.write_text(ws.config.read_text() + "\n# edited on one host only\n")
    a = ws.start_daemon()
    b = ws.start("run", "--config", str(other))
    with rt.sessions() as s:
        wait_for(lambda: len(cluster.members(s)) == 2 and s.expire_all() is None, 30, 0.2, "both processes listed")
    out = ws.swgw("doctor").stdout
    assert out.count("cluster member") == 2 and out.count(", leader,") == 1, out
    assert "FAIL cluster: processes run different configs" in out, out
    for p in (a, b):
        p.terminate()
        p.wait(10)


def test_a_second_process_on_a_sqlite_store_is_refused(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    first = ws.start_daemon()
    wait_for(lambda: (ws.var / "swgw.db.run-lock").exists() and "running" in ws.output(first), 30,
             what="the first daemon running")
    second = ws.swgw("run", timeout=60)
    assert second.returncode == 2
    assert "another `swgw run` (pid" in second.stderr and "SQLite is single-process" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert first.poll() is None, "the first one goes on"
    first.terminate()
    first.wait(10)
