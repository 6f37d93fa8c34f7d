"""Route stored receipts to consumers: outbox folders, written atomically, and (when
configured) the receipt exchange on RabbitMQ.

File name: `<business key>.<receipt kind>.<receipt id>.xml`, so a consumer sorting
by name sees each document's receipts together and in arrival order; routing again
after a crash rewrites the same name, never a second copy.
"""
from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from gateway import fsutil, xmlsafe
from gateway.store.models import Message, Receipt

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")   # a routing-key segment: no dots


PRINTABLE = {"pdf": "pdf", "ofd": "ofd", "xml": "xml", "json": "json"}   # 证书自助打印 file types


def file_name(receipt: Receipt, message: Message | None, ext: str = "xml") -> str:
    key = message.business_key if message else "unmatched"
    return f"{_SAFE.sub('_', key)}.{receipt.kind}.{receipt.id:08d}.{ext}"


def printable(receipt: Receipt) -> tuple[str, bytes] | None:
    """An issued certificate's file (extension, bytes) from its CertificatePrint receipt, or None."""
    if receipt.kind != "certificate" or not receipt.raw:
        return None
    try:
        root = xmlsafe.parse(receipt.raw)
    except xmlsafe.UnsafeXml:
        return None
    content = next((e.text for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("Content")), None)
    ext = PRINTABLE.get(((receipt.fields or {}).get("FileType") or "").lower())
    if not content or ext is None:
        return None
    try:
        return ext, base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return None


def route_to_folder(outbox: Path, receipt: Receipt, message: Message | None, payload: bytes, fsync: bool,
                    sync_dir: bool = True) -> Path:
    """The receipt as `<key>.<kind>.<id>.xml`; an issued certificate as the file it carries,
    `<key>.certificate.<id>.<pdf|ofd|…>` (its receipt XML is in the store)."""
    issued = printable(receipt)
    if issued is not None:
        ext, payload = issued
        path = Path(outbox) / file_name(receipt, message, ext)
        fsutil.atomic_write(path, payload, fsync=fsync, sync_dir=sync_dir)
        return path
    path = Path(outbox) / file_name(receipt, message)
    fsutil.atomic_write(path, payload, fsync=fsync, sync_dir=sync_dir)
    if receipt.kind == "licence-document":   # the 电子许可证 itself beside its receipt
        document = licence_document(payload)
        if document is not None:
            ext, data = document
            key = message.business_key if message else "unmatched"
            fsutil.atomic_write(Path(outbox) / f"{_SAFE.sub('_', key)}.licence.{receipt.id:08d}.{ext}", data,
                                fsync=fsync, sync_dir=sync_dir)
    return path


LICENCE_FORMATS = {"xml": "xml", "pdf": "pdf", "ofd": "ofd"}


def licence_document(payload: bytes) -> tuple[str, bytes] | None:
    """(extension, bytes) of the electronic licence a LicenseDocument receipt carries."""
    import base64
    import binascii

    from gateway import xmlsafe

    try:
        root = xmlsafe.parse(payload)
    except xmlsafe.UnsafeXml:
        return None
    fields = {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in root if isinstance(el.tag, str)}
    ext = LICENCE_FORMATS.get(fields.get("Format", "").lower(), "bin")
    try:
        return ext, base64.b64decode(fields.get("Content", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


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
