"""Card-bound with remote cards: the gateway signs through N `swgw signer` agents over RabbitMQ,
each serving a virtual card over the real PC/SC stack at a real UKey's latency.

Measured in one run:
- one card's limit: signatures/s through PcscSigner in a tight loop (a declaration needs two);
- the latency a remote signature adds over a local one: the same card signing through its agent
  (RemoteSigner -> RabbitMQ -> agent -> PC/SC) against signing locally, p50 and p99;
- drop->sent with the card local (the same-run baseline), then with 1, 2 and 4 agents (one
  enterprise per card), against N x one card's limit and against N x the local figure.

The machine's vpcd gives two slots, and its driver cannot serve a second reader entry in the same
pcscd. Cards 3 and 4 are therefore on a second "card host": a second pcscd (with its own vpcd
entry on ports base+2, base+3) in a private mount namespace (`unshare --mount`, its own
/run/pcscd), with those two agents inside it — as two more PCs would have. Needs root for that;
without it the 4-agent figure is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import harness
import workload
from card import testbed
from card.signer import SignerError, signing_for

ENTS = ("91210200MA0QC8N67X", "91210200MA0QC9XX1Y", "91210200MA0QC7RB3W", "91210200MA0QC6RB4W")
PIN = b"135790"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
SECRET_ENV = "SWGW_BENCH_SIGNER_SECRET"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


def _second_host_unavailable() -> str | None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "a second pcscd in its own mount namespace needs root and unshare"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return None if probe.returncode == 0 else f"unshare --mount failed: {probe.stderr.decode().strip()[:200]}"


class CardHost:
    """Processes of the card hosts: agents (and the second host's pcscd), stopped by process group."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, **{SECRET_ENV: SECRET},
                        PYTHONPATH=os.pathsep.join(filter(None, [str(harness.ROOT), os.environ.get("PYTHONPATH")])))

    def agent_config(self, i: int, media_no: str, enterprise: str) -> Path:
        path = self.tmp / f"signer-{i}.toml"
        path.write_text(textwrap.dedent(f"""
            [agent]
            url = "{AMQP}"
            secret = {{ env = "{SECRET_ENV}" }}
            state_dir = "host-{i}"
            heartbeat_interval = 1.0
            name = "bench-pc-{i}"
            [card]
            kind = "pcsc"
            media_no = "{media_no}"
            pin = {{ file = "{self.tmp / 'card.pin'}" }}
            enterprise = "{enterprise}"
            [log]
            level = "warning"
            """))
        return path

    def start(self, configs: list[Path], namespace: bool = False) -> None:
        agents = [[sys.executable, "-m", "gateway.cli", "signer", "--config", str(c)] for c in configs]
        if not namespace:
            for cmd in agents:
                self._spawn(cmd)
            return
        conf = self.tmp / "pcsc2" / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        port = testbed.vpcd_base_port() + 2
        (conf / "vpcd").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x{port:04X}\n'
                                   f'LIBPATH      {VPCD_DRIVER}\nCHANNELID    0x{port:04X}\n')
        script = ("mount -t tmpfs tmpfs /run/pcscd && "
                  f"(pcscd --foreground -c {conf} > {self.tmp / 'pcsc2' / 'pcscd.log'} 2>&1 &) && "
                  "while [ ! -S /run/pcscd/pcscd.comm ]; do sleep 0.1; done && "
                  + " & ".join(" ".join(map(str, cmd)) for cmd in agents) + " & wait")
        self._spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])

    def _spawn(self, cmd) -> None:
        log = open(self.tmp / f"host-proc-{len(self.procs)}.log", "ab")
        self.procs.append(subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


SECRET = "bench-" + uuid.uuid4().hex


def _start_card(spec: testbed.CardSpec, workdir: Path, port: int) -> subprocess.Popen:
    """A virtual card for a vpcd port of the second card host (testbed.start_card knows only the first)."""
    pin_file = workdir / f"{spec.media_no}.pin"
    pin_file.write_bytes(spec.pin + b"\n")
    log = open(workdir / f"card-{spec.media_no}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "card.virtual", "--key", str(spec.key), "--cert", str(spec.cert),
                             "--pin-file", str(pin_file), "--media-no", spec.media_no, "--holder", spec.holder,
                             "--enterprise", spec.enterprise, "--port", str(port), "--state-file",
                             str(workdir / f"{spec.media_no}.state.json"), "--sign-latency-ms",
                             str(spec.sign_latency_ms)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(harness.ROOT)))


