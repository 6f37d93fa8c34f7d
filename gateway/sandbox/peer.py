"""The peer loop: take envelopes, check them, archive them, schedule and send receipts."""
from __future__ import annotations

import hashlib

import heapq
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from card import crypto
from gateway import attachments, envelope, fsutil, signing, xmlsafe, zipsafe
from gateway.documents import XSD_DIR
from gateway.log import get_logger
from gateway.sandbox import families, receipts
from gateway.sandbox.settings import SandboxSettings
from gateway.transports.base import Outgoing, Transport
from gateway.validation import Schema

log = get_logger("sandbox")


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
        self._players = families.players()
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
            self.transport.flush()   # a folder shows what it was sent at its flush
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

    def cancel(self, prefix: str) -> int:
        """Drop scheduled receipts whose name starts with `prefix` (a withdrawn application's flow)."""
        kept = [sch for sch in self._queue if not sch.name.startswith(prefix)]
        dropped = len(self._queue) - len(kept)
        self._queue = kept
        heapq.heapify(self._queue)
        return dropped

    def later(self, now: float, delay: float, name: str, data: bytes) -> None:
        """Send `data` as `name` `delay` seconds after `now` (the families schedule through this)."""
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
        files = {}
        if zipsafe.is_zip(env.data):  # a package: the message and its attachments (随附单据)
            try:
                env.data, files = self._unpack(env.data)
            except ValueError as exc:
                self._refuse(name, data, env, "0001", f"bad package: {exc}", now)
                return
        problem = self._document_signature(env, verified)
        if problem:
            self._refuse(name, data, env, "1004", problem, now)
            return
        self._keep_attachments(target, files)
        fsutil.atomic_write(target, data)
        self.stats["accepted"] += 1
        self.later(now, self.settings.peer.ack_delay, f"DxpRep_{env.trans.cop_msg_id}.xml",
                    receipts.dxp_rep(reply_to, "0", "success", env.trans))
        self._business(env, now)

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

    def _unpack(self, data: bytes) -> tuple[bytes, dict[str, bytes]]:
        """A package's message and attachments, as the platform checks them: every EdocRealation
        (CertAttachment, LicenseAttachment) names a file of the package with its size — and its
        SHA-256 where the record carries one — and every file is named. ValueError: why not."""
        try:
            _, message, files = attachments.unpack(data)
        except zipsafe.UnsafeZip as exc:
            raise ValueError(str(exc)) from None
        doc = xmlsafe.parse(message)
        named = {}
        # (record, name element, size element): declarations EdocRealation, certificates CertAttachment,
        # licence applications LicenseAttachment
        for record, name_el, size_el in (("EdocRealation", "EdocID", "EdocSize"),
                                         ("CertAttachment", "AttachName", "FileSize"),
                                         ("LicenseAttachment", "AttachName", "FileSize")):
            for edoc in doc.iter(f"{{*}}{record}"):
                edoc_id = edoc.findtext(f"{{*}}{name_el}") or ""
                size = edoc.findtext(f"{{*}}{size_el}") or ""
                if edoc_id not in files:
                    raise ValueError(f"{record} {edoc_id!r} has no file in the package")
                if size != str(len(files[edoc_id])):
                    raise ValueError(f"{record} {edoc_id!r}: {size_el} {size} but the file has "
                                     f"{len(files[edoc_id])} bytes")
                digest = edoc.findtext("{*}Sha256")
                if digest is not None and digest != hashlib.sha256(files[edoc_id]).hexdigest():
                    raise ValueError(f"{record} {edoc_id!r}: Sha256 {digest} is not the file's")
                named[edoc_id] = files[edoc_id]
        extra = sorted(set(files) - set(named))
        if extra:
            raise ValueError(f"file(s) {', '.join(extra)} in the package are named by no EdocRealation")
        return message, named

    def _keep_attachments(self, target: Path, files: dict[str, bytes]) -> None:
        """Beside the archived message: <archive>/<name>.attachments/<EdocID>."""
        for edoc_id, content in files.items():
            fsutil.atomic_write(fsutil.inside(target.with_name(target.name + ".attachments"), edoc_id), content)

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
        self.later(now, self.settings.peer.ack_delay, f"DxpRep_{Path(name).stem}_{code}.xml",
                    receipts.dxp_rep(trans.sender_id if trans else "UNKNOWN", code, info, trans))

    # -- business receipts ------------------------------------------------------------
    def serial(self) -> int:
        return next(self._counter)

    def schema_for(self, root_name: str) -> Schema | None:
        """The schema of a business document root, from the family that writes it."""
        from gateway.documents import FAMILIES

        for fam_cls in FAMILIES.values():
            if fam_cls.root_name == root_name:
                return self._family(fam_cls).schema
        return None

    def take_bare(self, item, now: float) -> None:
        """As the desktop client: take the bare business XML from OutBox (the client would sign it
        with the card and send it), move it to SentBox, and answer into InBox as the client does:
        `Successed_<file>` / `Failed_<file>` import responses, then status receipts. A file the
        client cannot read at all goes to FailBox."""
        self.stats["received"] += 1
        body, files = item.data, {}
        try:
            if zipsafe.is_zip(body):  # the client's OutBox package: the message and its attachments
                body, files = self._unpack(body)
            doc = xmlsafe.parse(body)
        except (ValueError, xmlsafe.UnsafeXml) as exc:
            log.info("client cannot read the file; moved to FailBox", name=item.name, error=str(exc))
            self.stats["refused"] += 1
            self.transport.fail(item.ref)
            return
        target = self.archive / fsutil.inside(self.archive, item.name).name
        if target.exists():
            self.stats["duplicates"] += 1
            self.transport.ack(item.ref)
            return
        self._keep_attachments(target, files)
        fsutil.atomic_write(target, item.data)
        self.transport.ack(item.ref)
        self.stats["accepted"] += 1
        self._play(None, doc, now, client_file=item.name)

    def _business(self, env: envelope.Envelope, now: float) -> None:
        try:
            doc = xmlsafe.parse(env.data)
        except xmlsafe.UnsafeXml as exc:
            log.info("business data unreadable", error=str(exc))
            return
        self._play(env, doc, now)

    def _play(self, env: envelope.Envelope | None, doc, now: float, client_file: str | None = None) -> None:
        root_name = doc.tag.split("}")[-1]
        player = self._players.get(root_name)
        if player is None:
            log.info("no scenario for this document; acknowledged only", root=root_name)
            return
        player(families.Play(self, env, doc, root_name, now, client_file))


def open_peer(settings: SandboxSettings) -> Peer:
    from gateway.runtime import open_transport

    return Peer(settings, open_transport("sandbox", settings.transport))
