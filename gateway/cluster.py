"""Several `swgw run` processes on one store: who is here, and who leads.

On PostgreSQL, processes with the same config share the work with nothing else to configure:
each stage takes its batch with leases (gateway/store/leases.py), drop folders are claimed by
an atomic rename into the process's own work folder, and what must run once — the scheduled
jobs, receipt intake and routing (one reader keeps each message's receipts in order),
licence release, 数据同步 requests, taking over the claimed files of a process that died — runs
on one leader at a time: the process holding a PostgreSQL advisory lock on a dedicated
connection. Non-leaders try the lock again every few seconds; a leader that dies loses its
connection, and so the lock, at once (a host that vanishes: the server's TCP keepalives on that
connection end it within `[cluster] failover_seconds`).

Each process reports itself in `cluster_members` (host, pid, role, config hash, leader or not,
last heartbeat); `swgw doctor` lists them and warns when they run different configs.

SQLite is single-process: a second `swgw run` on the same SQLite store is refused with a
message saying so (an exclusive lock on a file beside the database).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import delete, func, select, text, update

from gateway.config import ConfigError
from gateway.log import get_logger
from gateway.store.leases import Lease
from gateway.store.models import ClusterMember, Message, utcnow

log = get_logger("cluster")
LEADER_KEY = 7270415   # the advisory lock the leader holds (any fixed number, ours; 7270401 is migrations)


def config_hash(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


class Member:
    """This process in the cluster: its id (the lease owner), its heartbeat, its leadership."""

    def __init__(self, rt, role: str = "run"):
        self.rt = rt
        self.role = role
        self.settings = rt.config.cluster
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{int(time.time())}"
        self.clustered = rt.engine.dialect.name == "postgresql"
        self.leader = not self.clustered     # alone on SQLite: always the leader
        self.peers = 1                       # live processes, as of the last heartbeat
        self.lease = Lease(self.id, self.settings.lease_seconds) if self.clustered else None
        self._lock_file = None
        self._leader_conn = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def work_name(self) -> str:
        """The folder under each inbox's .work/ where this process claims files."""
        return _work_name(self.id)

    # -- start / stop -------------------------------------------------------------------
    def join(self) -> "Member":
        if not self.clustered:
            self._lock_sqlite()
            return self
        with self.rt.sessions.begin() as s:
            s.add(ClusterMember(id=self.id, host=self.host[:200], pid=os.getpid(), role=self.role,
                                config_hash=config_hash(self.rt.config.source), leader=0))
        self.reap()   # a run of ours that was killed here: its work is taken over now, not after its leases
        self._try_lead()
        if not self.leader:
            self._beat()   # counts the others at once (a leader did in _try_lead)
        self._thread = threading.Thread(target=self._run, name="cluster", daemon=True)
        self._thread.start()
        log.info("joined the cluster", member=self.id, leader=self.leader)
        return self

    def leave(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self.clustered:
            try:
                with self.rt.sessions.begin() as s:
                    m = s.get(ClusterMember, self.id)
                    if m is not None:
                        m.leader, m.stopped_at = 0, utcnow()
            except Exception as exc:   # the store is away: the heartbeat tells the others
                log.warning("could not record leaving the cluster", error=str(exc))
            self._step_down()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _lock_sqlite(self) -> None:
        url = self.rt.config.store.resolved_url()
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:":
            return
        lock = Path(path + ".run-lock")
        f = open(lock, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            other = f.read().strip() or "another process"
            f.close()
            raise ConfigError(f"store {path}: another `swgw run` ({other}) already works on this SQLite store. "
                              f"SQLite is single-process: stop the other one, or put the store on PostgreSQL "
                              f"([store] url = \"postgresql+psycopg://…\") to run several processes") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._lock_file = f

    # -- heartbeat and leadership -------------------------------------------------------
    def _run(self) -> None:
        every = min(self.settings.heartbeat_seconds, self.settings.failover_seconds / 3)
        last_beat = 0.0
        while not self._stop.wait(every):
            if self.leader and not self._leader_alive():
                self._step_down()
                log.warning("lost the leader's connection; stepping down", member=self.id)
            if not self.leader:
                self._try_lead()
            if time.monotonic() - last_beat >= self.settings.heartbeat_seconds:
                try:
                    self._beat()
                    last_beat = time.monotonic()
                except Exception as exc:
                    log.warning("heartbeat failed", error=f"{type(exc).__name__}: {exc}"[:300])

    def _beat(self) -> None:
        with self.rt.sessions.begin() as s:
            m = s.get(ClusterMember, self.id)
            if m is None:   # pruned while we were away
                m = ClusterMember(id=self.id, host=self.host[:200], pid=os.getpid(), role=self.role,
                                  config_hash=config_hash(self.rt.config.source))
                s.add(m)
            m.heartbeat_at, m.leader, m.stopped_at = utcnow(), int(self.leader), None   # (back, if it stalled)
            live = utcnow() - dt.timedelta(seconds=3 * self.settings.heartbeat_seconds + 1)
            self.peers = max(1, s.scalar(select(func.count()).select_from(ClusterMember).where(
                ClusterMember.stopped_at.is_(None), ClusterMember.heartbeat_at >= live)) or 1)
            # members gone for a day are forgotten
            s.execute(delete(ClusterMember).where(ClusterMember.heartbeat_at < utcnow() - dt.timedelta(days=1)))

    def _election_conn(self):
        """The member's own connection for the leader's lock (kept, never back in the pool): the
        server's TCP keepalives on it end a vanished leader's session within the failover time."""
        if self._leader_conn is None:
            conn = self.rt.engine.connect()
            try:
                lost = max(int(self.settings.failover_seconds / 3), 1)
                for setting, value in (("tcp_keepalives_idle", lost), ("tcp_keepalives_interval", 1),
                                       ("tcp_keepalives_count", 2),
                                       ("tcp_user_timeout", int(self.settings.failover_seconds * 1000 / 2))):
                    conn.exec_driver_sql(f"SET {setting} = {value}")
                conn.commit()
            except Exception:
                self._drop(conn)
                raise
            self._leader_conn = conn
        return self._leader_conn

    def _try_lead(self) -> None:
        try:
            conn = self._election_conn()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_KEY}).scalar()
            conn.commit()
        except Exception as exc:
            self._step_down()
            log.warning("leader election failed", error=str(exc)[:300])
            return
        if not got:
            return
        self.leader = True
        log.info("leader", member=self.id)
        try:
            self._beat()
        except Exception:
            pass

    def _leader_alive(self) -> bool:
        try:
            self._leader_conn.exec_driver_sql("SELECT 1")
            self._leader_conn.commit()
            return True
        except Exception:
            return False

    def _step_down(self) -> None:
        """Not the leader; the connection (and so the lock, if held) is ended, never pooled."""
        self.leader = False
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            self._drop(conn)

    @staticmethod
    def _drop(conn) -> None:
        try:
            conn.invalidate()
            conn.close()
        except Exception:
            pass

    # -- the others ---------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Members that are gone — on this host a pid that no longer runs (or is ours: an earlier
        run in the same container), on any host no heartbeat for a lease and three failover
        times: their leases are released at once and they are marked stopped. Returns their ids."""
        horizon = utcnow() - dt.timedelta(seconds=max(self.settings.lease_seconds, 3 * self.settings.failover_seconds))
        with self.rt.sessions.begin() as s:
            rows = s.scalars(select(ClusterMember).where(ClusterMember.stopped_at.is_(None),
                                                         ClusterMember.id != self.id)
                             .with_for_update(skip_locked=True)).all()
            gone = [m for m in rows if _aware(m.heartbeat_at) < horizon or (m.host == self.host and not _running(m.pid))]
            if gone:
                s.execute(update(Message).where(Message.lease_owner.in_([m.id for m in gone]))
                          .values(lease_owner="", lease_until=None).execution_options(synchronize_session=False))
                for m in gone:
                    m.stopped_at, m.leader = utcnow(), 0
        for m in gone:
            log.info("a process that stopped without leaving: its work is taken over", member=m.id)
        return [m.id for m in gone]

    def alive(self) -> set[str]:
        """Work-folder names of the members alive now (a recent heartbeat, not left). A member
        counts as gone only after a lease and three failover times without a heartbeat."""
        horizon = utcnow() - dt.timedelta(seconds=max(self.settings.lease_seconds, 3 * self.settings.failover_seconds))
        with self.rt.sessions() as s:
            rows = s.execute(select(ClusterMember.id, ClusterMember.heartbeat_at, ClusterMember.stopped_at)).all()
        return {_work_name(i) for i, beat, stopped in rows if stopped is None and _aware(beat) >= horizon} \
            | {self.work_name}


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _work_name(member_id: str) -> str:
    return member_id.replace(":", "-").replace("/", "_")


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def members(session) -> list[ClusterMember]:
    return list(session.scalars(select(ClusterMember).order_by(ClusterMember.started_at)))


def report(session, settings) -> list[tuple[bool, str, str]]:
    """Doctor lines: every process that reported itself, and whether they run one config."""
    horizon = utcnow() - dt.timedelta(seconds=max(3 * settings.heartbeat_seconds, settings.failover_seconds))
    live = [m for m in members(session) if m.stopped_at is None and _aware(m.heartbeat_at) >= horizon]
    out = []
    for m in live:
        age = (utcnow() - _aware(m.heartbeat_at)).total_seconds()
        out.append((True, f"cluster member {m.host} pid {m.pid}",
                    f"{m.role}{', leader' if m.leader else ''}, config {m.config_hash or '?'}, "
                    f"heartbeat {age:.0f}s ago"))
    if live and not any(m.leader for m in live):
        out.append((False, "cluster", f"{len(live)} process(es) running and none is the leader"))
    hashes = {m.config_hash for m in live}
    if len(hashes) > 1:
        by = {h: ", ".join(f"{m.host}:{m.pid}" for m in live if m.config_hash == h) for h in sorted(hashes)}
        out.append((False, "cluster", "processes run different configs: "
                    + "; ".join(f"config {h} on {who}" for h, who in by.items())))
    return out
