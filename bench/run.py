"""make bench: swgw's throughput and latency against a same-run baseline.

Prints a table; every rate is also given as a ratio to the floor and to the baseline measured in the
same run.
Scenarios: the floor (only the library calls no implementation can avoid), baseline (tight loop:
swgw's own map/build/sign code without store or transport), mapping only (CSV -> validated
DecMessage through intake's code, nothing stored), drop->sent and drop->final on the
embedded default, latency at a steady offered rate, the receipt path, the console's page times on a
100,000-message PostgreSQL store and the fast CLI on 10,000 messages (console), a 10,000-row
spreadsheet's read+map time and peak memory (xlsx), a 50,000-row CSV's
evaluation time and peak memory (bigfile), start-up (`swgw status` on 10,000 messages,
`swgw run` to its first file sent), drop->sent on PostgreSQL with 1 and 2 `swgw run` processes
(cluster), and (when the PC/SC stack is installed) card-bound mode, local (cards) and through 1, 2
and 4 `swgw signer` card hosts (remote).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baseline  # noqa: E402
import floor  # noqa: E402
import harness  # noqa: E402
import workload  # noqa: E402
from gateway import gctune, metrics  # noqa: E402

RESULTS: dict[str, dict] = {}
FLOOR: list[float] = []   # the floor's rate, once measured
REPEAT = [3]              # runs of the scenarios the targets are read from (--repeat); the median run is shown


def median_run(runs: list[tuple]) -> tuple:
    """Of (rate, …) results, the one with the median rate, and every rate as text: this machine's
    rates move ±15 % from one run to the next, the floor and the baseline as much as the rest."""
    ordered = sorted(runs, key=lambda r: r[0])
    return ordered[len(ordered) // 2], "/".join(f"{r[0]:.0f}" for r in runs)


def say(name: str, **values) -> None:
    if FLOOR and "per_s" in values and "ratio_to_floor" not in values:
        values["ratio_to_floor"] = values["per_s"] / FLOOR[0]
    RESULTS[name] = values
    parts = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
    print(f"{name:<34} {parts}", flush=True)


def stage_report(before: dict, after: dict) -> str:
    rows = []
    total = 0.0
    for stage, v in after.items():
        secs = v.get("seconds", 0) - before.get(stage, {}).get("seconds", 0)
        items = v.get("items", 0) - before.get(stage, {}).get("items", 0)
        total += secs
        rows.append((stage, secs, items))
    return "; ".join(f"{s} {t:.2f}s" + (f" ({t / i * 1000:.2f} ms/item)" if i else "") for s, t, i in rows
                     if t > 0.005) + f"; total {total:.2f}s"


def bench_floor(tmp: Path, keys, files) -> float:
    (rate, n), runs = median_run([(n / secs, n) for n, secs in
                                  (floor.run(files, keys, tmp / "floor-out") for _ in range(REPEAT[0]))])
    say("floor (unavoidable calls)", declarations=n, per_s=rate, ratio_to_floor=1.0, runs=runs)
    FLOOR.append(rate)
    return rate


def bench_baseline(tmp: Path, keys, files) -> float:
    (rate, n), runs = median_run([(n / secs, n) for n, secs in
                                  (baseline.run(files, keys, tmp / "baseline-out") for _ in range(REPEAT[0]))])
    say("baseline (tight loop)", declarations=n, per_s=rate, runs=runs)
    return rate


def bench_mapping(tmp: Path, keys, files) -> None:
    """Mapping only: each file's CSV read, grouped, mapped, enriched, checked, built and validated
    against the XSD into a DecMessage, serialized — swgw's intake code (`intake.read_documents`,
    `intake.evaluate`) on the real runtime, nothing stored, no signing."""
    from gateway import intake

    site = harness.Site(tmp / "mapping", keys)
    rt, _ = site.open()
    dt = rt.doc_types["declaration"]
    data = [text.encode("utf-8") for _, text, _ in files]

    def once() -> tuple[float, int, float]:
        n = 0
        start = time.perf_counter()
        for raw in data:
            _, groups, _ = intake.read_documents(rt, dt, raw)
            for mapped in groups:
                ev = intake.evaluate(rt, dt, mapped)
                if ev.errors or not ev.document:
                    raise AssertionError(f"mapping: {mapped.key} does not map: {ev.errors[:3]}")
                n += 1
        secs = time.perf_counter() - start
        return n / secs, n, secs

    (rate, n, secs), runs = median_run([once() for _ in range(REPEAT[0])])
    rt.close()
    say("mapping only (CSV -> valid DecMessage)", declarations=n, per_s=rate, ms_each=secs / n * 1000, runs=runs)


def drop_and_wait(site, files, state: str) -> tuple[float, list[float], dict, dict]:
    """Run the daemon, drop every file, wait until each declaration reached `state`.
    Returns (declarations/s from the first drop, latencies, stage metrics before, after)."""
    rt, daemon = site.open()
    n = sum(len(k) for _, _, k in files)
    running = harness.Running(daemon)
    before = metrics.snapshot()
    dropped = {}
    t0 = time.time()
    for fname, text, keys_ in files:
        at = site.drop(fname, text)
        dropped.update({k: at for k in keys_})
    harness.wait_count(site, state, n)
    reached = site.event_times(state)
    after = metrics.snapshot()
    running.stop()
    return n / (max(reached.values()) - t0), [reached[k] - dropped[k] for k in reached], before, after


def bench_drop_to_sent(tmp: Path, keys, files, base_rate: float, name="embedded drop->sent", repeat: int = 1,
                       store=None, **site_opts) -> None:
    """`repeat` runs, each on a fresh store (`store`: a context manager yielding its URL, else SQLite);
    the median run is shown."""
    def once():
        with (store() if store else contextlib.nullcontext()) as url:
            site = harness.Site(tmp / name.replace(" ", "_").replace(">", ""), keys,
                                **({"store_url": url} if url else {}), **site_opts)
            return drop_and_wait(site, files, "sent")

    (rate, lat, before, after), runs = median_run([once() for _ in range(repeat)])
    say(name, declarations=len(lat), per_s=rate, ratio_to_baseline=rate / base_rate, latency=harness.summary(lat),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,   # the daemon runs in this process
        **({"runs": runs} if repeat > 1 else {}))
    print(f"    where the time goes: {stage_report(before, after)}")


def bench_sftp_postgres(tmp: Path, keys, files, base_rate: float) -> None:
    """drop->sent over SFTP to a real OpenSSH server on 127.0.0.1, on the PostgreSQL store."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transports"))
    from sshd_server import SSHD, SshServer

    if not Path(SSHD).exists():
        print("SFTP + PostgreSQL skipped: no OpenSSH server (make test installs it)")
        return
    server = SshServer(tmp / "sshd")
    server.start()
    try:
        outgoing, incoming = server.root / "to-sw", server.root / "from-sw"
        outgoing.mkdir(parents=True)
        incoming.mkdir()
        transport = (f'[transports.exchange]\nkind = "sftp"\nhost = "{server.host}"\nport = {server.port}\n'
                     f'username = "{server.user}"\nkey_file = "{server.client_key}"\n'
                     f'known_hosts = "{server.known_hosts}"\noutgoing = "{outgoing}"\nincoming = "{incoming}"\n')
        bench_drop_to_sent(tmp, keys, files, base_rate, name="SFTP+PostgreSQL drop->sent",
                           store=harness.postgres_database, transport_toml=transport)
        arrived = len(list(outgoing.glob("*.xml")))
        print(f"    {arrived} envelopes on the SFTP server")
    finally:
        server.stop()


