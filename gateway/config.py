"""Typed configuration: one TOML file, secrets from the environment or files.

Relative paths resolve against the config file's folder, so a config works from
any working directory. `load(path)` returns a `Config` or raises `ConfigError`
naming the file, the key and what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway import layering
from gateway.console.settings import ConsoleConfig, MetricsConfig
from gateway.lifecycle.settings import DeadlineConfig, LifecycleConfig
from gateway.secret import ConfigError, Secret
from gateway.store import locate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Model):
    url: str = locate.DEFAULT_URL
    url_env: str = locate.DEFAULT_ENV

    def resolved_url(self) -> str:
        return locate.resolved(self.url, self.url_env)


class LogConfig(_Model):
    format: Literal["console", "json"] = "console"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Operator(_Model):
    name: str
    signer: str                                  # key of [signers.*]
    documents: list[str] = Field(default_factory=lambda: ["*"])


class FilingProfile(_Model):
    """What MOFCOM's 企业信息备案 (机电) and 重农信息备案 (非机电) ask about the enterprise."""

    address: str                                 # 企业地址 / 企业经营地址
    contact_name: str                            # 联系人
    contact_phone: str                           # 联系电话
    contact_mobile: str = ""                     # 手机
    fax: str = ""                                # 传真
    post_code: str = ""                          # 邮编
    email: str = ""                              # 企业邮箱
    org_code: str = ""                           # 组织机构代码
    business_licence_no: str = ""                # 工商登记号
    registered_capital: str = ""                 # 注册资金
    business_scope: str = ""                     # 经营范围
    me_account: str = ""                         # 机电系统账户 (机电 filing)
    me_office: str = ""                          # 所属机电办 (机电 filing)


class Signatory(_Model):
    """A CCPIT signatory (手签员) of the enterprise, as registered (备案) with CCPIT."""

    name: str
    cancelled: bool = False                      # 已注销: may no longer sign certificates


class Enterprise(_Model):
    code: str                                    # 统一社会信用代码 (USCC, 18)
    name: str
    customs_code: str = ""                       # 海关十位编码
    ciq_code: str = ""                           # 报检注册号
    dxp_sender_id: str                           # DXP SenderId (<= 16)
    ccpit_code: str = ""                         # 贸促会企业编码 (9)
    mofcom_code: str = ""                        # 商务部企业代码 (13)
    mofcom_key: str = ""                         # [signers.*] holding the MOFCOM electronic key (电子钥匙)
    mofcom_filings: list[Literal["me", "agri"]] = Field(default_factory=list)   # filings MOFCOM already has
    filing: FilingProfile | None = None          # [enterprise.filing]: for swgw enterprise file me|agri
    operators: list[Operator] = Field(default_factory=list)
    signatories: list[Signatory] = Field(default_factory=list)   # CCPIT 手签员; listed: certificates are checked

    @field_validator("dxp_sender_id")
    @classmethod
    def _sender_len(cls, v: str) -> str:
        if not 1 <= len(v) <= 16:
            raise ValueError("dxp_sender_id must be 1 to 16 characters")
        return v


class SoftwareSignerConfig(_Model):
    kind: Literal["software"] = "software"
    key_file: Path
    cert_file: Path
    key_password: Secret | None = None
    media_no: str
    holder: str
    enterprise: str
    generate: bool = False                       # create key + cert from the sandbox CA if missing
    xmldsig: Literal["chinaport-2022", "ceb-2018"] = "chinaport-2022"   # the envelope signature's URIs
    # signing threads for this key (gateway/signwork.py): a key in memory signs in parallel, so one
    # thread's SM2 runs while another does its Python; a card or card host always has one
    threads: int = Field(2, ge=1, le=8)


class PcscSignerConfig(_Model):
    """The operator's IC card / UKey in a PC/SC reader on this host."""

    kind: Literal["pcsc"] = "pcsc"
    media_no: str                                # 介质号 of the card to use
    reader: str | None = None                    # a substring of the reader name (default: any)
    pin: Secret                                  # {env = "…"} or {file = "…"}: never the PIN itself
    holder: str = ""
    enterprise: str                              # the card must be bound to this enterprise
    xmldsig: Literal["chinaport-2022", "ceb-2018"] = "chinaport-2022"   # the envelope signature's URIs


