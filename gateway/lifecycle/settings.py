"""Configuration of the receipt lifecycle: [lifecycle] and [documents.<type>.deadlines].

Durations are numbers of seconds or strings with a unit: "90s", "15m", "2h", "3d", "1.5h".
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.secret import Secret

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '90s', '15m', '2h', '3d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h, d or w "
                             f"(e.g. '15m', '3d')")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def describe(seconds: float) -> str:
    """A short human form of a duration: 45s, 15m, 2h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeadlineConfig(_Model):
    """Expected receipt times of one document type, counted from when it was sent.

    - platform_response: the exchange platform's answer (DxpRep) — minutes;
    - authority_response: the authority's first answer (customs import response, audit receipt);
    - final: a final state (closed, rejected, approved …) — days;
    - licence: a declaration naming a licence of ours waits for it (awaiting-licence) — days.
    Unset (0) means no deadline for that step. A message past a deadline is flagged
    `overdue`; with `resend_unanswered`, one the platform never answered at all is sent
    again with the same CopMsgId (the platform drops true duplicates), at most `max_resends` times.
    """

    platform_response: Duration = 15 * 60
    authority_response: Duration = 0
    final: Duration = 0
    licence: Duration = 7 * 86400    # declarations: how long one may wait for its licence (awaiting-licence)
    resend_unanswered: bool = True
    max_resends: int = Field(2, ge=0)


class RetryConfig(_Model):
    """Transmit retries: exponential backoff from `initial`, times `factor`, at most `max`;
    after `limit` failed attempts the message is `failed` with the last reason."""

    initial: Duration = 5.0
    factor: float = Field(2.0, ge=1.0)
    max: Duration = 1800.0
    limit: int = Field(12, ge=1)      # with the defaults: about 1 h 40 min of outage, then `failed`


class HousekeepingConfig(_Model):
    """Archive then prune what only grows: payloads of settled messages (document, envelope,
    receipt raw) and archived drop files. Events are kept (the audit trail)."""

    interval: Duration = 3600.0
    payload_age: Duration = 90 * 86400      # settled this long ago: payloads archived and pruned
    inbox_archive_age: Duration = 30 * 86400  # files in inbox/<type>/.archive older than this
    archive: bool = True                     # false: prune without archiving first
    archive_dir: Path | None = None          # default: <gateway.var_dir>/archive
    archive_age: Duration = 0                # delete archive files older than this (0: keep)
    batch: int = Field(500, ge=1)


class AmqpAlarmConfig(_Model):
    """RabbitMQ for alarm and subscription queues (durable queues, publisher confirms)."""

    url: str = "amqp://guest@127.0.0.1:5672/%2F"   # no password here: see `password`
    password: Secret | None = None
    alarm_queue: str = ""                    # set to publish alarms there too


class LifecycleConfig(_Model):
    enabled: bool = True
    sweep_interval: Duration = 60.0          # how often deadlines are checked
    subscription_reload: Duration = 5.0      # how often subscription rules are re-read
    shutdown_timeout: Duration = 30.0        # SIGTERM: in-flight work finishes or parks within this
    ccpit_sync: Duration = 86400.0           # 数据同步: request every enterprise's CCPIT filings this often (0: never)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    housekeeping: HousekeepingConfig = Field(default_factory=HousekeepingConfig)
    amqp: AmqpAlarmConfig | None = None
