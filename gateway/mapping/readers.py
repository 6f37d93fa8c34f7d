"""Readers turn a drop file into records: (origin row, {column: value}).

Each reader is a function `read(data: bytes, encoding, **options) -> Table`. CSV detects
UTF-8, UTF-8 with BOM and GB18030 unless an encoding is configured. JSON and XML
(see readers_tree.py) flatten each document record, and explode one nested list of
lines into rows, so the same mapping engine groups and maps them.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field

from gateway.mapping.errors import InputError, Origin


@dataclass
class Table:
    columns: list[str]                       # header, in file order
    rows: list[tuple[int, dict[str, str]]]   # (row number as a spreadsheet shows it, values); CSV: CsvRows
    encoding: str = ""
    # JSON/XML: row -> column -> where the value sits in the file (path, line); a column
    # absent from a record is simply empty, so the header need not list every column
    paths: dict[int, dict[str, str]] | None = None
    record_paths: dict[int, str] | None = None
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)   # column -> number
    sheet: str | None = None                 # XLSX: the sheet the rows came from

    @property
    def strict_columns(self) -> bool:
        return self.paths is None

    def column_number(self, name: str) -> int | None:
        if self.paths is not None:
            return None
        if self._index is None or len(self._index) != len(self.columns):
            self._index = {c: i + 1 for i, c in reversed(list(enumerate(self.columns)))}
        return self._index.get(name)

    def locator(self):
        """origin(row, column) for this table's values, keeping the header (and, for JSON/XML, the
        values' paths) but not the rows themselves."""
        if self.paths is not None:
            return self.origin
        index = {c: i + 1 for i, c in reversed(list(enumerate(self.columns)))}
        sheet = self.sheet

        def locate(row: int, column: str | None) -> Origin:
            return Origin(row, column, index.get(column) if column else None, sheet=sheet)
        return locate

    def origin(self, row: int, column: str | None) -> Origin:
        if self.paths is None:
            return Origin(row, column, self.column_number(column) if column else None, sheet=self.sheet)
        where = self.paths.get(row, {})
        path = where.get(column) if column else None
        if path is None:  # a value absent from the record: name where it would go
            base = (self.record_paths or {}).get(row, "")
            path = f"{base}: {column}" if column else base
        return Origin(row, column, None, path or None)


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


KEEP_PARSED = 1_000_000   # a CSV of at most this many characters keeps the rows its check read


class CsvRows:
    """A CSV's data rows. A large file is parsed again on each pass over them: its text is kept, not
    a Python object per row, so a 50,000-row file is mapped one document at a time. A small one
    (KEEP_PARSED) keeps the cells its first reading parsed, and its passes read those."""

    def __init__(self, text: str, delimiter: str, header: list[str], count: int,
                 parsed: list[tuple[int, list[str]]] | None = None):
        self.text, self.delimiter, self.header, self.count = text, delimiter, header, count
        self.parsed = parsed    # [(row number, cells)] of the rows that are not blank, when kept

    def __len__(self) -> int:
        return self.count

    def _reader(self):
        reader = csv.reader(_lines(self.text), delimiter=self.delimiter, strict=True)
        next(reader)   # the header, checked when the file was read
        return reader

    def cells(self):
        """(row number, cells in header order) of each row that is not blank."""
        return self.parsed if self.parsed is not None else self._parse()

    def _parse(self):
        row_no = 1
        for values in self._reader():
            row_no += 1
            if not any(v.strip() for v in values):
                continue
            yield row_no, values

    def __iter__(self):
        header = self.header
        for row_no, values in self.cells():
            yield row_no, dict(zip(header, values))

    def column(self, name: str):
        """(row number, value) of one column, without building the rows."""
        i = self.header.index(name)
        for row_no, values in self.cells():
            yield row_no, values[i]


def _lines(text: str):
    """The text's lines with their endings, one at a time (csv joins a quoted field's lines);
    a text with bare carriage returns as line ends is read by io, which knows them."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        yield from io.StringIO(text, newline="")
        return
    start, find = 0, text.find
    while True:
        end = find("\n", start)
        if end < 0:
            if start < len(text):
                yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


def read_csv(data: bytes, encoding: str = "auto", delimiter: str = ",", **_) -> Table:
    text, used = decode(data, encoding)
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("the file is empty") from None
    except csv.Error as exc:
        raise InputError(f"header: {exc}", row=1) from None
    header = [h.strip() for h in header]
    dupes = {h for h, n in Counter(header).items() if n > 1 and h}
    if dupes:
        raise InputError(f"header repeats column(s) {', '.join(sorted(dupes))}", row=1)
    count = 0
    row_no = 1
    width = len(header)
    parsed = [] if len(text) <= KEEP_PARSED else None
    keep = parsed.append if parsed is not None else None
    try:   # every row checked now, so a broken file is refused before anything is mapped
        for values in reader:
            row_no += 1
            if len(values) != width:
                if not any(map(str.strip, values)):
                    continue
                raise InputError(f"has {len(values)} fields, the header has {width}", row=row_no)
            if any(map(str.strip, values)):
                count += 1
                if keep is not None:
                    keep((row_no, values))
    except csv.Error as exc:
        raise InputError(str(exc), row=row_no + 1) from None
    return Table(columns=header, rows=CsvRows(text if parsed is None else "", delimiter, header, count, parsed),
                 encoding=used)


from gateway.mapping import readers_tree  # noqa: E402  (it uses Table, defined above)

from gateway.mapping import readers_xlsx  # noqa: E402

READERS = {"csv": read_csv, "json": readers_tree.read_json, "xml": readers_tree.read_xml}
# a tabular mapping (format "csv") reads a spreadsheet too: the reader is chosen by the file's content
TABULAR = {"csv": readers_xlsx.read_xlsx}
OPTIONS = {"csv": {"delimiter", "sheet"}, "json": {"records", "rows"}, "xml": {"records", "rows"}}
