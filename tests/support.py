"""Test support shared by every test folder: a workspace with its own config, and the daemon
and sandbox as real processes. (A module, not a conftest, so tests/card/ can import it too.)"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DXP_XSD = SHARED / "reference" / "dxp" / "dxp-terminal-node-202205.xsd"
SAMPLE_CSV = ROOT / "samples" / "declaration.csv"
# the catalogue families a workspace can add (Workspace(families=[...])): key -> mapping file
FAMILY_MAPPINGS = {
    "export-license": "export-license-json.toml",
    "me-import-license": "me-import-license-csv.toml",
    "auto-import-license": "auto-import-license-xml.toml",
    "inspection-feedback": "inspection-feedback-csv.toml",
    "origin": "origin-xml.toml",
    "origin-filing": "origin-filing-json.toml",
}


class Workspace:
    made: list["Workspace"] = []   # every workspace of the running test; conftest stops their processes after it

    def __init__(self, root: Path, pki: dict, store_url: str | None = None, families=(), **opts):
        Workspace.made.append(self)
        self.root = root
        self.families = tuple(families)
        self.var = root / "var"
        self.inbox = root / "inbox" / "declaration"
        self.outbox = root / "outbox" / "declaration"
        self.received = self.var / "sandbox" / "received"
        self.exchange = self.var / "exchange"
        shutil.copytree(pki["ca_dir"], self.var / "sandbox" / "ca")
        (self.var / "keys").mkdir(parents=True)
        shutil.copy(pki["key"], self.var / "keys" / "operator.key")
        shutil.copy(pki["cert"], self.var / "keys" / "operator.pem")
        if "mofcom_key" in pki:   # the enterprise's MOFCOM electronic key (a software key here)
            shutil.copy(pki["mofcom_key"], self.var / "keys" / "mofcom.key")
            shutil.copy(pki["mofcom_cert"], self.var / "keys" / "mofcom.pem")
        self.config = root / "gateway.toml"
        self.sandbox_config = root / "sandbox.toml"
        self.store_url = store_url or f"sqlite:///{self.var / 'swgw.db'}"
        self.write_config(**opts)
        self.procs: list[subprocess.Popen] = []

    def write_config(self, stable_seconds=0.3, sandbox_mode="off", poll=0.1, channels='["7", "L", "J", "P", "R"]',
                     delay=0.05, extra_rules="", mofcom_filings=("me", "agri")):
        self.config.write_text(textwrap.dedent(f"""
            [gateway]
            var_dir = "var"
            poll_interval = {poll}
            unmatched_outbox = "outbox/unmatched"
            [store]
            url = "{self.store_url}"
            url_env = "SWGW_TEST_NO_OVERRIDE"
            [log]
            format = "json"
            level = "info"
            [[enterprise]]
            code = "91210200MA0QC8N67X"
            name = "大连远洋五金进出口有限公司"
            customs_code = "2102930001"
            dxp_sender_id = "DXPENT0000012345"
            ccpit_code = "210200123"
            mofcom_code = "2102776367555"
            mofcom_key = "mofcom"
            mofcom_filings = {list(mofcom_filings)!r}
            signatories = [{{ name = "王丹" }}, {{ name = "李强", cancelled = true }}]
              [[enterprise.operators]]
              name = "王丹"
              signer = "op"
            [signers.op]
            kind = "software"
            key_file = "var/keys/operator.key"
            cert_file = "var/keys/operator.pem"
            media_no = "8930000012345"
            holder = "王丹"
            enterprise = "91210200MA0QC8N67X"
            [signers.mofcom]
            kind = "software"
            key_file = "var/keys/mofcom.key"
            cert_file = "var/keys/mofcom.pem"
            media_no = "MOFCOM0000001"
            holder = "大连远洋五金进出口有限公司"
            enterprise = "2102776367555"
            [transports.exchange]
            kind = "folder"
            outgoing = "var/exchange/to-sw"
            incoming = "var/exchange/from-sw"
            [documents.declaration]
            inbox = "inbox/declaration"
            outbox = "outbox/declaration"
            mapping = "{ROOT / 'mappings' / 'declaration-csv.toml'}"
            transport = "exchange"
            stable_seconds = {stable_seconds}
            {self._family_documents(stable_seconds)}
            [sandbox]
            mode = "{sandbox_mode}"
            config = "sandbox.toml"
            """))
        self.sandbox_config.write_text(textwrap.dedent(f"""
            [peer]
            archive_dir = "var/sandbox/received"
            trust = ["var/sandbox/ca/ca.pem"]
            poll_interval = 0.05
            [transport]
            kind = "folder"
            outgoing = "var/exchange/from-sw"
            incoming = "var/exchange/to-sw"
            [declaration]
            channels = {channels}
            import_delay = {delay}
            delay = {delay}
            [[declaration.rules]]
            when = {{ ClientSeqNo = "^REJ" }}
            channels = ["L", "E"]
            note = "申报要素不全"
            {extra_rules}
            [mofcom]
            keys = {{ "2102776367555" = "var/keys/mofcom.pem" }}
            filings = {{ "2102776367555" = {list(mofcom_filings)!r} }}
            {self._family_scenarios(delay)}
            """))

    def _family_documents(self, stable_seconds) -> str:
        out = []
        for key in self.families:
            out.append(f"""
            [documents.{key}]
            inbox = "inbox/{key}"
            outbox = "outbox/{key}"
            mapping = "{ROOT / 'mappings' / FAMILY_MAPPINGS[key]}"
            transport = "exchange"
            stable_seconds = {stable_seconds}""")
        return "".join(out)

    def _family_scenarios(self, delay) -> str:
        out = []
        if {"origin", "origin-filing"} & set(self.families):  # CCPIT: RET… returned, VOID… voided
            out.append(f"""
            [origin]
            delay = {delay}
            known_filings = ["26S2102M9997/00054"]
            [[origin.rules]]
            when = {{ InvoiceNo = "^RET" }}
            reason = "发票金额与FOB值不符，请核实"
            [[origin.rules]]
            when = {{ InvoiceNo = "^VOID" }}
            void = "企业申请作废"
            [[origin.filing_rules]]
            when = {{ FilingApplyNo = "^PFRET" }}
            reason = "原材料信息不完整：缺少从价百分比"
            """)
        for key in self.families:
            if key == "inspection-feedback":  # declarations INS… are inspected (C) and get an order
                out.append(f"""
            [inspection]
            delay = {delay}
            [[inspection.rules]]
            when = {{ MessageNo = "^FBRET" }}
            reason = "调箱信息与查验指令不符：集装箱未在查验区"
            [[declaration.rules]]
            when = {{ ClientSeqNo = "^INS" }}
            channels = ["L", "C", "P", "R"]
            """)
            if key.endswith("-license"):  # MOFCOM: applications whose number starts RET are returned
                # (handed back in the family's own words: 出口 未上报, 机电/非机电 暂存, with 审批意见)
                draft = "未上报" if key == "export-license" else "暂存"
                first = "审批中" if key == "me-import-license" else "待初审"
                out.append(f"""
            [{key}]
            first_delay = {delay}
            delay = {delay}
            customs = ["暂未到达海关", "海关入库成功"]
            write_offs = 2
            [[{key}.rules]]
            when = {{ ApplyNo = "RET" }}
            flow = ["{first}", "{draft}"]
            opinion = "规格型号与批复单不符，请核实后重新申报"
            [[{key}.rules]]
            when = {{ ContractNo = "^BAD" }}
            flow = ["{first}", "审批中", "{draft}"]
            opinion = "合同号与批复单不符"
            [[{key}.rules]]
            when = {{ ApplyNo = "^SOY" }}
            write_offs = 0
            """)
        return "".join(out)

    def inbox_of(self, key: str) -> Path:
        return self.root / "inbox" / key

    def outbox_of(self, key: str) -> Path:
        return self.root / "outbox" / key

    def drop_to(self, key: str, name: str, data: bytes | str) -> Path:
        inbox = self.inbox_of(key)
        inbox.mkdir(parents=True, exist_ok=True)
        tmp = inbox / f".{name}.part"
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, inbox / name)
        return inbox / name

    # -- processes --------------------------------------------------------------------
    def swgw(self, *args, env=None, check=False, timeout=120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "gateway.cli", *args]
        if args and args[0] != "sandbox" and "--config" not in args:
            cmd += ["--config", str(self.config)]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"swgw {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self, *args, env=None) -> subprocess.Popen:
        """A swgw process; its output goes to a file (`output(proc)`), never to a pipe nobody
        reads — a daemon that logs a lot would block on a full pipe."""
        cmd = [sys.executable, "-m", "gateway.cli", *args]
        log_path = self.root / f"{args[0]}-{len(self.procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=self.root, env={**os.environ, **(env or {})},
                                    stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc: subprocess.Popen) -> str:
        return proc.log_path.read_text(encoding="utf-8", errors="replace")

    def start_sandbox(self) -> subprocess.Popen:
        return self.start("sandbox", "--config", str(self.sandbox_config))

    def start_daemon(self, env=None) -> subprocess.Popen:
        return self.start("run", "--config", str(self.config), env=env)

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    # -- looking ----------------------------------------------------------------------
    def drop(self, name: str, data: bytes | str) -> Path:
        self.inbox.mkdir(parents=True, exist_ok=True)
        tmp = self.inbox / f".{name}.part"
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, self.inbox / name)
        return self.inbox / name

    def received_envelopes(self) -> list[Path]:
        return sorted(self.received.glob("*.xml")) if self.received.exists() else []

    def outbox_files(self) -> list[str]:
        return sorted(p.name for p in self.outbox.glob("*.xml")) if self.outbox.exists() else []

    def status(self) -> list[dict]:
        import json

        return json.loads(self.swgw("status", "--json", check=True).stdout)


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def csv_rows(n_decls: int, lines: int = 2, prefix: str = "T") -> str:
    """A declaration CSV in the reference layout with n_decls declarations of `lines` goods each."""
    header = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[0]
    template = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[1].split(",")
    cols = header.split(",")
    out = [header]
    for d in range(n_decls):
        for g in range(1, lines + 1):
            row = dict(zip(cols, template))
            row["client_seq_no"] = f"{prefix}{d:07d}"
            row["item_no"] = str(g)
            row["qty"], row["unit_price"], row["total"] = "10", "2.5", "25"
            row["container_no"] = f"CSLU{d % 10000000:07d}"
            out.append(",".join(row[c] for c in cols))
    return "\n".join(out) + "\n"


def import_declaration(client_seq: str, licence_ref: str, licence_code: str = "7", qty: str = "150000") -> str:
    """The reference declaration layout as one import of soybeans on CIF terms (so no freight or
    insurance to add) naming a licence (licence_code, licence_no columns): by its number, or by the
    application number of a licence swgw sent."""
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    cols = lines[0].split(",")
    row = dict(zip(cols, lines[1].split(",")))
    total = str(int(qty) * 52 // 100)
    row.update(client_seq_no=client_seq, ie_flag="I", trans_mode="1", item_no="1",   # an import on CIF terms hs_code="1201901000", goods_name="黄大豆",
               goods_model="非转基因", qty=qty, unit="035", first_qty=qty, first_unit="035",
               unit_price="0.52", total=total, origin_country="BRA", dest_country="CHN")
    header = cols + ["licence_code", "licence_no"]
    return ",".join(header) + "\n" + ",".join([row[c] for c in cols] + [licence_code, licence_ref]) + "\n"


def store_rows(url: str, sql: str) -> list[tuple]:
    """Rows of one SQL query on a store, read the way an operator's psql would (no swgw code)."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = [tuple(r) for r in c.exec_driver_sql(sql).all()]
    eng.dispose()
    return rows


@contextlib.contextmanager
def postgres_database(server: str = "postgresql+psycopg://postgres@127.0.0.1:5432"):
    """A fresh database on the machine's PostgreSQL, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    name = f"swgw_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def use_transport(ws: "Workspace", gateway_toml: str, sandbox_toml: str) -> None:
    """Point a workspace's gateway and sandbox at another transport (TOML for [transports.exchange]
    and the sandbox's [transport])."""
    cfg = ws.config.read_text()
    start = cfg.index("[transports.exchange]")
    end = cfg.index("[documents.declaration]")
    ws.config.write_text(cfg[:start] + gateway_toml.strip() + "\n" + cfg[end:])
    sb = ws.sandbox_config.read_text()
    start = sb.index("[transport]")
    end = sb.index("[declaration]")
    ws.sandbox_config.write_text(sb[:start] + sandbox_toml.strip() + "\n" + sb[end:])


def drain(ws: "Workspace", timeout=60, env=None) -> subprocess.CompletedProcess:
    """`swgw run --drain` on a workspace; fails the test unless everything settled."""
    proc = ws.swgw("run", "--drain", "--timeout", str(timeout), "--settle", "1.5", env=env, timeout=timeout + 30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc
