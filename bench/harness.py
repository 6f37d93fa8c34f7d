"""A gateway in a temporary folder, run in-process, and the measurements taken on it."""
from __future__ import annotations

import shutil
import statistics
import sys
import textwrap
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from card import pki
from gateway import config as gw_config
from gateway import log
from gateway.daemon import Daemon
from gateway.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support import postgres_database  # noqa: E402,F401  (one helper for tests and benchmarks)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def summary(latencies: list[float]) -> str:
    return (f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.0f} ms")


OPERATOR = """  [[enterprise.operators]]
  name = "王丹"
  signer = "op"
"""


class Site:
    """A workspace: config, keys, folders; `transport_toml`/`signers_toml` choose the variant."""

    def __init__(self, root: Path, keys: dict, store_url: str | None = None, sandbox: bool = False,
                 signer_toml: str | None = None, transport_toml: str | None = None, extra_toml: str = "",
                 sandbox_transport_toml: str | None = None, operators_toml: str | None = None,
                 poll_interval: float = 0.02, watch: str = "auto"):
        self.root = root
        if root.exists():
            shutil.rmtree(root)
        (root / "var" / "keys").mkdir(parents=True)
        shutil.copy(keys["key"], root / "var" / "keys" / "op.key")
        shutil.copy(keys["cert"], root / "var" / "keys" / "op.pem")
        shutil.copytree(keys["ca_dir"], root / "var" / "sandbox" / "ca")
        self.store_url = store_url or f"sqlite:///{root / 'var' / 'swgw.db'}"
        self.inbox = root / "inbox" / "declaration"
        self.inbox.mkdir(parents=True)
        signer_toml = signer_toml or textwrap.dedent("""
            [signers.op]
            kind = "software"
            key_file = "var/keys/op.key"
            cert_file = "var/keys/op.pem"
            media_no = "8930000012345"
            holder = "王丹"
            enterprise = "91210200MA0QC8N67X"
            """)
        transport_toml = transport_toml or textwrap.dedent("""
            [transports.exchange]
            kind = "folder"
            outgoing = "var/exchange/to-sw"
            incoming = "var/exchange/from-sw"
            """)
        (root / "gateway.toml").write_text(textwrap.dedent(f"""
            [gateway]
            var_dir = "var"
            poll_interval = {poll_interval}
            watch = "{watch}"
            [store]
            url = "{self.store_url}"
            url_env = "SWGW_BENCH_NO_OVERRIDE"
            [log]
            level = "warning"
            [[enterprise]]
            code = "91210200MA0QC8N67X"
            name = "大连远洋五金进出口有限公司"
            customs_code = "2102930001"
            dxp_sender_id = "DXPENT0000012345"
            {operators_toml or OPERATOR}
            {extra_toml}
            """) + signer_toml + transport_toml + textwrap.dedent(f"""
            [documents.declaration]
            inbox = "inbox/declaration"
            outbox = "outbox/declaration"
            mapping = "{ROOT / 'mappings' / 'declaration-csv.toml'}"
            transport = "exchange"
            done_marker = true
            [sandbox]
            mode = "{'inprocess' if sandbox else 'off'}"
            config = "sandbox.toml"
            """))
        sandbox_transport_toml = sandbox_transport_toml or textwrap.dedent("""
            [transport]
            kind = "folder"
            outgoing = "var/exchange/from-sw"
            incoming = "var/exchange/to-sw"
            """)
        (root / "sandbox.toml").write_text(textwrap.dedent("""
            [peer]
            archive_dir = "var/sandbox/received"
            trust = ["var/sandbox/ca/ca.pem"]
            poll_interval = 0.01
            [declaration]
            channels = ["L", "J", "P", "R"]
            import_delay = 0
            delay = 0
            """) + sandbox_transport_toml)

    def open(self) -> tuple[Runtime, Daemon]:
        log.setup("console", "warning")
        cfg = gw_config.load(self.root / "gateway.toml")
        rt = Runtime.open(cfg)
        return rt, Daemon(rt)

    def drop(self, name: str, text: str) -> float:
        path = self.inbox / name
        path.write_text(text, encoding="utf-8")
        (self.inbox / f"{name}.done").touch()
        return time.time()

    def event_times(self, to_state: str) -> dict[str, float]:
        """business key -> time of its first transition into `to_state`."""
        eng = sa.create_engine(self.store_url)
        q = sa.text("SELECT m.business_key, MIN(e.at) FROM events e JOIN messages m ON m.id = e.message_id "
                    "WHERE e.kind = 'state' AND e.to_state = :s GROUP BY m.business_key")
        with eng.connect() as c:
            rows = c.execute(q, {"s": to_state}).all()
        eng.dispose()
        out = {}
        for key, at in rows:
            if isinstance(at, str):
                from datetime import datetime

                at = datetime.fromisoformat(at)
            if at.tzinfo is None:
                from datetime import timezone

                at = at.replace(tzinfo=timezone.utc)
            out[key] = at.timestamp()
        return out


class Running:
    """The daemon loop in a thread, as `swgw run` runs it."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        daemon.start()
        self.thread = threading.Thread(target=daemon.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.daemon.stop.set()
        self.thread.join(30)
        self.daemon.shutdown()


def wait_count(site: Site, state: str, n: int, timeout: float = 600) -> None:
    eng = sa.create_engine(site.store_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with eng.connect() as c:
                got = c.execute(sa.text("SELECT count(DISTINCT message_id) FROM events WHERE kind='state' "
                                        "AND to_state = :s"), {"s": state}).scalar_one()
                invalid = c.execute(sa.text("SELECT count(*) FROM messages WHERE state IN "
                                            "('invalid', 'failed', 'rejected')")).scalar_one()
            if invalid:
                raise RuntimeError(f"{invalid} messages invalid/failed/rejected: the workload is wrong")
            if got >= n:
                return
            time.sleep(0.25)   # rates come from the events' times, not from when this loop looks
        raise TimeoutError(f"{got}/{n} reached {state} in {timeout}s")
    finally:
        eng.dispose()


def make_keys(directory: Path) -> dict:
    ca = pki.ensure_ca(directory / "ca")
    op = pki.ensure_issued(directory / "keys", "op", "王丹", ca)
    return {"ca_dir": directory / "ca", "key": op.key, "cert": op.cert, "ca": ca}


def median(values):
    return statistics.median(values) if values else float("nan")
