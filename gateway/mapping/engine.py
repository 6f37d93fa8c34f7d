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

import dataclasses
import datetime as dt
import itertools
import operator
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


class Value:
    """A mapped value and where it came from. The origin of a value read from a table is made
    only when asked (an error, a report): a row's reference and the column are kept instead."""

    __slots__ = ("text", "_origin", "_row", "_column")

    def __init__(self, text: str, origin: Origin | None = None, row: "RowRef | None" = None,
                 column: str | None = None):
        self.text = text
        self._origin = origin
        self._row = row
        self._column = column

    @property
    def origin(self) -> Origin:
        if self._origin is None:
            self._origin = self._row.origin(self._column) if self._row is not None else Origin()
        return self._origin

    @origin.setter
    def origin(self, origin: Origin) -> None:
        self._origin = origin

    def __eq__(self, other):
        return isinstance(other, Value) and (self.text, self.origin) == (other.text, other.origin)

    __hash__ = None

    def __repr__(self) -> str:
        return f"Value(text={self.text!r}, origin={self.origin!r})"


class RowRef:
    """One row of a table, enough to locate its values (not the table's rows: those may be gone)."""

    __slots__ = ("locate", "row")

    def __init__(self, locate, row: int):
        self.locate = locate
        self.row = row

    def origin(self, column: str | None) -> Origin:
        return self.locate(self.row, column)


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

    def settled(self) -> "Mapped":
        """What is kept of an evaluated document until it is stored: its key, rows, origins, errors,
        attachments and each section's first record (what a family's replaces() reads), not every
        goods line's values."""
        return dataclasses.replace(self, sections={name: items[:1] for name, items in self.sections.items()})

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
        return list(self.documents(table))

    def documents(self, table: readers.Table):
        """The table's documents, one at a time, in the order their first rows come. A CSV is read
        in two passes — the grouping column, then the rows — so each document is mapped as soon as
        its last row is read and its rows are let go: memory holds the documents still open (one,
        for an export that writes each document's rows together), not the file's rows."""
        plan = self.plan(table)
        locate = table.locator()
        group_by = self.group_by
        rows = table.rows
        if not isinstance(rows, readers.CsvRows):   # JSON, XML, a sheet: their rows are read already
            groups: dict[str, list[tuple[int, dict[str, str], RowRef]]] = {}
            for row_no, values in rows:
                groups.setdefault(values.get(group_by, "").strip(), []).append((row_no, values, RowRef(locate, row_no)))
            for key, group in groups.items():
                yield plan.map_group(key, group)
            return
        last: dict[str, int] = {}
        for row_no, value in rows.column(group_by):
            last[value.strip()] = row_no
        order = iter(list(last))                   # keys by first row (dicts keep insertion order)
        waiting = next(order, None)
        open_: dict[str, list] = {}
        done: set[str] = set()
        at = plan.positions[group_by]
        for row_no, values in rows.cells():        # a row's cells in header order (the plan reads them so)
            key = values[at].strip()
            open_.setdefault(key, []).append((row_no, values, RowRef(locate, row_no)))
            if row_no == last[key]:
                done.add(key)
                while waiting is not None and waiting in done:
                    yield plan.map_group(waiting, open_.pop(waiting))
                    done.discard(waiting)
                    waiting = next(order, None)

    def plan(self, table: readers.Table) -> "Plan":
        """The mapping compiled for this file's header (cached: the files of one export share it).
        A CSV's rows are read as lists of cells (CsvRows.cells), the others' as dicts."""
        strict = table.strict_columns
        cells = isinstance(table.rows, readers.CsvRows)
        ident = (tuple(table.columns), strict, cells) if strict else None
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(ident)
        if plan is None:
            if len(plans) > 32:
                plans.clear()
            plan = plans[ident] = Plan(self, set(table.columns) if strict else None,
                                       table.columns if cells else None)
        return plan


FieldPlan = tuple   # (name, column, constant, converter, empty_is_nothing, "Section/Field", memo or None)
# a memo: raw text -> the text it becomes (a str: no error, not empty), or the converter's
# ("", (rule, message)) or ("", None) for an error or an empty value
_MEMO = 4096        # raw texts remembered per field
_NEVER = "never"   # SectionPlan.skip: no row of the file has the section's skip_if_empty column


def _changing(f: FieldSpec, codes: CodeTables) -> bool:
    """Does the field's check read a table the store adds to while the daemon runs?"""
    return bool((f.codes and f.codes in codes._overlays) or (f.lookup and f.lookup[0] in codes._overlays))


