"""Typed configuration: one TOML file, secrets from the environment or files.

Relative paths resolve against the config file's folder, so a config works from
any working directory. `load(path)` returns a `Config` or raises `ConfigError`
naming the file, the key and what is wrong.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.lifecycle.settings import DeadlineConfig, LifecycleConfig
from gateway.secret import ConfigError, Secret


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Model):
    url: str = "sqlite:///var/swgw.db"
    url_env: str = "SWGW_STORE_URL"

    def resolved_url(self) -> str:
        return os.environ.get(self.url_env) or self.url


class LogConfig(_Model):
    format: Literal["console", "json"] = "console"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Operator(_Model):
    name: str
    signer: str                                  # key of [signers.*]
    documents: list[str] = Field(default_factory=lambda: ["*"])


class Enterprise(_Model):
    code: str                                    # 统一社会信用代码 (USCC, 18)
    name: str
    customs_code: str = ""                       # 海关十位编码
    ciq_code: str = ""                           # 报检注册号
    dxp_sender_id: str                           # DXP SenderId (<= 16)
    ccpit_code: str = ""                         # 贸促会企业编码 (9)
    mofcom_code: str = ""                        # 商务部企业代码 (13)
    operators: list[Operator] = Field(default_factory=list)

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


class PcscSignerConfig(_Model):
    """The operator's IC card / UKey in a PC/SC reader on this host."""

    kind: Literal["pcsc"] = "pcsc"
    media_no: str                                # 介质号 of the card to use
    reader: str | None = None                    # a substring of the reader name (default: any)
    pin: Secret                                  # {env = "…"} or {file = "…"}: never the PIN itself
    holder: str = ""
    enterprise: str                              # the card must be bound to this enterprise


SignerConfig = Annotated[Union[SoftwareSignerConfig, PcscSignerConfig], Field(discriminator="kind")]


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


TransportConfig = Annotated[Union[FolderTransportConfig, SftpTransportConfig, AmqpTransportConfig],
                            Field(discriminator="kind")]


class DocumentConfig(_Model):
    inbox: Path
    outbox: Path
    mapping: Path
    transport: str                               # key of [transports.*]
    receiver_id: str = "DXPEDCSW00000001"
    msg_type: str = ""
    stable_seconds: float = 2.0                  # size+mtime unchanged this long = complete
    done_marker: bool = False                    # take <name> only once <name>.done exists
    max_file_bytes: int = 50 * 1024 * 1024
    encoding: str = "auto"                       # auto | utf-8 | utf-8-sig | gb18030
    deadlines: DeadlineConfig = Field(default_factory=DeadlineConfig)   # expected receipt times


class SandboxConfig(_Model):
    mode: Literal["off", "inprocess", "child"] = "off"
    config: Path | None = None


class GatewayConfig(_Model):
    var_dir: Path = Path("var")
    poll_interval: float = 0.5
    batch_size: int = 200
    unmatched_outbox: Path = Path("outbox/unmatched")
    alarms_outbox: Path = Path("outbox/alarms")


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
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)

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
    url = cfg.store.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        cfg.store.url = prefix + os.path.normpath(base / url[len(prefix):])


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` into `base`. A table that names its `kind` replaces the base table
    (a pcsc signer is not a software signer with extra keys); lists replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "kind" not in value:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Read a config file, following `extends = "other.toml"` (relative to the file)."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(str(p) for p in seen)}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base_path = path.parent / parent
    if base_path.resolve().parent != path.resolve().parent:
        raise ConfigError(f"{path}: extends must name a file in the same folder, got {parent!r}")
    return _merge(_read(base_path, (*seen, path.resolve())), raw)


def load(path: str | os.PathLike) -> Config:
    """Load a config; `extends = "gateway.toml"` layers this file over another in its folder."""
    path = Path(path)
    raw = _read(path)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
            lines.append(f"{path}: [{loc}] {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    base = path.resolve().parent
    cfg.source = path.resolve()
    _resolve_paths(cfg, base)
    _resolve_store_url(cfg, base)
    _check_references(cfg, path)
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
    if errors:
        raise ConfigError("\n".join(errors))
