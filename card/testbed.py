"""Start and stop the real PC/SC stack with virtual cards: pcscd + vsmartcard-vpcd + card.virtual.

    with Testbed(Path("var/card")) as bed:           # starts pcscd unless one runs
        spec = issue_card(Path("var/card"), "op1", media_no="ZK0000000001", holder="张三",
                          enterprise="91210200MA0000000X", pin=b"123456")
        card = bed.insert(spec, slot=0)              # waits until the reader shows it
        signer = PcscSigner(b"123456", media_no=spec.media_no)
        card.remove(); card.reinsert()               # SIGUSR1 to the card process
    # leaving the block stops the cards, and pcscd if this testbed started it, by PID

pcscd runs once per machine: a running one is reused and left running. Debian's
vsmartcard-vpcd configures one vpcd reader (/etc/reader.conf.d/vpcd, CHANNELID =
TCP port 35963) which pcscd shows as two slots, "Virtual PCD 00 00" on port 35963 and
"Virtual PCD 00 01" on 35964; slot n of this module is port base+n.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from card import pki
from card.signer import CardAbsent, SignerError

VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_RUN_DIR = Path("/run/pcscd")
VPCD_SLOTS = 2
INSTALL_HINT = "run scripts/install-test-deps.sh (apt-get install pcscd vsmartcard-vpcd libpcsclite-dev swig)"
REPO_ROOT = Path(__file__).resolve().parent.parent


class TestbedUnavailable(Exception):
    """pcscd / vpcd / pyscard are not installed or pcscd cannot start."""

    __test__ = False  # not a pytest test class


def check_installed() -> None:
    missing = []
    if not shutil.which("pcscd"):
        missing.append("pcscd")
    if not VPCD_DRIVER.exists() or not VPCD_CONF.exists():
        missing.append("vsmartcard-vpcd")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        missing.append("pyscard (pip install pyscard)")
    if missing:
        raise TestbedUnavailable(f"missing {', '.join(missing)}; {INSTALL_HINT}")


def vpcd_base_port() -> int:
    """The TCP port of slot 0, from CHANNELID in Debian's vpcd reader config."""
    m = re.search(r"^\s*CHANNELID\s+(0x[0-9A-Fa-f]+|\d+)", VPCD_CONF.read_text(), re.M)
    return int(m.group(1), 0) if m else 0x8C7B


def _pcsc_readers() -> list[str] | None:
    """Reader names, or None when pcscd is not reachable."""
    from card.pcsc import list_readers

    try:
        return list_readers()
    except CardAbsent:
        return None


def vpcd_readers() -> list[str]:
    return sorted(r for r in (_pcsc_readers() or []) if r.startswith("Virtual PCD"))


def _wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestbedUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- pcscd -----------------------------------------------------------------------------