class RemoteSignerConfig(_Model):
    """A card on another host, served by `swgw signer` there over RabbitMQ (README: card hosts)."""

    kind: Literal["remote"] = "remote"
    media_no: str                                # 介质号 of the card: its agent's queue is swgw.sign.<media_no>
    enterprise: str                              # the card must be bound to this enterprise
    holder: str = ""
    url: str = "amqp://guest@127.0.0.1:5672/%2F"  # the central broker user; no password here
    password: Secret | None = None
    secret: Secret                               # the HMAC-SHA256 key shared with that agent only
    cert_file: Path | None = None                # trust exactly this card certificate (pinned) …
    ca_file: Path | None = None                  # … or any certificate issued by this CA
    request_timeout: float = 30.0                # a request's deadline; no reply by then: the message waits
    heartbeat_timeout: float = 15.0              # no heartbeat for this long: the agent is away
    flag_after: float = 300.0                    # messages waiting this long for an away agent: an alarm
    xmldsig: Literal["chinaport-2022", "ceb-2018"] = "chinaport-2022"   # the envelope signature's URIs

    @model_validator(mode="after")
    def _trust(self):
        if self.ca_file is None and self.cert_file is None:
            raise ValueError("a remote signer needs cert_file (the pinned card certificate) or ca_file "
                             "(the CA that issues the cards): returned signatures are verified against it")
        return self


SignerConfig = Annotated[Union[SoftwareSignerConfig, PcscSignerConfig, RemoteSignerConfig],
                         Field(discriminator="kind")]


class FolderTransportConfig(_Model):
    kind: Literal["folder"] = "folder"
    outgoing: Path
    incoming: Path
    on_ack: Literal["delete", "move"] = "delete"
    fsync: bool = True


class SftpTransportConfig(_Model):
    """An SFTP server (OpenSSH): envelopes up to `outgoing`, receipts down from `incoming`."""

    kind: Literal["sftp"] = "sftp"
    host: str
    port: int = 22
    username: str
    known_hosts: Path                            # pinned host keys: an unknown or changed key is refused
    key_file: Path | None = None
    key_passphrase: Secret | None = None
    password: Secret | None = None
    outgoing: str                                # remote folders
    incoming: str
    on_ack: Literal["delete", "move"] = "delete"
    done_dir: str | None = None
    connect_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0


class AmqpTransportConfig(_Model):
    """RabbitMQ: envelopes published (with confirms) to one queue, receipts consumed from another."""

    kind: Literal["amqp"] = "amqp"
    url: str = "amqp://guest@127.0.0.1:5672/%2F"  # no password here: see `password`
    password: Secret | None = None
    outgoing_queue: str
    incoming_queue: str
    prefetch: int = 100
    dead_letter_exchange: str = "swgw.dlx"
    connection_name: str = "swgw-transport"


class ClientFolderTransportConfig(_Model):
    """The official Single Window desktop client's folders: swgw writes the bare business XML
    into <imp_path>/<module>/OutBox (the client signs it with the card and sends it) and reads
    import responses and status receipts from InBox, and what the client put in FailBox."""

    kind: Literal["clientfolder"] = "clientfolder"
    imp_path: Path                               # the client's ImpPath (client settings)
    module: str = "DecCus001"                    # DecCus001 = customs declarations
    role: Literal["gateway", "client"] = "gateway"   # client: the sandbox playing the desktop client
    processed_dir: Path | None = None            # default: InBox/.processed
    create: bool = False                         # make the boxes (tests, the sandbox)
    fsync: bool = True
    stale_after: float = 600.0                   # doctor: OutBox files older than this = client not running


TransportConfig = Annotated[Union[FolderTransportConfig, SftpTransportConfig, AmqpTransportConfig,
                                  ClientFolderTransportConfig],
                            Field(discriminator="kind")]


