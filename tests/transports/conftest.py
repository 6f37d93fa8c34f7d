"""Fixtures for the transport tests: a private sshd and the local RabbitMQ.

Both are REAL servers. `sshd` is started once per session on a free port of
127.0.0.1 (see sshd_server.py); RabbitMQ is expected on 127.0.0.1:5672
(guest/guest, override with SWGW_TEST_AMQP_URL) and the AMQP tests are skipped
with the reason when it is not reachable.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from sshd_server import SSHD, SshServer  # noqa: E402

AMQP_URL = os.environ.get("SWGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists():
        subprocess.run([str(REPO / "scripts" / "install-test-deps.sh")], check=True)
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def remote_dirs(sshd):
    """Fresh outgoing/incoming folders on the sshd for one test."""
    base = sshd.root / uuid.uuid4().hex[:8]
    out, inc = base / "out", base / "in"
    out.mkdir(parents=True)
    inc.mkdir()
    return out, inc


@pytest.fixture
def make_sftp(sshd, remote_dirs):
    from gateway.transports.sftp import SftpTransport

    made = []

    def make(**kw):
        out, inc = remote_dirs
        args = dict(host=sshd.host, port=sshd.port, username=sshd.user, outgoing=str(out),
                    incoming=str(inc), known_hosts=str(sshd.known_hosts), key_file=str(sshd.client_key),
                    connect_timeout=5, op_timeout=10, backoff_initial=0.2, backoff_max=2)
        args.update(kw)
        t = SftpTransport(**args)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def _amqp_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url():
    if not _amqp_up():
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672 (start it: rabbitmq-server -detached)")
    return AMQP_URL


@pytest.fixture
def amqp_names(amqp_url):
    """Unique queue/exchange names for one test; all deleted afterwards (with their .dlq)."""
    import pika

    made: list[tuple[str, str]] = []
    tag = uuid.uuid4().hex[:8]

    def name(kind: str, what: str = "queue") -> str:
        n = f"swgw-test-{tag}-{kind}"
        made.append((what, n))
        return n

    name.tag = tag
    yield name
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        for what, n in made:
            if what == "queue":
                ch.queue_delete(n)
                ch.queue_delete(f"{n}.dlq")
            else:
                ch.exchange_delete(n)
    finally:
        conn.close()
