"""The certificate's route takes its transport word from the transport-mode table (2 水路 SEA,
5 航空 AIR …); a mode that is no means of transport (1 监管仓库) is refused with its name."""
from __future__ import annotations

import pytest

from support import ROOT, Workspace

REFERENCE = ROOT / "samples" / "origin.xml"


@pytest.fixture
def ws(tmp_path, pki):
    return Workspace(tmp_path, pki, families=["origin"])


@pytest.mark.parametrize("mode,expect", [("2", "FROM CNDLC TO VNHPH BY SEA"), ("5", "FROM CNDLC TO VNHPH BY AIR"),
                                         ("4", "FROM CNDLC TO VNHPH BY ROAD"), ("1", None)])
def test_route_words_come_from_the_transport_mode_table(ws, mode, expect):
    f = ws.root / "cert.xml"
    f.write_text(REFERENCE.read_text(encoding="utf-8").replace("<TransportMode>2</TransportMode>",
                                                             f"<TransportMode>{mode}</TransportMode>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin", "--xml")
    if expect:
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"<TransportRoute>{expect}</TransportRoute>" in out.stdout
    else:
        assert out.returncode == 1
        assert "CertHead/TransportMode: transport mode 1 (监管仓库) is not a means of transport" in out.stdout
        assert "[rule transport-mode] value '1'" in out.stdout


@pytest.mark.parametrize("name,message", [
    ("李强", "signatory 李强 of 91210200MA0QC8N67X is cancelled (已注销) and may no longer sign certificates"),
    ("张三", "张三 is not a registered signatory (手签员) of 91210200MA0QC8N67X (registered: 王丹)")])
def test_the_signatory_must_be_registered_and_not_cancelled(ws, name, message):
    f = ws.root / "cert.xml"
    f.write_text(REFERENCE.read_text(encoding="utf-8").replace("<Signatory>王丹</Signatory>",
                                                             f"<Signatory>{name}</Signatory>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin")
    assert out.returncode == 1
    assert f"CertHead/Signatory: {message} [rule signatory] value '{name}'" in out.stdout
    assert "/OriginApplications/Application/Signatory (line" in out.stdout