def cell_reader(positions: dict[str, int] | None):
    """cell(values, column): a row's raw text in `column` ("" when the row has none); a row is a
    dict, or with `positions` (column -> index) a list of cells in header order."""
    if positions is None:
        return lambda values, column: values.get(column, "")
    return lambda values, column: values[positions[column]] if column in positions else ""


def _getter(positions: dict[str, int] | None, columns: list[str]):
    """A function returning the tuple of a row's raw cells in `columns`: operator.itemgetter over
    the row (a KeyError for a dict row without one of them), or None when a list row cannot have them."""
    if positions is not None:
        if any(c not in positions for c in columns):
            return None
        columns = [positions[c] for c in columns]
    return operator.itemgetter(*columns, columns[0])   # always a tuple


def _dedupe(positions: dict[str, int] | None, columns: list[str]):
    """The raw cells of `columns` that make a row's record the same as an earlier row's."""
    if positions is not None and all(c in positions for c in columns):
        return _getter(positions, columns)
    cell = cell_reader(positions)
    return lambda values: tuple(cell(values, c) for c in columns)


class SectionPlan:
    """One section compiled: its active fields with their converters, and what picks its rows."""

    __slots__ = ("spec", "fields", "cells", "skip_column", "skip", "dedupe_columns", "dedupe", "record")

    def __init__(self, spec: SectionSpec, fields: list[FieldSpec], codes: CodeTables,
                 positions: dict[str, int] | None = None):
        self.spec = spec
        # each field's converter, and a memo of what it said of each raw text (a drop file repeats its
        # codes, units, dates and head values on every row); none for a check against data the store
        # keeps changing (an overlay: approved filings)
        self.fields: list[FieldPlan] = [
            (f.name, f.column, f.value or "", converter(f, codes), f.empty_is_nothing, f"{spec.name}/{f.name}",
             None if _changing(f, codes) else {})
            for f in fields]
        columns = [f.column for f in fields if f.column]
        self.cells = _getter(positions, columns) if columns else None
        skip = next((f for f in spec.fields if f.name == spec.skip_if_empty), None) if spec.skip_if_empty else None
        self.skip_column = skip.column if skip is not None and skip.column else None
        # skip_if_empty: the row's raw text in that column (a row without it adds no record); None: no
        # such option; "never" when no row of this file can have it (a CSV header without the column)
        if not spec.skip_if_empty:
            self.skip = None
        elif self.skip_column is None or (positions is not None and self.skip_column not in positions):
            self.skip = _NEVER
        elif positions is not None:
            self.skip = operator.itemgetter(positions[self.skip_column])
        else:
            self.skip = lambda values, column=self.skip_column: values.get(column, "")
        self.dedupe_columns = [f.column for f in fields if f.name in spec.dedupe_by and f.column] \
            if spec.dedupe_by and not spec.within else []
        self.dedupe = _dedupe(positions, self.dedupe_columns) if self.dedupe_columns else None
        self.record = _compiled_record(self.fields, positions)


def _compiled_record(fields: list[FieldPlan], positions: dict[str, int] | None = None):
    """A row's record of one section: a function written out once per plan (per header), one
    straight block per field with its column (a dict key, or with `positions` the cell's index in
    a list row), label, converter and memo bound as constants — no per-row loop over the field
    list. Per field: the cell (or constant); an empty optional cell is skipped; the converter's
    answer (memoised per raw text) is kept as a Value that knows its row and column, or its error
    is reported located (row, column, field, rule, value)."""
    env = {"Value": Value, "_fail": _field_failed, "_remember": _remember, "str": str, "new": object.__new__}
    lines = ["def record(row, errors):", "    row_no, values, ref = row", "    get = values.get" if positions is None
             else "    pass", "    rec = {}", "    bad = None"]
    for i, (name, column, constant, convert_one, empty_is_nothing, label, memo) in enumerate(fields):
        env.update({f"n{i}": name, f"c{i}": column, f"k{i}": constant, f"f{i}": convert_one, f"l{i}": label,
                    f"m{i}": memo})
        if not column:
            lines.append(f"    raw = k{i}")
        elif positions is None:
            lines.append(f"    raw = get(c{i}, '')")
        else:   # a column the header lacks (a field with a default): empty
            lines.append(f"    raw = values[{positions[column]}]" if column in positions else "    raw = ''")
        ind = "    "
        if empty_is_nothing:   # an empty optional cell: nothing to check, nothing to keep
            lines.append("    if raw:")
            ind = "        "
        if memo is None:
            lines += [f"{ind}text, err = f{i}(raw)",
                      f"{ind}if err:", f"{ind}    bad = _fail(bad, errors, ref, c{i}, l{i}, err, raw)",
                      f"{ind}elif text != '':", f"{ind}    rec[n{i}] = Value(text, None, ref, c{i})"]
        else:   # the memo holds the text itself when there is one to keep (see _remember)
            lines += [f"{ind}text = m{i}.get(raw)", f"{ind}if text is None:",
                      f"{ind}    text = _remember(m{i}, f{i}, raw)",
                      f"{ind}if text.__class__ is str:",   # Value(text, None, ref, c{i}), without a call
                      f"{ind}    rec[n{i}] = v = new(Value)",
                      f"{ind}    v.text = text; v._origin = None; v._row = ref; v._column = c{i}",
                      f"{ind}elif text[1]:", f"{ind}    bad = _fail(bad, errors, ref, c{i}, l{i}, text[1], raw)"]
    lines.append("    return rec")
    exec(compile("\n".join(lines), "<mapping plan>", "exec"), env)
    return env["record"]


