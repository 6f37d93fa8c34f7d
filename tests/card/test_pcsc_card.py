"""PcscSigner against virtual cards over the real stack: pyscard -> pcscd -> vpcd -> card.virtual."""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest

from card import apdu, crypto
from card.pcsc import PcscSigner, card_info, find_card, list_readers
from card.signer import (
    ECDSA_SHA256,
    RSA_SHA1,
    SM2_SM3,
    CardAbsent,
    CardMismatch,
    PinError,
)
from card.virtual.state import read_tries_left
from pcsc_helpers import ENTERPRISE, PIN, raw_session


def _openssl_verify_sm2(cert: Path, data: bytes, raw_sig: bytes, tmp: Path) -> None:
    (tmp / "data.bin").write_bytes(data)
    (tmp / "sig.der").write_bytes(crypto.raw_to_der(raw_sig))
    proc = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-certin", "-inkey", str(cert), "-rawin", "-digest", "sm3",
         "-pkeyopt", "distid:1234567812345678", "-in", str(tmp / "data.bin"), "-sigfile", str(tmp / "sig.der")],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readers_and_card_info(card_a):
    readers = list_readers()
    assert card_a.reader in readers and len([r for r in readers if r.startswith("Virtual PCD")]) >= 2
    info = card_info(card_a.reader)
    assert info.media_no == "ZK0000000001A"
    assert info.holder == "张三"
    assert info.enterprise_code == ENTERPRISE
    assert info.cert_no == crypto.summary(card_a.spec.cert.read_bytes()).serial_hex
    assert info.reader == card_a.reader
    assert find_card("ZK0000000001A") == card_a.reader


def test_certificate_read_in_chunks_is_the_issued_one(card_a, pki_dir):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no)
    try:
        cert = signer.certificate()
        assert len(cert) > 255  # needs more than one short READ
        assert cert == crypto.to_der(card_a.spec.cert.read_bytes())
        crypto.verify_issued_by(cert, (pki_dir / "ca.pem").read_bytes())
        assert signer.algorithm == SM2_SM3
    finally:
        signer.close()


def test_sm2_signature_verifies_with_openssl_and_tongsuopy(card_a, tmp_path):
    signer = PcscSigner(lambda: PIN, media_no=card_a.spec.media_no)
    try:
        data = "<DxpMsg>报关单 0001</DxpMsg>".encode()
        sig = signer.sign(data)
        assert len(sig) == 64
        _openssl_verify_sm2(card_a.spec.cert, data, sig, tmp_path)
        crypto.verify(SM2_SM3, signer.certificate(), data, sig)
        with pytest.raises(crypto.InvalidSignature):
            crypto.verify(SM2_SM3, signer.certificate(), data + b"x", sig)
    finally:
        signer.close()


@pytest.mark.parametrize("algorithm,expected", [("ec", ECDSA_SHA256), ("rsa", RSA_SHA1)])
def test_legacy_algorithms_verify_with_cryptography(cards, algorithm, expected):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    card = cards.insert(cards.spec("legacy", "ZK00000000L01", algorithm=algorithm))
    signer = PcscSigner(PIN, reader=card.reader)
    try:
        data = b"legacy profile message"
        sig = signer.sign(data)
        assert signer.algorithm == expected
        key = x509.load_der_x509_certificate(signer.certificate()).public_key()
        if algorithm == "rsa":
            assert len(sig) == 256  # RSA-2048: a full 256-byte response
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA1())
        else:
            key.verify(crypto.raw_to_der(sig), data, ec.ECDSA(hashes.SHA256()))
    finally:
        signer.close()


def test_sign_without_verify_is_refused_with_6982(card_a):
    with raw_session(card_a.reader) as tx:
        assert tx(apdu.select())[1] == apdu.SW_OK
        _, sw = tx(apdu.sign_hash(b"\x00" * 32))
        assert sw == apdu.SW_SECURITY_NOT_SATISFIED
        with pytest.raises(apdu.CardError, match="6982") as err:
            apdu.check_sw(sw, "SIGN HASH")
        assert err.value.sw == 0x6982
        assert tx(apdu.Command(0x00, 0x42, 0, 0))[1] == apdu.SW_INS_NOT_SUPPORTED
        assert tx(apdu.read_certificate(0x7000))[1] == apdu.SW_WRONG_PARAMETERS


