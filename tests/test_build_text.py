"""The builder writes a document as text and parses it in one lxml call; the tree must be the one
built element by element, and a schema error must still name the row and column it came from."""
from __future__ import annotations

import pytest
from lxml import etree

from support import ROOT, SAMPLE_CSV
from gateway.config import Enterprise, Operator
from gateway.documents import family
from gateway.documents.base import Context
from gateway.mapping.engine import Mapping

ENT = Enterprise(code="91210200MA0QC8N67X", name="大连远洋五金进出口有限公司", customs_code="2102930001",
                 dxp_sender_id="DXPENT0000012345")
OP = Operator(name="王丹", signer="op")


@pytest.fixture(scope="module")
def fam():
    return family("declaration")


def mapped_sample(fam, text: str | None = None):
    mapping = Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=fam.sections())
    data = SAMPLE_CSV.read_text(encoding="utf-8")
    if text is not None:
        data = data.replace("不锈钢球阀", text)
    docs = mapping.apply(mapping.read(data.encode("utf-8")))
    assert docs and not docs[0].errors, docs[0].errors if docs else "no document"
    assert not fam.enrich(docs[0], Context(ENT, OP, "8930000012345", None))
    return docs[0]


@pytest.mark.parametrize("goods_name", [None, 'A&B <球阀> "x" \'y\''])
def test_text_build_is_the_element_build(fam, goods_name):
    mapped = mapped_sample(fam, goods_name)
    built = fam.build(mapped)
    assert built.rebuild is not None                       # the text path was taken
    assert etree.tostring(built.root) == etree.tostring(fam.build_elements(mapped).root)
    assert not fam.schema.errors(built.root)
    if goods_name:
        assert built.root.findtext(".//{*}GName") == goods_name


def test_value_with_carriage_return_builds_element_by_element(fam):
    mapped = mapped_sample(fam)
    mapped.sections["DecList"][0]["GName"].text = "球阀\r\n第二行"
    built = fam.build(mapped)
    assert built.rebuild is None
    assert built.root.findtext(".//{*}GName") == "球阀\r\n第二行"


def test_schema_error_names_row_and_column(fam):
    """A value the mapping let through but the schema refuses is located in the user's file."""
    mapped = mapped_sample(fam)
    mapped.sections["DecList"][1]["GModel"].text = "x" * 300   # beyond the schema's length
    built = fam.build(mapped)
    errors = fam.locate(built, fam.schema.errors(built.root))
    assert errors, "the schema should refuse a 300-character GModel"
    err = next(e for e in errors if "GModel" in e.field)
    assert (err.row, err.column) == (3, "goods_model")
    assert err.column_number == 29
