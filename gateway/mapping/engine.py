"""The mapping engine: a TOML mapping file turns table rows into document sections.

A mapping names the reader, how rows group into documents, and for each section
of the document the fields and where each comes from:

    document = "declaration"
    format = "csv"
    group_by = "client_seq_no"
    enterprise = "trade_scc"

    [sections.DecHead]            # per = "group": one per document, same on every row
    per = "group"
    fields.IEFlag = { column = "ie_flag", required = true, codes = "ie_flag" }

    [sections.DecList]            # per = "row": one per row
    per = "row"
    fields.CodeTS = { column = "hs_code", pattern = '^\\d{10}$', message = "HS code must be 10 digits" }

Section options besides `per`: `skip_if_empty` (a row without that field adds no record),
`dedupe_by` (one record per distinct value of those fields), `optional = true` (the section's
columns may be missing from a file's header: the reference exports without them still map).

A tabular mapping (format = "csv") also reads .xlsx, recognised by content: the first sheet,
or `[reader] sheet = "Name"`; see readers_xlsx.py. Non-CSV formats take reader options in a [reader] table (JSON/XML: records, rows; see
readers_tree.py); their columns are flattened paths such as `lines.qty` or `Goods/Item/HsCode`.

Field options: column | value (constant) | default, required, type (str, int, decimal,
date, datetime), scale, max_digits, date_format, pattern, max_length, min_length, codes (a code
table), map (value translations applied before checks), upper, message, lookup
("table.column": the code's row in a reference table gives the value, e.g. an exporter's name),
optional (the column may be missing from the file's header: the field is then empty or its default).

A per-row section may sit `within` another per-row section: its record of a row nests in that
section's record of the same row (DecGoodsLimit within DecList: a goods line's licences).

Every produced value keeps its origin (row, column) so later checks (XSD, business
rules) can report errors in terms of the user's file.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gateway import layering
from gateway.mapping import readers
from gateway.mapping.codes import CodeTables
from gateway.mapping.errors import FieldError, InputError, MappingFileError, Origin

FIELD_KEYS = {"column", "value", "default", "required", "type", "scale", "max_digits", "date_format",
              "pattern", "max_length", "min_length", "codes", "map", "upper", "message", "lookup", "optional"}
TYPES = {"str", "int", "decimal", "date", "datetime"}
ATTACHMENT_KEYS = {"column", "default_code", "codes"}


@dataclass
class FieldSpec:
    name: str
    column: str | None = None
    value: str | None = None
    default: str | None = None
    required: bool = False
    type: str = "str"
    scale: int | None = None
    max_digits: int | None = None
    date_format: str = "%Y%m%d"
    pattern: re.Pattern | None = None
    max_length: int | None = None
    min_length: int | None = None
    codes: str | None = None
    map: dict[str, str] = field(default_factory=dict)
    upper: bool = False
    message: str | None = None
    lookup: tuple[str, str] | None = None      # (reference table, column): the code's data replaces it
    optional: bool = False                     # the column may be absent from the file (then: empty)

    @property
    def empty_is_nothing(self) -> bool:
        """An empty value yields no value and no error (not required, no default, no translation)."""
        return not self.required and self.default is None and "" not in self.map


@dataclass
class SectionSpec:
    name: str
    per: str                          # group | row
    fields: list[FieldSpec]
    dedupe_by: list[str] = field(default_factory=list)
    skip_if_empty: str | None = None
    within: str | None = None         # per-row records nested in this per-row section's record of the row
    optional: bool = False            # its columns may be absent from a file's header (then: empty)


@dataclass
class Value:
    text: str
    origin: Origin


Record = dict[str, Value]             # one section instance: field -> value with origin; a section
                                      # nested in it (DecGoodsLimit in DecList) -> a list of Records


@dataclass
class Mapped:
    """One document's worth of mapped data, or the errors that stopped it."""

    key: str                          # the group_by value (the business key)
    key_origin: Origin
    enterprise: str
    rows: list[int]
    sections: dict[str, list[Record]]
    errors: list[FieldError]
    reference: CodeTables | None = None   # the mapping's code and reference tables, for family rules
    enterprise_field: str | None = None   # where the enterprise code was read, when not the mapping's column
    attachments: list = field(default_factory=list)   # attachments.Named: files the document names

    def first(self, section: str) -> Record:
        items = self.sections.get(section) or [{}]
        return items[0]


