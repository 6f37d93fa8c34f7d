"""Code tables (units, countries, currencies, customs districts …) and reference data (the
enterprise's base data: exporters, importers, producers, approved filings …) as plain CSV files.

A table is `<dir>/<name>.csv` with a `code` column (code tables: `code,name`), looked up in the
code folder, then in the reference folder beside it (mappings/codes/, mappings/reference/).
Adding a code or an exporter is editing a file; no Python. Reference rows keep every column,
so a mapping can fill several fields from one code (`lookup = "table.column"`).
"""
from __future__ import annotations

import csv
from pathlib import Path

from gateway.mapping.errors import MappingFileError


class CodeTables:
    def __init__(self, directory: Path, reference: Path | None = None):
        self.directory = Path(directory)
        self.reference = Path(reference) if reference else self.directory.parent / "reference"
        self._rows: dict[str, dict[str, dict[str, str]]] = {}
        self.paths: dict[str, Path] = {}
        self._overlays: dict = {}

    def overlay(self, name: str, provider) -> None:
        """Rows kept elsewhere (the store) that add to — and win over — the CSV of table `name`;
        `provider()` returns code -> row and is asked on every lookup (it caches itself)."""
        self._overlays[name] = provider

    def rows(self, name: str) -> dict[str, dict[str, str]]:
        """code -> the whole row, for a code table or a reference table."""
        if name in self._overlays:
            try:
                base = self._csv_rows(name)
            except MappingFileError:
                base = {}
            return {**base, **self._overlays[name]()}
        return self._csv_rows(name)

    def _csv_rows(self, name: str) -> dict[str, dict[str, str]]:
        if name not in self._rows:
            candidates = [self.directory / f"{name}.csv", self.reference / f"{name}.csv"]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise MappingFileError(f"code table {name!r} not found: expected {candidates[0]} or {candidates[1]}")
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                if "code" not in (reader.fieldnames or []):
                    raise MappingFileError(f"code table {path} needs a 'code' column")
                self._rows[name] = {row["code"].strip(): {k: (v or "").strip() for k, v in row.items() if k}
                                    for row in reader}
            self.paths[name] = path
        return self._rows[name]

    def table(self, name: str) -> dict[str, str]:
        return {code: row.get("name", "") for code, row in self.rows(name).items()}

    def has(self, name: str, code: str) -> bool:
        return code in self.rows(name)

    def lookup(self, name: str, column: str, code: str) -> str | None:
        """The `column` of the row for `code`, or None when the code is not in the table."""
        row = self.rows(name).get(code)
        return None if row is None else row.get(column, "")
