"""The Single Window desktop client's ImpPath/<module>/OutBox|SentBox|FailBox|InBox layout."""
from __future__ import annotations

import os

import pytest

from gateway.transports.base import Outgoing, TransportError
from gateway.transports.clientfolder import ClientFolderTransport, classify

DEC = b'<?xml version="1.0" encoding="UTF-8"?><DecMessage xmlns="http://www.chinaport.gov.cn/dec"/>'


def item(name, data=DEC):
    return Outgoing(name=name, data=data, cop_msg_id=name, doc_type="declaration")


@pytest.fixture
def gw(tmp_path):
    return ClientFolderTransport(tmp_path / "ImpPath", "DecCus001", create=True)


def test_send_writes_bare_xml_into_outbox_atomically(gw):
    gw.send(item("DEC0001.xml"))
    outbox = gw.box["OutBox"]
    assert os.listdir(outbox) == ["DEC0001.xml"]           # nothing else, no temp file in OutBox
    assert (outbox / "DEC0001.xml").read_bytes() == DEC
    assert os.listdir(gw.staging) == []
    gw.send(item("DEC0001.xml", DEC + b"<!-- v2 -->"))       # not yet taken: replaced, not duplicated
    assert os.listdir(outbox) == ["DEC0001.xml"]
    assert (outbox / "DEC0001.xml").read_bytes().endswith(b"<!-- v2 -->")


def test_resend_after_the_client_sent_it_is_not_written_again(gw):
    gw.send(item("DEC0002.xml"))
    os.replace(gw.box["OutBox"] / "DEC0002.xml", gw.box["SentBox"] / "DEC0002.xml")   # the client sent it
    gw.send(item("DEC0002.xml"))                              # crash-recovery re-send, same bytes
    assert os.listdir(gw.box["OutBox"]) == []
    gw.send(item("DEC0002.xml", DEC + b" "))                  # changed content: a deliberate resend
    assert os.listdir(gw.box["OutBox"]) == ["DEC0002.xml"]


def test_inbox_responses_are_handed_over_with_their_kind_and_acked_to_processed(gw):
    inbox = gw.box["InBox"]
    (inbox / "Successed_DEC0001.xml").write_bytes(b"<DecImportResponse><ResponseCode>0</ResponseCode>"
                                                 b"</DecImportResponse>")
    (inbox / "Failed_DEC0003.xml").write_bytes(b"<DecImportResponse><ResponseCode>1</ResponseCode>"
                                              b"</DecImportResponse>")
    (inbox / "DEC_RESULT_2201.xml").write_bytes(b"<DEC_RESULT><CHANNEL>L</CHANNEL></DEC_RESULT>")
    (inbox / ".half.xml").write_bytes(b"<")                   # someone's temp file: skipped
    os.symlink("/etc/passwd", inbox / "link.xml")             # never followed
    got = {i.name: i for i in gw.receive()}
    assert set(got) == {"Successed_DEC0001.xml", "Failed_DEC0003.xml", "DEC_RESULT_2201.xml"}
    assert got["Successed_DEC0001.xml"].meta == {"box": "InBox", "kind": "import-success",
                                                 "original": "DEC0001.xml"}
    assert got["Failed_DEC0003.xml"].meta["kind"] == "import-failure"
    assert got["Failed_DEC0003.xml"].meta["original"] == "DEC0003.xml"
    assert got["DEC_RESULT_2201.xml"].meta["kind"] == "receipt"
    assert b"<CHANNEL>L</CHANNEL>" in got["DEC_RESULT_2201.xml"].data
    assert len(gw.receive()) == 3                              # receive does not remove
    for i in got.values():
        gw.ack(i.ref)
    gw.ack("InBox/Successed_DEC0001.xml")                      # twice: harmless
    assert sorted(os.listdir(inbox)) == [".half.xml", ".processed", "link.xml"]
    assert sorted(os.listdir(gw.processed)) == sorted(got)
    assert gw.receive() == []


def test_failbox_files_are_reported_once(gw):
    gw.send(item("DEC0004.xml"))
    os.replace(gw.box["OutBox"] / "DEC0004.xml", gw.box["FailBox"] / "DEC0004.xml")  # the client failed
    [failed] = gw.receive()
    assert failed.name == "FailBox/DEC0004.xml" and failed.ref == "FailBox/DEC0004.xml"
    assert failed.meta == {"box": "FailBox", "kind": "send-failed", "original": "DEC0004.xml"}
    assert failed.data == DEC
    gw.ack(failed.ref)
    assert gw.receive() == []
    assert os.listdir(gw.box["FailBox"] / ".seen") == ["DEC0004.xml"]


def test_sandbox_client_role_is_the_mirror_image(gw):
    client = ClientFolderTransport(gw.imp_path, "DecCus001", role="client")
    gw.send(item("DEC0005.xml"))
    gw.send(item("DEC0006.xml"))
    taken = {i.name: i for i in client.receive()}
    assert set(taken) == {"DEC0005.xml", "DEC0006.xml"}
    client.ack(taken["DEC0005.xml"].ref)                       # sent
    client.fail(taken["DEC0006.xml"].ref)                      # could not send
    client.send(item("Successed_DEC0005.xml", b"<DecImportResponse/>"))
    assert os.listdir(gw.box["SentBox"]) == ["DEC0005.xml"]
    got = sorted((i.ref, i.meta["kind"]) for i in gw.receive())
    assert got == [("FailBox/DEC0006.xml", "send-failed"), ("InBox/Successed_DEC0005.xml", "import-success")]


def test_unsafe_names_and_missing_folders_are_clear_errors(tmp_path, gw):
    with pytest.raises(TransportError) as err:
        gw.send(item("../evil.xml"))
    assert not err.value.retryable
    with pytest.raises(TransportError):
        gw.ack("InBox/../../x")
    with pytest.raises(TransportError) as err:
        gw.ack("OutBox/DEC0001.xml")                           # the gateway never acks OutBox
    assert "InBox/<name>" in str(err.value)
    missing = ClientFolderTransport(tmp_path / "nowhere", "DecCus001")
    with pytest.raises(TransportError) as err:
        missing.send(item("DEC0007.xml"))
    assert not err.value.retryable and "ImpPath" in str(err.value) and "nowhere" in str(err.value)
    assert not any(c.ok for c in missing.check())


def test_check_warns_when_the_client_is_not_taking_files(gw):
    assert all(c.ok for c in gw.check())
    gw.send(item("DEC0008.xml"))
    old = gw.box["OutBox"] / "DEC0008.xml"
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))
    [stale] = [c for c in gw.check() if not c.ok]
    assert "1 file(s) waiting" in stale.detail and "client running" in stale.detail


def test_classify():
    assert classify("Successed_A.xml") == ("import-success", "A.xml")
    assert classify("Failed_A.xml") == ("import-failure", "A.xml")
    assert classify("A.xml") == ("receipt", "A.xml")


def test_client_answers_name_the_file_they_answer_with_or_without_the_timestamp():
    from gateway.transports.clientfolder import classify

    assert classify("Successed_6f1c2b.xml_202408191442314383412") == ("import-success", "6f1c2b.xml")
    assert classify("Failed_6f1c2b_202408191442314383412.xml") == ("import-failure", "6f1c2b.xml")
    assert classify("Successed_6f1c2b.xml") == ("import-success", "6f1c2b.xml")
    assert classify("Receipt_6f1c2b_2_7.xml") == ("receipt", "Receipt_6f1c2b_2_7.xml")
