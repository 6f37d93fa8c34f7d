"""[console] and [metrics] in the gateway config."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be host:port, e.g. 127.0.0.1:8642 (got {value!r})")
    return value


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:8642"               # only this host unless told otherwise
    session_hours: float = 8.0                   # a session cookie lives this long
    max_failed_logins: int = 5                   # then the user is locked out …
    lockout_minutes: float = 15.0                # … this long
    client_attempts_per_minute: int = 20         # login attempts from one address
    trusted_proxy_header: str = ""               # e.g. "X-Remote-User" from an SSO reverse proxy
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])  # who may send it
    secure_cookies: bool | None = None           # default: when the request came over https
    page_size: int = 50

    _check_listen = field_validator("listen")(classmethod(lambda cls, v: _listen(v)))


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = ""                             # e.g. "127.0.0.1:9464": the daemon serves /metrics, /healthz
    gauge_interval: float = 5.0                  # the store's gauges are read at most this often

    @field_validator("listen")
    @classmethod
    def _check(cls, v: str) -> str:
        return _listen(v) if v else v
