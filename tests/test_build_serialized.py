"""A document built as text keeps that text as its serialization (Built.serialized), which intake
stores instead of serializing the parsed tree again: it must be byte for byte what lxml writes of
the tree, and the tree the one built element by element, for every family's reference exports and
for values that need escaping."""
from __future__ import annotations

import pytest
from lxml import etree

from support import FAMILY_MAPPINGS, ROOT, SHARED
from gateway.documents import family
from gateway.mapping.engine import Mapping

SAMPLES = [("declaration", "declaration-csv.toml", ROOT / "samples" / "declaration.csv"),
           ("declaration", "declaration-csv.toml", SHARED / "erp-samples" / "declaration.csv"),
           ("declaration", "declaration-csv.toml", ROOT / "samples" / "declaration.xlsx"),
           ("export-license", "export-license-json.toml", SHARED / "erp-samples" / "export-license.json"),
           ("origin", "origin-xml.toml", SHARED / "erp-samples" / "origin.xml")]
for key, mapping_name in FAMILY_MAPPINGS.items():
    for sample in sorted((ROOT / "samples").glob(f"{key}.*")):
        SAMPLES.append((key, mapping_name, sample))
TRICKY = ['A&B <球阀> "x" \'y\'', "]]> & &amp; &#38;", "tab\there", "  spaced  ", "line\nbreak", "𠀀 non-BMP 😀",
          "<![CDATA[x]]>", "' \" ' \""]


def documents(key: str, mapping_name: str, sample):
    fam = family(key)
    mapping = Mapping.load(ROOT / "mappings" / mapping_name, allowed=fam.sections())
    docs = mapping.apply(mapping.read(sample.read_bytes()))
    assert docs, f"{sample.name} maps to no document"
    return fam, docs


def serialization(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def check(fam, mapped) -> bool:
    built = fam.build(mapped)
    if built.serialized is None:
        return False
    assert built.serialized == serialization(built.root)
    assert serialization(built.root) == serialization(fam.build_elements(mapped).root)
    return True


@pytest.mark.parametrize("key,mapping_name,sample", SAMPLES, ids=[f"{k}-{s.name}" for k, _, s in SAMPLES])
def test_serialized_text_is_what_lxml_writes(key, mapping_name, sample):
    fam, docs = documents(key, mapping_name, sample)
    assert all([check(fam, mapped) for mapped in docs])   # every one of them built as text


@pytest.mark.parametrize("key,mapping_name,sample", SAMPLES[::2], ids=[f"{k}-{s.name}" for k, _, s in SAMPLES[::2]])
@pytest.mark.parametrize("text", TRICKY)
def test_values_that_need_escaping_serialize_as_lxml_writes_them(key, mapping_name, sample, text):
    fam, docs = documents(key, mapping_name, sample)
    mapped = docs[0]
    changed = 0
    for records in mapped.sections.values():
        for rec in records:
            for value in rec.values():
                if not isinstance(value, list):
                    value.text = text
                    changed += 1
    assert changed
    assert check(fam, mapped)
    assert text in [e.text for e in fam.build(mapped).root.iter()]


def test_a_value_the_text_cannot_carry_is_built_and_serialized_by_lxml():
    fam, docs = documents(*SAMPLES[0])
    docs[0].sections["DecList"][0]["GName"].text = "球阀\r\n第二行"
    built = fam.build(docs[0])
    assert built.serialized is None and built.rebuild is None
    assert b"&#13;" in serialization(built.root)


def test_records_without_values_and_with_nested_records_serialize_as_lxml_writes_them():
    """Empty elements (a record of fields that are no elements; nested lists that are empty or hold
    an empty record) and a single field: the text writes them as lxml does."""
    from gateway.mapping.engine import Value

    fam, docs = documents(*SAMPLES[0])
    mapped = docs[0]
    mapped.sections["DecFreeTxt"] = [{"NotAnElement": Value("x")}]
    mapped.sections["DecSign"] = [{"ClientSeqNo": Value("DL1")}]
    lines = mapped.sections["DecList"]
    lines[0]["DecGoodsLimit"] = []
    lines[1]["DecGoodsLimit"] = [{}, {"GoodsNo": Value("2"), "DecGoodsLimitVin": []}]
    assert check(fam, mapped)
    written = fam.build(mapped).serialized
    assert b"<DecFreeTxt/>" in written and b"<DecGoodsLimit/>" in written
