"""The daemon: wires intake, the pipeline stages and (optionally) the sandbox peer,
runs them until told to stop, and shuts down cleanly on SIGTERM/SIGINT.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from card.signer import SignerError
from gateway import cluster, health, intake, pipeline, sync
from gateway.config import ConfigError
from gateway.lifecycle import service as lifecycle, shutdown as graceful
from gateway.log import get_logger
from gateway.runtime import Runtime, open_amqp_intake
from gateway.sandbox import settings as sandbox_settings
from gateway.sandbox.peer import Peer, open_peer
from gateway.signwork import SigningWorkers
from gateway.sources import folder
from gateway.sources.watch import Wakeup
from gateway.store import states
from gateway.store.models import Message, Receipt
from gateway.transports import links
from gateway.transports.base import TransportError

log = get_logger("daemon")

SIDE_EVERY = 0.25   # seconds between passes of the leader's stages while they find nothing (Daemon._side_due)


@dataclass
class DrainResult:
    finished: bool
    counts: dict[str, int]


class Daemon:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.stop = threading.Event()
        self.peer: Peer | None = None
        self._peer_thread: threading.Thread | None = None
        self._peer_proc: subprocess.Popen | None = None
        self.signing: SigningWorkers | None = None
        self.queue_intake = None   # AmqpIntake, when [amqp_intake] is configured
        self.lifecycle: lifecycle.Lifecycle | None = None
        self.metrics = None        # MetricsServer, when [metrics] listen is set
        self.wakeup: Wakeup | None = None   # wakes the loop when a drop folder changes or a signer signed
        self.member: cluster.Member | None = None   # this process among those sharing the store
        self._adopted_at = 0.0
        self._side_at, self._side_busy = 0.0, False   # the leader's stages: when they last ran, found work

    @property
    def leader(self) -> bool:
        return self.member is None or self.member.leader

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self.member = cluster.Member(self.rt).join()   # SQLite: refuses a second process on the store
        if self.member.clustered:
            self.rt.lease = self.member.lease
            for dt in self.rt.doc_types.values():
                dt.source.own(self.member.work_name)
        for name in self.rt.signer_configs:
            try:
                self.rt.signer(name)
                health.signer(name, "present")
            except SignerError as exc:  # a card may come later; signing parks until then
                log.warning("signer not ready", signer=name, error=str(exc))
                health.signer(name, "absent", str(exc))
        sb = self.rt.config.sandbox
        if sb.mode != "off":
            if sb.config is None:
                raise ConfigError("[sandbox] mode is set but config is not")
            if sb.mode == "inprocess":
                self.peer = open_peer(sandbox_settings.load(sb.config))
                self._peer_thread = threading.Thread(target=self.peer.run, args=(self.stop,), name="sandbox",
                                                     daemon=True)
                self._peer_thread.start()
            else:
                self._peer_proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sandbox", "--config",
                                                    str(sb.config)])
        self.queue_intake = open_amqp_intake(self.rt.config)
        self.wakeup = self._watch()
        self.signing = SigningWorkers(self.rt, self.stop, signed=self.wakeup.poke)
        self.signing.start()
        recovered = intake.run_once(self.rt, recover=True)
        if recovered:
            log.info("recovered files claimed before a restart", files=recovered)
        self._lead()   # the leader's scheduled jobs: deadlines, housekeeping, subscriptions
        health.publish(self.rt)
        mc = self.rt.config.metrics
        if mc.listen:
            from gateway.metrics import MetricsServer

            self.metrics = MetricsServer(self.rt, mc.listen, mc.gauge_interval)
            log.info("metrics", url=f"http://{mc.listen}/metrics")

    def shutdown(self) -> None:
        self.stop.set()
        if self.metrics is not None:
            self.metrics.close()
        if self.signing:
            self.signing.join()
        if self.wakeup is not None:
            self.wakeup.close()
        if self._peer_thread:
            self._peer_thread.join(timeout=5)
        if self._peer_proc:
            self._peer_proc.terminate()
            try:
                self._peer_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._peer_proc.kill()
        if self.queue_intake is not None:
            self.queue_intake.close()
        if self.lifecycle:
            self.lifecycle.stop()
        if self.member is not None:
            self.member.leave()
        self.rt.close()

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            log.info("stopping", signal=signal.Signals(signum).name)
            self.stop.set()
            graceful.arm(self.rt.config.lifecycle.shutdown_timeout)  # past it: exit, in-flight work parked

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- the loop ---------------------------------------------------------------------
    def tick(self) -> int:
        health.publish(self.rt, every=2.0)  # links and signers, for the console
        leader = self._lead()
        taken = intake.run_once(self.rt) + self._take_records()
        if taken and self.signing is not None:
            self.signing.nudge()   # the signing threads sign what was just prepared, without waiting a poll
        done = taken + pipeline.step(self.rt, sign=self.signing is None, leader=False)
        if leader and self._side_due():   # receipts, routing, licences; 数据同步 requests queued by `swgw sync`
            side = pipeline.step(self.rt, sign=False, only=pipeline.LEADER_ONLY) + sync.send_queued(self.rt)
            self._side_at, self._side_busy = time.monotonic(), side > 0
            done += side
        return done

    def _side_due(self) -> bool:
        """The leader's stages each query the store. While files pour in, passes follow each
        other without a pause, and asking every pass (some 40 times a second) cost a twentieth
        of the loop's time. They run every pass while they find work (a burst of receipts goes
        at full speed), else at most every SIDE_EVERY seconds: a first receipt waits that much
        longer at most."""
        return self._side_busy or time.monotonic() - self._side_at >= SIDE_EVERY

    def _lead(self) -> bool:
        """Start or stop what runs on the leader alone as leadership comes and goes; the leader
        also takes over the files claimed by processes that died (gateway/cluster.py)."""
        leader = self.leader
        if self.member is not None:
            for dt in self.rt.doc_types.values():
                dt.source.peers = self.member.peers   # each claims its share of a shared drop folder
        if leader and self.lifecycle is None:
            if self.member is not None and self.member.clustered:
                log.info("leader: scheduled jobs start here", member=self.member.id)
            self.lifecycle = lifecycle.start(self.rt)
        elif not leader and self.lifecycle is not None:
            log.warning("no longer the leader: scheduled jobs stop here", member=self.member.id)
            self.lifecycle.stop()
            self.lifecycle = None
        if leader and self.member is not None and self.member.clustered \
                and time.monotonic() - self._adopted_at >= self.rt.config.cluster.failover_seconds:
            self._adopted_at = time.monotonic()
            self.member.reap()
            alive = self.member.alive()
            adopted = sum(dt.source.adopt(alive) for dt in self.rt.doc_types.values())
            if adopted:
                log.info("took over files claimed by a process that stopped", files=adopted)
                intake.run_once(self.rt, recover=True)
        return leader

    def _watch(self) -> Wakeup:
        folders = [dt.source.inbox for dt in self.rt.doc_types.values() if getattr(dt.source, "inbox", None)]
        wakeup = Wakeup(folders, self.rt.config.gateway.watch)
        log.info("watching drop folders", how=wakeup.mode, poll_interval=self.rt.config.gateway.poll_interval)
        return wakeup

    def _take_records(self) -> int:
        if self.queue_intake is None:
            return 0
        try:
            n = intake.take_records(self.rt, self.queue_intake, self.rt.config.gateway.batch_size)
        except TransportError as exc:
            links.failed("amqp-intake", "fetch", exc)
            return 0
        links.ok("amqp-intake", "fetch")
        return n

    def run(self) -> None:
        interval = self.rt.config.gateway.poll_interval
        log.info("running", documents=list(self.rt.doc_types), transports=list(self.rt.transports))
        if self.wakeup is None:
            self.wakeup = self._watch()
        while not self.stop.is_set():
            try:
                if not self.tick():   # idle: until a folder changes, a signer signed, or the poll interval
                    self.wakeup.wait(interval, self.stop)
            except Exception as exc:  # one bad pass must not stop the daemon
                log.error("pass failed; continuing", error=f"{type(exc).__name__}: {exc}")
                self.stop.wait(max(interval, 1.0))

    def drain(self, timeout: float = 120.0, settle: float = 2.0) -> DrainResult:
        """Process everything available and wait for receipts; stop when settled or at the timeout."""
        interval = min(self.rt.config.gateway.poll_interval, 0.2)
        deadline = time.monotonic() + timeout
        last_work = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            work = self.tick()
            now = time.monotonic()
            if work:
                last_work = now
                continue
            busy, all_final, counts = self._outstanding()
            if not busy and (all_final or now - last_work >= settle):
                return DrainResult(True, counts)
            self.stop.wait(interval)
        busy, all_final, counts = self._outstanding()
        return DrainResult(not busy, counts)

    def _outstanding(self) -> tuple[bool, bool, dict[str, int]]:
        with self.rt.sessions() as s:
            rows = s.execute(select(Message.doc_type, Message.state, func.count()).group_by(
                Message.doc_type, Message.state)).all()
            unrouted = s.scalar(select(func.count()).select_from(Receipt).where(Receipt.routed_at.is_(None)))
        counts: dict[str, int] = {}
        in_flight = unsettled = 0
        for doc_type, state, n in rows:
            counts[state] = counts.get(state, 0) + n
            fam = self.rt.doc_types[doc_type].family if doc_type in self.rt.doc_types else None
            if state in states.IN_FLIGHT:
                in_flight += n
            if not (fam and (state in fam.final_states or state in states.LOCAL_FINAL)):
                unsettled += n
        files_waiting = any(folder.fsutil.regular_files(dt.source.inbox) or dt.source.recover()
                            for dt in self.rt.doc_types.values())
        peer_pending = self.peer.pending() if self.peer else 0
        busy = bool(in_flight or unrouted or files_waiting or peer_pending)
        return busy, unsettled == 0, counts
