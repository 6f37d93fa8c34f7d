"""make bench, scenario `xlsx`: a 10,000-row declaration sheet read and mapped, its peak memory.

The sheet is written once with openpyxl (numbers as number cells, as an ERP exports it), then
read and mapped in a child process so its peak resident memory (VmHWM, reset after the
imports) is the reader's alone: the interpreter and imports are measured first and reported beside it.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import workload

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 200
NUMBERS = {"pack_no", "gross_wt", "net_wt", "item_no", "hs_code", "qty", "first_qty", "unit_price", "total"}

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from gateway.documents import family
from gateway.mapping.engine import Mapping
m = Mapping.load(sys.argv[3], allowed=family("declaration").sections())

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

# ru_maxrss is no measure here: Linux keeps across exec the high-water mark of the forked copy of
# the bench process (hundreds of MB after the console scenario). VmHWM, reset now, is this process's.
try:
    open("/proc/self/clear_refs", "w").write("5")
    before, peak_of = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    before, peak_of = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, \
        lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open(sys.argv[1], "rb").read()
t0 = time.perf_counter()
table = m.read(data)
docs = m.apply(table)
secs = time.perf_counter() - t0
peak = peak_of()
print(json.dumps({"rows": len(table.rows), "documents": len(docs), "errors": sum(len(d.errors) for d in docs),
                  "seconds": secs, "peak_kb": peak, "imports_kb": before}))
"""


def make_sheet(path: Path, rows_wanted: int) -> int:
    from openpyxl import Workbook

    rng = random.Random(11)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("报关单")
    ws.append(workload.HEADER)
    n, i = 0, 0
    while n < rows_wanted:
        for row in workload.declaration_rows(f"XLS{i:08d}", rng):
            if n == rows_wanted:
                break
            ws.append([(int(v) if v.isdigit() else float(v)) if c in NUMBERS and v else v
                       for c, v in ((c, row[c]) for c in workload.HEADER)])
            n += 1
        i += 1
    wb.save(path)
    return n


def run(tmp: Path, say, rows: int = 10_000) -> None:
    sheet = tmp / "10k.xlsx"
    t0 = time.perf_counter()
    make_sheet(sheet, rows)
    made = time.perf_counter() - t0
    out = subprocess.run([sys.executable, "-c", CHILD, str(sheet), str(ROOT), str(ROOT / "mappings/declaration-csv.toml")],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    peak_mb = r["peak_kb"] / 1024
    say(f"xlsx {r['rows']} rows read+map", documents=r["documents"], errors=r["errors"], seconds=r["seconds"],
        rows_per_s=r["rows"] / r["seconds"], peak_rss_mb=peak_mb, imports_rss_mb=r["imports_kb"] / 1024,
        file_kb=sheet.stat().st_size // 1024, under_limit=peak_mb < LIMIT_MB)
    print(f"    sheet written in {made:.1f}s; peak resident memory {peak_mb:.0f} MB "
          f"({'within' if peak_mb < LIMIT_MB else 'OVER'} the {LIMIT_MB} MB bound)")