@dataclass
class Mapping:
    path: Path
    document: str
    format: str
    group_by: str
    enterprise: str | None
    sections: list[SectionSpec]
    codes: CodeTables
    delimiter: str = ","
    reader: dict = field(default_factory=dict)   # reader options ([reader] table: records, rows …)
    attachments: dict = field(default_factory=dict)  # [attachments]: column, default_code, codes

    # -- loading -----------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, codes_dir: Path | None = None, allowed: dict[str, set[str]] | None = None) -> "Mapping":
        raw = layering.read(Path(path), MappingFileError, "mapping file")  # `extends` another mapping

        def need(key):
            if key not in raw:
                raise MappingFileError(f"{path}: missing top-level key {key!r}")
            return raw[key]

        fmt = need("format")
        if fmt not in readers.READERS:
            raise MappingFileError(f"{path}: format {fmt!r} is not one of {sorted(readers.READERS)}")
        reader = dict(raw.get("reader", {}))
        unknown = set(reader) - readers.OPTIONS[fmt]
        if unknown:
            raise MappingFileError(f"{path}: [reader] option(s) {sorted(unknown)} are not options of the {fmt} "
                                   f"reader (known: {sorted(readers.OPTIONS[fmt])})")
        sections = []
        for sname, sraw in need("sections").items():
            if allowed is not None and sname not in allowed:
                raise MappingFileError(f"{path}: [sections.{sname}] is not a section of {raw.get('document')} "
                                       f"(known: {', '.join(sorted(allowed))})")
            per = sraw.get("per", "group")
            if per not in ("group", "row"):
                raise MappingFileError(f"{path}: [sections.{sname}] per must be 'group' or 'row'")
            fields = []
            for fname, fraw in sraw.get("fields", {}).items():
                if allowed is not None and fname not in allowed[sname]:
                    raise MappingFileError(f"{path}: [sections.{sname}] field {fname!r} is not an element of "
                                           f"{sname}")
                fields.append(_field_spec(path, sname, fname, fraw))
            within = sraw.get("within")
            if within is not None and (per != "row" or within not in [x.name for x in sections]
                                       or next(x for x in sections if x.name == within).per != "row"):
                raise MappingFileError(f"{path}: [sections.{sname}] within = {within!r}: needs per = 'row' and an "
                                       f"earlier per-row section of that name")
            sections.append(SectionSpec(sname, per, fields, list(sraw.get("dedupe_by", [])),
                                        sraw.get("skip_if_empty"), within, bool(sraw.get("optional", False))))
        codes = CodeTables(Path(codes_dir) if codes_dir else Path(path).parent / "codes")
        attachments = dict(raw.get("attachments", {}))
        unknown = set(attachments) - ATTACHMENT_KEYS
        if unknown or (attachments and "column" not in attachments):
            raise MappingFileError(f"{path}: [attachments] needs 'column' and takes only "
                                   f"{sorted(ATTACHMENT_KEYS)}" + (f" (unknown: {sorted(unknown)})" if unknown else ""))
        if attachments.get("codes"):
            codes.rows(attachments["codes"])
        m = cls(Path(path), need("document"), fmt, need("group_by"), raw.get("enterprise"), sections, codes,
                raw.get("delimiter", ","), reader, attachments)
        for s in sections:
            for f in s.fields:
                if f.codes:
                    codes.rows(f.codes)  # fail at load, not at the first row
                if f.lookup:
                    table, column = f.lookup
                    rows = codes.rows(table)
                    first = next(iter(rows.values()), None)
                    if first is not None and column not in first:
                        raise MappingFileError(f"{path}: [sections.{s.name}] field {f.name}: lookup column "
                                               f"{column!r} is not a column of {codes.paths[table]}")
        return m

    # -- applying ----------------------------------------------------------------
    def read(self, data: bytes, encoding: str = "auto") -> readers.Table:
        options = {"delimiter": self.delimiter} if self.format == "csv" else {}
        options.update(self.reader)
        if readers.readers_xlsx.is_xlsx(data):  # chosen by content: an .xlsx is a zip, whatever its name
            if self.format not in readers.TABULAR:
                raise InputError(f"a spreadsheet (.xlsx), but mapping {self.path.name} reads {self.format}")
            return readers.TABULAR[self.format](data, encoding=encoding, **options)
        return readers.READERS[self.format](data, encoding=encoding, **options)

    def apply(self, table: readers.Table) -> list[Mapped]:
        needed = {f.column for s in self.sections if not s.optional for f in s.fields
                  if f.column and not f.optional} | {self.group_by}
        if self.enterprise:
            needed.add(self.enterprise)
        columns = set(table.columns)
        missing = sorted(c for c in needed if c not in columns) if table.strict_columns else []
        if missing:
            raise InputError(f"the header lacks column(s) {', '.join(missing)} that mapping "
                             f"{self.path.name} reads", row=1)
        # the fields this file can fill: an optional column the header lacks is skipped outright
        active = {s.name: [f for f in s.fields if not table.strict_columns or not f.column or f.column in columns
                           or f.default is not None] for s in self.sections}
        groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for row_no, values in table.rows:
            groups.setdefault(values.get(self.group_by, "").strip(), []).append((row_no, values))
        return [self._map_group(key, rows, table, active) for key, rows in groups.items()]

    def _map_group(self, key: str, rows, table: readers.Table, active: dict[str, list[FieldSpec]]) -> Mapped:
        errors: list[FieldError] = []
        first_row = rows[0][0]
        key_origin = table.origin(first_row, self.group_by)
        if not key:
            errors.append(FieldError.at(key_origin, self.group_by, "required",
                                        f"the grouping column {self.group_by} is empty"))
        enterprise = rows[0][1].get(self.enterprise, "").strip() if self.enterprise else ""
        sections: dict[str, list[Record]] = {}
        by_row: dict[str, dict[int, Record]] = {}   # per-row section -> row -> its record (for `within`)
        for spec in self.sections:
            fields = active[spec.name]
            if spec.per == "group":
                rec = self._record(fields, spec.name, rows[0], table, errors)
                self._check_consistent(spec, fields, rows, table, rec, errors)
                sections[spec.name] = [rec]
                continue
            if not fields:   # none of its columns in this file
                if not spec.within:
                    sections[spec.name] = []
                continue
            items, seen, mine, seen_raw = [], set(), {}, set()
            dedupe_columns = [f.column for f in fields if f.name in spec.dedupe_by and f.column] \
                if spec.dedupe_by and not spec.within else []
            for row in rows:
                if spec.skip_if_empty and not self._raw(spec, spec.skip_if_empty, row):
                    continue
                if dedupe_columns:  # the same raw cells as an earlier row: the same record, skipped
                    raw_ident = tuple(row[1].get(c, "") for c in dedupe_columns)
                    if raw_ident in seen_raw:
                        continue
                    seen_raw.add(raw_ident)
                rec = self._record(fields, spec.name, row, table, errors)
                if spec.within:
                    parent = by_row.get(spec.within, {}).get(row[0])
                    if parent is None:
                        continue
                    ident = (row[0],) + tuple(rec[f].text if f in rec else "" for f in spec.dedupe_by)
                    if ident not in seen:
                        seen.add(ident)
                        parent.setdefault(spec.name, []).append(rec)
                    continue
                if spec.dedupe_by:
                    ident = tuple(rec[f].text if f in rec else "" for f in spec.dedupe_by)
                    if ident in seen:
                        continue
                    seen.add(ident)
                items.append(rec)
                mine[row[0]] = rec
            by_row[spec.name] = mine
            if not spec.within:
                sections[spec.name] = items
        return Mapped(key, key_origin, enterprise, [r for r, _ in rows], sections, errors, self.codes,
                      attachments=self._attachments(rows, table, errors))

    def _attachments(self, rows, table: readers.Table, errors: list[FieldError]) -> list:
        """The files a document names in the attachments column (any of its rows; each once)."""
        if not self.attachments:
            return []
        from gateway import attachments

        column, named, seen = self.attachments["column"], [], set()
        for row_no, values in rows:
            text = values.get(column, "").strip()
            if not text:
                continue
            found, errs = attachments.parse_column(text, table.origin(row_no, column),
                                                   self.attachments.get("default_code"))
            errors.extend(errs)
            for n in found:
                if n.name in seen:
                    continue
                seen.add(n.name)
                if self.attachments.get("codes") and not self.codes.has(self.attachments["codes"], n.code):
                    errors.append(FieldError.at(n.origin, "attachments", "code",
                                                f"type code {n.code!r} of attachment {n.name!r} is not a code in "
                                                f"table {self.attachments['codes']!r}", n.code))
                    continue
                named.append(n)
        return named

    @staticmethod
    def _raw(spec: SectionSpec, fname: str, row) -> str:
        f = next((f for f in spec.fields if f.name == fname), None)
        return row[1].get(f.column, "").strip() if f and f.column else ""

    def _check_consistent(self, spec, fields, rows, table, rec, errors):
        for f in fields:
            if not f.column:
                continue
            first = rows[0][1].get(f.column, "").strip()
            for row_no, values in rows[1:]:
                other = values.get(f.column, "").strip()
                if other != first:
                    errors.append(FieldError.at(
                        table.origin(row_no, f.column), f"{spec.name}/{f.name}",
                        "consistent", f"differs from row {rows[0][0]} ({first!r}) although both rows belong to "
                        f"the same document", other))
                    break

    def _record(self, fields: list[FieldSpec], section: str, row, table, errors) -> Record:
        row_no, values = row
        rec: Record = {}
        bad_columns = set()
        for f in fields:
            raw = values.get(f.column, "") if f.column else (f.value or "")
            if not raw and f.empty_is_nothing:   # an empty optional cell: nothing to check, nothing to keep
                continue
            origin = table.origin(row_no, f.column)
            text, err = convert(f, raw, self.codes)
            if err:
                # one bad code read by several fields (ExporterCode, its name, its address) is one error
                if not (err[0] == "reference" and f.column in bad_columns):
                    errors.append(FieldError.at(origin, f"{section}/{f.name}", err[0], err[1], raw))
                bad_columns.add(f.column)
                continue
            if text != "":
                rec[f.name] = Value(text, origin)
        return rec