def _remote_toml(i: int, spec: testbed.CardSpec, ca_pem: Path) -> str:
    return (f'[signers.card{i}]\nkind = "remote"\nmedia_no = "{spec.media_no}"\nenterprise = "{spec.enterprise}"\n'
            f'url = "{AMQP}"\nsecret = {{ env = "{SECRET_ENV}" }}\nca_file = "{ca_pem}"\n')


def _wait_present(signer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            signer.info()
            return
        except SignerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run(tmp: Path, keys: dict, latency_ms: float, n_per_card: int, say, signatures: int = 40) -> None:
    tmp = tmp / "remote-cards"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ[SECRET_ENV] = SECRET
    (tmp / "card.pin").write_bytes(PIN + b"\n")
    run_id = uuid.uuid4().hex[:6].upper()
    specs = [testbed.issue_card(tmp / "cards", f"remote-{i}", media_no=f"ZKRB{run_id}{i:03d}", holder="王丹",
                                enterprise=ent, pin=PIN, ca=keys["ca"], sign_latency_ms=latency_ms)
             for i, ent in enumerate(ENTS)]
    ca_pem = keys["ca_dir"] / "ca.pem"
    bed = testbed.Testbed(tmp / "pcsc").start()
    hosts = CardHost(tmp)
    extra_cards: list[subprocess.Popen] = []
    try:
        for slot in (0, 1):
            bed.insert(specs[slot], slot=slot)
        hosts.start([hosts.agent_config(i, specs[i].media_no, specs[i].enterprise) for i in (0, 1)])
        why_not_4 = _second_host_unavailable()
        if why_not_4 is None:
            for i in (2, 3):
                extra_cards.append(_start_card(specs[i], tmp, testbed.vpcd_base_port() + i))
            hosts.start([hosts.agent_config(i, specs[i].media_no, specs[i].enterprise) for i in (2, 3)],
                        namespace=True)
        limit, local = _local(specs[0], signatures)
        say("remote: card's own limit", latency_ms=latency_ms, signatures_per_s=2 * limit, declarations_per_s=limit)
        remote = _remote_latency(specs[0], ca_pem, signatures)
        say("remote: added latency of a remote signature",
            local_p50_ms=harness.percentile(local, 50) * 1000, remote_p50_ms=harness.percentile(remote, 50) * 1000,
            added_p50_ms=(harness.percentile(remote, 50) - harness.percentile(local, 50)) * 1000,
            added_p99_ms=(harness.percentile(remote, 99) - harness.percentile(local, 99)) * 1000)
        local_rate = _gateway(tmp, keys, specs[:1], ca_pem, n_per_card, local=True)
        say("remote: the same card local (same-run baseline)", declarations=n_per_card, per_s=local_rate,
            ratio_to_n_cards_limit=local_rate / limit)
        for n in (1, 2, 4):
            if n == 4 and why_not_4:
                print(f"remote card-bound, 4 agents skipped: {why_not_4}")
                continue
            rate = _gateway(tmp, keys, specs[:n], ca_pem, n_per_card * n)
            say(f"remote card-bound, {n} agent{'s' if n > 1 else ''}", declarations=n_per_card * n, per_s=rate,
                ratio_to_n_cards_limit=rate / (n * limit), ratio_to_local_card=rate / (n * local_rate))
    finally:
        hosts.stop()
        for p in extra_cards:
            p.terminate()
            p.wait(10)
        bed.stop()
        _delete_queues(specs)


def _delete_queues(specs) -> None:
    """The cards' request queues (durable) go with the run: the broker is shared."""
    import pika

    from gateway import signer_wire

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        ch = conn.channel()
        for spec in specs:
            ch.queue_delete(signer_wire.queue_name(spec.media_no))
    finally:
        conn.close()


def _local(spec: testbed.CardSpec, n: int) -> tuple[float, list[float]]:
    """One card's limit (declarations/s) and its per-signature latencies, signing locally."""
    from card.pcsc import PcscSigner

    probe = PcscSigner(PIN, media_no=spec.media_no)
    try:
        probe.sign(b"warm-up")
        times = []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            probe.sign(b"<SignedInfo>" + b"x" * 300 + bytes([i % 256]) + b"</SignedInfo>")
            times.append(time.perf_counter() - t)
        return n / (time.perf_counter() - start) / 2, times
    finally:
        probe.close()


def _remote_latency(spec: testbed.CardSpec, ca_pem: Path, n: int) -> list[float]:
    """The same card through its agent: while this runs the local probe is closed, so the agent's
    PcscSigner has the card to itself (it reconnects on its own)."""
    from gateway.remote_signer import RemoteSigner, Trust

    remote = RemoteSigner("bench", url=AMQP, media_no=spec.media_no, enterprise=spec.enterprise, secret=SECRET,
                          trust=Trust(ca_file=ca_pem))
    try:
        _wait_present(remote)
        with signing_for(spec.enterprise, "BENCH-WARMUP"):
            remote.sign(b"warm-up")
        times = []
        for i in range(n):
            with signing_for(spec.enterprise, f"BENCH{i:05d}"):
                t = time.perf_counter()
                remote.sign(b"<SignedInfo>" + b"x" * 300 + bytes([i % 256]) + b"</SignedInfo>")
                times.append(time.perf_counter() - t)
        return times
    finally:
        remote.close()


def _gateway(tmp: Path, keys: dict, specs, ca_pem: Path, n: int, local: bool = False) -> float:
    if local:   # the card signing in this process over PC/SC, as bench/cards.py measures it
        import cards

        signers = cards._signer_toml("card0", specs[0].media_no, specs[0].enterprise, tmp / "card.pin")
    else:
        signers = "".join(_remote_toml(i, s, ca_pem) for i, s in enumerate(specs))
    operators = '  [[enterprise.operators]]\n  name = "王丹"\n  signer = "card0"\n'
    extra = "".join(f'[[enterprise]]\ncode = "{s.enterprise}"\nname = "企业{i}"\ncustoms_code = "210293000{i}"\n'
                    f'dxp_sender_id = "DXPENT000001234{i + 5}"\n  [[enterprise.operators]]\n  name = "李明"\n'
                    f'  signer = "card{i}"\n' for i, s in enumerate(specs) if i)
    site = harness.Site(tmp / f"remotesite{len(specs)}{'-local' if local else ''}", keys, signer_toml=signers, operators_toml=operators,
                        extra_toml=extra)
    rt, daemon = site.open()
    for name in rt.signer_configs:
        _wait_present(rt.signer(name))
    files = workload.files(n, n, "RMT", seed=5)
    name, text, _ = files[0]
    lines = text.splitlines()
    out = [lines[0]]
    for line in lines[1:]:   # declaration k belongs to enterprise k mod N
        key = line.split(",", 1)[0]
        out.append(line.replace(ENTS[0], specs[int(key[3:]) % len(specs)].enterprise))
    running = harness.Running(daemon)
    t0 = time.time()
    site.drop(name, "\n".join(out) + "\n")
    harness.wait_count(site, "sent", n, timeout=600)
    sent = site.event_times("sent")
    running.stop()
    return n / (max(sent.values()) - t0)
