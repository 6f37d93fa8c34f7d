"""The real PC/SC stack for the card tests: pyscard -> pcscd -> vsmartcard-vpcd -> card.virtual.

The session fixture `bed` starts pcscd (or reuses a running one) and stops what it
started by PID. If pcscd/vpcd are missing it runs scripts/install-test-deps.sh once;
the tests skip (with the reason) only when that is impossible.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from card import testbed
from pcsc_helpers import ENTERPRISE, PIN

REPO = Path(__file__).resolve().parents[2]


def _ensure_installed() -> str | None:
    """None when the stack is installed, else why it cannot be."""
    try:
        testbed.check_installed()
        return None
    except testbed.TestbedUnavailable as exc:
        first = str(exc)
    script = REPO / "scripts" / "install-test-deps.sh"
    proc = subprocess.run(["sh", str(script), sys.executable], capture_output=True, text=True)
    try:
        testbed.check_installed()
        return None
    except testbed.TestbedUnavailable:
        return f"{first}; install attempt failed: {(proc.stderr or proc.stdout).strip()[-300:]}"


@pytest.fixture(scope="session")
def bed(tmp_path_factory):
    reason = _ensure_installed()
    if reason:
        pytest.skip(f"PC/SC stack unavailable: {reason}")
    workdir = tmp_path_factory.mktemp("pcsc")
    try:
        tb = testbed.Testbed(workdir).start()
    except testbed.TestbedUnavailable as exc:
        pytest.skip(f"pcscd cannot start here: {exc}")
    yield tb
    tb.stop()


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


class Cards:
    """Insert virtual cards for one test; each gets its own try-counter file."""

    def __init__(self, bed: testbed.Testbed, pki_dir: Path, state_dir: Path):
        self.bed, self.pki_dir, self.state_dir = bed, pki_dir, state_dir
        self.slots: set[int] = set()

    def spec(self, name: str, media_no: str, *, algorithm: str = "sm2", holder: str = "张三",
             pin: bytes = PIN, **options) -> testbed.CardSpec:
        spec = testbed.issue_card(self.pki_dir, f"{name}-{algorithm}", media_no=media_no, holder=holder,
                                  enterprise=ENTERPRISE, pin=pin, algorithm=algorithm, **options)
        return dataclasses.replace(spec, state_file=self.state_dir / f"{media_no}.state.json")

    def insert(self, spec: testbed.CardSpec, slot: int = 0) -> testbed.VirtualCard:
        self.slots.add(slot)
        return self.bed.insert(spec, slot)

    def close(self) -> None:
        for slot in self.slots:
            self.bed.eject(slot)


@pytest.fixture
def cards(bed, pki_dir, tmp_path):
    c = Cards(bed, pki_dir, tmp_path)
    yield c
    c.close()


@pytest.fixture
def card_a(cards):
    return cards.insert(cards.spec("op-a", "ZK0000000001A"), slot=0)
