"""Issue 15 whole: two `swgw run` processes on one PostgreSQL store and one RabbitMQ broker, and
two `swgw signer` card hosts — a virtual card over the real PC/SC stack for one enterprise, a
software key for the other — share 400 declarations; each reaches the sandbox peer, signed by its
enterprise's card, although one worker is SIGKILLed mid-batch and one card host is SIGKILLed and
started again while they work.

What arrived at the peer is counted from its archive (one envelope per CopMsgId) and its
duplicates.log (a later arrival of a CopMsgId it had, which it drops). Run under
`flock /tmp/swgw-pcsc.lock` when other PC/SC users share the machine."""
from __future__ import annotations

import dataclasses
import signal
import uuid

from card import testbed
from support import Workspace, postgres_database, store_rows as _store, use_transport, wait_for
from test_remote_signers import AMQP, ENT, ENT2, PIN, SECRETS, Site

FILES, PER_FILE = 4, 50          # per enterprise and file: 2 x 4 x 50 = 400 declarations
N = 2 * FILES * PER_FILE


def _duplicates(ws: Workspace) -> list[str]:
    log = ws.received / "duplicates.log"
    return [line.split()[1] for line in log.read_text().splitlines()] if log.exists() else []


def test_two_processes_and_two_card_hosts_send_400_declarations_once_through_kills(bed, pki, pki_dir, tmp_path):
    media_a = "ZKC" + uuid.uuid4().hex[:10].upper()
    spec = testbed.issue_card(pki_dir, "cluster-a", media_no=media_a, holder="王丹", enterprise=ENT, pin=PIN,
                              sign_latency_ms=2)
    spec = dataclasses.replace(spec, state_file=tmp_path / f"{media_a}.state.json")
    bed.insert(spec, slot=0)
    with postgres_database() as url:
        ws = Workspace(tmp_path / "ws", pki, store_url=url, channels='["7", "L"]', delay=0.05)
        q = uuid.uuid4().hex[:8]
        use_transport(ws, f'[transports.exchange]\nkind = "amqp"\nurl = "{AMQP}"\n'
                          f'outgoing_queue = "swgw-test-{q}-to-sw"\nincoming_queue = "swgw-test-{q}-from-sw"\n',
                      f'[transport]\nkind = "amqp"\nurl = "{AMQP}"\n'
                      f'outgoing_queue = "swgw-test-{q}-from-sw"\nincoming_queue = "swgw-test-{q}-to-sw"\n')
        site = Site(ws, spec, "ZKD" + uuid.uuid4().hex[:10].upper(), pki_dir)
        ws.config.write_text(ws.config.read_text() + "\n[cluster]\nlease_seconds = 3.0\nfailover_seconds = 2.0\n"
                                                     "heartbeat_seconds = 0.5\n")
        ws.swgw("db", "upgrade", check=True, env=SECRETS)
        try:
            ws.start_sandbox()
            site.start_agent("a")
            site.start_agent("b")
            worker = ws.start_daemon(env={**SECRETS, "SWGW_FAILPOINTS": "after-send=30"})  # dies mid-batch
            other = ws.start_daemon(env=SECRETS)
            wait_for(lambda: len(_store(url, "SELECT id FROM cluster_members")) == 2, 30, 0.2, "two processes")
            keys = []
            for f in range(FILES):
                keys += site.drop(f"both-{f}.csv", f"C{f}", f"D{f}", PER_FILE)
            wait_for(lambda: len(ws.received_envelopes()) >= 40, 90, 0.1, "the first envelopes at the peer")
            site.agents["a"].send_signal(signal.SIGKILL)      # enterprise A's card host dies while signing
            site.agents["a"].wait(5)
            worker.wait(90)
            assert worker.returncode == -signal.SIGKILL, "the worker was killed after a send, before its commit"
            wait_for(lambda: len({k for k, _ in site.received() if k.startswith("D")}) == N // 2, 120, 0.5,
                     "enterprise B's declarations at the peer while A's card host is away")
            waiting = _store(url, f"SELECT count(*) FROM messages WHERE enterprise = '{ENT}' AND state = 'prepared'")
            site.start_agent("a")                             # back: what waited for it goes now
            wait_for(lambda: len(ws.received_envelopes()) >= N, 150, 0.5, f"{N} envelopes at the peer")
            wait_for(lambda: not _store(url, "SELECT id FROM messages WHERE state IN ('prepared', 'signed') "
                                             "OR last_receipt = ''"), 90, 0.5, "every message sent and answered")
            assert other.poll() is None, "the surviving process kept working"
        finally:
            site.cleanup()
            bed.eject(0)
        got = site.received()
        assert sorted(k for k, _ in got) == sorted(keys), "each declaration arrived at the peer (its CopMsgId once)"
        assert {ic for k, ic in got if k.startswith("C")} == {media_a}, "A's declarations signed by A's PC/SC card"
        assert {ic for k, ic in got if k.startswith("D")} == {site.media_b}, "B's by B's software key"
        assert waiting[0][0] > 0, "A's messages waited prepared while its card host was away"
        dups = _duplicates(ws)
        # only a send the killed worker made before its commit is sent again (same CopMsgId), dropped by the peer
        assert len(dups) == len(set(dups)) and len(dups) <= 200, dups
        assert dict(_store(url, "SELECT enterprise, count(*) FROM messages GROUP BY enterprise")) == \
            {ENT: N // 2, ENT2: N // 2}, "each declaration taken once"
        signed_a = {e["business_key"] for e in site.audit("a") if e["result"] == "signed"}
        assert signed_a == {k for k in keys if k.startswith("C")}, "card host A's audit log names what it signed"
