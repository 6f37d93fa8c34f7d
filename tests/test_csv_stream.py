"""A CSV is mapped one document at a time in two passes; what it yields must be what one pass
over every row gave: documents in the order of their first rows, rows as the file numbers them."""
from __future__ import annotations

import pytest

from support import ROOT
from gateway.documents import family
from gateway.mapping.engine import Mapping
from gateway.mapping.errors import InputError
from gateway.mapping import readers
from gateway.mapping.readers import read_csv


@pytest.fixture(scope="module")
def mapping():
    return Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=family("declaration").sections())


def sample_rows() -> tuple[str, list[str]]:
    lines = (ROOT / "samples" / "declaration.csv").read_text(encoding="utf-8").splitlines()
    return lines[0], lines[1:]


def with_key(line: str, key: str) -> str:
    return key + line[line.index(","):]


@pytest.fixture(params=["kept", "parsed again"])
def keep(request, monkeypatch):
    """A small CSV keeps the rows its check parsed; a large one is parsed again on each pass."""
    if request.param == "parsed again":
        monkeypatch.setattr(readers, "KEEP_PARSED", 0)
    return request.param


def test_interleaved_documents_keep_first_row_order_and_rows(mapping, keep):
    header, rows = sample_rows()
    a1, a2 = rows[0], rows[1]
    b = with_key(rows[0], "DL2026110100099")
    text = "\n".join([header, a1, b, "", a2]) + "\n"   # A, B, a blank line, A again
    docs = mapping.apply(mapping.read(text.encode("utf-8")))
    assert [(d.key, d.rows) for d in docs] == [("DL2026110100001", [2, 5]), ("DL2026110100099", [3])]
    assert all(not d.errors for d in docs), [d.errors for d in docs]
    assert len(docs[0].sections["DecList"]) == 2


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_and_quoted_newlines(newline, keep):
    text = newline.join(["k,v", 'a,"two', 'lines"', "", "b,plain", " , "]) + newline
    table = read_csv(text.encode())
    assert (table.rows.parsed is None) == (keep == "parsed again")
    assert list(table.rows) == [(2, {"k": "a", "v": f"two{newline}lines"}), (4, {"k": "b", "v": "plain"})]  # row 3 is blank
    assert list(table.rows) == list(table.rows), "a second pass reads the same rows"
    assert len(table.rows) == 2
    assert list(table.rows.column("k")) == [(2, "a"), (4, "b")]


def test_bad_row_refused_when_read_before_any_document():
    with pytest.raises(InputError, match="has 3 fields, the header has 2") as err:
        read_csv(b"k,v\na,1\nb,2,3\n")
    assert err.value.row == 3


def test_kept_and_parsed_again_map_the_same_documents(mapping, monkeypatch):
    header, rows = sample_rows()
    text = "\n".join([header, rows[0], with_key(rows[0], "DL2026110100099"), " ,  " + "," * header.count(","),
                      rows[1], 'x' + rows[1][rows[1].index(","):]]) + "\n"
    kept = mapping.apply(mapping.read(text.encode("utf-8")))
    monkeypatch.setattr(readers, "KEEP_PARSED", 0)
    again = mapping.apply(mapping.read(text.encode("utf-8")))
    assert [(d.key, d.rows, d.sections, d.errors) for d in kept] == [(d.key, d.rows, d.sections, d.errors) for d in again]
    assert [d.rows for d in kept] == [[2, 5], [3], [6]]


def test_cells_by_position_map_as_rows_by_name(mapping):
    """A CSV's rows are read as lists of cells by position; the same rows as dicts (how a sheet's
    come) must map to the same documents, values, origins and located errors."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO((ROOT / "samples" / "declaration.csv").read_text(encoding="utf-8"))))
    extra = {"goods_licence_no": "", "goods_licence_type": "", "attachments": "", "other_pack_type": "", "": ""}
    rows = [dict(r, **extra) for r in rows]
    rows[0].update(goods_licence_no="LIC-1", goods_licence_type="325", attachments="00000001:invoice.pdf")
    rows[1].update(ie_flag="X", hs_code="123", container_no="CSLU2208813", other_pack_type="22")   # errors
    rows.append(dict(rows[2], client_seq_no="DL2026110100099", item_no="1", qty="abc", container_no="bad"))
    rows.append(dict(rows[2], client_seq_no="DL2026110100099", item_no="2", other_pack_type="22"))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) + [""], lineterminator="\n")   # an unnamed column twice
    writer.writeheader()
    writer.writerows(rows)
    table = mapping.read(buf.getvalue().encode("utf-8"))
    assert isinstance(table.rows, readers.CsvRows)
    by_cells = mapping.apply(table)
    by_name = mapping.apply(readers.Table(columns=table.columns, rows=list(table.rows), encoding=table.encoding))

    def seen(docs):
        return [(d.key, d.key_origin, d.enterprise, d.rows, d.sections, d.errors, d.attachments) for d in docs]
    assert seen(by_cells) == seen(by_name)
    assert [d.key for d in by_cells] == ["DL2026110100001", "DL2026110100002", "DL2026110100099"]
    rules = {(e.row, e.field, e.rule) for d in by_cells for e in d.errors}
    assert {(3, "DecHead/IEFlag", "consistent"), (3, "DecList/CodeTS", "pattern"),
            (5, "DecList/GQty", "type")} <= rules, rules
    assert by_cells[0].sections["DecList"][0]["DecGoodsLimit"][0]["LicenceNo"].text == "LIC-1"
