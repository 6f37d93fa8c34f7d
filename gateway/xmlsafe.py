"""Parsing XML from outside: no DTDs, no external entities, no entity expansion, bounded size."""
from __future__ import annotations

from lxml import etree

MAX_BYTES = 50 * 1024 * 1024

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_blank_text=False)


class UnsafeXml(Exception):
    pass


def parse(data: bytes, limit: int = MAX_BYTES) -> etree._Element:
    if len(data) > limit:
        raise UnsafeXml(f"XML of {len(data)} bytes is over the limit of {limit} bytes")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {exc}") from None
    doc = root.getroottree()
    if doc.docinfo.doctype or doc.docinfo.internalDTD is not None:
        raise UnsafeXml("XML with a DOCTYPE is refused (DTDs and entities are not allowed)")
    return root