def test_wrong_pin_costs_exactly_one_try_and_is_never_retried(card_a, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = b"987650"
    signer = PcscSigner(wrong, media_no=card_a.spec.media_no)
    try:
        with pytest.raises(PinError) as first:
            signer.sign(b"data")
        assert first.value.tries_left == 2
        assert "2 tries left" in str(first.value)
        assert read_tries_left(card_a.spec.state_file) == 2
        assert signer.pin_tries_left() == 2  # VERIFY without data: no try used

        for _ in range(3):  # the signer refuses on its own, the card is not asked
            with pytest.raises(PinError) as again:
                signer.sign(b"data")
            assert again.value.tries_left == 2
            with pytest.raises(PinError):
                signer.verify_pin()
        assert read_tries_left(card_a.spec.state_file) == 2
        assert signer.pin_failure is not None

        # the PIN never shows up in errors, logs, reprs, or the card's command line
        texts = [str(first.value), str(again.value), repr(signer), caplog.text,
                 Path(f"/proc/{card_a.pid}/cmdline").read_bytes().decode(errors="replace")]
        for text in texts:
            assert wrong.decode() not in text and PIN.decode() not in text

        signer.reset_pin(PIN)  # operator fixes the PIN
        data = b"after reset"
        crypto.verify(SM2_SM3, signer.certificate(), data, signer.sign(data))
        assert read_tries_left(card_a.spec.state_file) == 3  # a good PIN restores the counter
    finally:
        signer.close()


def test_blocked_card_answers_6983_and_stays_blocked_across_restarts(cards):
    spec = cards.spec("op-blocked", "ZK0000000009B")
    card = cards.insert(spec)
    with raw_session(card.reader) as tx:
        tx(apdu.select())
        sws = [tx(apdu.verify(b"000000"))[1] for _ in range(4)]
        assert sws == [0x63C2, 0x63C1, 0x63C0, apdu.SW_PIN_BLOCKED]
        assert tx(apdu.verify(PIN))[1] == apdu.SW_PIN_BLOCKED  # even the right PIN
    assert read_tries_left(spec.state_file) == 0

    card = cards.insert(spec)  # restart the card program: the counter is persistent
    signer = PcscSigner(PIN, media_no=spec.media_no)
    try:
        with pytest.raises(PinError, match="6983") as err:
            signer.sign(b"data")
        assert err.value.tries_left == 0
        assert signer.pin_tries_left() == 0
    finally:
        signer.close()


def test_removed_card_raises_card_absent_and_signing_resumes(card_a):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no)
    try:
        signer.sign(b"before")
        card_a.remove()
        with pytest.raises(CardAbsent, match="insert the card"):
            signer.sign(b"while out")
        with pytest.raises(CardAbsent):
            signer.info()
        card_a.reinsert()
        data = b"after reinsertion"
        sig = signer.sign(data)  # reconnects, re-selects, re-verifies on its own
        crypto.verify(SM2_SM3, signer.certificate(), data, sig)
        assert read_tries_left(card_a.spec.state_file) == 3
    finally:
        signer.close()


def test_two_cards_in_two_readers_picked_by_media_number(cards):
    a = cards.insert(cards.spec("op-a", "ZK0000000001A"), slot=0)
    b = cards.insert(cards.spec("op-b", "ZK0000000002B", holder="李四"), slot=1)
    assert a.reader != b.reader
    sa, sb = PcscSigner(PIN, media_no="ZK0000000001A"), PcscSigner(PIN, media_no="ZK0000000002B")
    try:
        assert sb.info().reader == b.reader and sb.info().holder == "李四"
        assert sa.info().reader == a.reader
        data = b"same document"
        sig_a, sig_b = sa.sign(data), sb.sign(data)
        crypto.verify(SM2_SM3, a.spec.cert.read_bytes(), data, sig_a)
        crypto.verify(SM2_SM3, b.spec.cert.read_bytes(), data, sig_b)
        with pytest.raises(crypto.InvalidSignature):
            crypto.verify(SM2_SM3, a.spec.cert.read_bytes(), data, sig_b)
        with pytest.raises(CardMismatch):  # reader holds another card than asked for
            PcscSigner(PIN, reader=b.reader, media_no="ZK0000000001A").info()
    finally:
        sa.close()
        sb.close()


def test_card_bound_to_another_enterprise_is_a_mismatch(card_a):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no, enterprise_code="91110000000000000A")
    with pytest.raises(CardMismatch, match="bound to enterprise"):
        signer.sign(b"data")
    assert read_tries_left(card_a.spec.state_file) == 3  # no PIN was presented to it


def test_sign_latency_is_respected(cards):
    card = cards.insert(cards.spec("op-slow", "ZK0000000003S", sign_latency_ms=240))
    signer = PcscSigner(PIN, reader=card.reader)
    try:
        signer.sign(b"warm up")
        durations = []
        for i in range(3):
            t = time.perf_counter()
            signer.sign(b"slow %d" % i)
            durations.append(time.perf_counter() - t)
        assert min(durations) >= 0.240
        assert max(durations) < 0.6
    finally:
        signer.close()


def test_concurrent_signing_is_serialised(card_a):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no)
    results, errors = [], []

    def work(n):
        try:
            for i in range(8):
                data = b"thread %d item %d" % (n, i)
                results.append((data, signer.sign(data)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 32
        for data, sig in results:
            crypto.verify(SM2_SM3, signer.certificate(), data, sig)
    finally:
        signer.close()


def test_throughput_with_zero_latency(card_a, record_property):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no)
    try:
        signer.sign(b"warm up")
        n = 100
        t = time.perf_counter()
        for i in range(n):
            signer.sign(b"message %d" % i)
        rate = n / (time.perf_counter() - t)
    finally:
        signer.close()
    record_property("sm2_signatures_per_second", round(rate, 1))
    print(f"\nvirtual SM2 card over PC/SC, latency 0: {rate:.1f} signatures/s")
    assert rate > 20


def test_close_resets_the_card_pin_state(card_a):
    signer = PcscSigner(PIN, media_no=card_a.spec.media_no)
    signer.sign(b"x")
    signer.close()
    with raw_session(card_a.reader) as tx:
        tx(apdu.select())
        assert tx(apdu.sign_hash(b"\x01" * 32))[1] == apdu.SW_SECURITY_NOT_SATISFIED
