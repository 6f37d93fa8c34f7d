"""JSON and XML drop files: records flattened, lines exploded into rows, values located by path."""
from __future__ import annotations

import json

import pytest

from support import ROOT, SHARED
from gateway.documents import family
from gateway.mapping.engine import Mapping
from gateway.mapping.errors import InputError, MappingFileError
from gateway.mapping.readers import READERS

EXPORT = SHARED / "erp-samples" / "export-license.json"
ORIGIN = SHARED / "erp-samples" / "origin.xml"


def test_json_records_and_lines_become_rows_with_exact_numbers():
    table = READERS["json"](EXPORT.read_bytes(), records="applications", rows="lines")
    ((row, values),) = table.rows
    assert values["apply_no"] == "EL2026000101" and values["lines.unit_price"] == "11.11"
    assert values["goods_name"] == "1,1,1,2,2-五氟-3,3-二氯丙烷"
    assert table.origin(row, "lines.qty").path == "$.applications[0].lines[0].qty"
    assert table.origin(row, "total_qty").path == "$.applications[0].lines[0]: total_qty"


def test_json_nested_objects_flatten_and_a_record_without_lines_is_one_row():
    data = json.dumps({"batch": {"docs": [{"no": "A", "who": {"code": "X1"}, "lines": []},
                                          {"no": "B", "lines": [{"q": 1}, {"q": 2.50}]}]}}).encode()
    table = READERS["json"](data, records="batch.docs", rows="lines")
    assert [(v["no"], v.get("lines.q")) for _, v in table.rows] == [("A", None), ("B", "1"), ("B", "2.5")]
    assert table.rows[0][1]["who.code"] == "X1"


@pytest.mark.parametrize("data,needle", [(b'{"applications": [', "not valid JSON"),
                                         (b'{"other": []}', "no 'applications'"),
                                         (b'{"applications": [1]}', "not a record")])
def test_json_that_cannot_be_read_says_why(data, needle):
    with pytest.raises(InputError, match=needle.replace("[", r"\[")):
        READERS["json"](data, records="applications", rows="lines")


def test_xml_records_and_rows_keep_element_paths_and_lines():
    table = READERS["xml"](ORIGIN.read_bytes(), records="Application", rows="Goods/Item")
    ((row, values),) = table.rows
    assert values["InvoiceNo"] == "INV-2026-0331" and values["Goods/Item/HsCode"] == "848180"
    assert table.origin(row, "Goods/Item/FilingNo").path == \
        "/OriginApplications/Application/Goods/Item/FilingNo (line 39)"


def test_xml_with_a_doctype_is_refused():
    data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><OriginApplications/>'
    with pytest.raises(InputError, match="DOCTYPE|entit"):
        READERS["xml"](data, records="Application")


def test_a_json_mapping_reports_errors_by_path():
    fam = family("export-license")
    mapping = Mapping.load(ROOT / "mappings" / "export-license-json.toml", allowed=fam.sections())
    batch = json.loads(EXPORT.read_text(encoding="utf-8"))
    batch["applications"][0]["goods_code"] = "29037500"
    batch["applications"][0]["lines"][0]["qty"] = "many"
    (doc,) = mapping.apply(mapping.read(json.dumps(batch, ensure_ascii=False).encode()))
    located = sorted(e.located("x.json") for e in doc.errors)
    assert located == [
        "x.json, $.applications[0].goods_code: LicenseHead/GoodsCode: HS code must be 10 digits [rule pattern] "
        "value '29037500'",
        "x.json, $.applications[0].lines[0].qty: LicenseLine/Qty: must be a number [rule type] value 'many'",
    ]


def test_reader_options_are_checked_when_the_mapping_loads(tmp_path):
    text = (ROOT / "mappings" / "export-license-json.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('rows = "lines"', 'rowz = "lines"'), encoding="utf-8")
    with pytest.raises(MappingFileError, match="rowz"):
        Mapping.load(bad, codes_dir=ROOT / "mappings" / "codes")


def test_reference_lookup_fills_names_and_checks_its_column_at_load(tmp_path):
    fam = family("origin")
    mapping = Mapping.load(ROOT / "mappings" / "origin-xml.toml", allowed=fam.sections())
    (doc,) = mapping.apply(mapping.read(ORIGIN.read_bytes()))
    head = doc.first("CertHead")
    assert head["ExporterName"].text == "DAL INTERNATIONAL TRADING CO., LTD."
    assert head["ExporterName"].origin.path.startswith("/OriginApplications/Application/ExporterCode")
    text = (ROOT / "mappings" / "origin-xml.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("ccpit_exporters.name_en", "ccpit_exporters.nmae_en"), encoding="utf-8")
    with pytest.raises(MappingFileError, match="nmae_en"):
        Mapping.load(bad, codes_dir=ROOT / "mappings" / "codes")


def test_an_unknown_base_data_code_is_one_error_at_its_element():
    fam = family("origin")
    mapping = Mapping.load(ROOT / "mappings" / "origin-xml.toml", allowed=fam.sections())
    data = ORIGIN.read_bytes().replace(b"<ImporterCode>2019001<", b"<ImporterCode>NOBODY1<")
    (doc,) = mapping.apply(mapping.read(data))
    (error,) = doc.errors
    assert (error.field, error.rule, error.value) == ("CertHead/ImporterCode", "code", "NOBODY1")
    assert error.path == "/OriginApplications/Application/ImporterCode (line 11)"


def test_xml_rows_inside_containers_carry_their_containers_fields():
    """rows = "Goods/Line": each line's row also has its <Goods>'s attributes and leaf fields
    (the non-M&E licence's 商品代码1-4, each with its 规格型号 lines)."""
    data = ('<A><Application><ApplyNo>X1</ApplyNo>'
            '<Goods no="1" code="1201901000"><Unit>035</Unit><Line><Qty>4</Qty></Line><Line><Qty>5</Qty></Line></Goods>'
            '<Goods no="2" code="1201902000"><Line><Qty>6</Qty></Line></Goods>'
            '</Application></A>').encode()
    table = READERS["xml"](data, records="Application", rows="Goods/Line")
    got = [(v["ApplyNo"], v["Goods/@no"], v["Goods/@code"], v.get("Goods/Unit"), v["Goods/Line/Qty"])
           for _, v in table.rows]
    assert got == [("X1", "1", "1201901000", "035", "4"), ("X1", "1", "1201901000", "035", "5"),
                   ("X1", "2", "1201902000", None, "6")]
    assert "line 1" in table.origin(table.rows[2][0], "Goods/@code").path