class AttachmentConfig(_Model):
    """Files carried with a document ([documents.<type>.attachments]); see gateway/attachments.py."""

    dir: Path | None = None                      # default <inbox>/attachments
    max_bytes: int = 4 * 1024 * 1024             # one file
    max_count: int = 10                          # per document
    max_package_bytes: int = 60 * 1024 * 1024    # a .zip drop, everything in it expanded
    types: list[str] = Field(default_factory=lambda: ["pdf", "jpeg", "png", "ofd"])


class DocumentConfig(_Model):
    inbox: Path
    outbox: Path
    mapping: Path
    record_mapping: Path | None = None           # for records from [amqp_intake] queues (default: mapping)
    transport: str                               # key of [transports.*]
    receiver_id: str = "DXPEDCSW00000001"
    msg_type: str = ""
    stable_seconds: float = 2.0                  # size+mtime unchanged this long = complete
    done_marker: bool = False                    # take <name> only once <name>.done exists
    max_file_bytes: int = 50 * 1024 * 1024
    encoding: str = "auto"                       # auto | utf-8 | utf-8-sig | gb18030
    submit: str | None = None                    # declarations: declare (C, default) | draft (G) | upload (A) …
    deadlines: DeadlineConfig = Field(default_factory=DeadlineConfig)   # expected receipt times
    attachments: AttachmentConfig = Field(default_factory=AttachmentConfig)


class AmqpIntakeConfig(_Model):
    """ERP records from RabbitMQ: one durable queue per document type, acked after the store
    commit; a record that cannot be taken goes to the dead-letter queue with its reason."""

    url: str = "amqp://guest@127.0.0.1:5672/%2F"
    password: Secret | None = None
    queues: dict[str, str]                       # document type -> queue
    dead_letter_queue: str = "swgw.intake.dlq"
    prefetch: int = 200
    connection_name: str = "swgw-intake"
    backoff_initial: float = 1.0
    backoff_max: float = 30.0


class ReceiptExchangeConfig(_Model):
    """Receipts out to RabbitMQ: a durable topic exchange, routing key
    <type>.<receipt-kind>.<enterprise-code>, correlation id = business key."""

    url: str = "amqp://guest@127.0.0.1:5672/%2F"
    password: Secret | None = None
    exchange: str = "swgw.receipts"
    mandatory: bool = False                      # True: a receipt no queue is bound for is an error
    connection_name: str = "swgw-receipts"
    backoff_initial: float = 1.0
    backoff_max: float = 30.0


class SandboxConfig(_Model):
    mode: Literal["off", "inprocess", "child"] = "off"
    config: Path | None = None


class GatewayConfig(_Model):
    var_dir: Path = Path("var")
    poll_interval: float = 0.5
    watch: Literal["auto", "inotify", "poll"] = "auto"   # wake on drop-folder changes (inotify) or poll only
    batch_size: int = 200
    unmatched_outbox: Path = Path("outbox/unmatched")
    inspection_order_outbox: Path = Path("outbox/inspection-order")   # orders for declarations swgw does not know
    alarms_outbox: Path = Path("outbox/alarms")


class ClusterConfig(_Model):
    """Several `swgw run` processes on one PostgreSQL store (gateway/cluster.py, gateway/store/leases.py)."""
    lease_seconds: float = Field(default=60.0, gt=0)      # a batch's hold on its messages; renewed while it works
    failover_seconds: float = Field(default=10.0, gt=0)   # a dead leader's jobs are taken over within this
    heartbeat_seconds: float = Field(default=2.0, gt=0)   # how often each process reports itself in the store


class Config(_Model):
    source: Path = Path("gateway.toml")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    enterprises: list[Enterprise] = Field(default_factory=list, alias="enterprise")
    signers: dict[str, SignerConfig] = Field(default_factory=dict)
    transports: dict[str, TransportConfig] = Field(default_factory=dict)
    documents: dict[str, DocumentConfig] = Field(default_factory=dict)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    amqp_intake: AmqpIntakeConfig | None = None
    receipt_exchange: ReceiptExchangeConfig | None = None
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def enterprise(self, code: str) -> Enterprise | None:
        for ent in self.enterprises:
            if code in (ent.code, ent.customs_code, ent.ccpit_code, ent.mofcom_code) and code:
                return ent
        return None

    def operator_for(self, enterprise: Enterprise, doc_type: str) -> Operator | None:
        for op in enterprise.operators:
            if "*" in op.documents or doc_type in op.documents:
                return op
        return None

    @property
    def var_dir(self) -> Path:
        return self.gateway.var_dir


