"""Readers turn a drop file into records: (origin row, {column: value}).

Each reader is a function `read(data: bytes, options) -> Table`. CSV detects
UTF-8, UTF-8 with BOM and GB18030 unless an encoding is configured.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from gateway.mapping.errors import InputError


@dataclass
class Table:
    columns: list[str]                       # header, in file order
    rows: list[tuple[int, dict[str, str]]]   # (row number as a spreadsheet shows it, values)
    encoding: str = ""
    fixed_columns: bool = True               # CSV: every column must be in the header; JSON: absent = empty

    def column_number(self, name: str) -> int | None:
        try:
            return self.columns.index(name) + 1
        except ValueError:
            return None


def decode(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """Return (text, encoding used)."""
    if encoding != "auto":
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid {encoding} at byte {exc.start}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise InputError(f"neither UTF-8 nor GB18030 (undecodable byte at offset {exc.start}); "
                         f"set encoding in the document's config") from None


def read_csv(data: bytes, encoding: str = "auto", delimiter: str = ",") -> Table:
    text, used = decode(data, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty") from None
    except csv.Error as exc:
        raise InputError(f"header: {exc}", row=1) from None
    header = [h.strip() for h in header]
    dupes = {h for h in header if header.count(h) > 1 and h}
    if dupes:
        raise InputError(f"header repeats column(s) {', '.join(sorted(dupes))}", row=1)
    rows = []
    row_no = 1
    try:
        for values in reader:
            row_no += 1
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise InputError(f"has {len(values)} fields, the header has {len(header)}", row=row_no)
            rows.append((row_no, dict(zip(header, values))))
    except csv.Error as exc:
        raise InputError(str(exc), row=row_no + 1) from None
    return Table(columns=header, rows=rows, encoding=used)


def read_json_rows(data: bytes, encoding: str = "auto", delimiter: str = ",") -> Table:
    """Rows as JSON: an array of flat objects (one per row, keys = columns, like CSV rows), or an
    object whose `rows` is such an array. Numbers keep their exact text (11.10 stays "11.10")."""
    import json

    text, used = decode(data, encoding)
    try:
        doc = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    records = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise InputError("JSON rows must be an array of objects, or an object with a \"rows\" array")
    columns: list[str] = []
    rows = []
    for n, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            raise InputError(f"row {n} is a JSON {type(rec).__name__}, not an object", row=n)
        values = {}
        for key, value in rec.items():
            if isinstance(value, (dict, list)):
                raise InputError(f"field {key!r} holds a nested JSON {type(value).__name__}; rows are flat",
                                 row=n)
            values[str(key)] = "" if value is None else str(value).lower() if isinstance(value, bool) else value
            if key not in columns:
                columns.append(str(key))
        rows.append((n, values))
    if not rows:
        raise InputError("no rows")
    return Table(columns=columns, rows=rows, encoding=used, fixed_columns=False)


READERS = {"csv": read_csv, "json-rows": read_json_rows}
