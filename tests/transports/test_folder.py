"""The folder transport: a batch's files appear at flush(), whole and fsynced, or not at all."""
from __future__ import annotations

import os

import pytest

from gateway import fsutil
from gateway.transports.base import Outgoing, TransportError
from gateway.transports.folder import FolderTransport


def item(name: str, data: bytes = b"<DxpMsg/>") -> Outgoing:
    return Outgoing(name=name, data=data, cop_msg_id=name.removesuffix(".xml"), doc_type="declaration")


def visible(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in fsutil.regular_files(folder)}


def test_files_sent_appear_at_flush_with_their_latest_content(tmp_path):
    t = FolderTransport(tmp_path / "out", tmp_path / "in")
    for n in range(20):   # enough to be synced by several threads
        t.send(item(f"M{n:02d}.xml", f"<DxpMsg n='{n}'/>".encode()))
    t.send(item("M03.xml", b"<DxpMsg again='yes'/>"))   # the same name again before the flush: its latest data
    assert visible(tmp_path / "out") == {}, "nothing shows before the flush"
    t.flush()
    files = visible(tmp_path / "out")
    assert sorted(files) == [f"M{n:02d}.xml" for n in range(20)]
    assert files["M03.xml"] == b"<DxpMsg again='yes'/>" and files["M07.xml"] == b"<DxpMsg n='7'/>"
    assert [p for p in os.listdir(tmp_path / "out") if p.startswith(".")] == [], "no temp file left"
    t.flush()   # nothing more sent: nothing changes
    assert visible(tmp_path / "out") == files


def test_a_flush_that_cannot_sync_shows_nothing_and_says_so(tmp_path, monkeypatch):
    t = FolderTransport(tmp_path / "out", tmp_path / "in")
    for n in range(10):
        t.send(item(f"F{n}.xml"))

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsutil.os, "fsync", broken)
    with pytest.raises(TransportError, match="cannot make the files sent durable"):
        t.flush()
    assert os.listdir(tmp_path / "out") == [], "neither the files nor their temp files"
    monkeypatch.undo()
    t.send(item("F1.xml"))   # the batch goes again
    t.flush()
    assert list(visible(tmp_path / "out")) == ["F1.xml"]


def test_without_fsync_a_file_appears_when_sent(tmp_path):
    t = FolderTransport(tmp_path / "out", tmp_path / "in", fsync=False)
    t.send(item("N1.xml"))
    assert list(visible(tmp_path / "out")) == ["N1.xml"]


def test_the_outgoing_folder_is_made_again_if_it_went_away(tmp_path):
    t = FolderTransport(tmp_path / "out", tmp_path / "in")
    (tmp_path / "out").rmdir()
    t.send(item("G1.xml"))
    t.flush()
    assert list(visible(tmp_path / "out")) == ["G1.xml"]


def test_transmit_records_nothing_sent_when_the_folder_cannot_make_it_durable(workspace, monkeypatch):
    """The files of a transmit batch are fsynced at the transport's flush, before the commit
    that records them sent; if that fails, every message of the batch stays signed with a
    failed attempt (it goes again after its backoff) and the exchange shows none of them."""
    from sqlalchemy import select, update

    from gateway import config, pipeline
    from gateway.runtime import Runtime
    from gateway.store import repo, states
    from gateway.store.models import Event, Message

    rt = Runtime.open(config.load(workspace.config))
    out = workspace.exchange / "to-sw"
    try:
        with rt.sessions.begin() as s:
            s.add_all([Message(doc_type="declaration", enterprise="E", business_key=f"K{i}", cop_msg_id=f"C{i:04d}",
                               state=states.SIGNED, content_sha256="x", envelope=f"<DxpMsg n='{i}'/>".encode(),
                               transport="exchange") for i in range(10)])

        def broken(paths):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(fsutil, "_fsync_all", broken)
        assert pipeline.transmit_batch(rt) == 0
        monkeypatch.undo()
        assert visible(out) == {} and [p for p in os.listdir(out) if p.startswith(".")] == []
        with rt.sessions.begin() as s:
            msgs = list(s.scalars(select(Message).order_by(Message.id)))
            assert {(m.state, m.attempts, m.transmit_failures) for m in msgs} == {(states.SIGNED, 1, 1)}
            retry = [e.detail for e in repo.events(s, msgs[0].id) if e.kind == "transmit-retry"]
            assert len(retry) == 1 and "cannot make the files sent durable" in retry[0]
            s.execute(update(Message).values(next_attempt_at=None))   # its backoff is over
        assert pipeline.transmit_batch(rt) == 10
        assert sorted(visible(out)) == [f"C{i:04d}.xml" for i in range(10)]
        assert visible(out)["C0003.xml"] == b"<DxpMsg n='3'/>"
        with rt.sessions() as s:
            msgs = list(s.scalars(select(Message).order_by(Message.id)))
            assert {(m.state, m.attempts, m.transmit_failures, m.next_attempt_at) for m in msgs} == {
                (states.SENT, 2, 0, None)}
            assert all(m.sent_at is not None for m in msgs)
            sent = s.scalars(select(Event).where(Event.kind == "state", Event.to_state == states.SENT)
                             .order_by(Event.id)).all()
            assert [e.message_id for e in sent] == [m.id for m in msgs]
            assert sent[0].detail == "sent via exchange as C0000.xml"
    finally:
        rt.close()


def test_temp_files_a_killed_process_left_are_removed_when_old(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".OLD.xml.123.tmp").write_bytes(b"<half")
    (out / ".NEW.xml.456.tmp").write_bytes(b"<another process's batch")
    (out / "KEEP.xml").write_bytes(b"<DxpMsg/>")
    hour_ago = os.stat(out / "KEEP.xml").st_mtime - 3700
    for name in (".OLD.xml.123.tmp", "KEEP.xml"):
        os.utime(out / name, (hour_ago, hour_ago))
    FolderTransport(out, tmp_path / "in")
    assert sorted(os.listdir(out)) == [".NEW.xml.456.tmp", "KEEP.xml"]
