"""The sandbox's own configuration (config/sandbox.toml)."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config import ConfigError, FolderTransportConfig, TransportConfig, _resolve_paths
from gateway.config import _read as read_layered


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Model):
    """When every `when` pattern matches the business document, play this instead."""

    when: dict[str, str]                     # element local name -> regex over its text
    import_error: str | None = None          # customs import fails with this text
    channels: list[str] | None = None        # DEC_RESULT channels to play
    note: str = ""                           # NOTE on the last status
    silent: bool = False                     # accept, then never answer (overdue tests)


class DeclarationScenario(_Model):
    channels: list[str] = Field(default_factory=lambda: ["L", "J", "P", "R"])
    import_delay: float = 0.2
    delay: float = 0.3                       # between status receipts
    rules: list[Rule] = Field(default_factory=list)


class PeerSettings(_Model):
    platform_id: str = "DXPEDCSW00000001"
    archive_dir: Path = Path("var/sandbox/received")
    trust: list[Path] = Field(default_factory=list)   # CA certificates whose operator certs are accepted
    poll_interval: float = 0.2
    ack_delay: float = 0.0


class SandboxSettings(_Model):
    source: Path = Path("sandbox.toml")
    peer: PeerSettings = Field(default_factory=PeerSettings)
    transport: TransportConfig
    declaration: DeclarationScenario = Field(default_factory=DeclarationScenario)


def load(path: Path) -> SandboxSettings:
    path = Path(path)
    raw = read_layered(path)   # `extends = "sandbox.toml"` layers it over another in its folder
    try:
        settings = SandboxSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    settings.source = path.resolve()
    _resolve_paths(settings, path.resolve().parent)
    return settings


__all__ = ["SandboxSettings", "load", "FolderTransportConfig"]
