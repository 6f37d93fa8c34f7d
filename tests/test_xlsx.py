"""Spreadsheet intake: an .xlsx maps exactly as the CSV it was exported beside; values as the
cell holds them; errors by sheet, row and column letter; hostile packages refused."""
from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from openpyxl import Workbook, load_workbook

from support import ROOT, SAMPLE_CSV
from gateway import zipsafe
from gateway.documents import family
from gateway.mapping.engine import Mapping
from gateway.mapping.errors import InputError
from gateway.mapping.readers_xlsx import cell_text

SAMPLE_XLSX = ROOT / "samples" / "declaration.xlsx"


@pytest.fixture(scope="module")
def mapping():
    return Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=family("declaration").sections())


def xlsx(rows, title="Sheet1", formats=None) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for r in rows:
        ws.append(r)
    for (row, col), fmt in (formats or {}).items():
        ws.cell(row=row, column=col).number_format = fmt
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_sample_xlsx_holds_numbers_and_dates_as_cells_and_maps_as_the_csv(workspace):
    # the committed sample is a spreadsheet as an ERP writes it: HS codes, quantities, prices as numbers
    ws = load_workbook(SAMPLE_XLSX, read_only=True).worksheets[0]
    row2 = next(ws.iter_rows(min_row=2, max_row=2, values_only=True))
    header = next(ws.iter_rows(min_row=1, max_row=1, values_only=True))
    cells = dict(zip(header, row2))
    assert isinstance(cells["hs_code"], int) and isinstance(cells["gross_wt"], float)
    assert isinstance(cells["ie_date"], dt.datetime)

    outs = {}
    for sample in (SAMPLE_CSV, SAMPLE_XLSX):
        f = workspace.root / sample.name
        f.write_bytes(sample.read_bytes())
        out = workspace.swgw("map", "--dry-run", str(f), "--type", "declaration", "--xml")
        assert out.returncode == 0, out.stdout + out.stderr
        outs[sample.suffix] = out.stdout.split("\n", 1)[1]   # after the file-name / encoding line
    assert "<CodeTS>7318159001</CodeTS>" in outs[".xlsx"] and "<DeclPrice>0.35</DeclPrice>" in outs[".xlsx"]
    assert outs[".xlsx"] == outs[".csv"], "the spreadsheet prints exactly the documents of the CSV"

    # a bad cell is named by sheet, row and column letter
    wb = load_workbook(SAMPLE_XLSX)
    ws = wb.worksheets[0]
    col = [c.value for c in ws[1]].index("hs_code") + 1
    ws.cell(row=3, column=col).value = 731815
    bad = workspace.root / "bad.xlsx"
    wb.save(bad)
    out = workspace.swgw("map", "--dry-run", str(bad), "--type", "declaration")
    assert out.returncode == 1
    assert ("bad.xlsx, sheet '报关单', row 3, column hs_code (column AA): DecList/CodeTS: HS code must be 10 digits "
            "[rule pattern] value '731815'") in out.stdout
    assert "✓ DL2026110100002" in out.stdout and "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("value,fmt,text", [
    (8481804090, None, "8481804090"),
    (20000.0, None, "20000"),
    (0.1 + 0.2, None, "0.3"),                 # the float's binary tail is not what the cell shows
    (15800.5, None, "15800.5"),
    (12.3456, None, "12.3456"),
    (101210010, "0000000000", "0101210010"),  # a zero-padded HS code kept as a number
    ("0101210010", None, "0101210010"),
    (dt.datetime(2026, 11, 1), None, "2026-11-01"),
    (dt.datetime(2026, 11, 1, 8, 30, 5), None, "2026-11-01 08:30:05"),
    (True, None, "true"),
    (None, None, ""),
])
def test_cell_text_is_what_the_cell_holds(value, fmt, text):
    assert cell_text(value, fmt) == text


def test_values_survive_a_round_trip_through_a_real_workbook(mapping):
    data = xlsx([["a", "b", "c", "d"], [0.1 + 0.2, 101210010, 7000.0, dt.datetime(2026, 1, 2)]],
                formats={(2, 2): "0000000000"})
    from gateway.mapping.readers_xlsx import read_xlsx
    table = read_xlsx(data)
    assert table.rows == [(2, {"a": "0.3", "b": "0101210010", "c": "7000", "d": "2026-01-02"})]
    assert table.sheet == "Sheet1"


def test_named_sheet_blank_rows_and_cells_beyond_the_header(tmp_path):
    from gateway.mapping.readers_xlsx import read_xlsx
    wb = Workbook()
    wb.active.title = "Cover"
    wb.active.append(["not the data"])
    ws = wb.create_sheet("Goods")
    ws.append(["k", "v"])
    ws.append(["x", 1])
    ws.append([None, None])
    ws.append(["y", 2])
    buf = io.BytesIO()
    wb.save(buf)
    table = read_xlsx(buf.getvalue(), sheet="Goods")
    assert [r for r, _ in table.rows] == [2, 4], "blank rows are skipped, row numbers are the sheet's"
    with pytest.raises(InputError, match="no sheet 'Nope'"):
        read_xlsx(buf.getvalue(), sheet="Nope")
    with pytest.raises(InputError, match=r"sheet 'Sheet1': cell C2 has a value beyond the header's last column B"):
        read_xlsx(xlsx([["k", "v"], ["x", 1, "stray"]]))


def test_a_zip_bomb_posing_as_a_spreadsheet_is_refused_by_its_expanded_size(mapping, monkeypatch):
    from gateway.mapping import readers_xlsx
    monkeypatch.setattr(readers_xlsx, "LIMITS", zipsafe.Limits(500, 1024 * 1024, 2 * 1024 * 1024))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * (3 * 1024 * 1024))
    assert len(buf.getvalue()) < 20_000
    with pytest.raises(InputError, match="expands past"):
        mapping.read(buf.getvalue())


def test_a_spreadsheet_for_a_tree_mapping_is_refused():
    m = Mapping.load(ROOT / "mappings" / "export-license-json.toml", allowed=family("export-license").sections())
    with pytest.raises(InputError, match="a spreadsheet"):
        m.read(xlsx([["a"], ["b"]]))


@pytest.mark.parametrize("family", ["me-import-license", "inspection-feedback"])
def test_every_tabular_familys_xlsx_sample_maps_as_its_csv(tmp_path, pki, family):
    from support import Workspace

    ws = Workspace(tmp_path, pki, families=[family])
    outs = {}
    for suffix in (".csv", ".xlsx"):
        f = ws.root / f"{family}{suffix}"
        f.write_bytes((ROOT / "samples" / f"{family}{suffix}").read_bytes())
        out = ws.swgw("map", "--dry-run", str(f), "--type", family, "--xml")
        assert out.returncode == 0, out.stdout + out.stderr
        outs[suffix] = out.stdout.split("\n", 1)[1]
    assert outs[".xlsx"] == outs[".csv"] and "✓" in outs[".csv"]
