"""The spreadsheet reader: an .xlsx sheet becomes the same table a CSV export gives.

openpyxl in read-only mode streams the sheet row by row (the workbook is never loaded
whole). The first row is the header. Values are read as the cell holds them, never
through a float's binary digits:

- text cells stay text (an HS code typed as text keeps its leading zero);
- whole numbers print without a decimal point (8471300000, 20000 — not 8471300000.0);
- other numbers print with at most 15 significant digits, which is what the spreadsheet
  itself stores and shows (0.35, not 0.35000000000000003);
- a number formatted with a fixed count of zeros ("0000000000") is padded to it, so an HS
  code kept as a number with a zero-padded format keeps its leading zero;
- dates print as yyyy-MM-dd, date-times as yyyy-MM-dd HH:mm:ss; booleans true/false.

Errors name the sheet, the row and the column letter. The package is opened through
gateway.zipsafe first: member names, member count and expanded size are checked while
decompressing, so a zip bomb posing as a spreadsheet is refused before openpyxl sees it.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal

from gateway import zipsafe
from gateway.mapping.errors import InputError, column_letter
from gateway.mapping.readers_tree import _scalar

# a spreadsheet is a zip; its expanded XML is larger than the file, so allow more than the file
LIMITS = zipsafe.Limits(max_members=500, max_member_bytes=400 * 1024 * 1024, max_total_bytes=400 * 1024 * 1024)
_ZEROS = re.compile(r"^0+$")


def is_xlsx(data: bytes) -> bool:
    if not zipsafe.is_zip(data):
        return False
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False
    return "xl/workbook.xml" in names or any(n.startswith("xl/worksheets/") for n in names)


def cell_text(value, number_format: str | None = None) -> str:
    """A cell's value as text, as the spreadsheet holds it (see the module doc)."""
    if value is None or isinstance(value, bool):
        return _scalar(value)   # as a JSON record's empty and true/false values read
    if isinstance(value, dt.datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        num = Decimal(format(value, ".15g"))
        text = format(num.normalize(), "f") if num == num.to_integral_value() else format(num, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    else:
        return str(value)
    if number_format and _ZEROS.match(number_format) and text.isdigit():
        text = text.zfill(len(number_format))
    return text


def read_xlsx(data: bytes, encoding: str = "auto", sheet: str | None = None, **_):
    from openpyxl import load_workbook

    from gateway.mapping.readers import Table

    try:
        zipsafe.expanded_size(data, LIMITS)
    except zipsafe.UnsafeZip as exc:
        raise InputError(f"spreadsheet refused: {exc}") from None
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken package
        raise InputError(f"not a readable .xlsx workbook: {type(exc).__name__}: {exc}") from None
    try:
        if sheet:
            if sheet not in wb.sheetnames:
                raise InputError(f"the workbook has no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
            ws = wb[sheet]
        else:
            ws = wb.worksheets[0]
        name = ws.title
        rows_iter = ws.iter_rows()
        header_cells = next(rows_iter, None)
        if header_cells is None:
            raise InputError("the sheet is empty", sheet=name)
        header = [cell_text(c.value).strip() for c in header_cells]
        while header and not header[-1]:
            header.pop()
        dupes = {h for h in header if header.count(h) > 1 and h}
        if dupes:
            raise InputError(f"header repeats column(s) {', '.join(sorted(dupes))}", row=1, sheet=name)
        width = len(header)
        rows = []
        for row_no, cells in enumerate(rows_iter, start=2):  # read-only rows come gap-free from row 1
            values = {}
            for i, c in enumerate(cells):
                text = cell_text(c.value, getattr(c, "number_format", None))
                if i >= width:
                    if text.strip():
                        raise InputError(f"cell {column_letter(i + 1)}{row_no} has a value beyond the header's "
                                         f"last column {column_letter(width)}", row=row_no, sheet=name)
                    continue
                values[header[i]] = text
            if not any(v.strip() for v in values.values()):
                continue
            for h in header:
                values.setdefault(h, "")
            rows.append((row_no, values))
    finally:
        wb.close()
    return Table(columns=header, rows=rows, encoding="xlsx", sheet=name)