def _remember(memo: dict, convert_one, raw: str):
    """What the converter says of `raw`, remembered: the text when it is one to keep (no error,
    not empty), else its (text, error) answer."""
    if len(memo) >= _MEMO:
        memo.clear()
    text, err = said = convert_one(raw)
    if err is None and text != "":
        said = text
    memo[raw] = said
    return said


def _field_failed(bad_columns, errors, ref, column, label, err, raw):
    """A field's error, located; one bad code read by several fields (ExporterCode, its name, its
    address) is one error. Returns the columns that failed so far."""
    if bad_columns is None:
        bad_columns = set()
    if not (err[0] == "reference" and column in bad_columns):
        errors.append(FieldError.at(ref.origin(column), label, err[0], err[1], raw))
    bad_columns.add(column)
    return bad_columns


_CELLS = operator.itemgetter(1)   # a group's row (row number, values, RowRef) -> its values


class Plan:
    """A mapping compiled for one header: which fields the file can fill, each field's converter
    (type, lengths, pattern, code set), so each row is read without interpreting the mapping."""

    def __init__(self, mapping: Mapping, columns: set[str] | None, header: list[str] | None = None):
        """`columns`: a strict header's columns; `header`: given when the rows are lists of cells in
        its order (a CSV's), which the plan then reads by position."""
        self.mapping = mapping
        # column -> its cell's index in a list row (a name the header repeats: its last, as a dict of the row keeps)
        self.positions = {c: i for i, c in enumerate(header)} if header is not None else None
        self.cell = cell_reader(self.positions)
        if columns is not None:   # a CSV or sheet header: the columns the mapping needs must be there
            needed = {f.column for s in mapping.sections if not s.optional for f in s.fields
                      if f.column and not f.optional} | {mapping.group_by}
            if mapping.enterprise:
                needed.add(mapping.enterprise)
            missing = sorted(c for c in needed if c not in columns)
            if missing:
                raise InputError(f"the header lacks column(s) {', '.join(missing)} that mapping "
                                 f"{mapping.path.name} reads", row=1)
        # the fields this file can fill: an optional column the header lacks is skipped outright
        self.sections = [SectionPlan(s, [f for f in s.fields if columns is None or not f.column or f.column in columns
                                         or f.default is not None], mapping.codes, self.positions)
                         for s in mapping.sections]

    def map_group(self, key: str, rows) -> Mapped:
        m = self.mapping
        errors: list[FieldError] = []
        first_row, first_values, first_ref = rows[0]
        key_origin = first_ref.origin(m.group_by)
        if not key:
            errors.append(FieldError.at(key_origin, m.group_by, "required",
                                        f"the grouping column {m.group_by} is empty"))
        cell = self.cell
        enterprise = cell(first_values, m.enterprise).strip() if m.enterprise else ""
        sections: dict[str, list[Record]] = {}
        by_row: dict[str, dict[int, Record]] = {}   # per-row section -> row -> its record (for `within`)
        for sp in self.sections:
            spec, fields = sp.spec, sp.fields
            if spec.per == "group":
                rec = sp.record(rows[0], errors)
                if len(rows) > 1:
                    self._check_consistent(sp, rows, errors)
                sections[spec.name] = [rec]
                continue
            if not fields:   # none of its columns in this file
                if not spec.within:
                    sections[spec.name] = []
                continue
            items, seen, mine, seen_raw = [], set(), {}, set()
            skip, dedupe, within, dedupe_by = sp.skip, sp.dedupe, spec.within, spec.dedupe_by
            for row in rows if skip is not _NEVER else ():
                if skip is not None and not skip(row[1]).strip():
                    continue
                if dedupe is not None:  # the same raw cells as an earlier row: the same record, skipped
                    raw_ident = dedupe(row[1])
                    if raw_ident in seen_raw:
                        continue
                    seen_raw.add(raw_ident)
                rec = sp.record(row, errors)
                if within:
                    parent = by_row.get(within, {}).get(row[0])
                    if parent is None:
                        continue
                    ident = (row[0],) + tuple(rec[f].text if f in rec else "" for f in dedupe_by)
                    if ident not in seen:
                        seen.add(ident)
                        parent.setdefault(spec.name, []).append(rec)
                    continue
                if dedupe_by:
                    ident = tuple(rec[f].text if f in rec else "" for f in dedupe_by)
                    if ident in seen:
                        continue
                    seen.add(ident)
                items.append(rec)
                mine[row[0]] = rec
            by_row[spec.name] = mine
            if not within:
                sections[spec.name] = items
        return Mapped(key, key_origin, enterprise, [r[0] for r in rows], sections, errors, m.codes,
                      attachments=self._attachments(rows, errors))

    def _attachments(self, rows, errors: list[FieldError]) -> list:
        """The files a document names in the attachments column (any of its rows; each once)."""
        spec = self.mapping.attachments
        if not spec:
            return []
        from gateway import attachments

        column, named, seen, cell = spec["column"], [], set(), self.cell
        for row_no, values, ref in rows:
            text = cell(values, column).strip()
            if not text:
                continue
            found, errs = attachments.parse_column(text, ref.origin(column), spec.get("default_code"))
            errors.extend(errs)
            for n in found:
                if n.name in seen:
                    continue
                seen.add(n.name)
                if spec.get("codes") and not self.mapping.codes.has(spec["codes"], n.code):
                    errors.append(FieldError.at(n.origin, "attachments", "code",
                                                f"type code {n.code!r} of attachment {n.name!r} is not a code in "
                                                f"table {spec['codes']!r}", n.code))
                    continue
                named.append(n)
        return named

    def _check_consistent(self, sp: SectionPlan, rows, errors):
        """A per-group section's columns hold the same value on every row of the document."""
        cells, cell = sp.cells, self.cell
        if cells is not None:
            try:
                same = cells(rows[0][1])
                if all(map(operator.eq, map(cells, map(_CELLS, rows[1:])), itertools.repeat(same))):
                    return   # the raw cells are equal, so the stripped ones are
            except KeyError:  # a record without one of the columns (JSON, XML): compared one by one
                pass
        first_values = rows[0][1]
        for name, column, *_ in (f for f in sp.fields if f[1]):
            first = cell(first_values, column).strip()
            for row_no, values, ref in rows[1:]:
                other = cell(values, column).strip()
                if other != first:
                    errors.append(FieldError.at(
                        ref.origin(column), f"{sp.spec.name}/{name}",
                        "consistent", f"differs from row {rows[0][0]} ({first!r}) although both rows belong to "
                        f"the same document", other))
                    break


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


