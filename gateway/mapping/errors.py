"""Located errors: what is wrong, and where in the user's own file."""
from __future__ import annotations

from dataclasses import asdict, dataclass


def column_letter(index: int) -> str:
    """1 -> A, 27 -> AA: how a spreadsheet names column `index`."""
    letters = ""
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass(frozen=True)
class Origin:
    """Where a value came from: file row (header = row 1) and column; for JSON and XML
    records, the path of the value in the file (and its line, when the reader knows it)."""

    row: int | None = None
    column: str | None = None
    column_number: int | None = None
    path: str | None = None
    sheet: str | None = None          # a spreadsheet's sheet (XLSX)


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    message: str
    value: str | None = None
    row: int | None = None
    column: str | None = None
    column_number: int | None = None
    path: str | None = None
    sheet: str | None = None

    @classmethod
    def at(cls, origin: Origin | None, field: str, rule: str, message: str, value=None) -> "FieldError":
        o = origin or Origin()
        return cls(field=field, rule=rule, message=message, value=None if value is None else str(value),
                   row=o.row, column=o.column, column_number=o.column_number, path=o.path, sheet=o.sheet)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def located(self, file: str = "") -> str:
        where = [file] if file else []
        if self.sheet and not self.path:
            where.append(f"sheet {self.sheet!r}")
        if self.path:  # a JSON/XML record: the value's path says more than a record number
            where.append(self.path)
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.column and not self.path:
            col = self.column
            if self.column_number:
                col += f" (column {column_letter(self.column_number)})"
            where.append(f"column {col}")
        value = f" value {self.value!r}" if self.value is not None else ""
        return f"{', '.join(where)}: {self.field}: {self.message} [rule {self.rule}]{value}"


class MappingFileError(Exception):
    """The mapping file itself is wrong (a config error, not a data error)."""


class InputError(Exception):
    """The drop file cannot be read at all (encoding, syntax, size)."""

    def __init__(self, message: str, row: int | None = None, sheet: str | None = None):
        super().__init__(f"sheet {sheet!r}: {message}" if sheet else message)
        self.row = row
        self.sheet = sheet
