"""make bench, start-up: how long a fresh process takes before it is useful.

- `swgw status` (and `status --key K`) on a 10,000-message SQLite store, as a subprocess: wall and
  CPU time, median of a few runs;
- `swgw run` as a subprocess on the embedded layout with one declaration file already dropped: the
  time from spawning the process until that declaration is `sent` (its envelope in the exchange
  folder and the store saying so), and the import time of `gateway.cli` alone.

    bench/startup.py [--messages 10000] [--runs 5]
(`bench/run.py --only startup` runs it with the other scenarios.)"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

SWGW = [sys.executable, "-m", "gateway.cli"]
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}


def _timed(args: list[str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def bench_import(say, runs: int) -> None:
    walls, cpus = zip(*(_timed([sys.executable, "-c", "import gateway.cli"], Path.cwd()) for _ in range(runs)))
    say("start-up: import gateway.cli", s_p50=statistics.median(walls), cpu_s_p50=statistics.median(cpus))


def bench_status(say, messages: int, runs: int) -> None:
    import console

    tmp = Path(tempfile.mkdtemp(prefix="swgw-startup-status-"))
    url = f"sqlite:///{tmp / 'swgw.db'}"
    sample = console.bulk_store(url, messages)
    config = console._config(tmp, url)
    for what, args in {"swgw status": ["status"],
                       "swgw status --key": ["status", "--key", sample["business_key"]]}.items():
        _timed([*SWGW, *args, "--config", str(config)], tmp)   # warm the page cache once
        walls, cpus = zip(*(_timed([*SWGW, *args, "--config", str(config)], tmp) for _ in range(runs)))
        say(f"start-up: {what}", s_p50=statistics.median(walls), cpu_s_p50=statistics.median(cpus),
            messages=messages)


def first_file(root: Path, site, deadline: float = 60.0) -> float:
    """Spawn `swgw run` with one file waiting; seconds until its declaration is sent."""
    import workload

    fname, text, keys = workload.files(1, 1, "UP1", seed=3)[0]
    site.drop(fname, text)
    eng = sa.create_engine(site.store_url)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*SWGW, "run", "--config", str(root / "gateway.toml")], cwd=root, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - t0 < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"swgw run exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with eng.connect() as c:
                    n = c.execute(sa.text("SELECT count(*) FROM events WHERE kind = 'state' "
                                          "AND to_state = 'sent'")).scalar_one()
            except sa.exc.OperationalError:   # the store not yet created
                n = 0
            if n:
                return time.perf_counter() - t0
            time.sleep(0.01)
        raise TimeoutError("no declaration sent")
    finally:
        proc.terminate()
        proc.wait(30)
        eng.dispose()


def bench_first_file(say, runs: int) -> None:
    import harness

    tmp = Path(tempfile.mkdtemp(prefix="swgw-startup-run-"))
    keys = harness.make_keys(tmp / "keys")
    times = []
    for i in range(runs):
        site = harness.Site(tmp / f"site{i}", keys)
        # the store created beforehand (a daemon restarts on an existing store)
        site.open()[0].close()
        times.append(first_file(site.root, site))
    say("start-up: swgw run to first file sent", s_p50=statistics.median(times), s_max=max(times))


def run(say, messages: int = 10_000, runs: int = 5) -> None:
    bench_import(say, runs)
    bench_status(say, messages, runs)
    bench_first_file(say, runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    def say(name, **values):
        parts = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"{name:<40} {parts}", flush=True)

    run(say, args.messages, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