_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?[\d,]*\.?\d*")
_DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d")
_DATETIME_FORMATS = ("%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M")


def convert(f: FieldSpec, raw: str, codes: CodeTables) -> tuple[str, tuple[str, str] | None]:
    """Check and normalise one value. Returns (text, None) or ("", (rule, message))."""
    return converter(f, codes)(raw)


def _typed(f: FieldSpec):
    """The field's type check and normalisation: text -> (text, None) or ("", (rule, message))."""
    if f.type == "int":
        bad = ("", ("type", f.message or "must be a whole number"))

        def as_int(text):
            return (str(int(text)), None) if _INT.fullmatch(text) else bad
        return as_int
    if f.type == "decimal":
        bad = ("", ("type", f.message or "must be a number"))
        scale, max_digits = f.scale, f.max_digits
        whole_digits = max_digits - (scale or 0) if max_digits is not None else None

        def as_decimal(text):
            whole, dot, frac = text.partition(".")
            if whole.isdecimal() and (frac.isdecimal() or not dot):   # unsigned digits[.digits] (r"\d+(\.\d+)?"):
                # what Decimal would say, without it (isdecimal: the Unicode digits \d matches)
                if scale is not None and len(frac) > scale:
                    return "", ("scale", f"has more than {scale} decimal places")
                whole = whole.lstrip("0") or "0"
                if whole_digits is not None and len(whole) > whole_digits:
                    return "", ("max_digits", f"is too large: at most {whole_digits} digits "
                                              f"before the decimal point")
                return (f"{whole}.{frac}" if frac.strip("0") else whole), None
            try:
                num = Decimal(text.replace(",", "")) if _DECIMAL.fullmatch(text) else None
            except InvalidOperation:
                num = None
            if num is None or not num.is_finite():
                return bad
            if scale is not None:
                exp = num.as_tuple().exponent
                if isinstance(exp, int) and -exp > scale:
                    return "", ("scale", f"has more than {scale} decimal places")
            if max_digits is not None:
                int_digits = len(str(abs(int(num))))
                if int_digits > max_digits - (scale or 0):
                    return "", ("max_digits", f"is too large: at most {max_digits - (scale or 0)} digits "
                                              f"before the decimal point")
            return (format(num.normalize(), "f") if num == num.to_integral() else format(num, "f")), None
        return as_decimal
    if f.type in ("date", "datetime"):
        if f.type == "date":
            formats, out = (f.date_format,) + _DATE_FORMATS, "%Y%m%d"
            bad = ("", ("type", f.message or f"must be a date ({f.date_format})"))
        else:  # -> yyyyMMddHHmmss
            formats, out = (f.date_format,) + _DATETIME_FORMATS, "%Y%m%d%H%M%S"
            bad = ("", ("type", f.message or "must be a date and time (yyyy-MM-dd HH:mm:ss)"))
        strptime = dt.datetime.strptime

        def as_date(text):
            for fmt in formats:
                try:
                    return strptime(text, fmt).strftime(out), None
                except ValueError:
                    continue
            return bad
        return as_date
    return None


