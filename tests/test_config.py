"""Config paths resolve against the config file's folder, wherever swgw is started from."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import ROOT
from gateway.config import load
from gateway.sandbox import settings


def test_every_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load(ROOT / "config" / "gateway.toml")
    assert cfg.documents["declaration"].inbox == ROOT / "inbox" / "declaration"
    assert cfg.signers["operator-card"].key_file == ROOT / "var" / "keys" / "operator.key"
    assert cfg.store.url == f"sqlite:///{ROOT / 'var' / 'swgw.db'}"
    sb = settings.load(ROOT / "config" / "sandbox.toml")
    assert sb.peer.trust == [ROOT / "var" / "sandbox" / "ca" / "ca.pem"], "paths inside lists resolve too"
    assert sb.transport.incoming == ROOT / "var" / "exchange" / "to-sw"
    assert Path(os.getcwd()) == tmp_path
