"""Route stored receipts to consumers: outbox folders, written atomically.

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


def file_name(receipt: Receipt, message: Message | None) -> str:
    key = message.business_key if message else "unmatched"
    return f"{_SAFE.sub('_', key)}.{receipt.kind}.{receipt.id:08d}.xml"


def route_to_folder(outbox: Path, receipt: Receipt, message: Message | None, payload: bytes, fsync: bool,
                    sync_dir: bool = True) -> Path:
    path = Path(outbox) / file_name(receipt, message)
    fsutil.atomic_write(path, payload, fsync=fsync, sync_dir=sync_dir)
    return path
