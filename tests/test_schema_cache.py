"""What swgw derives from an XSD is kept between runs, and an edited schema (or an included one) is
never answered from the old entry."""
from gateway.validation import Schema

XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t"
           elementFormDefault="qualified">
  <xs:include schemaLocation="parts.xsd"/>
  <xs:element name="Doc"><xs:complexType><xs:sequence>
    <xs:element name="Head" type="HeadType"/>
    <xs:element name="Item" type="xs:string" maxOccurs="unbounded"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""
PARTS = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:t" targetNamespace="urn:t"
           elementFormDefault="qualified">
  <xs:complexType name="HeadType"><xs:sequence>
    <xs:element name="{a}" type="xs:string"/><xs:element name="{b}" type="xs:string"/>
  </xs:sequence></xs:complexType>
</xs:schema>"""


def test_element_order_cached_and_invalidated_by_an_included_file(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SWGW_CACHE_DIR", str(cache))
    (tmp_path / "doc.xsd").write_text(XSD, encoding="utf-8")
    (tmp_path / "parts.xsd").write_text(PARTS.format(a="A", b="B"), encoding="utf-8")
    first = Schema(tmp_path / "doc.xsd")
    assert first.element_order("Doc") == {"Doc": ["Head", "Item"], "Head": ["A", "B"]}
    assert first.repeatable("Doc") == {"Item"}
    assert len(list(cache.glob("doc-*.json"))) == 2
    # a fresh process answers from the cache without building xmlschema's model
    again = Schema(tmp_path / "doc.xsd")
    assert again.element_order("Doc") == first.element_order("Doc") and again._readable is None
    # the included file changes: the order follows it
    (tmp_path / "parts.xsd").write_text(PARTS.format(a="B", b="A"), encoding="utf-8")
    assert Schema(tmp_path / "doc.xsd").element_order("Doc")["Head"] == ["B", "A"]


def test_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SWGW_CACHE_DIR", str(blocker / "cache"))
    (tmp_path / "doc.xsd").write_text(XSD, encoding="utf-8")
    (tmp_path / "parts.xsd").write_text(PARTS.format(a="A", b="B"), encoding="utf-8")
    assert Schema(tmp_path / "doc.xsd").element_order("Doc")["Head"] == ["A", "B"]