@dataclass
class Pcscd:
    pid: int | None          # None: an already running pcscd is reused
    log_file: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10) -> None:
        """Stop pcscd if we started it (by its PID)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def ensure_pcscd(workdir: Path, timeout: float = 15) -> Pcscd:
    """Reuse a running pcscd or start `pcscd --foreground` as our child; wait for the vpcd readers."""
    check_installed()
    if _pcsc_readers() is not None:
        _wait(vpcd_readers, timeout, "the vpcd readers in the running pcscd")
        return Pcscd(pid=None)
    PCSCD_RUN_DIR.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "pcscd.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(["pcscd", "--foreground"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    handle = Pcscd(pid=proc.pid, log_file=log_file, _proc=proc)

    def up():
        if proc.poll() is not None:
            raise TestbedUnavailable(f"pcscd exited with status {proc.returncode}; see {log_file}")
        return vpcd_readers()
    try:
        _wait(up, timeout, "pcscd to show the vpcd readers")
    except BaseException:
        handle.stop()
        raise
    return handle


# --- virtual cards -------------------------------------------------------------------

@dataclass(frozen=True)
class CardSpec:
    key: Path
    cert: Path
    pin: bytes
    media_no: str
    holder: str
    enterprise: str
    state_file: Path
    cert_no: str | None = None
    sign_latency_ms: float = 0
    tries: int = 3

    def __repr__(self) -> str:  # keep the PIN out of test reports and logs
        return f"CardSpec(media_no={self.media_no!r}, cert={str(self.cert)!r})"


def issue_card(directory: Path, name: str, *, media_no: str, holder: str, enterprise: str, pin: bytes,
               algorithm: str = "sm2", ca: pki.Issued | None = None, **options) -> CardSpec:
    """A key and certificate from the sandbox CA (created in `directory` if needed) as a card."""
    ca = ca or pki.ensure_ca(directory)
    issued = pki.ensure_issued(directory, name, holder, ca, algorithm=algorithm)
    return CardSpec(key=issued.key, cert=issued.cert, pin=pin, media_no=media_no, holder=holder,
                    enterprise=enterprise, state_file=directory / f"{name}.card-state.json", **options)


@dataclass
class VirtualCard:
    spec: CardSpec
    slot: int
    port: int
    reader: str
    log_file: Path
    _proc: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def shows(self) -> bool:
        """Does the reader show this card (SELECT + GET CARD INFO answer with our media number)?"""
        from card.pcsc import card_info

        try:
            return card_info(self.reader).media_no == self.spec.media_no
        except SignerError:
            return False

    def _reader_empty(self) -> bool:
        from card.pcsc import card_info

        try:
            card_info(self.reader)
            return False
        except CardAbsent:
            return True
        except SignerError:
            return False

    def wait_present(self, timeout: float = 10) -> None:
        def ok():
            if self._proc.poll() is not None:
                raise TestbedUnavailable(f"virtual card {self.spec.media_no} exited with status "
                                         f"{self._proc.returncode}; see {self.log_file}")
            return self.shows()
        try:
            _wait(ok, timeout, f"card {self.spec.media_no} in reader {self.reader!r}")
        except TestbedUnavailable as exc:
            from card.pcsc import card_info

            try:
                other = card_info(self.reader).media_no
            except SignerError:
                raise exc from None
            raise TestbedUnavailable(f"{exc}: the slot is occupied by card {other} from another process; "
                                     "stop it (e.g. python -m card.testbed down --dir ...)") from None

    def wait_absent(self, timeout: float = 10) -> None:
        _wait(self._reader_empty, timeout, f"reader {self.reader!r} to show no card")

    def remove(self, wait: bool = True) -> None:
        """Pull the card out of the reader (the card process disconnects from vpcd)."""
        self._proc.send_signal(signal.SIGUSR1)
        if wait:
            self.wait_absent()

    def reinsert(self, wait: bool = True) -> None:
        self._proc.send_signal(signal.SIGUSR1)
        if wait:
            self.wait_present()

    def stop(self, timeout: float = 10) -> None:
        if self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def start_card(spec: CardSpec, workdir: Path, slot: int = 0, wait: bool = True, extra_args: tuple[str, ...] = ()) -> VirtualCard:
    """Start `python -m card.virtual` for `spec` in vpcd slot `slot` (port base+slot)."""
    if not 0 <= slot < VPCD_SLOTS:
        raise ValueError(f"vpcd has slots 0..{VPCD_SLOTS - 1}")
    readers = vpcd_readers()
    if len(readers) <= slot:
        raise TestbedUnavailable(f"pcscd shows {len(readers)} vpcd reader(s), slot {slot} needs more; check {VPCD_CONF}")
    workdir.mkdir(parents=True, exist_ok=True)
    pin_file = workdir / f"{spec.media_no}.pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(spec.pin + b"\n")
    port = vpcd_base_port() + slot
    args = [sys.executable, "-m", "card.virtual", "--key", str(spec.key), "--cert", str(spec.cert),
            "--pin-file", str(pin_file), "--media-no", spec.media_no, "--holder", spec.holder,
            "--enterprise", spec.enterprise, "--port", str(port), "--state-file", str(spec.state_file),
            "--sign-latency-ms", str(spec.sign_latency_ms), "--tries", str(spec.tries), *extra_args]
    if spec.cert_no:
        args += ["--cert-no", spec.cert_no]
    log_file = workdir / f"card-{spec.media_no}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    card = VirtualCard(spec=spec, slot=slot, port=port, reader=readers[slot], log_file=log_file, _proc=proc)
    if wait:
        try:
            card.wait_present()
        except BaseException:
            card.stop()
            raise
    return card


class Testbed:
    """pcscd (reused or started) plus the virtual cards started through it; stops what it started."""

    __test__ = False

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.pcscd: Pcscd | None = None
        self.cards: dict[int, VirtualCard] = {}

    def start(self) -> "Testbed":
        self.pcscd = ensure_pcscd(self.workdir)
        return self

    def insert(self, spec: CardSpec, slot: int = 0, **kwargs) -> VirtualCard:
        """Start a virtual card in `slot`, replacing (stopping) the one there."""
        self.eject(slot)
        card = start_card(spec, self.workdir, slot, **kwargs)
        self.cards[slot] = card
        return card

    def eject(self, slot: int) -> None:
        card = self.cards.pop(slot, None)
        if card is not None:
            card.stop()
            card.wait_absent()

    def stop(self) -> None:
        for slot in list(self.cards):
            self.cards.pop(slot).stop()
        if self.pcscd is not None:
            self.pcscd.stop()
            self.pcscd = None

    def __enter__(self) -> "Testbed":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- command line: keep a virtual card running for the demo ---------------------------
#   python -m card.testbed up --dir var/card --media-no ZK0000000001A --holder 张三 \
#       --enterprise 91210200MA0000000X --pin-file var/card/pin [--slot 0] [--algorithm sm2]
#   python -m card.testbed down --dir var/card
# `up` leaves pcscd (if it started it) and the card running and records their PIDs in
# <dir>/testbed.json; `down` stops exactly those PIDs (checking they are still ours).

def _pid_is(pid: int, needle: str) -> bool:
    try:
        return needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_pid(pid: int, needle: str, timeout: float = 10) -> bool:
    if not _pid_is(pid, needle):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_is(pid, needle) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_is(pid, needle):
        os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m card.testbed", description="virtual card stack for the demo")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start pcscd if needed and one virtual card")
    up.add_argument("--dir", required=True, type=Path, help="sandbox CA, card key, state and logs")
    up.add_argument("--media-no", required=True)
    up.add_argument("--holder", required=True)
    up.add_argument("--enterprise", required=True)
    up.add_argument("--pin-file", type=Path, help="first line is the PIN (else $SWGW_CARD_PIN)")
    up.add_argument("--algorithm", default="sm2", choices=("sm2", "ec", "rsa"))
    up.add_argument("--slot", type=int, default=0)
    up.add_argument("--sign-latency-ms", type=float, default=0)
    down = sub.add_parser("down", help="stop what `up` started, by PID")
    down.add_argument("--dir", required=True, type=Path)
    args = p.parse_args(argv)
    record = args.dir / "testbed.json"
    try:
        saved = json.loads(record.read_text()) if record.exists() else {"pcscd_pid": None, "cards": []}
    except ValueError:
        saved = {"pcscd_pid": None, "cards": []}

    if args.command == "down":
        for c in saved["cards"]:
            if _stop_pid(c["pid"], "card.virtual"):
                print(f"stopped virtual card {c['media_no']} (pid {c['pid']})")
        if saved.get("pcscd_pid") and _stop_pid(saved["pcscd_pid"], "pcscd"):
            print(f"stopped pcscd (pid {saved['pcscd_pid']})")
        record.unlink(missing_ok=True)
        return 0

    if args.pin_file:
        lines = args.pin_file.read_bytes().splitlines()
        pin = lines[0].strip() if lines else b""
    else:
        pin = os.environ.get("SWGW_CARD_PIN", "").encode()
    if not pin:
        p.error("no PIN: give --pin-file or set SWGW_CARD_PIN")
    try:
        pcscd = ensure_pcscd(args.dir)
        spec = issue_card(args.dir, f"card-{args.media_no}", media_no=args.media_no, holder=args.holder,
                          enterprise=args.enterprise, pin=pin, algorithm=args.algorithm,
                          sign_latency_ms=args.sign_latency_ms)
        for c in saved["cards"]:  # replace a card we started earlier in this slot
            if c["slot"] == args.slot:
                _stop_pid(c["pid"], "card.virtual")
        saved["cards"] = [c for c in saved["cards"] if c["slot"] != args.slot]
        card = start_card(spec, args.dir, args.slot)
    except (TestbedUnavailable, pki.PkiError) as exc:
        print(f"card testbed: {exc}", file=sys.stderr)
        return 1
    saved["pcscd_pid"] = saved.get("pcscd_pid") or pcscd.pid
    saved["cards"].append({"pid": card.pid, "slot": args.slot, "media_no": args.media_no, "reader": card.reader})
    record.write_text(json.dumps(saved, indent=2))
    print(f"virtual card {args.media_no} in reader {card.reader!r} (pid {card.pid}); "
          f"pcscd {'started, pid %d' % pcscd.pid if pcscd.pid else 'already running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
