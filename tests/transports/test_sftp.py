"""SFTP transport against a real OpenSSH sshd (internal-sftp) on 127.0.0.1."""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from gateway.transports.base import Outgoing, TransportError


def item(name: str, data: bytes = b"<DxpMsg/>") -> Outgoing:
    return Outgoing(name=name, data=data, cop_msg_id=name, doc_type="declaration")


def fingerprint_of(pub_path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_path)],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_send_arrives_complete_under_final_name(make_sftp, remote_dirs):
    out, _ = remote_dirs
    data = os.urandom(300_000)                    # several SFTP packets
    make_sftp().send(item("A1.xml", data))
    assert sorted(os.listdir(out)) == ["A1.xml"]  # no .part left
    assert (out / "A1.xml").read_bytes() == data


def test_same_name_twice_leaves_one_file(make_sftp, remote_dirs):
    out, _ = remote_dirs
    t = make_sftp()
    t.send(item("B1.xml", b"first"))
    t.send(item("B1.xml", b"second"))
    assert sorted(os.listdir(out)) == ["B1.xml"]
    assert (out / "B1.xml").read_bytes() == b"second"


def test_unknown_host_key_is_refused_with_fingerprint(make_sftp, sshd, remote_dirs, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = make_sftp(known_hosts=str(empty))
    with pytest.raises(TransportError) as err:
        t.send(item("C1.xml"))
    msg = str(err.value)
    assert err.value.retryable is False
    assert f"127.0.0.1:{sshd.port}" in msg and "unknown host key" in msg
    assert fingerprint_of(sshd.host_key.with_suffix(".pub")) in msg
    assert os.listdir(remote_dirs[0]) == []
    # still refused (fast, non-retryable) on the next call, without reconnecting
    with pytest.raises(TransportError) as again:
        t.send(item("C1.xml"))
    assert again.value.retryable is False


def test_changed_host_key_is_refused(make_sftp, sshd, remote_dirs, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    pinned = tmp_path / "known_hosts"
    pinned.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    t = make_sftp(known_hosts=str(pinned))
    with pytest.raises(TransportError) as err:
        t.send(item("D1.xml"))
    msg = str(err.value)
    assert err.value.retryable is False and "HOST KEY MISMATCH" in msg
    assert fingerprint_of(sshd.host_key.with_suffix(".pub")) in msg      # what the server offered
    assert fingerprint_of(other.with_suffix(".pub")) in msg              # what we pinned
    assert os.listdir(remote_dirs[0]) == []


def test_hashed_known_hosts_entry_is_accepted(make_sftp, sshd, remote_dirs, tmp_path):
    hashed = tmp_path / "known_hosts"
    hashed.write_text(sshd.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert "|1|" in hashed.read_text()
    make_sftp(known_hosts=str(hashed)).send(item("H1.xml"))
    assert os.listdir(remote_dirs[0]) == ["H1.xml"]


def test_receive_then_ack_deletes(make_sftp, remote_dirs):
    _, inc = remote_dirs
    (inc / "R1.xml").write_bytes(b"receipt 1")
    (inc / "R2.xml").write_bytes(b"receipt 2")
    (inc / ".R3.xml.part").write_bytes(b"half")    # a peer's temp file: skipped
    (inc / "subdir").mkdir()                       # not a regular file: skipped
    os.symlink("/etc/passwd", inc / "link.xml")    # not a regular file: skipped
    t = make_sftp()
    got = t.receive()
    assert [(i.name, i.data) for i in got] == [("R1.xml", b"receipt 1"), ("R2.xml", b"receipt 2")]
    assert len(t.receive()) == 2                   # receive does not remove
    for i in got:
        t.ack(i.ref)
    t.ack("R1.xml")                                # acking twice is harmless
    assert sorted(os.listdir(inc)) == [".R3.xml.part", "link.xml", "subdir"]


def test_receive_then_ack_moves_to_done_dir(make_sftp, remote_dirs):
    _, inc = remote_dirs
    (inc / "M1.xml").write_bytes(b"m1")
    t = make_sftp(on_ack="move", done_dir=str(inc.parent / "done"))
    [got] = t.receive()
    t.ack(got.ref)
    assert os.listdir(inc) == []
    assert (inc.parent / "done" / "M1.xml").read_bytes() == b"m1"
    assert t.receive() == []


def test_oversized_receipt_is_left_alone(make_sftp, remote_dirs):
    _, inc = remote_dirs
    (inc / "big.xml").write_bytes(b"x" * 2000)
    (inc / "ok.xml").write_bytes(b"ok")
    got = make_sftp(max_bytes=1000).receive()
    assert [i.name for i in got] == ["ok.xml"]
    assert (inc / "big.xml").exists()


def test_missing_remote_folder_is_a_clear_non_retryable_error(make_sftp, remote_dirs):
    t = make_sftp(outgoing=str(remote_dirs[0] / "nope"))
    with pytest.raises(TransportError) as err:
        t.send(item("E1.xml"))
    assert err.value.retryable is False
    assert "nope" in str(err.value) and "remote folder" in str(err.value)
    link = t._ssh
    t.outgoing = str(remote_dirs[0])
    t.send(item("E1.xml"))
    assert t._ssh is link                        # the status error did not drop the connection
    assert os.listdir(remote_dirs[0]) == ["E1.xml"]


def test_password_never_appears_in_errors_or_repr(make_sftp):
    secret = "s3cret-Pa55word"
    t = make_sftp(key_file=None, password=secret)    # sshd allows keys only
    with pytest.raises(TransportError) as err:
        t.send(item("P1.xml"))
    assert err.value.retryable is False and "refused" in str(err.value)
    for text in (str(err.value), repr(t), repr(vars(t))):
        assert secret not in text


def test_check_reports_each_step(make_sftp, remote_dirs, tmp_path):
    good = make_sftp().check()
    assert all(c.ok for c in good), good
    assert len(good) == 5
    bad = make_sftp(incoming=str(remote_dirs[1] / "missing")).check()
    failed = [c for c in bad if not c.ok]
    assert len(failed) == 1 and "incoming" in failed[0].what and "missing" in failed[0].what
    empty = tmp_path / "kh"
    empty.write_text("")
    refused = make_sftp(known_hosts=str(empty)).check()
    assert [c.ok for c in refused] == [True, False]
    assert "unknown host key" in refused[1].detail


def test_backoff_fails_fast_while_server_is_down(make_sftp, sshd):
    t = make_sftp(backoff_initial=5, backoff_max=5)
    t.send(item("F0.xml"))
    sshd.kill()
    try:
        with pytest.raises(TransportError) as first:
            t.send(item("F1.xml"))               # the broken connection is noticed and dropped
        assert first.value.retryable
        started = time.monotonic()
        with pytest.raises(TransportError) as second:
            t.send(item("F1.xml"))               # in backoff: no connect attempt, no sleep
        assert time.monotonic() - started < 0.1
        assert second.value.retryable and "next attempt in" in str(second.value)
    finally:
        sshd.start()


@pytest.mark.parametrize("when", ["between-items", "during-upload"])
def test_server_crash_mid_batch_every_item_arrives_exactly_once(make_sftp, sshd, remote_dirs, when):
    """Kill sshd (listener + session) at item ~20, restart it a second later.

    `between-items` kills it between two sends; `during-upload` kills it from a
    watcher thread as soon as 20 files have arrived, while 1 MB uploads are in
    flight, so an upload is cut mid-file and its `.part` must not survive.
    """
    out, _ = remote_dirs
    t = make_sftp(backoff_initial=0.2, backoff_max=1)
    size = 1_000_000 if when == "during-upload" else 8_000
    items = [item(f"BATCH-{n:03d}.xml", os.urandom(size)) for n in range(50)]
    errors, crashed, restarted = 0, threading.Event(), threading.Event()

    def crash_and_restart():
        if when == "during-upload":
            while len(os.listdir(out)) < 20:
                time.sleep(0.001)
        sshd.kill()
        crashed.set()
        time.sleep(1.0)
        sshd.start()
        restarted.set()

    started = time.monotonic()
    if when == "during-upload":
        threading.Thread(target=crash_and_restart, daemon=True).start()
    for n, it in enumerate(items):
        if n == 20 and when == "between-items":
            threading.Thread(target=crash_and_restart, daemon=True).start()
            crashed.wait()
        while True:
            try:
                t.send(it)
                break
            except TransportError as exc:
                assert exc.retryable, exc
                errors += 1
                assert time.monotonic() - started < 60, "sender stuck"
                time.sleep(0.1)                  # the caller's own poll interval
    elapsed = time.monotonic() - started
    assert restarted.wait(5)
    assert errors >= 1                           # the outage was really seen
    assert sorted(os.listdir(out)) == sorted(i.name for i in items)   # no dupes, no .part
    for it in items:
        assert (out / it.name).read_bytes() == it.data
    print(f"[{when}] 50 items over an sshd crash: {errors} retryable errors, {elapsed:.1f}s")


def test_ack_move_into_an_uncreatable_done_dir_fails_loudly(make_sftp, remote_dirs):
    _, inc = remote_dirs
    (inc / "N1.xml").write_bytes(b"n1")
    t = make_sftp(on_ack="move", done_dir=str(inc.parent / "no" / "such" / "done"))
    [got] = t.receive()
    with pytest.raises(TransportError) as err:
        t.ack(got.ref)
    assert err.value.retryable is False and "no/such/done" in str(err.value)
    assert (inc / "N1.xml").exists()              # not lost, not silently "acked"
