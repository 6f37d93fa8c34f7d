"""Code tables (units, countries, currencies, customs districts …) as plain CSV files.

A table is `<dir>/<name>.csv` with a `code,name` header. Adding a code is editing a
file; no Python.
"""
from __future__ import annotations

import csv
from pathlib import Path

from gateway.mapping.errors import MappingFileError


class CodeTables:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._tables: dict[str, dict[str, str]] = {}

    def table(self, name: str) -> dict[str, str]:
        if name not in self._tables:
            path = self.directory / f"{name}.csv"
            try:
                with open(path, encoding="utf-8-sig", newline="") as fh:
                    self._tables[name] = {row["code"].strip(): row.get("name", "") for row in csv.DictReader(fh)}
            except FileNotFoundError:
                raise MappingFileError(f"code table {name!r} not found: expected {path}") from None
            except KeyError:
                raise MappingFileError(f"code table {path} needs a 'code' column") from None
        return self._tables[name]

    def has(self, name: str, code: str) -> bool:
        return code in self.table(name)
