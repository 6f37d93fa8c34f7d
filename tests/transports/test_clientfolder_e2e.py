"""The daemon through the official desktop client's folders (ImpPath/DecCus001/...), with the
sandbox playing the client: bare business XML out, Successed_/Failed_ and status receipts in."""
from __future__ import annotations

import os
import re

from lxml import etree

from support import Workspace, csv_rows, use_transport, wait_for

DEC = "{http://www.chinaport.gov.cn/dec}"


def client_toml(imp_path, header: str, role: str, module: str = "DecCus001") -> str:
    return f'{header}\nkind = "clientfolder"\nimp_path = "{imp_path}"\nmodule = "{module}"\nrole = "{role}"\ncreate = true\n'


def test_declarations_through_the_desktop_client_folders(tmp_path, pki):
    """The client spells its module folder Deccus001, swgw is configured with DecCus001; the client's
    answers carry its timestamp (Successed_<file>_<timestamp>) and status receipts are the bare
    <DEC_RESULT> files of the real client; one declaration the client itself fails (<Root> C134)."""
    imp = tmp_path / "ImpPath"
    ws = Workspace(tmp_path / "ws", pki)
    ws.write_config(extra_rules="""
            [[declaration.rules]]
            when = { ClientSeqNo = "^CLIFAIL" }
            client_failure = "C134 [读卡器底层库]打开读卡器失败:错误码=50200"
            """)
    use_transport(ws, client_toml(imp, "[transports.exchange]", "gateway"),
                  client_toml(imp, "[transport]", "client", module="Deccus001"))
    rows = (csv_rows(4, lines=2, prefix="CLF") + csv_rows(1, lines=1, prefix="REJ").split("\n", 1)[1]
            + csv_rows(1, lines=1, prefix="CLIFAIL").split("\n", 1)[1])
    try:
        ws.start_sandbox()
        wait_for(lambda: (imp / "Deccus001" / "InBox").is_dir(), 20, what="the client's folders")
        ws.start_daemon()
        ws.drop("batch.csv", rows)
        wait_for(lambda: {r["state"] for r in ws.status()} == {"closed", "rejected", "failed"}
                 and len(ws.status()) == 6, 60, what="four declarations closed, one rejected, one failed")
    finally:
        ws.stop_all()
    assert sorted(p.name for p in imp.iterdir()) == ["Deccus001"], "the client's folder, found without regard to case"
    box = imp / "Deccus001"
    sent = sorted(box.joinpath("SentBox").iterdir())
    assert len(sent) == 6
    for path in sent:
        root = etree.parse(str(path)).getroot()
        assert root.tag == f"{DEC}DecMessage", "the client gets the bare business XML, not a DxpMsg"
        assert root.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature") is None
    processed = sorted(p.name for p in (box / "InBox" / ".processed").iterdir())
    answers = [n for n in processed if n.startswith("Successed_")]
    assert len(answers) == 5 and all(re.fullmatch(r"Successed_[0-9a-f]{32}\.xml_\d{21}", n) for n in answers)
    assert {etree.parse(str(box / "InBox" / ".processed" / n)).getroot().tag for n in processed
            if not n.startswith(("Successed_", "Failed_"))} == {"DEC_RESULT"}
    assert not [p for p in (box / "InBox").iterdir() if p.is_file()], "every receipt stored, then moved"
    assert not [p for p in (box / "OutBox").iterdir() if p.is_file()]
    states = {r["key"]: r["state"] for r in ws.status()}
    assert states["REJ0000000"] == "rejected"
    rejected = [p for p in ws.outbox.glob("REJ0000000.dec-result.*.xml")]
    assert any("申报要素不全" in p.read_text(encoding="utf-8") for p in rejected), "the reason reaches the outbox"
    # the client's own failure file fails its message with failCode and failInfo
    assert states["CLIFAIL0000000"] == "failed"
    trace = ws.swgw("trace", "CLIFAIL0000000", check=True).stdout
    assert "the desktop client failed it: C134 [读卡器底层库]打开读卡器失败:错误码=50200" in trace


def test_a_file_the_client_moves_to_failbox_fails_its_message(tmp_path, pki):
    imp = tmp_path / "ImpPath"
    ws = Workspace(tmp_path / "ws", pki)
    use_transport(ws, client_toml(imp, "[transports.exchange]", "gateway"),
                  client_toml(imp, "[transport]", "client"))
    box = imp / "DecCus001"
    for name in ("OutBox", "SentBox", "FailBox", "InBox"):   # the client made its folders
        (box / name).mkdir(parents=True)
    try:
        ws.start_daemon()                 # no client running: the file waits in OutBox
        ws.drop("one.csv", csv_rows(1, lines=1, prefix="FBX"))
        wait_for(lambda: [p for p in (box / "OutBox").iterdir() if p.is_file()], 30, what="a file in OutBox")
        [out] = [p for p in (box / "OutBox").iterdir() if p.is_file()]
        os.replace(out, box / "FailBox" / out.name)   # what the client does when it cannot send
        wait_for(lambda: [r["state"] for r in ws.status()] == ["failed"], 30, what="the message failed")
    finally:
        ws.stop_all()
    trace = ws.swgw("trace", "FBX0000000", check=True).stdout
    assert "desktop client could not send it" in trace and out.name in trace
    assert (box / "FailBox" / ".seen" / out.name).exists()
    assert list(ws.outbox.glob("FBX0000000.send-failed.*.xml"))
