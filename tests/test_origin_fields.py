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
