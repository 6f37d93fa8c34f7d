"""The MOFCOM key shared by a software key's two signing workers: a refused PIN is tried once."""
from __future__ import annotations

import threading
import time

from card.signer import CardInfo, PinError, Signer
from gateway import config, mofcom_key
from gateway.runtime import Runtime
from support import Workspace


class RefusingKey(Signer):
    """A MOFCOM key whose PIN is wrong: each signature asked of it is a PIN try, refused after
    the card's time to answer."""

    def __init__(self, mofcom_code: str):
        self.code, self.tries = mofcom_code, 0

    def info(self) -> CardInfo:
        return CardInfo("MOFCOM0000001", "key", self.code, "01")

    def certificate(self) -> bytes:
        return b""

    def sign(self, data: bytes) -> bytes:
        self.tries += 1
        time.sleep(0.2)
        raise PinError("PIN refused, 2 tries left", 2)


class Family:
    def sign_document(self, root, signer, info, sign_date):
        signer.sign(b"the application")


def test_two_workers_signing_with_a_key_whose_pin_is_refused_try_it_once(tmp_path, pki, monkeypatch):
    ws = Workspace(tmp_path, pki)
    rt = Runtime.open(config.load(ws.config))
    try:
        ent = rt.config.enterprises[0]
        key = RefusingKey(ent.mofcom_code)
        monkeypatch.setattr(rt, "signer", lambda name: key)
        outcomes = []

        def apply():
            try:
                mofcom_key.sign(rt, None, ent, Family(), "20261201120000")
            except Exception as exc:
                outcomes.append(exc)

        workers = [threading.Thread(target=apply) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
        assert key.tries == 1, "the PIN was tried once"
        assert sorted(type(e).__name__ for e in outcomes) == ["MofcomKeyError", "MofcomPinRefused"]
        (halted,) = [e for e in outcomes if isinstance(e, mofcom_key.MofcomKeyError)]
        assert "halted after a refused PIN" in str(halted)
    finally:
        rt.close()
