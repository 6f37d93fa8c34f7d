"""The peer loop: take envelopes, check them, archive them, schedule and send receipts."""
from __future__ import annotations

import heapq
import itertools
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from card import crypto
from gateway import envelope, fsutil, signing, xmlsafe
from gateway.documents import XSD_DIR
from gateway.log import get_logger
from gateway.sandbox import receipts
from gateway.sandbox.settings import DeclarationScenario, Rule, SandboxSettings
from gateway.transports.base import Outgoing, Transport
from gateway.validation import Schema

log = get_logger("sandbox")
DEC_NS = "http://www.chinaport.gov.cn/dec"


@dataclass(order=True)
class Scheduled:
    due: float
    seq: int
    name: str
    data: bytes


class Peer:
    def __init__(self, settings: SandboxSettings, transport: Transport):
        self.settings = settings
        self.transport = transport
        self.archive = Path(settings.peer.archive_dir)
        self.archive.mkdir(parents=True, exist_ok=True)
        self.dxp_schema = envelope.schema(XSD_DIR)
        self.schemas = {"DecMessage": Schema(XSD_DIR / "declaration.xsd")}
        self._families: dict = {}
        self._unreadable: set[Path] = set()
        self._queue: list[Scheduled] = []
        self._seq = itertools.count()
        self._counter = itertools.count(len(list(self.archive.glob("*.xml"))) + 1)
        self.stats = {"received": 0, "accepted": 0, "duplicates": 0, "refused": 0, "receipts": 0}

    # -- the loop ---------------------------------------------------------------------
    def step(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        work = 0
        for item in self.transport.receive(100):
            if self.transport.carries == "business":   # playing the desktop client: bare business XML
                self.take_bare(item, now)
            else:
                self.take(item.name, item.data, now)
                self.transport.ack(item.ref)
            work += 1
        while self._queue and self._queue[0].due <= now:
            sch = self._queue[0]  # taken off the schedule only once it is sent
            self.transport.send(Outgoing(name=sch.name, data=sch.data, cop_msg_id=sch.name, doc_type=""))
            heapq.heappop(self._queue)
            self.stats["receipts"] += 1
            work += 1
        return work

    def pending(self) -> int:
        return len(self._queue)

    def run(self, stop: threading.Event) -> None:
        log.info("sandbox peer running", archive=str(self.archive))
        while not stop.is_set():
            try:
                if not self.step():
                    stop.wait(self.settings.peer.poll_interval)
            except Exception as exc:  # the peer must keep serving; report and go on
                log.error("sandbox step failed", error=f"{type(exc).__name__}: {exc}")
                stop.wait(1.0)

    def _later(self, now: float, delay: float, name: str, data: bytes) -> None:
        heapq.heappush(self._queue, Scheduled(now + delay, next(self._seq), name, data))

    # -- one envelope -----------------------------------------------------------------
    def take(self, name: str, data: bytes, now: float) -> None:
        self.stats["received"] += 1
        try:
            root, env = envelope.parse(data)
        except envelope.EnvelopeError as exc:
            self._refuse(name, data, None, "0001", f"bad format: {exc}", now)
            return
        reply_to = env.trans.sender_id
        schema_errors = self.dxp_schema.errors(root)
        if schema_errors:
            self._refuse(name, data, env, "0002", f"schema invalid: {schema_errors[0].path}: "
                                                  f"{schema_errors[0].reason}", now)
            return
        try:
            verified = signing.verify(root)
            self._check_trust(verified.certificate)
        except signing.SignatureError as exc:
            self._refuse(name, data, env, exc.code, str(exc), now)
            return
        target = self.archive / f"{fsutil.inside(self.archive, env.trans.cop_msg_id).name}.xml"
        if target.exists():
            self.stats["duplicates"] += 1
            with open(self.archive / "duplicates.log", "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {env.trans.cop_msg_id} {name}\n")
            log.info("duplicate dropped", cop_msg_id=env.trans.cop_msg_id)
            return
        problem = self._document_signature(env, verified)
        if problem:
            self._refuse(name, data, env, "1004", problem, now)
            return
        fsutil.atomic_write(target, data)
        self.stats["accepted"] += 1
        self._later(now, self.settings.peer.ack_delay, f"DxpRep_{env.trans.cop_msg_id}.xml",
                    receipts.dxp_rep(reply_to, "0", "success", env.trans))
        self._from_envelope(env, now)

    def _document_signature(self, env: envelope.Envelope, verified) -> str | None:
        from gateway.documents import FAMILIES

        try:
            doc = xmlsafe.parse(env.data)
        except xmlsafe.UnsafeXml:
            return None  # the business check answers this one
        for fam_cls in FAMILIES.values():
            if doc.tag == f"{{{fam_cls.namespace}}}{fam_cls.root_name}":
                return self._family(fam_cls).verify_document(doc, verified.certificate, verified.algorithm)
        return None

    def _family(self, fam_cls):
        if fam_cls.key not in self._families:
            self._families[fam_cls.key] = fam_cls(XSD_DIR)
        return self._families[fam_cls.key]

    def _check_trust(self, cert: bytes) -> None:
        for path in self.settings.peer.trust:
            try:
                ca = path.read_bytes()
            except OSError as exc:
                if path not in self._unreadable:
                    self._unreadable.add(path)
                    log.warning("trusted CA unreadable; skipped", path=str(path), error=exc.strerror)
                continue
            try:
                crypto.verify_issued_by(cert, ca)
                return
            except crypto.InvalidSignature:
                continue
        if self.settings.peer.trust:
            raise signing.SignatureError("the signing certificate is not issued by a registered CA", code="1001")

    def _refuse(self, name, data, env, code, info, now) -> None:
        self.stats["refused"] += 1
        bad = self.archive / "refused"
        fsutil.atomic_write(fsutil.inside(bad, Path(name).name), data)
        log.info("envelope refused", name=name, code=code, info=info)
        trans = env.trans if env else None
        self._later(now, self.settings.peer.ack_delay, f"DxpRep_{Path(name).stem}_{code}.xml",
                    receipts.dxp_rep(trans.sender_id if trans else "UNKNOWN", code, info, trans))

    def take_bare(self, item, now: float) -> None:
        """As the desktop client: take the bare business XML from OutBox (the client would sign it
        with the card and send it), move it to SentBox, and answer into InBox as the client does:
        `Successed_<file>` / `Failed_<file>` import responses, then status receipts. A file the
        client cannot read at all goes to FailBox."""
        self.stats["received"] += 1
        try:
            doc = xmlsafe.parse(item.data)
        except xmlsafe.UnsafeXml as exc:
            log.info("client cannot read the file; moved to FailBox", name=item.name, error=str(exc))
            self.stats["refused"] += 1
            self.transport.fail(item.ref)
            return
        target = self.archive / fsutil.inside(self.archive, item.name).name
        if target.exists():
            self.stats["duplicates"] += 1
            self.transport.ack(item.ref)
            return
        fsutil.atomic_write(target, item.data)
        self.transport.ack(item.ref)
        self.stats["accepted"] += 1
        stem = Path(item.name).stem
        self._business(doc, now, reply=lambda msg_type, payload, keys: payload,
                       names={"import-ok": f"Successed_{item.name}", "import-failed": f"Failed_{item.name}",
                              "status": f"Receipt_{stem}_{{i}}_{{channel}}.xml"})

    # -- business receipts ------------------------------------------------------------
    def _business(self, doc, now: float, reply, names: dict[str, str]) -> None:
        root_name = doc.tag.split("}")[-1]
        if root_name == "DecMessage":
            self._declaration(doc, self.settings.declaration, now, reply, names)

    def _from_envelope(self, env: envelope.Envelope, now: float) -> None:
        try:
            doc = xmlsafe.parse(env.data)
        except xmlsafe.UnsafeXml as exc:
            log.info("business data unreadable", error=str(exc))
            return
        base = env.trans.cop_msg_id
        self._business(doc, now, reply=lambda msg_type, payload, keys: receipts.wrap(
            self.settings.peer.platform_id, env.trans.sender_id, msg_type, payload, keys),
            names={"import-ok": f"Receipt_{base}_1_import.xml", "import-failed": f"Receipt_{base}_1_import.xml",
                   "status": f"Receipt_{base}_{{i}}_{{channel}}.xml"})

    def _declaration(self, doc, sc: DeclarationScenario, now: float, reply_as, names: dict[str, str]) -> None:
        def text(name: str) -> str:
            return (doc.findtext(f".//{{{DEC_NS}}}{name}") or "").strip()

        client_seq = text("ClientSeqNo")
        customs = text("CustomMaster") or "0000"
        rule = _match(sc.rules, text)
        reply = lambda msg_type, payload: reply_as(msg_type, payload, {"ClientSeqNo": client_seq})  # noqa: E731
        if rule and rule.silent:
            return
        n = next(self._counter)
        year = time.strftime("%Y")
        seq_no = f"{customs}{year}{n:010d}"[:18]
        errors = self.schemas["DecMessage"].errors(doc)
        import_error = rule.import_error if rule else None
        if errors and not import_error:
            import_error = f"报文格式错误: {errors[0].path}: {errors[0].reason}"
        if import_error:
            self._later(now, sc.import_delay, names["import-failed"],
                        reply("DecImportResponse", receipts.import_response(client_seq, "", False, import_error)))
            return
        self._later(now, sc.import_delay, names["import-ok"],
                    reply("DecImportResponse", receipts.import_response(client_seq, seq_no, True, "导入成功")))
        channels = rule.channels if rule and rule.channels else sc.channels
        entry_id = f"{customs}{year}{'1' if text('IEFlag') == 'I' else '0'}{n:09d}"[:18]
        for i, channel in enumerate(channels, start=1):
            note = rule.note if rule and i == len(channels) else ""
            payload = receipts.dec_result(seq_no, entry_id if channel not in ("E", "Y") else "", channel, note,
                                          customs, text("IEDate"))
            self._later(now, sc.import_delay + sc.delay * i, names["status"].format(i=i + 1, channel=channel),
                        reply("DEC_DATA", payload))


def _match(rules: list[Rule], text) -> Rule | None:
    for rule in rules:
        if all(re.search(pattern, text(name)) for name, pattern in rule.when.items()):
            return rule
    return None


def open_peer(settings: SandboxSettings) -> Peer:
    from gateway.runtime import open_transport

    return Peer(settings, open_transport("sandbox", settings.transport))
