"""A private OpenSSH server on 127.0.0.1 for the SFTP tests and the demo.

It runs `/usr/sbin/sshd -D -e -f <dir>/sshd_config` as a child process with its own
host key, an authorized client key for the current user (root in CI), key-only
auth and `Subsystem sftp internal-sftp` (which supports posix-rename@openssh.com).
Nothing outside `<dir>` is touched except creating `/run/sshd` (sshd's privilege-
separation directory) when missing.

    server = SshServer(Path("/tmp/x")); server.start()
    ... server.port, server.client_key, server.known_hosts, server.root ...
    server.kill()        # like a crash: the listener and every session process
    server.start()       # same port, same host key
    server.stop()

Standalone (for the demo or manual poking):
    python tests/transports/sshd_server.py /tmp/swgw-sshd     # runs until Ctrl-C
"""
from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """All descendants of `pid` (per-connection sshd processes), from /proc."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            parent_of[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found += kids
        frontier += kids
    return found


class SshServer:
    def __init__(self, base: Path, port: int | None = None, user: str | None = None):
        self.base = Path(base)
        self.port = port or free_port()
        self.user = user or getpass.getuser()
        self.host = "127.0.0.1"
        self.root = self.base / "remote"               # the SFTP tests' remote folders live here
        self.host_key = self.base / "ssh_host_ed25519_key"
        self.client_key = self.base / "client_ed25519"
        self.known_hosts = self.base / "known_hosts"
        self.config = self.base / "sshd_config"
        self.log = self.base / "sshd.log"
        self.proc: subprocess.Popen | None = None
        self._prepare()

    def _prepare(self) -> None:
        if not Path(SSHD).exists():
            raise RuntimeError(f"{SSHD} is missing: run scripts/install-test-deps.sh (openssh-server)")
        self.base.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "swgw-test",
                                "-f", str(key)], check=True)
        authorized = self.base / "authorized_keys"
        authorized.write_text((self.client_key.with_suffix(".pub")).read_text())
        authorized.chmod(0o600)
        host_pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self.config.write_text(f"""\
Port {self.port}
ListenAddress {self.host}
HostKey {self.host_key}
PidFile none
AuthorizedKeysFile {authorized}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {self.user}
StrictModes no
UsePAM no
UseDNS no
MaxStartups 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
""")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}; see {self.log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} within {timeout}s; see {self.log}")

    def kill(self) -> None:
        """Crash: SIGKILL the listener and every session it spawned (by PID)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Orderly stop: SIGTERM sessions and listener, SIGKILL what lingers."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        pids = _children(self.proc.pid) if self.proc.poll() is None else []
        for pid in [self.proc.pid, *pids]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in pids:                       # sessions that ignored SIGTERM
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


if __name__ == "__main__":
    base = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/swgw-sshd")
    server = SshServer(base, port=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    server.start()
    print(f"sshd on {server.host}:{server.port} user={server.user}\n"
          f"  key_file={server.client_key}\n  known_hosts={server.known_hosts}\n"
          f"  remote root={server.root}\nCtrl-C to stop", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