def _field_spec(path, sname, fname, fraw) -> FieldSpec:
    if isinstance(fraw, str):
        fraw = {"column": fraw}
    unknown = set(fraw) - FIELD_KEYS
    if unknown:
        raise MappingFileError(f"{path}: [sections.{sname}] field {fname}: unknown option(s) {sorted(unknown)}")
    if "column" not in fraw and "value" not in fraw:
        raise MappingFileError(f"{path}: [sections.{sname}] field {fname}: needs 'column' or 'value'")
    lookup = None
    if "lookup" in fraw:
        table, _, column = str(fraw["lookup"]).partition(".")
        if not table or not column:
            raise MappingFileError(f"{path}: [sections.{sname}] field {fname}: lookup must be 'table.column', "
                                   f"e.g. 'ccpit_exporters.name_en'")
        lookup = (table, column)
    ftype = fraw.get("type", "str")
    if ftype not in TYPES:
        raise MappingFileError(f"{path}: [sections.{sname}] field {fname}: type {ftype!r} not in {sorted(TYPES)}")
    try:
        pattern = re.compile(fraw["pattern"]) if "pattern" in fraw else None
    except re.error as exc:
        raise MappingFileError(f"{path}: [sections.{sname}] field {fname}: bad pattern: {exc}") from None
    return FieldSpec(name=fname, column=fraw.get("column"), value=fraw.get("value"), default=fraw.get("default"),
                     required=bool(fraw.get("required", False)), type=ftype, scale=fraw.get("scale"),
                     max_digits=fraw.get("max_digits"), date_format=fraw.get("date_format", "%Y%m%d"),
                     pattern=pattern, max_length=fraw.get("max_length"), min_length=fraw.get("min_length"),
                     codes=fraw.get("codes"), map={str(k): str(v) for k, v in fraw.get("map", {}).items()},
                     upper=bool(fraw.get("upper", False)), message=fraw.get("message"), lookup=lookup,
                     optional=bool(fraw.get("optional", False)))


