"""Write samples/declaration.xlsx from samples/declaration.csv once, as an ERP's spreadsheet
export holds it: numbers as number cells (HS codes too), the date as a date cell, codes with
leading zeros as text. Run: .venv/bin/python scripts/xlsx_sample.py"""
import csv
import datetime as dt
import sys
from pathlib import Path

from openpyxl import Workbook

NUMBERS = {"pack_no", "gross_wt", "net_wt", "item_no", "hs_code", "qty", "first_qty", "unit_price", "total"}
DATES = {"ie_date"}


def cell(column: str, text: str):
    if column in DATES and text:
        return dt.datetime.strptime(text, "%Y%m%d")
    if column in NUMBERS and text:
        return int(text) if text.isdigit() else float(text)
    return text


def main(src: Path, dst: Path) -> None:
    with open(src, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    wb = Workbook()
    ws = wb.active
    ws.title = "报关单"
    ws.append(rows[0])
    for values in rows[1:]:
        ws.append([cell(c, v) for c, v in zip(rows[0], values)])
    wb.save(dst)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent.parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here / "samples/declaration.csv",
         Path(sys.argv[2]) if len(sys.argv) > 2 else here / "samples/declaration.xlsx")