def bench_drop_to_final(tmp: Path, keys, files, base_rate: float) -> None:
    site = harness.Site(tmp / "final", keys, sandbox=True)
    rate, lat, before, after = drop_and_wait(site, files, "closed")
    say("embedded drop->final receipt", declarations=len(lat), per_s=rate, ratio_to_baseline=rate / base_rate,
        latency=harness.summary(lat))
    print(f"    where the time goes: {stage_report(before, after)}")


def bench_offered(tmp: Path, keys, rate: float, seconds: float, watch: str = "auto", poll_interval: float = 0.5) -> None:
    """One declaration a file at `rate` files/s, at the default poll interval: woken by inotify
    (watch auto) or by polling alone (watch poll)."""
    site = harness.Site(tmp / f"offered-{watch}", keys, poll_interval=poll_interval, watch=watch)
    rt, daemon = site.open()
    files = workload.files(int(rate * seconds), 1, "OFR", seed=11)
    running = harness.Running(daemon)
    dropped = {}
    start = time.time()
    for i, (fname, text, keys_) in enumerate(files):
        target = start + i / rate
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        at = site.drop(fname, text)
        dropped.update({k: at for k in keys_})
    harness.wait_count(site, "sent", len(dropped))
    sent = site.event_times("sent")
    running.stop()
    lat = [sent[k] - dropped[k] for k in sent]
    say(f"latency at {rate:.0f}/s offered, watch {watch}", declarations=len(lat), latency=harness.summary(lat),
        p99_ms=harness.percentile(lat, 99) * 1000, poll_interval_s=poll_interval)