def convert(f: FieldSpec, raw: str, codes: CodeTables) -> tuple[str, tuple[str, str] | None]:
    """Check and normalise one value. Returns (text, None) or ("", (rule, message))."""
    text = raw.strip()
    if f.map and text in f.map:
        text = f.map[text]
    if f.upper:
        text = text.upper()
    if text == "" and f.default is not None:
        text = str(f.default)
    if text == "":
        if f.required:
            return "", ("required", f.message or "is required but empty")
        return "", None
    if f.type == "int":
        if not re.fullmatch(r"[+-]?\d+", text):
            return "", ("type", f.message or "must be a whole number")
        text = str(int(text))
    elif f.type == "decimal":
        try:
            num = Decimal(text.replace(",", "")) if re.fullmatch(r"[+-]?[\d,]*\.?\d*", text) else None
        except InvalidOperation:
            num = None
        if num is None or not num.is_finite():
            return "", ("type", f.message or "must be a number")
        if f.scale is not None:
            exp = num.as_tuple().exponent
            if isinstance(exp, int) and -exp > f.scale:
                return "", ("scale", f"has more than {f.scale} decimal places")
        if f.max_digits is not None:
            int_digits = len(str(abs(int(num))))
            if int_digits > f.max_digits - (f.scale or 0):
                return "", ("max_digits", f"is too large: at most {f.max_digits - (f.scale or 0)} digits "
                                          f"before the decimal point")
        text = format(num.normalize(), "f") if num == num.to_integral() else format(num, "f")
    elif f.type == "date":
        for fmt in (f.date_format, "%Y%m%d", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                text = dt.datetime.strptime(text, fmt).strftime("%Y%m%d")
                break
            except ValueError:
                continue
        else:
            return "", ("type", f.message or f"must be a date ({f.date_format})")
    elif f.type == "datetime":  # -> yyyyMMddHHmmss
        for fmt in (f.date_format, "%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S",
                    "%Y-%m-%d %H:%M"):
            try:
                text = dt.datetime.strptime(text, fmt).strftime("%Y%m%d%H%M%S")
                break
            except ValueError:
                continue
        else:
            return "", ("type", f.message or "must be a date and time (yyyy-MM-dd HH:mm:ss)")
    if f.max_length is not None and len(text) > f.max_length:
        return "", ("max_length", f.message or f"is {len(text)} characters, at most {f.max_length} allowed")
    if f.min_length is not None and len(text) < f.min_length:
        return "", ("min_length", f.message or f"is {len(text)} characters, at least {f.min_length} needed")
    if f.pattern is not None and not f.pattern.fullmatch(text):
        return "", ("pattern", f.message or f"does not match {f.pattern.pattern}")
    if f.codes and not codes.has(f.codes, text):
        return "", ("code", f.message or f"is not a code in table {f.codes!r}")
    if f.lookup:
        found = codes.lookup(f.lookup[0], f.lookup[1], text)
        if found is None:
            return "", ("reference", f"{text} is not in the reference data {f.lookup[0]!r}")
        text = found
    return text, None