def _members(codes: CodeTables, name: str):
    """A code table's membership test: its rows once (a CSV is read once), or asked each time
    when the store adds to the table (an overlay caches itself)."""
    overlays = codes._overlays
    rows = codes.rows(name) if name not in overlays else None

    def has(code: str) -> bool:
        return code in (codes.rows(name) if name in overlays else rows)
    return has


def converter(f: FieldSpec, codes: CodeTables):
    """The field's check and normalisation compiled once: raw -> (text, None) or ("", (rule, message)).
    Strip, translate (map), upper, default, required, type, lengths, pattern, code table, look-up."""
    mp, upper = f.map or None, f.upper
    default = None if f.default is None else str(f.default)
    empty = ("", ("required", f.message or "is required but empty")) if f.required else ("", None)
    typed = _typed(f)
    max_length, min_length, pattern = f.max_length, f.min_length, f.pattern
    has_code = _members(codes, f.codes) if f.codes else None
    bad_code = ("", ("code", f.message or f"is not a code in table {f.codes!r}"))
    bad_pattern = ("", ("pattern", f.message or f"does not match {pattern.pattern}")) if pattern is not None else None
    lookup = f.lookup
    checks = max_length is not None or min_length is not None or pattern is not None
    message = f.message
    if mp is None and not upper and typed is None and not checks and has_code is None and not lookup:
        def convert_plain(raw: str):   # text as it is: only stripped, defaulted, required
            text = raw.strip()
            if text:
                return text, None
            if default:
                return default, None
            return empty
        return convert_plain
    if mp is None and not upper and not checks and has_code is None and not lookup:
        def convert_typed(raw: str):   # only stripped, defaulted, required and typed
            text = raw.strip()
            if text:
                return typed(text)
            if default:
                return typed(default)
            return empty
        return convert_typed
    def refused(text: str):   # the lengths and the pattern: what a text breaks, or None
        if max_length is not None and len(text) > max_length:
            return "", ("max_length", message or f"is {len(text)} characters, at most {max_length} allowed")
        if min_length is not None and len(text) < min_length:
            return "", ("min_length", message or f"is {len(text)} characters, at least {min_length} needed")
        if pattern is not None and not pattern.fullmatch(text):
            return bad_pattern
        return None

    if mp is None and not upper and typed is None and has_code is None and not lookup:
        def convert_checked(raw: str):   # only stripped, defaulted, required, lengths and pattern
            text = raw.strip() or default
            if not text:
                return empty
            return refused(text) or (text, None)
        return convert_checked

    def convert_one(raw: str):
        text = raw.strip()
        if mp is not None and text in mp:
            text = mp[text]
        if upper:
            text = text.upper()
        if text == "":
            if default is None:
                return empty
            text = default
            if text == "":
                return empty
        if typed is not None:
            text, err = typed(text)
            if err:
                return text, err
        if checks:
            bad = refused(text)
            if bad:
                return bad
        if has_code is not None and not has_code(text):
            return bad_code
        if lookup:
            found = codes.lookup(lookup[0], lookup[1], text)
            if found is None:
                return "", ("reference", f"{text} is not in the reference data {lookup[0]!r}")
            text = found
        return text, None
    return convert_one