def bench_receipts(tmp: Path, keys, n: int) -> None:
    """Receipts parsed, correlated, stored and routed per second (7 per declaration, the real forms: a
    DxpRep, the import response in a DxpMsg DECCUSSH1, then statuses 7 L J P R as bare DEC_RESULT in a
    DxpMsg DECCUS001 found by the unified number the import response gave)."""
    from gateway import pipeline
    from gateway.sandbox import receipts as sb

    site = harness.Site(tmp / "receipts", keys)
    rt, daemon = site.open()
    files = workload.files(n, 50, "RCP", seed=5)
    running = harness.Running(daemon)
    for fname, text, _ in files:
        site.drop(fname, text)
    harness.wait_count(site, "sent", n)
    running.stop()
    rt, daemon = site.open()
    inbox = site.root / "var" / "exchange" / "from-sw"
    with rt.sessions() as s:
        from gateway.store.models import Message

        msgs = [(m.cop_msg_id, m.business_key) for m in s.query(Message).all()]
    import datetime as dt

    from gateway.envelope import TransInfo

    count = 0
    for i, (cop, key) in enumerate(msgs):
        seq = f"0900{2026}{i:010d}"
        docs = [sb.dxp_rep("DXPENT0000012345", "0", "ok", TransInfo(cop, "DXPENT0000012345", ["X"], dt.datetime.now(), "D")),
                sb.wrap("DXPEDCSW00000001", "DXPENT0000012345", "DECCUSSH1",
                        sb.import_response(key, seq, True, "ok"), {"RetType": "1", "DealFlag": "1"})]
        for ch in "7LJPR":
            docs.append(sb.wrap("DXPEDCSW00000001", "DXPENT0000012345", "DECCUS001",
                                sb.dec_result(seq, "" if ch == "7" else seq, ch, "", "0900", "20261122"), {}))
        for j, d in enumerate(docs):
            (inbox / f"r{i:06d}-{j}.xml").write_bytes(d)
            count += 1
    start = time.perf_counter()
    while True:
        got = pipeline.receive_batch(rt, 500)
        pipeline.route_batch(rt, 1000)
        if not got:
            break
    secs = time.perf_counter() - start
    rt.close()
    say("receipt path", receipts=count, per_s=count / secs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--declarations", type=int, default=2000)
    ap.add_argument("--per-file", type=int, default=50)
    ap.add_argument("--offered-rate", type=float, default=100)
    ap.add_argument("--offered-seconds", type=float, default=10)
    ap.add_argument("--idle-rate", type=float, default=5, help="a rate at which the daemon waits between files")
    ap.add_argument("--card-latency-ms", type=float, default=240, help="virtual card signing latency")
    ap.add_argument("--card-declarations", type=int, default=20, help="declarations per card in card-bound mode")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of floor, baseline, mapping only and the two drop->sent targets (median shown)")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--layout", choices=("rich", "reference"), default="rich",
                    help="rich: the reference layout plus the full declaration's optional columns (default); "
                         "reference: exactly the reference export's columns")
    ap.add_argument("--console-messages", type=int, default=100_000, help="store size for the console's page times")
    ap.add_argument("--cli-messages", type=int, default=10_000, help="store size for status/trace/subscriptions")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    REPEAT[0] = max(1, args.repeat)
    tmp = Path(tempfile.mkdtemp(prefix="swgw-bench-"))
    keys = harness.make_keys(tmp / "keys")
    files = workload.files(args.declarations, args.per_file, "BEN", rich=args.layout == "rich")
    lines = sum(t.count("\n") - 1 for _, t, _ in files)
    print(f"workload: {args.declarations} declarations, {lines} goods lines ({lines / args.declarations:.1f} per "
          f"declaration, 1–50), {len(files)} files, {args.layout} layout; {os.cpu_count()} cores")
    gctune.settle()   # every scenario (floor and baseline too) under the collector setting `swgw run` uses
    bench_floor(tmp, keys, files)
    base = bench_baseline(tmp, keys, files)
    if not only or "mapping" in only:
        bench_mapping(tmp, keys, files)
    if not only or "sent" in only:
        bench_drop_to_sent(tmp, keys, files, base, repeat=REPEAT[0])
    if not only or "postgresql" in only:
        bench_drop_to_sent(tmp, keys, files, base, name="PostgreSQL drop->sent", repeat=REPEAT[0],
                           store=harness.postgres_database)
    if not only or "cluster" in only:
        import cluster

        cluster.run(tmp, keys, files, say)
    if not only or "sftp" in only:
        bench_sftp_postgres(tmp, keys, files, base)
    if not only or "final" in only:
        bench_drop_to_final(tmp, keys, files[: max(1, len(files) // 4)], base)
    if not only or "offered" in only:
        for rate, secs in ((args.offered_rate, args.offered_seconds), (args.idle_rate, 6)):
            bench_offered(tmp, keys, rate, secs, "auto")   # inotify wakes the loop
            bench_offered(tmp, keys, rate, secs, "poll")   # the same, polling every 0.5 s
    if not only or "receipts" in only:
        bench_receipts(tmp, keys, min(args.declarations, 500))
    if not only or "console" in only:
        import console

        console.run(say, args.console_messages, args.cli_messages)
    if not only or "bigfile" in only:
        import bigfile

        bigfile.run(tmp, say)
    if not only or "xlsx" in only:
        import spreadsheet

        spreadsheet.run(tmp, say)
    if not only or "startup" in only:
        import startup

        startup.run(say, args.cli_messages)
    if not only or "cards" in only:
        import cards

        reason = cards.available()
        if reason:
            print(f"card-bound mode skipped: {reason} (make test installs the PC/SC stack)")
        else:
            cards.run(tmp, keys, args.card_latency_ms, args.card_declarations, say)
    if not only or "remote" in only:
        import cards
        import remote_cards

        reason = cards.available()   # the same PC/SC stack
        if reason:
            print(f"remote card-bound mode skipped: {reason} (make test installs the PC/SC stack)")
        else:
            remote_cards.run(tmp, keys, args.card_latency_ms, args.card_declarations, say)
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
