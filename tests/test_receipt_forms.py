"""Every receipt form the platform and the desktop client write, read by `swgw receipt` into the
right kind, keys, status and state. Fixtures: tests/fixtures/receipts/ (written by hand from public
samples, see its README) and the three real receipts in ../shared/realworld/."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from gateway.receipts import dates, parse
from support import ROOT, SHARED

FIX = ROOT / "tests" / "fixtures" / "receipts"
REAL = SHARED / "realworld"


def swgw_receipt(path, *args):
    return subprocess.run([sys.executable, "-m", "gateway.cli", "receipt", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)


def run_in_process(*args):
    """swgw in this process (the CLI's own code, without a new interpreter per call)."""
    from click.testing import CliRunner

    from gateway import cli

    result = CliRunner().invoke(cli.cli, list(args), catch_exceptions=True)
    code = getattr(result.exception, "code", result.exit_code) if result.exception else result.exit_code
    return code, result.output


def read(path) -> dict:
    code, out = run_in_process("receipt", str(path), "--json")
    assert code == 0, out
    return json.loads(out)


def keys(info) -> list[tuple[str, str]]:
    return [(k["name"], k["value"]) for k in info["keys"]]


@pytest.mark.parametrize("path, kind, form, want_keys, code, leads_to", [
    (REAL / "ep-util_DxpMsg_DEC_RESULT.xml", "dec-result", "DEC_RESULT",
     [("SeqNo", "E0000000000000546"), ("EntryId", "221720190670000546")], "K", "guarantee-released"),
    (REAL / "ep-util_DxpMsg_DecImportResponse.xml", "import-response", "DecImportResponse",
     [("ClientSeqNo", "EDI19C900000000546"), ("SeqNo", "E0000000000000546")], "0", "imported"),
    (REAL / "ep-util_DxpMsg_DecModSaveResponse.xml", "mod-response", "DecModSaveResponse",
     [("DecModSeqNo", "000000000000009172")], "0", None),
    (FIX / "dec_result_bare_7.xml", "dec-result", "DEC_RESULT", [("SeqNo", "I20180000147015879")], "7", "declared"),
    (FIX / "dec_result_bare_R.xml", "dec-result", "DEC_RESULT",
     [("SeqNo", "I20190000000000546"), ("EntryId", "221720190670000546")], "R", "closed"),
    (FIX / "dec_data_legacy_gb2312.xml", "dec-result", "DEC_DATA (legacy)", [("SeqNo", "000000001398639573")],
     "7", "declared"),
    (FIX / "client_failure_root.xml", "client-failure", "desktop client failure", [], "C134", "failed"),
    (FIX / "dxprep_several.xml", "dxp-rep", "DxpRep", [("CopMsgId", "6f1c2b7e9a0d4c31b8e2a5f7c9d0e1a2")],
     "2001", "rejected"),
])
def test_swgw_receipt_reads_each_form_into_its_kind_and_keys(path, kind, form, want_keys, code, leads_to):
    info = read(path)
    assert (info["kind"], info["form"], keys(info)) == (kind, form, want_keys)
    assert info["status"]["code"] == code
    assert info["leads_to"] == leads_to
    code, text = run_in_process("receipt", str(path))
    assert code == 0 and f"kind:       {kind}" in text


def test_bizkey_metadata_is_not_a_correlation_key():
    info = read(REAL / "ep-util_DxpMsg_DecImportResponse.xml")   # BizKey RetType=1, DealFlag=1
    assert info["msg_type"] == "DECCUSSH1"
    assert not {"RetType", "DealFlag"} & {k for k, _ in keys(info)}


def test_legacy_form_reads_its_gb2312_text_its_siblings_and_its_date():
    info = read(FIX / "dec_data_legacy_gb2312.xml")
    f = info["fields"]
    assert f["NOTE"] == "Z11000001308087512直接申报成功" and f["RESULT_INFO"] == "直接申报成功"
    assert (f["DECL_PORT"], f["TRADE_CO"], f["BILL_NO"]) == ("5317", "3301960ABC", "COSU6182001")
    assert info["notice_at"] == "2018-02-08T15:03:22"
    assert "申报成功" in info["meaning"]


def test_client_failure_carries_its_code_and_text():
    info = read(FIX / "client_failure_root.xml")
    assert info["fields"]["failCode"] == "C134"
    assert "打开读卡器失败" in info["fields"]["failInfo"] and "C134" in info["meaning"]


def test_dxprep_with_several_responses_keeps_them_all_and_the_failure_decides():
    info = read(FIX / "dxprep_several.xml")
    f = info["fields"]
    assert f["ResponseCode"] == "2001" and f["ResponseInfo"] == "接收方不存在"
    assert "DXPN0001 0 接收成功" in f["Responses"] and "DXPN0002 2001" in f["Responses"]
    assert "DXPEDCCUS0000001 2001 接收方不存在" in f["Results"]


def test_an_unknown_root_is_a_generic_receipt_and_an_unknown_channel_is_named():
    info = read(FIX / "generic_unknown.xml")
    assert info["kind"] == "generic" and info["fields"]["TaxNo"] == "221720190670000546A01"
    raw = (FIX / "dec_result_bare_7.xml").read_text(encoding="utf-8").replace("<CHANNEL>7<", "<CHANNEL>Q9<")
    parsed = parse.parse(raw.encode("utf-8"))
    from gateway.documents import family

    out = family("declaration").outcome(parsed.kind, parsed.fields, "acknowledged")
    assert out.state is None and out.unknown == "CHANNEL 'Q9'" and "'Q9'" in out.summary


def test_not_xml_exits_1_with_the_line(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<DEC_RESULT>\n<CHANNEL>7</CHANNEL>\n<NOTE>\n", encoding="utf-8")
    proc = swgw_receipt(bad)
    assert proc.returncode == 1
    assert "bad.xml" in proc.stderr and "line" in proc.stderr and "Traceback" not in proc.stderr


def test_the_same_status_in_a_dxpmsg_reads_as_the_bare_file():
    bare = (FIX / "dec_result_bare_7.xml").read_bytes()
    wrapped = (REAL / "ep-util_DxpMsg_DEC_RESULT.xml").read_text(encoding="utf-8")
    start, end = wrapped.index("<Data>") + 6, wrapped.index("</Data>")
    wrapped = wrapped[:start] + base64.b64encode(bare).decode() + wrapped[end:]
    a, b = parse.parse(bare), parse.parse(wrapped.encode("utf-8"))
    assert (a.kind, a.refs, a.fields) == (b.kind, b.refs, b.fields) and b.msg_type == "DECCUS001"


@pytest.mark.parametrize("text, iso", [
    ("2019-03-14T22:49:37", "2019-03-14T22:49:37"),
    ("20190314", "2019-03-14"),
    ("2019-03-14", "2019-03-14"),
    ("20180208T15032200", "2018-02-08T15:03:22"),
    ("2018-12-27T22:51:01.140+08:00", "2018-12-27T22:51:01.140000+08:00"),
    ("2019-03-14 22:49:37", "2019-03-14T22:49:37"),
    ("20261122103000", "2026-11-22T10:30:00"),
    ("", ""),
    ("soon", ""),
    ("2019-13-45", ""),
])
def test_dates_in_every_format_seen(text, iso):
    assert dates.iso(text) == iso
