"""The sandbox's own configuration (config/sandbox.toml)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway import layering
from gateway.config import ConfigError, FolderTransportConfig, TransportConfig, _resolve_paths


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Model):
    """When every `when` pattern matches the business document, play this instead."""

    when: dict[str, str]                     # element local name -> regex over its text
    import_error: str | None = None          # customs import fails with this text
    channels: list[str] | None = None        # DEC_RESULT channels to play
    note: str = ""                           # NOTE on the last status
    silent: bool = False                     # accept, then never answer (overdue tests)
    client_failure: str | None = None        # as the desktop client: fail it with this "<failCode> <failInfo>"
    receipt_form: Literal["dec-result", "legacy"] | None = None   # this document's status receipt form


class DeclarationScenario(_Model):
    # the real first statuses: 7 申报成功, L 入库成功, then J 审结, P 放行, R 结关
    channels: list[str] = Field(default_factory=lambda: ["7", "L", "J", "P", "R"])
    # how status receipts are written: the bare <DEC_RESULT> the platform sends today, or the
    # legacy DEC_DATA/DEC_RESULT form (GB2312, SEQ_NO) some older channels still deliver
    receipt_form: Literal["dec-result", "legacy"] = "dec-result"
    import_delay: float = 0.2
    delay: float = 0.3                       # between status receipts
    rules: list[Rule] = Field(default_factory=list)


class LicenceRule(_Model):
    """When every `when` pattern matches the application, play this instead."""

    when: dict[str, str]
    flow: list[str] | None = None            # approval statuses, in the family's words (待初审 审批中 …)
    opinion: str = ""                        # 审批意见 on the last approval status
    customs: list[str] | None = None         # licence customs statuses after approval
    write_offs: int | None = None
    silent: bool = False


class LicenceScenario(_Model):
    """A MOFCOM licence: the approval flow, then the licence's customs status, then 报关单核注
    write-offs (一批一证: one, for the whole quantity; 非一批一证: `write_offs` equal parts)."""

    flow: list[str] | None = None            # default: the family's own screens (see families/licence.py)
    customs: list[str] = Field(default_factory=lambda: ["海关入库成功"])
    write_offs: int = 1
    first_delay: float = 0.2
    delay: float = 0.3
    rules: list[LicenceRule] = Field(default_factory=list)


class FeedbackRule(_Model):
    when: dict[str, str]
    reason: str                              # return the feedback (退回) with this reason


class InspectionScenario(_Model):
    """Inspection orders (sent after a declaration's C channel) and answers to feedbacks."""

    unload_place: str = "DLCY01"             # 卸货地代码 on the orders
    note: str = "请于24小时内将集装箱调至查验区"
    delay: float = 0.2                       # feedback -> receipt
    known_orders: list[str] = Field(default_factory=list)   # orders issued before this run (查验编号)
    rules: list[FeedbackRule] = Field(default_factory=list)


class OriginRule(_Model):
    when: dict[str, str]
    reason: str = ""                         # return (退回) with this reason
    void: str = ""                           # approve, then void (作废) with this reason
    return_areas: list[str] = Field(default_factory=list)   # filings: return these areas (with reason), approve the rest
    silent: bool = False


class OriginScenario(_Model):
    """CCPIT audits: filings and certificates of origin."""

    delay: float = 0.3
    known_filings: list[str] = Field(default_factory=list)  # filings approved before this run
    rules: list[OriginRule] = Field(default_factory=list)          # certificates
    filing_rules: list[OriginRule] = Field(default_factory=list)   # product filings
    # filings registered elsewhere (the platform's own screens): answered by 数据同步, accepted on
    # certificates; each { filing_no, hs_code, name_en, areas = ["E", …] }
    registered_filings: list[dict] = Field(default_factory=list)
    enterprise_name: str = ""                                       # 同步企业信息 answers this name
    enterprise_address: str = ""                                    # … this address
    # … and these registered signatories (手签员): each { name, status = "已备案" | "已注销" }
    signatories: list[dict] = Field(default_factory=list)
    print_certificates: bool = True          # 证书自助打印: send the issued certificate (PDF) after approval


class MofcomSettings(_Model):
    """What MOFCOM knows of the enterprises: their bound electronic keys (电子钥匙绑定: MOFCOM code ->
    certificate file) and the filings it has registered before this run."""

    keys: dict[str, Path] = Field(default_factory=dict)
    filings: dict[str, list[str]] = Field(default_factory=dict)   # MOFCOM code or USCC -> ["me", "agri"]
    refuse_filings: dict[str, str] = Field(default_factory=dict)  # USCC -> reason a filing is refused
    licence_format: str = "xml"                                   # 电子许可证 as xml data or pdf


class PeerSettings(_Model):
    platform_id: str = "DXPEDCSW00000001"
    archive_dir: Path = Path("var/sandbox/received")
    trust: list[Path] = Field(default_factory=list)   # CA certificates whose operator certs are accepted
    poll_interval: float = 0.2
    ack_delay: float = 0.0


class SandboxSettings(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)   # family keys have dashes

    source: Path = Path("sandbox.toml")
    peer: PeerSettings = Field(default_factory=PeerSettings)
    transport: TransportConfig
    declaration: DeclarationScenario = Field(default_factory=DeclarationScenario)
    export_license: LicenceScenario = Field(default_factory=LicenceScenario, alias="export-license")
    me_import_license: LicenceScenario = Field(default_factory=LicenceScenario, alias="me-import-license")
    auto_import_license: LicenceScenario = Field(default_factory=LicenceScenario, alias="auto-import-license")
    mofcom: MofcomSettings = Field(default_factory=MofcomSettings)
    inspection: InspectionScenario = Field(default_factory=InspectionScenario)
    origin: OriginScenario = Field(default_factory=OriginScenario)


def load(path: Path) -> SandboxSettings:
    path = Path(path)
    # `extends = "sandbox.toml"` layers it over another in its folder
    raw = layering.read(path, ConfigError, "sandbox config", same_folder=True)
    try:
        settings = SandboxSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    settings.source = path.resolve()
    _resolve_paths(settings, path.resolve().parent)
    return settings


__all__ = ["SandboxSettings", "load", "FolderTransportConfig"]
