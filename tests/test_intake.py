"""Intake in-process: what one poll's batch of files becomes in the store."""
from __future__ import annotations

import os

from support import csv_rows
from gateway import config, intake
from gateway.runtime import Runtime
from gateway.store.models import IntakeFile, Message


def test_files_in_one_poll_same_content_and_same_keys(workspace):
    """One poll, one transaction: a second copy of a file is a duplicate of the first (not an
    error, nothing sent twice), and a later file reusing a key of an earlier one in the same
    batch with other content is refused for that key — as if they had come in separate polls."""
    rt = Runtime.open(config.load(workspace.config))
    try:
        first = csv_rows(3, prefix="BAT")
        inbox = workspace.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "a.csv").write_text(first, encoding="utf-8")
        (inbox / "b.csv").write_text(first, encoding="utf-8")
        # BAT0000000 again, with another container: same key, other content
        (inbox / "c.csv").write_text(csv_rows(1, prefix="BAT").replace("CSLU", "TGHU"), encoding="utf-8")
        old = os.stat(inbox / "a.csv").st_mtime - 60
        for name in ("a.csv", "b.csv", "c.csv"):
            os.utime(inbox / name, (old, old))
        dt = rt.doc_types["declaration"]
        dt.source.stable_seconds = 0
        claimed = dt.source.poll() or dt.source.poll()
        assert sorted(c.name for c in claimed) == ["a.csv", "b.csv", "c.csv"]
        reports = {r["file"]: r for r in intake.take_files(rt, dt, sorted(claimed, key=lambda c: c.name))}
        assert reports["a.csv"]["outcome"] == "accepted" and len(reports["a.csv"]["accepted"]) == 3
        assert reports["b.csv"]["outcome"] == "duplicate" and reports["b.csv"]["same_as"] == "a.csv"
        assert reports["c.csv"]["outcome"] == "error"
        [err] = reports["c.csv"]["rejected"][0]["errors"]
        assert err["rule"] == "unique" and "BAT0000000" in err["message"]
        with rt.sessions() as s:
            msgs = s.query(Message).order_by(Message.id).all()
            assert [(m.business_key, m.state) for m in msgs] == [
                ("BAT0000000", "prepared"), ("BAT0000001", "prepared"), ("BAT0000002", "prepared"),
                ("BAT0000000", "invalid")]
            stored = {f.name: f for f in s.query(IntakeFile)}
            ids = [e["message"] for e in stored["a.csv"].report["accepted"]]
            assert ids == [m.id for m in msgs[:3]], "the stored report names the messages it made"
    finally:
        rt.close()


def test_the_same_file_dropped_again_under_its_name_is_a_recorded_duplicate(workspace):
    """An ERP that exports the same file again under the same name: the second drop is a
    duplicate with its own intake record (not mistaken for the recovery of the first after a
    crash), and nothing is stored or sent twice."""
    rt = Runtime.open(config.load(workspace.config))
    try:
        dt = rt.doc_types["declaration"]
        dt.source.stable_seconds = 0
        inbox = workspace.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        reports = []
        for _ in range(2):
            (inbox / "export.csv").write_text(csv_rows(2, prefix="AGN"), encoding="utf-8")
            old = os.stat(inbox / "export.csv").st_mtime - 60
            os.utime(inbox / "export.csv", (old, old))
            claimed = dt.source.poll() or dt.source.poll()
            assert [c.name for c in claimed] == ["export.csv"]
            reports += intake.take_files(rt, dt, claimed)
        assert [r["outcome"] for r in reports] == ["accepted", "duplicate"]
        assert reports[1]["same_as"] == "export.csv"
        with rt.sessions() as s:
            assert [(f.name, f.outcome) for f in s.query(IntakeFile).order_by(IntakeFile.id)] == [
                ("export.csv", "accepted"), ("export.csv", "duplicate")]
            assert s.query(Message).count() == 2
    finally:
        rt.close()


def test_a_file_that_trips_a_fault_while_storing_does_not_hold_back_the_others(workspace, monkeypatch):
    """If storing a batch fails (here: a fault injected for one declaration), each file is
    stored alone; the one that fails is refused with what went wrong, the others go on."""
    rt = Runtime.open(config.load(workspace.config))
    real_store = intake.store

    def faulty_store(dt, s, ev, *args, **kwargs):
        if ev.mapped.key == "BAD0000000":
            raise RuntimeError("injected fault")
        return real_store(dt, s, ev, *args, **kwargs)

    monkeypatch.setattr(intake, "store", faulty_store)
    try:
        inbox = workspace.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "good.csv").write_text(csv_rows(2, prefix="GOD"), encoding="utf-8")
        (inbox / "bad.csv").write_text(csv_rows(1, prefix="BAD"), encoding="utf-8")
        (inbox / "more.csv").write_text(csv_rows(1, prefix="MOR"), encoding="utf-8")
        dt = rt.doc_types["declaration"]
        dt.source.stable_seconds = 0
        claimed = dt.source.poll() or dt.source.poll()
        reports = {r["file"]: r for r in intake.take_files(rt, dt, claimed)}
        assert reports["good.csv"]["outcome"] == reports["more.csv"]["outcome"] == "accepted"
        assert reports["bad.csv"]["outcome"] == "error"
        assert "injected fault" in reports["bad.csv"]["error"] and "drop the file again" in reports["bad.csv"]["error"]
        assert (inbox / ".error" / "bad.csv").exists() and (inbox / ".error" / "bad.csv.error.json").exists()
        with rt.sessions() as s:
            assert sorted(m.business_key for m in s.query(Message)) == ["GOD0000000", "GOD0000001", "MOR0000000"]
    finally:
        rt.close()


