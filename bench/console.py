"""make bench, console scenarios: the console's page time on a large store (PostgreSQL, rows
bulk-inserted with SQLAlchemy Core, not through the pipeline), and `swgw status` / `trace` /
`subscriptions` on a 10,000-message store (they read the store alone, without the runtime).

    bench/console.py [--messages 100000] [--cli-messages 10000] [--runs 7]
(`bench/run.py --only console` runs it with the other scenarios' defaults.)"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import sqlalchemy as sa  # noqa: E402

from gateway.store import db  # noqa: E402
from gateway.store.models import Event, IntakeFile, Message, MessageKey, Receipt, Subscription  # noqa: E402

TYPES = [("declaration", 0.7, "ClientSeqNo"), ("export-license", 0.1, "ApplyNo"), ("origin", 0.1, "InvoiceNo"),
         ("inspection-feedback", 0.1, "MessageNo")]
STATES = {"declaration": ["closed"] * 6 + ["released", "customs-accepted", "sent", "failed", "rejected", "invalid"],
          "export-license": ["approved", "in-use", "written-off", "returned", "sent"],
          "origin": ["approved", "approved", "returned", "sent", "voided"],
          "inspection-feedback": ["feedback-received", "returned", "sent"]}
ENTERPRISES = ["91210200MA0QC8N67X", "91210211MA0Y4K2P3B", "91210213MA10AB7C9D"]
CHUNK = 5000


def bulk_store(url: str, n: int, seed: int = 7) -> dict:
    """n messages with their keys, 4 events each and one receipt per tenth, and a few intake files;
    returns some keys to look up."""
    rng = random.Random(seed)
    engine = db.make_engine(url)
    db.upgrade(engine)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    sample = {}
    with engine.begin() as c:
        files = [{"id": i + 1, "doc_type": "declaration", "source": "inbox/declaration", "name": f"erp-{i:05d}.csv",
                  "sha256": uuid.uuid4().hex * 2, "size": 4096, "outcome": "accepted", "report": {},
                  "received_at": start} for i in range(max(n // 50, 1))]
        c.execute(sa.insert(IntakeFile.__table__), files)
    mid = kid = eid = rid = 0
    for base in range(0, n, CHUNK):
        msgs, keys, events, receipts = [], [], [], []
        for i in range(base, min(base + CHUNK, n)):
            mid += 1
            r = rng.random()
            doc_type, key_name = next((t, k) for t, p, k in _cumulative() if r <= p)
            state = rng.choice(STATES[doc_type])
            created = start + dt.timedelta(seconds=i * 60)
            bkey = f"{key_name[:2].upper()}{2026_0000_0000 + i}"
            msgs.append({"id": mid, "doc_type": doc_type, "enterprise": rng.choice(ENTERPRISES), "business_key": bkey,
                         "cop_msg_id": uuid.uuid4().hex, "state": state, "intake_file_id": i // 50 + 1,
                         "source_ref": f"erp-{i // 50:05d}.csv rows {i % 50 + 2}", "content_sha256": "0" * 64,
                         "document": b"<DecMessage/>", "envelope": None, "errors": None, "signer": "op",
                         "transport": "exchange", "attempts": 1, "last_receipt": f"{state}", "transmit_failures": 0,
                         "sent_at": created + dt.timedelta(seconds=2), "overdue": "platform-response" if i % 997 == 0 else "",
                         "overdue_since": created + dt.timedelta(minutes=20) if i % 997 == 0 else None,
                         "resends": 0, "created_at": created, "updated_at": created + dt.timedelta(minutes=5)})
            kid += 1
            keys.append({"id": kid, "message_id": mid, "name": key_name, "value": bkey})
            if doc_type == "declaration":
                for name, value in (("SeqNo", f"0900{2026_0000_0000 + i:014d}"), ("EntryId", f"09{2026_0000_0000 + i:016d}")):
                    kid += 1
                    keys.append({"id": kid, "message_id": mid, "name": name, "value": value})
                if i % 1000 == 500 or "entry_ids" not in sample:
                    sample.setdefault("entry_ids", []).append(f"09{2026_0000_0000 + i:016d}")
            for step, (a, b) in enumerate((("", "received"), ("received", "prepared"), ("prepared", "signed"),
                                          ("signed", "sent"))):
                eid += 1
                events.append({"id": eid, "message_id": mid, "at": created + dt.timedelta(seconds=step),
                               "kind": "state", "from_state": a, "to_state": b, "detail": f"step {step}"})
            if i % 10 == 0:
                rid += 1
                receipts.append({"id": rid, "message_id": mid, "transport": "exchange",
                                 "remote_name": f"r{rid}.xml", "sha256": uuid.uuid4().hex * 2, "kind": "dec-result",
                                 "doc_type": doc_type, "summary": f"customs {state}", "fields": {"CHANNEL": "R"},
                                 "raw": b"<DEC_RESULT><CHANNEL>R</CHANNEL></DEC_RESULT>", "received_at": created})
        with engine.begin() as c:
            c.execute(sa.insert(Message.__table__), msgs)
            c.execute(sa.insert(MessageKey.__table__), keys)
            c.execute(sa.insert(Event.__table__), events)
            if receipts:
                c.execute(sa.insert(Receipt.__table__), receipts)
    with engine.begin() as c:
        c.execute(sa.insert(Subscription.__table__), [{"business_key": "CL202600000001", "folder": "/tmp/subs",
                                                       "created_at": start}])
        if engine.dialect.name == "postgresql":
            for table in ("messages", "message_keys", "events", "receipts"):  # the sequences after explicit ids
                c.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                c.exec_driver_sql(f"ANALYZE {table}")
    engine.dispose()
    sample["message_id"] = n // 2
    sample["business_key"] = f"CL{2026_0000_0000 + 4}"
    return sample


def _cumulative():
    acc = 0.0
    for t, p, k in TYPES:
        acc += p
        yield t, acc, k


def _config(tmp: Path, url: str) -> Path:
    path = tmp / "console-bench.toml"
    path.write_text(f'[store]\nurl = "{url}"\nurl_env = "SWGW_BENCH_NO_OVERRIDE"\n', encoding="utf-8")
    return path


def bench_pages(say, url: str, sample: dict, runs: int, n: int) -> None:
    from fastapi.testclient import TestClient

    from console_helpers import PASSWORD, login
    from gateway.config import load
    from gateway.console import auth
    from gateway.console.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="swgw-console-bench-"))
    cfg = load(_config(tmp, url))
    app = create_app(cfg)
    auth.add_user(app.state.rt.sessions, f"bench{uuid.uuid4().hex[:6]}", "viewer", PASSWORD)
    name = auth.users(app.state.rt.sessions)[-1].name
    client = TestClient(app)
    assert login(client, name).status_code == 303
    entry = sample["entry_ids"][len(sample["entry_ids"]) // 2]
    pages = {"dashboard": "/", "messages page 1": "/messages",
             "messages type+state": "/messages?type=declaration&state=failed",
             "messages enterprise+dates": f"/messages?enterprise={ENTERPRISES[1]}&since=2026-02-01&until=2026-02-10",
             "messages by EntryId": f"/messages?key={entry}&key_name=EntryId",
             "messages page 1000": "/messages?page=1000",
             "message (trace)": f"/messages/{sample['message_id']}",
             "api messages": "/api/messages?state=closed"}
    for what, path in pages.items():
        client.get(path)  # warm: imports, templates compiled, connection pool filled
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = client.get(path, follow_redirects=False)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code in (200, 303), (path, r.status_code)
        say(f"console {what}", ms_p50=statistics.median(times), ms_max=max(times), messages=n)
    app.state.rt.engine.dispose()


def bench_cli(say, url: str, sample: dict, runs: int, n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="swgw-cli-bench-"))
    config = _config(tmp, url)
    swgw = [sys.executable, "-m", "gateway.cli"]
    cmds = {"status --key": ["status", "--key", sample["business_key"]],
            "status --state failed": ["status", "--state", "failed", "--json"],
            "status (first 1000)": ["status"],
            "trace": ["trace", sample["entry_ids"][0]],
            "subscriptions": ["subscriptions"]}
    for what, args in cmds.items():
        walls, cpus = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run([*swgw, *args, "--config", str(config)], capture_output=True, text=True,
                                  cwd=tmp, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "0"})
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            assert proc.returncode == 0, proc.stderr
        say(f"cli {what}", s_p50=statistics.median(walls), cpu_s_p50=statistics.median(cpus), messages=n)


def run(say, messages: int = 100_000, cli_messages: int = 10_000, runs: int = 7) -> None:
    from support import postgres_database

    with postgres_database() as url:
        t0 = time.perf_counter()
        sample = bulk_store(url, messages)
        print(f"bulk-inserted {messages} messages on PostgreSQL in {time.perf_counter() - t0:.1f}s", flush=True)
        bench_pages(say, url, sample, runs, messages)
    tmp = Path(tempfile.mkdtemp(prefix="swgw-cli-store-"))
    url = f"sqlite:///{tmp / 'swgw.db'}"
    sample = bulk_store(url, cli_messages)
    bench_cli(say, url, sample, runs, cli_messages)
    with postgres_database() as pg:
        sample = bulk_store(pg, cli_messages)
        bench_cli(lambda name, **v: say(name + " (PostgreSQL)", **v), pg, sample, runs, cli_messages)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--cli-messages", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    def say(name, **values):
        parts = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"{name:<40} {parts}", flush=True)

    run(say, args.messages, args.cli_messages, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
