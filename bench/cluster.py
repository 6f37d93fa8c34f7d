"""make bench, cluster: drop->sent on the PostgreSQL store with 1 and with 2 `swgw run` processes
(subprocesses, one config, one store, one shared drop folder), measured in the same run; prints both
rates and their ratio. Each count gets a fresh database and workspace; the processes are running
(and have counted each other) before the first file is dropped.

(`bench/run.py --only cluster` runs it.)"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

import harness

SWGW = [sys.executable, "-m", "gateway.cli"]


def _members(url: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return c.exec_driver_sql("SELECT count(*) FROM cluster_members WHERE stopped_at IS NULL").scalar()
    except sa.exc.ProgrammingError:
        return 0
    finally:
        eng.dispose()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_sent(url: str, n: int, timeout: float = 600) -> None:
    """Every declaration sent; a light poll (the rate comes from the events' times, not from
    when this notices), so that the measuring takes little of the two cores."""
    eng = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with eng.connect() as c:
                got = dict(c.exec_driver_sql("SELECT state, count(*) FROM messages GROUP BY state").all())
            if set(got) & {"invalid", "failed", "rejected"}:
                raise RuntimeError(f"cluster bench: {got}: the workload is wrong")
            if got.get("sent", 0) >= n:
                return
            time.sleep(0.5)
        raise TimeoutError(f"cluster bench: {got} after {timeout}s")
    finally:
        eng.dispose()


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def drop_to_sent(tmp: Path, keys, files, processes: int) -> tuple[float, int, float, float]:
    with harness.postgres_database() as url:
        site = harness.Site(tmp / f"cluster-{processes}", keys, store_url=url,
                            extra_toml="[cluster]\nheartbeat_seconds = 0.5\n")
        config = site.root / "gateway.toml"
        subprocess.run([*SWGW, "db", "upgrade", "--config", str(config)], check=True, capture_output=True)
        procs = [subprocess.Popen([*SWGW, "run", "--config", str(config)], cwd=site.root,
                                  stdout=subprocess.DEVNULL, stderr=open(site.root / f"run-{i}.log", "wb"))
                 for i in range(processes)]
        try:
            deadline = time.monotonic() + 60
            while _members(url) < processes:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"cluster bench: the processes did not start; see {site.root}/run-*.log")
                time.sleep(0.1)
            time.sleep(1.5)   # a heartbeat: each knows how many share the folder
            n = sum(len(k) for _, _, k in files)
            t0 = time.time()
            cpu0, m0 = sum(_cpu(p.pid) for p in procs), _machine()
            for fname, text, _ in files:
                site.drop(fname, text)
            _wait_sent(url, n)
            cpu = (sum(_cpu(p.pid) for p in procs) - cpu0) / (time.time() - t0)
            m1 = _machine()
            machine = (m1[0] - m0[0]) / max(m1[1] - m0[1], 1) * os.cpu_count()
            reached = site.event_times("sent")
            eng = sa.create_engine(url)
            with eng.connect() as c:   # each declaration recorded sent once, by one of the processes
                sent = c.exec_driver_sql("SELECT count(*) FROM events WHERE kind = 'state' AND to_state = 'sent'").scalar()
            eng.dispose()
            if sent != n:
                raise RuntimeError(f"cluster bench: {sent} sent events for {n} declarations")
            return n / (max(reached.values()) - t0), n, cpu, machine
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


def run(tmp: Path, keys, files, say) -> None:
    """`cores_busy`: CPU seconds the swgw processes used per second of the measurement (PostgreSQL's
    own use not counted); `machine_cores_busy`: the same for the whole machine (PostgreSQL, anything
    else running). When the machine is at its core count, the processes wait for a core."""
    one, n, cpu1, all1 = drop_to_sent(tmp, keys, files, 1)
    say("cluster: PostgreSQL drop->sent, 1 process", declarations=n, per_s=one, cores_busy=cpu1,
        machine_cores_busy=all1, per_cpu_s=one / cpu1)
    two, n, cpu2, all2 = drop_to_sent(tmp, keys, files, 2)
    say("cluster: PostgreSQL drop->sent, 2 processes", declarations=n, per_s=two, cores_busy=cpu2,
        machine_cores_busy=all2, per_cpu_s=two / cpu2, ratio_to_1_process=two / one)
