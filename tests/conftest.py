"""Shared fixtures. The helpers themselves live in support.py (importable from every folder)."""
from __future__ import annotations

import pytest

from support import *  # noqa: F401,F403  (tests import Workspace, wait_for … from here too)
from support import Workspace

@pytest.fixture(autouse=True)
def _stop_workspace_processes():
    """Whatever daemon or sandbox a test started through a Workspace is stopped after it, whether
    or not the test used a fixture that does so (no process outlives its test)."""
    Workspace.made.clear()
    yield
    for ws in Workspace.made:
        ws.stop_all()
    Workspace.made.clear()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """One sandbox CA and one operator key for the whole session (OpenSSL is slowish)."""
    from card import pki as card_pki

    d = tmp_path_factory.mktemp("pki")
    ca = card_pki.ensure_ca(d / "ca")
    op = card_pki.ensure_issued(d / "keys", "operator", "王丹", ca)
    mofcom = card_pki.ensure_issued(d / "keys", "mofcom", "大连远洋五金进出口有限公司 商务部电子钥匙", ca)
    return {"ca_dir": d / "ca", "key": op.key, "cert": op.cert, "mofcom_key": mofcom.key, "mofcom_cert": mofcom.cert}


@pytest.fixture
def workspace(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    yield ws
    ws.stop_all()


@pytest.fixture(scope="session")
def sm2_and_rsa(tmp_path_factory):
    """An operator's SM2 key and an RSA one, each issued by one test CA (card.pki)."""
    from card import pki as card_pki

    d = tmp_path_factory.mktemp("sm2-rsa-keys")
    ca = card_pki.ensure_ca(d / "ca")
    return {alg: card_pki.ensure_issued(d, f"op-{alg}", "op", ca, alg) for alg in ("sm2", "rsa")}