def test_files_are_stored_a_transaction_at_a_time_each_committed_before_the_next(workspace, monkeypatch):
    """A pass claims about BYTES_PER_TRANSACTION of files (a file never split) and files claimed
    together are stored in transactions of that size: signing starts on the first while the next
    is mapped, and what one transaction stored makes a later copy a duplicate all the same."""
    monkeypatch.setattr(intake, "BYTES_PER_TRANSACTION", 1)   # one file each
    rt = Runtime.open(config.load(workspace.config))
    seen_before: list[int] = []
    real = intake.take_files

    def counting(rt_, dt_, chunk):   # how many messages were committed when each transaction began
        with rt_.sessions() as s:
            seen_before.append(s.query(Message).count())
        return real(rt_, dt_, chunk)

    monkeypatch.setattr(intake, "take_files", counting)
    try:
        inbox = workspace.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        first = csv_rows(2, prefix="TRX")
        (inbox / "a.csv").write_text(first, encoding="utf-8")
        (inbox / "b.csv").write_text(csv_rows(3, prefix="TRY"), encoding="utf-8")
        (inbox / "c.csv").write_text(first, encoding="utf-8")
        old = os.stat(inbox / "a.csv").st_mtime - 60
        for name in ("a.csv", "b.csv", "c.csv"):
            os.utime(inbox / name, (old, old))
        source = rt.doc_types["declaration"].source
        source.stable_seconds = 0
        source.poll()   # first sight of each file (stable_seconds 0: ready at the next look)
        assert intake.run_once(rt) == 1, "a pass claims a transaction's worth; the rest wait in the inbox"
        assert len(list(inbox.glob("*.csv"))) == 2
        assert len(source.poll()) == 2   # claimed together (as after a restart, recovered from .work/) …
        assert intake.run_once(rt, recover=True) == 2   # … they are still stored one transaction each
        assert len(seen_before) == 3 and seen_before[0] == 0 and seen_before[1] in (2, 3) and seen_before[2] == 5
        with rt.sessions() as s:
            outcomes = sorted((f.name, f.outcome) for f in s.query(IntakeFile))
            assert s.query(Message).count() == 5
        dup = [o for n, o in outcomes if n in ("a.csv", "c.csv")]
        assert sorted(dup) == ["accepted", "duplicate"] and ("b.csv", "accepted") in outcomes
    finally:
        rt.close()


def test_a_document_already_taken_earlier_in_the_same_batch_is_named_by_its_message(workspace):
    """Two files of one poll share a declaration (same key, same content) but differ otherwise:
    the second's copy is a duplicate, and its report entry names the message the first file made
    in the same transaction (the id it gets when the batch is written)."""
    rt = Runtime.open(config.load(workspace.config))
    try:
        inbox = workspace.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        both = csv_rows(2, prefix="SHR")
        lines = both.splitlines()
        (inbox / "a.csv").write_text(both, encoding="utf-8")
        # b.csv: SHR0000001's rows again, exactly, and a new declaration after them
        extra = csv_rows(1, prefix="NEW").splitlines()[1:]
        (inbox / "b.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if "SHR0000001" in ln] + extra)
                                     + "\n", encoding="utf-8")
        old = os.stat(inbox / "a.csv").st_mtime - 60
        for name in ("a.csv", "b.csv"):
            os.utime(inbox / name, (old, old))
        dt = rt.doc_types["declaration"]
        dt.source.stable_seconds = 0
        claimed = dt.source.poll() or dt.source.poll()
        reports = {r["file"]: r for r in intake.take_files(rt, dt, sorted(claimed, key=lambda c: c.name))}
        assert reports["a.csv"]["outcome"] == "accepted" and reports["b.csv"]["outcome"] == "accepted"
        [dup] = reports["b.csv"]["duplicates"]
        with rt.sessions() as s:
            first = s.query(Message).filter(Message.business_key == "SHR0000001").one()
            assert dup == {"key": "SHR0000001", "message": first.id,
                           "note": "same document already taken; not sent again"}
            assert s.query(Message).count() == 3
            stored = {f.name: f.report for f in s.query(IntakeFile)}
            assert stored["b.csv"]["duplicates"][0]["message"] == first.id
            assert [e["message"] for e in stored["a.csv"]["accepted"]] == [
                m.id for m in s.query(Message).filter(Message.business_key.like("SHR%")).order_by(Message.id)]
    finally:
        rt.close()