def _resolve(value, base: Path):
    """`value` with every relative Path in it made absolute against `base` (recursing)."""
    if isinstance(value, Path):
        return value if value.is_absolute() else Path(os.path.normpath(base / value))
    if isinstance(value, BaseModel):
        _resolve_paths(value, base)
        return value
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, base) for k, v in value.items()}
    return value


def _resolve_paths(node: BaseModel, base: Path) -> None:
    for name in type(node).model_fields:
        if name != "source":
            object.__setattr__(node, name, _resolve(getattr(node, name), base))


def _resolve_store_url(cfg: Config, base: Path) -> None:
    cfg.store.url = locate.resolve_sqlite(cfg.store.url, base)


def load(path: str | os.PathLike) -> Config:
    """Load a config; `extends = "gateway.toml"` layers this file over another in its folder."""
    path = Path(path)
    raw = layering.read(path, ConfigError, "config file", same_folder=True)
    cfg = _validated(Config, raw, path)
    base = path.resolve().parent
    cfg.source = path.resolve()
    _resolve_paths(cfg, base)
    _resolve_store_url(cfg, base)
    _check_references(cfg, path)
    return cfg


def _validated(model, raw, path: Path):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
            lines.append(f"{path}: [{loc}] {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


class AgentConfig(_Model):
    """[agent] of a card host's signer.toml: the broker, the shared secret, where state is kept."""

    url: str = "amqp://guest@127.0.0.1:5672/%2F"  # the card host's own broker user; no password here
    password: Secret | None = None
    secret: Secret                               # the HMAC-SHA256 key, the same as the central [signers.*] secret
    state_dir: Path = Path("var/signer")         # nonces.sqlite (replay guard) and audit.jsonl (what was signed)
    heartbeat_interval: float = 2.0               # well below the gateway's heartbeat_timeout (15 s)
    name: str = ""                               # how the gateway shows this host (default: the host name)


class SignerFile(_Model):
    """`swgw signer --config signer.toml`: one card on this host, served to the central gateway."""

    source: Path = Path("signer.toml")
    agent: AgentConfig
    card: Annotated[Union[SoftwareSignerConfig, PcscSignerConfig], Field(discriminator="kind")]
    log: LogConfig = Field(default_factory=LogConfig)

    @property
    def var_dir(self) -> Path:
        return self.agent.state_dir


def load_signer(path: str | os.PathLike) -> SignerFile:
    """Load a card host's signer.toml (relative paths against its folder)."""
    path = Path(path)
    raw = layering.read(path, ConfigError, "config file", same_folder=True)
    cfg = _validated(SignerFile, raw, path)
    cfg.source = path.resolve()
    _resolve_paths(cfg, path.resolve().parent)
    return cfg


def _check_references(cfg: Config, path: Path) -> None:
    errors = []
    for key, doc in cfg.documents.items():
        if doc.transport not in cfg.transports:
            errors.append(f"{path}: [documents.{key}.transport] names transport {doc.transport!r}, "
                          f"which is not defined under [transports]")
    for ent in cfg.enterprises:
        for op in ent.operators:
            if op.signer not in cfg.signers:
                errors.append(f"{path}: [enterprise {ent.code} operator {op.name}] names signer "
                              f"{op.signer!r}, which is not defined under [signers]")
        if ent.mofcom_key and ent.mofcom_key not in cfg.signers:
            errors.append(f"{path}: [enterprise {ent.code}] mofcom_key names signer {ent.mofcom_key!r}, "
                          f"which is not defined under [signers]")
    for doc_type in (cfg.amqp_intake.queues if cfg.amqp_intake else {}):
        if doc_type not in cfg.documents:
            errors.append(f"{path}: [amqp_intake.queues] names document type {doc_type!r}, which is not "
                          f"configured under [documents]")
    if errors:
        raise ConfigError("\n".join(errors))
