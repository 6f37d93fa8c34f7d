"""make bench, scenario `bigfile`: one 50,000-row declaration CSV read, mapped, built and validated
the way intake does before its transaction (`intake._evaluate_file`), in a child process so its
peak resident memory is that file's alone: the resident size before reading is measured first and
reported beside it, and the peak counted from there (VmHWM reset through /proc/self/clear_refs;
ru_maxrss where that cannot be done).

`python bench/bigfile.py [ROOT]` runs it against the code in ROOT (another checkout: before/after).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
root = sys.argv[2]
sys.path.insert(0, root); sys.path.insert(0, root + "/bench")
import harness
from gateway import intake
tmp = Path(tempfile.mkdtemp(prefix="swgw-bigfile-"))
site = harness.Site(tmp / "site", harness.make_keys(tmp / "keys"))
rt, _ = site.open()
dt = rt.doc_types["declaration"]
data = open(sys.argv[1], "rb").read()

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

before = status("VmRSS")             # now: interpreter, imports, runtime, the file's bytes
try:                                 # the peak from here on (start-up may have peaked higher)
    open("/proc/self/clear_refs", "w").write("5")
    reset = True
except OSError:
    reset = False
t0 = time.perf_counter()
encoding, evaluations = intake._evaluate_file(rt, dt, data)
secs = time.perf_counter() - t0
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"documents": len(evaluations), "valid": sum(1 for e in evaluations if e.document and not e.errors),
                  "seconds": secs, "peak_kb": peak, "before_kb": before}))
"""


def make_file(path: Path, rows_wanted: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import workload

    rng = random.Random(13)
    rows, i = [], 0
    while len(rows) < rows_wanted:
        rows += workload.declaration_rows(f"BIG{i:08d}", rng)[: rows_wanted - len(rows)]
        i += 1
    path.write_text(workload.csv_text(rows), encoding="utf-8")
    return len(rows)


def measure(path: Path, root: Path = ROOT) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(root)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(tmp: Path, say, rows: int = 50_000) -> None:
    path = tmp / "50k.csv"
    make_file(path, rows)
    r = measure(path)
    say(f"csv {rows} rows evaluated", documents=r["documents"], valid=r["valid"], seconds=r["seconds"],
        rows_per_s=rows / r["seconds"], peak_rss_mb=r["peak_kb"] / 1024,
        before_reading_rss_mb=r["before_kb"] / 1024, file_kb=path.stat().st_size // 1024)


if __name__ == "__main__":
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="swgw-bigfile-"))
    path = tmp / "50k.csv"
    make_file(path, 50_000)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    t = time.perf_counter()
    print(root, measure(path, root), f"{time.perf_counter() - t:.1f}s")
