"""Write the .xlsx samples once from their CSV siblings, as an ERP's spreadsheet export holds them:
numbers as number cells (HS codes too), dates and times as date cells, codes with leading zeros and
long numbers (18-digit entry ids) as text. Run: .venv/bin/python scripts/xlsx_sample.py"""
import csv
import datetime as dt
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent.parent
# sample -> (sheet title, number columns, date columns (format), date-time columns (format))
SAMPLES = {
    "declaration": ("报关单", {"pack_no", "gross_wt", "net_wt", "item_no", "hs_code", "qty", "first_qty", "unit_price",
                             "total"}, {"ie_date": "%Y%m%d"}, {}),
    "me-import-license": ("机电产品进口申请", {"year", "goods_code", "line_no", "unit_price", "qty", "total"},
                          {"valid_until": "%Y-%m-%d"}, {}),
    "inspection-feedback": ("调箱反馈", set(), {}, {"shift_time": "%Y-%m-%d %H:%M:%S"}),
}


def cell(column: str, text: str, numbers, dates, times):
    if not text:
        return text
    if column in dates:
        return dt.datetime.strptime(text, dates[column])
    if column in times:
        return dt.datetime.strptime(text, times[column])
    if column in numbers:
        return int(text) if text.isdigit() else float(text)
    return text


def main() -> None:
    for name, (title, numbers, dates, times) in SAMPLES.items():
        with open(HERE / "samples" / f"{name}.csv", encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        wb = Workbook()
        ws = wb.active
        ws.title = title
        ws.append(rows[0])
        for values in rows[1:]:
            ws.append([cell(c, v, numbers, dates, times) for c, v in zip(rows[0], values)])
        wb.save(HERE / "samples" / f"{name}.xlsx")


if __name__ == "__main__":
    main()
