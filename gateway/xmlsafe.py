"""Parsing XML from outside: no DTDs, no external entities, no entity expansion, bounded size;
and swgw's own XML (a stored document, an envelope just written) without those checks."""
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


DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"   # as etree.tostring(xml_declaration=True) writes it


def escape_text(text: str) -> str:
    """A value as element text, the way lxml writes it: &, < and > escaped (nothing else)."""
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


_OWN = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False, huge_tree=True)


def parse_own(data: bytes) -> etree._Element:
    """XML swgw wrote itself and validated before (no DOCTYPE, any size): parsed as it is."""
    return etree.fromstring(data, parser=_OWN)
