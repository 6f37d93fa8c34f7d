"""Config paths resolve against the config file's folder, wherever swgw is started from."""
from __future__ import annotations

import os
from pathlib import Path

from support import ROOT
from gateway.config import load
from gateway.sandbox import settings


def test_every_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load(ROOT / "config" / "gateway.toml")
    assert cfg.documents["declaration"].inbox == ROOT / "inbox" / "declaration"
    assert cfg.signers["operator-card"].key_file == ROOT / "var" / "keys" / "operator.key"
    assert cfg.store.url == f"sqlite:///{ROOT / 'var' / 'swgw.db'}"
    sb = settings.load(ROOT / "config" / "sandbox.toml")
    assert sb.peer.trust == [ROOT / "var" / "sandbox" / "ca" / "ca.pem", ROOT / "var" / "card" / "ca.pem"], \
        "paths inside lists resolve too"
    assert sb.transport.incoming == ROOT / "var" / "exchange" / "to-sw"
    assert Path(os.getcwd()) == tmp_path


def test_extends_layers_a_config_and_a_kind_replaces_the_table():
    cfg = load(ROOT / "config" / "gateway-card.toml")
    signer = cfg.signers["operator-card"]
    assert signer.kind == "pcsc" and signer.pin.file == ROOT / "var" / "card" / "pin"
    assert not hasattr(signer, "key_file"), "the software signer's keys are not merged into the card"
    assert cfg.documents["declaration"].inbox == ROOT / "inbox" / "declaration", "the rest comes from the base"


def test_extends_loop_is_refused(tmp_path):
    import pytest

    from gateway.config import ConfigError

    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="extends itself"):
        load(tmp_path / "a.toml")


def test_every_shipped_example_loads_and_pairs_with_its_sandbox():
    """config/gateway-<transport>.toml and the sandbox it names: each loads, and the sandbox
    reads where the gateway writes (and the other way round)."""
    from gateway.runtime import open_transport

    examples = sorted((ROOT / "config").glob("gateway-*.toml"))
    assert {p.stem for p in examples} >= {"gateway-card", "gateway-sftp", "gateway-rabbitmq", "gateway-clientfolder"}
    for path in examples:
        cfg = load(path)
        tc = cfg.transports["exchange"]
        if cfg.sandbox.mode == "off":
            continue
        sb = settings.load(cfg.sandbox.config).transport
        assert sb.kind == tc.kind, path.name
        if tc.kind == "amqp":
            assert (sb.incoming_queue, sb.outgoing_queue) == (tc.outgoing_queue, tc.incoming_queue), path.name
        elif tc.kind == "clientfolder":
            assert sb.imp_path == tc.imp_path and sb.role == "client", path.name
        elif tc.kind == "folder":
            assert (sb.incoming, sb.outgoing) == (tc.outgoing, tc.incoming), path.name
        assert open_transport("exchange", tc).carries in ("dxp", "business")
    rabbit = load(ROOT / "config" / "gateway-rabbitmq.toml")
    assert rabbit.amqp_intake.queues == {"declaration": "erp.declaration"}
    assert rabbit.documents["declaration"].record_mapping == ROOT / "mappings" / "declaration-json.toml"
    assert rabbit.documents["declaration"].mapping == ROOT / "mappings" / "declaration-csv.toml"
