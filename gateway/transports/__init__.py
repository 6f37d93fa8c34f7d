"""Transports move DxpMsg envelopes to the Single Window and receipts back.

`base.Transport` is the one interface; `folder`, `sftp`, `amqp` and `clientfolder`
implement it. `open_transport(config)` builds the one a config names.
"""
from gateway.transports.base import Incoming, Outgoing, Transport, TransportError  # noqa: F401
