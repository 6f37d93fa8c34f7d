"""The signing workers of one software key: two threads sign its messages side by side, each
message once — on SQLite (one process, no leases) and on PostgreSQL."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from support import Workspace, csv_rows, postgres_database, wait_for
from gateway import config, intake
from gateway.runtime import Runtime
from gateway.signwork import SigningWorkers
from gateway.store import repo, states
from gateway.store.models import Event, Message


@pytest.fixture(params=["sqlite", "postgresql"])
def rt(request, tmp_path, pki):
    def opened(url):
        ws = Workspace(tmp_path, pki, store_url=url)
        r = Runtime.open(config.load(ws.config))
        dt = r.doc_types["declaration"]
        dt.source.stable_seconds = 0
        for f in range(4):   # 4 x 15 declarations, prepared
            (ws.inbox / f"f{f}.csv").write_text(csv_rows(15, prefix=f"W{f}"), encoding="utf-8")
        wait_for(lambda: intake.run_once(r) == 0 and not list(ws.inbox.glob("*.csv")), 20, 0.1, "intake")
        return r

    if request.param == "sqlite":
        r = opened(None)
        yield r
        r.close()
        return
    with postgres_database() as url:
        r = opened(url)
        yield r
        r.close()


def _signed_events(rt) -> dict[int, int]:
    with rt.sessions() as s:
        return dict(s.execute(select(Event.message_id, func.count()).where(
            Event.kind == "state", Event.to_state == states.SIGNED).group_by(Event.message_id)).all())


def test_a_software_keys_two_workers_sign_each_message_once(rt):
    with rt.sessions() as s:
        prepared = set(s.scalars(select(Message.id).where(Message.state == states.PREPARED)))
    assert len(prepared) == 60
    stop = threading.Event()
    workers = SigningWorkers(rt, stop, batch=4)   # small batches: the two threads take turns many times
    assert [t.name for t in workers.threads] == ["sign-op-0", "sign-op-1"]
    workers.start()
    workers.nudge()
    try:
        wait_for(lambda: len(_signed_events(rt)) == 60, 60, 0.1, "every message signed")
        time.sleep(0.3)   # a pass that took a message again would have recorded it by now
    finally:
        stop.set()
        workers.join()
    events = _signed_events(rt)
    assert set(events) == prepared and set(events.values()) == {1}, "each message signed once"
    with rt.sessions() as s:
        assert {m.state for m in s.scalars(select(Message))} == {states.SIGNED}
        assert all(m.envelope for m in s.scalars(select(Message)))


def test_the_workers_shares_are_apart_and_cover_every_message(rt):
    with rt.sessions() as s:
        every = list(s.scalars(repo.state_query(states.PREPARED, 1000)))
        shares = [list(s.scalars(repo.state_query(states.PREPARED, 1000, part=(i, 3)))) for i in range(3)]
    ids = [[m.id for m in share] for share in shares]
    assert sorted(sum(ids, [])) == [m.id for m in every]
    assert all(ids), "each of three workers has messages of its own"


def test_a_card_has_one_worker_and_a_key_as_many_as_configured(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    software = ws.config.read_text()
    op = software[software.index("[signers.op]"):software.index("[signers.mofcom]")]
    card = ('[signers.op]\nkind = "pcsc"\nmedia_no = "8930000012345"\npin = { env = "SWGW_TEST_PIN" }\n'
            'enterprise = "91210200MA0QC8N67X"\n')
    for text, names in ((software.replace(op, card), ["sign-op"]),
                        (software.replace(op, op + "threads = 3\n"), ["sign-op-0", "sign-op-1", "sign-op-2"])):
        ws.config.write_text(text)
        r = Runtime.open(config.load(ws.config))   # a card is opened when it first signs, not here
        try:
            assert [t.name for t in SigningWorkers(r, threading.Event()).threads] == names
        finally:
            r.close()
