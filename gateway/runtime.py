"""Everything the stages need, built once from the config: store, families, mappings,
signers, transports. Stages receive a Runtime; none of them builds its own parts.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from card.signer import CardInfo, PinError, Signer
from gateway import attachments, ccpit_filings, ccpit_profile, envelope
from gateway.config import (
    Config,
    ConfigError,
    Enterprise,
    AmqpTransportConfig,
    ClientFolderTransportConfig,
    FolderTransportConfig,
    Operator,
    PcscSignerConfig,
    RemoteSignerConfig,
    SftpTransportConfig,
    SoftwareSignerConfig,
)
from gateway.documents import XSD_DIR, family
from gateway.documents.base import DocumentFamily
from gateway.mapping.engine import Mapping
from gateway.mapping.errors import MappingFileError
from gateway.sources.folder import FolderSource
from gateway.store import db
from gateway.transports.base import Transport
from gateway.transports.folder import FolderTransport
from gateway.validation import Schema


@dataclass
class DocType:
    key: str
    family: DocumentFamily
    mapping: Mapping
    record_mapping: Mapping          # for records from a queue
    source: FolderSource
    transport: str
    outbox: Path
    receiver_id: str
    msg_type: str
    encoding: str
    max_file_bytes: int
    submit: str | None = None        # how documents of this type are submitted (declarations: OperType)
    attachment_policy: object = None   # attachments.Policy
    attachments_dir: Path | None = None


def _subscription_rules():
    from gateway.lifecycle.subscriptions import Rules

    return Rules()


@dataclass
class Runtime:
    config: Config
    engine: object
    sessions: object
    doc_types: dict[str, DocType]
    transports: dict[str, Transport]
    dxp_schema: Schema
    signer_configs: dict
    _signers: dict[str, Signer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    publisher: object = None          # ReceiptPublisher, when [receipt_exchange] is configured
    signing_halted: str = ""          # set by a PIN failure: no signing until an operator acts
    subscription_rules: object = field(default_factory=_subscription_rules)  # subscriptions.Rules, as last loaded
    halted_keys: dict = field(default_factory=dict)   # MOFCOM keys whose PIN was refused: name -> why
    filings: object = None            # ccpit_filings.Registry: the store's CCPIT product filings
    profiles: object = None           # ccpit_profile.Registry: signatories as 同步企业信息 answered
    lease: object = None              # store.leases.Lease of this process, when several share a PostgreSQL store
    _signer_locks: dict = field(default_factory=dict)

    @classmethod
    def open(cls, cfg: Config, upgrade: bool = True) -> "Runtime":
        engine = db.make_engine(cfg.store.resolved_url())
        if upgrade:
            db.upgrade(engine)
        transports = {name: open_transport(name, tc) for name, tc in cfg.transports.items()}
        doc_types = {}
        for key, dc in cfg.documents.items():
            try:
                fam = family(key)
            except KeyError as exc:
                raise ConfigError(f"{cfg.source}: [documents.{key}] {exc.args[0]}") from None
            if dc.submit is not None and dc.submit not in fam.submit_modes:
                known = ", ".join(fam.submit_modes) or "none: this document type has no submit modes"
                raise ConfigError(f"{cfg.source}: [documents.{key}] submit = {dc.submit!r} is not one of {known}")
            mapping = _mapping(dc.mapping, fam, key)
            record_mapping = _mapping(dc.record_mapping, fam, key) if dc.record_mapping else mapping
            doc_types[key] = DocType(key, fam, mapping, record_mapping,
                                     FolderSource(dc.inbox, dc.stable_seconds, dc.done_marker),
                                     dc.transport, dc.outbox, dc.receiver_id, dc.msg_type or fam.msg_type,
                                     dc.encoding, dc.max_file_bytes, dc.submit,
                                     attachments.Policy(dc.attachments.max_count, dc.attachments.max_bytes,
                                                        dc.attachments.max_package_bytes,
                                                        tuple(dc.attachments.types)),
                                     dc.attachments.dir or dc.inbox / "attachments")
        rt = cls(cfg, engine, db.sessions(engine), doc_types, transports,
                 envelope.schema(XSD_DIR), dict(cfg.signers), publisher=open_publisher(cfg))
        rt.filings = ccpit_filings.Registry(rt.sessions)
        rt.profiles = ccpit_profile.Registry(rt.sessions)
        for d in doc_types.values():  # approved filings from the store win over the CSV (同步商品备案信息)
            for m in {id(d.mapping): d.mapping, id(d.record_mapping): d.record_mapping}.values():
                m.codes.overlay(ccpit_filings.TABLE, rt.filings.rows)
        return rt

    @property
    def unsigned_transports(self) -> list[str]:
        """Transports that carry the bare business XML: something else (the desktop client) signs."""
        return [name for name, t in self.transports.items() if t.carries == "business"]

    # -- profile ------------------------------------------------------------------
    def enterprise(self, code: str) -> Enterprise | None:
        return self.config.enterprise(code)

    def operator(self, enterprise: Enterprise, doc_type: str) -> Operator | None:
        return self.config.operator_for(enterprise, doc_type)

    @property
    def operator_signers(self) -> list[str]:
        """Signers that sign envelopes (one signing worker each); MOFCOM keys sign inside them."""
        keys = {ent.mofcom_key for ent in self.config.enterprises if ent.mofcom_key}
        used = {op.signer for ent in self.config.enterprises for op in ent.operators}
        return [n for n in self.signer_configs if n in used or n not in keys]

    def signer_role(self, name: str) -> str:
        """What a signer is for: the operators' card, or an enterprise's MOFCOM key."""
        for ent in self.config.enterprises:
            if ent.mofcom_key == name:
                return f"MOFCOM key of {ent.code} (商务部电子钥匙, bound to {ent.mofcom_code or 'no mofcom_code'})"
        ops = [f"{op.name} ({ent.code})" for ent in self.config.enterprises for op in ent.operators
               if op.signer == name]
        return "operator card of " + ", ".join(ops) if ops else "not used by any operator"

    def media_no(self, signer_name: str) -> str:
        return self.signer_configs[signer_name].media_no

    def xmldsig_profile(self, signer_name: str) -> str:
        """Which XML-DSig form the signer writes (signing.PROFILES): chinaport 2022/04 by default."""
        return getattr(self.signer_configs.get(signer_name), "xmldsig", "chinaport-2022")

    # -- signers ------------------------------------------------------------------
    def signer(self, name: str) -> Signer:
        with self._lock:
            if name not in self._signers:
                self._signers[name] = open_signer(self.config, name, self.signer_configs[name])
            return self._signers[name]

    def signer_lock(self, name: str) -> threading.Lock:
        """Held by one signing worker at a time for signer `name`, from deciding to use it until it
        has: the MOFCOM key that several workers sign licences with tries a PIN once, and the
        next worker finds it halted rather than asking the card again."""
        with self._lock:
            return self._signer_locks.setdefault(name, threading.Lock())

    def close(self) -> None:
        for s in self._signers.values():
            s.close()
        for t in self.transports.values():
            t.close()
        if self.publisher is not None:
            self.publisher.close()
        self.engine.dispose()


def _mapping(path: Path, fam: DocumentFamily, key: str) -> Mapping:
    try:
        mapping = Mapping.load(path, allowed=fam.sections())
    except MappingFileError as exc:
        raise ConfigError(str(exc)) from None
    if mapping.document != key:
        raise ConfigError(f"{path}: maps document {mapping.document!r}, but is configured for {key!r}")
    return mapping


def open_publisher(cfg: Config):
    """The receipt exchange, if configured (receipts out to RabbitMQ)."""
    rc = cfg.receipt_exchange
    if rc is None:
        return None
    from gateway.receipts.publish import ReceiptPublisher

    return ReceiptPublisher(rc.url, exchange=rc.exchange, password=rc.password, mandatory=rc.mandatory,
                            connection_name=rc.connection_name, backoff_initial=rc.backoff_initial,
                            backoff_max=rc.backoff_max)


def open_amqp_intake(cfg: Config):
    ic = cfg.amqp_intake
    if ic is None:
        return None
    from gateway.sources.amqp import AmqpIntake

    return AmqpIntake(ic.url, ic.queues, ic.dead_letter_queue, password=ic.password, prefetch=ic.prefetch,
                      connection_name=ic.connection_name, backoff_initial=ic.backoff_initial,
                      backoff_max=ic.backoff_max)


def open_transport(name: str, tc) -> Transport:
    if isinstance(tc, FolderTransportConfig):
        return FolderTransport(tc.outgoing, tc.incoming, on_ack=tc.on_ack, fsync=tc.fsync, name=name)
    if isinstance(tc, SftpTransportConfig):
        from gateway.transports.sftp import SftpTransport

        return SftpTransport(tc.host, tc.username, tc.outgoing, tc.incoming, str(tc.known_hosts), port=tc.port,
                             key_file=str(tc.key_file) if tc.key_file else None, key_passphrase=tc.key_passphrase,
                             password=tc.password, on_ack=tc.on_ack, done_dir=tc.done_dir,
                             connect_timeout=tc.connect_timeout, backoff_initial=tc.backoff_initial,
                             backoff_max=tc.backoff_max, name=name)
    if isinstance(tc, ClientFolderTransportConfig):
        from gateway.transports.clientfolder import ClientFolderTransport

        return ClientFolderTransport(tc.imp_path, module=tc.module, role=tc.role, processed_dir=tc.processed_dir,
                                     create=tc.create, fsync=tc.fsync, stale_after=tc.stale_after, name=name)
    if isinstance(tc, AmqpTransportConfig):
        from gateway.transports.amqp import AmqpTransport

        return AmqpTransport(tc.url, tc.incoming_queue, outgoing_queue=tc.outgoing_queue, password=tc.password,
                             prefetch=tc.prefetch, dead_letter_exchange=tc.dead_letter_exchange,
                             connection_name=tc.connection_name, name=name)
    raise ConfigError(f"transport {name}: kind {tc.kind!r} is not available")


def open_signer(cfg: Config, name: str, sc) -> Signer:
    if isinstance(sc, SoftwareSignerConfig):
        from card.software import SoftwareSigner

        if sc.generate and not (sc.key_file.exists() and sc.cert_file.exists()):
            from card import pki

            ca = pki.ensure_ca(cfg.var_dir / "sandbox" / "ca")
            issued = pki.ensure_issued(sc.key_file.parent, sc.key_file.stem, sc.holder, ca)
            if issued.key != sc.key_file:
                issued.key.rename(sc.key_file)
            if issued.cert != sc.cert_file:
                issued.cert.rename(sc.cert_file)
        password = sc.key_password.read() if sc.key_password else None
        return SoftwareSigner(sc.key_file, sc.cert_file, CardInfo(sc.media_no, sc.holder, sc.enterprise, ""),
                              password.encode() if password else None)
    if isinstance(sc, PcscSignerConfig):
        try:
            from card.pcsc import PcscSigner
        except ImportError as exc:
            raise ConfigError(f"signer {name}: PC/SC support is not installed ({exc.name}); "
                              f"install the card extra: pip install 'swgw[card]'") from None

        def pin() -> bytes:
            value = sc.pin.read()
            if not value:
                where = f"environment variable {sc.pin.env}" if sc.pin.env else f"file {sc.pin.file}"
                raise PinError(f"signer {name}: no PIN in {where}")
            return value.encode()

        return PcscSigner(pin, reader=sc.reader, media_no=sc.media_no, enterprise_code=sc.enterprise)
    if isinstance(sc, RemoteSignerConfig):
        from gateway.remote_signer import RemoteSigner, Trust

        return RemoteSigner(name, url=sc.url, password=sc.password, media_no=sc.media_no, enterprise=sc.enterprise,
                            secret=sc.secret.read() or "", trust=Trust(sc.cert_file, sc.ca_file),
                            request_timeout=sc.request_timeout, heartbeat_timeout=sc.heartbeat_timeout)
    raise ConfigError(f"signer {name}: kind {sc.kind!r} is not available")
