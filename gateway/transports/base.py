"""The transport interface: send an envelope, receive receipts, acknowledge them.

Contract every implementation keeps:
- `send(item)` is atomic and idempotent by `item.name`: the peer never sees half a
  file, and sending the same name again after a crash replaces, never duplicates,
  anything not yet taken by the peer (the peer drops true duplicates by CopMsgId).
- `flush()` makes everything sent so far durable at the peer; a transport may hold what
  it was sent until then (the folder transport renames a batch's files into place at
  its flush), so every sender flushes before it relies on what it sent.
- `receive()` returns receipts without removing them; `ack(ref)` removes or moves
  one remotely, and is called only after the receipt is committed to the store.
- Transient failures raise `TransportError(retryable=True)`; configuration or
  permission failures raise it with `retryable=False`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field


class TransportError(Exception):
    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Outgoing:
    name: str              # file / message name, unique per CopMsgId
    data: bytes            # the DxpMsg (or bare business XML for clientfolder)
    cop_msg_id: str
    doc_type: str
    business_key: str = ""
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Incoming:
    ref: str               # what ack() needs to remove it remotely
    name: str              # the remote file name or message id
    data: bytes
    # Transport-specific facts about the receipt, for logs and correlation (never
    # needed to ack): e.g. AMQP message_id/correlation_id/headers/redelivered,
    # clientfolder box and kind. Added after the scaffold; defaults to {}.
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Check:
    """One line of `swgw doctor` for a transport."""

    what: str
    ok: bool
    detail: str = ""


class Transport(abc.ABC):
    name: str = ""
    # what send() carries: "dxp" = the DxpMsg swgw signed; "business" = the bare business XML,
    # signed by whoever takes it (the official desktop client with the operator's card)
    carries: str = "dxp"

    @abc.abstractmethod
    def send(self, item: Outgoing) -> None: ...

    @abc.abstractmethod
    def receive(self, limit: int = 100) -> list[Incoming]: ...

    @abc.abstractmethod
    def ack(self, ref: str) -> None: ...

    def flush(self) -> None:
        """Make everything sent so far durable at the peer (called before recording it as sent)."""

    def check(self) -> list[Check]:
        return []

    def close(self) -> None:
        pass
