"""Route stored receipts to consumers: outbox folders, written atomically, and (when
configured) the receipt exchange on RabbitMQ.

File name: `<business key>.<receipt kind>.<receipt id>.xml`, so a consumer sorting
by name sees each document's receipts together and in arrival order; routing again
after a crash rewrites the same name, never a second copy.
"""
from __future__ import annotations

import re
from pathlib import Path

from gateway import fsutil
from gateway.store.models import Message, Receipt

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")   # a routing-key segment: no dots


def file_name(receipt: Receipt, message: Message | None) -> str:
    key = message.business_key if message else "unmatched"
    return f"{_SAFE.sub('_', key)}.{receipt.kind}.{receipt.id:08d}.xml"


def route_to_folder(outbox: Path, receipt: Receipt, message: Message | None, payload: bytes, fsync: bool,
                    sync_dir: bool = True) -> Path:
    path = Path(outbox) / file_name(receipt, message)
    fsutil.atomic_write(path, payload, fsync=fsync, sync_dir=sync_dir)
    return path


def publish(publisher, receipt: Receipt, message: Message | None) -> str:
    """Publish one receipt (confirmed) to the receipt exchange; returns its routing key.

    message_id is the receipt's content hash, the same on every attempt, so a consumer can
    drop a repeat after a crash between the broker's confirm and the store's commit."""
    doc_type = receipt.doc_type or (message.doc_type if message else "") or "unknown"
    enterprise = message.enterprise if message and message.enterprise else (receipt.enterprise or "unknown")
    return publisher.publish(_SEGMENT.sub("_", doc_type), _SEGMENT.sub("_", receipt.kind),
                             _SEGMENT.sub("_", enterprise),
                             receipt.raw or b"", message_id=receipt.sha256,
                             business_key=message.business_key if message else "",
                             headers={"receipt_id": receipt.id,
                                      "cop_msg_id": message.cop_msg_id if message else ""})
