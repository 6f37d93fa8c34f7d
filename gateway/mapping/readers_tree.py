"""JSON and XML readers: records of a tree become table rows.

Options (the mapping's [reader] table):
    records = "applications"   where the document records are: a dotted JSON path to a
                               list ("" = the top-level list or object), or a slash path of
                               element names under the XML root ("" = the root itself)
    rows    = "lines"          the nested list inside each record whose items become rows
                               (JSON key / XML slash path, e.g. "Goods/Item"); a record
                               without items is one row of its own fields; in XML the
                               fields of a row's containers (<Goods code="…">) are the row's

Columns are the flattened paths of leaf values: JSON `exporter.code`, `lines.qty`; XML
`InvoiceNo`, `Goods/Item/HsCode`, attributes `Goods/Item/@seq`. Each value keeps its
place in the file (JSON path; XML element path and line) for located errors. Numbers
keep their exact text (11.11 stays 11.11). XML is parsed safely (no DTD, no entities).
"""
from __future__ import annotations

import json

from lxml import etree

from gateway import xmlsafe
from gateway.mapping.errors import InputError
from gateway.mapping.readers import Table, decode


# -- JSON -----------------------------------------------------------------------------
def _scalar(value) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _flatten_json(obj: dict, prefix: str, path: str, skip: str | None, out: dict, where: dict) -> None:
    for key, value in obj.items():
        if key == skip:
            continue
        col, here = f"{prefix}{key}", f"{path}.{key}"
        if isinstance(value, dict):
            _flatten_json(value, col + ".", here, None, out, where)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):  # a list of plain values: one text
                out[col], where[col] = "; ".join(_scalar(v) for v in value), here
            else:
                raise InputError(f"{here} is a list of records; only the rows list "
                                 f"({skip or 'none configured'}) can hold records")
        else:
            out[col], where[col] = _scalar(value), here


def read_json(data: bytes, encoding: str = "auto", records: str = "", rows: str = "", **_) -> Table:
    text, used = decode(data, "utf-8" if encoding == "auto" and not data.startswith(b"\xef\xbb\xbf")
                        else encoding)
    try:
        top = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         row=exc.lineno) from None
    node, path = top, "$"
    for part in [p for p in records.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"no {part!r} in {path}: the mapping expects the records at {records!r}")
        node, path = node[part], f"{path}.{part}"
    items = node if isinstance(node, list) else [node]
    table = Table(columns=[], rows=[], encoding=used, paths={}, record_paths={})
    seen_cols: dict[str, None] = {}
    row_no = 0
    for i, rec in enumerate(items):
        rpath = f"{path}[{i}]" if isinstance(node, list) else path
        if not isinstance(rec, dict):
            raise InputError(f"{rpath} is not a record (an object)")
        head, where = {}, {}
        _flatten_json(rec, "", rpath, rows or None, head, where)
        lines = rec.get(rows, []) if rows else []
        if not isinstance(lines, list):
            raise InputError(f"{rpath}.{rows} should be a list of lines")
        for j, line in enumerate(lines or [None]):
            values, places = dict(head), dict(where)
            if line is not None:
                if not isinstance(line, dict):
                    raise InputError(f"{rpath}.{rows}[{j}] is not a record (an object)")
                _flatten_json(line, f"{rows}.", f"{rpath}.{rows}[{j}]", None, values, places)
            row_no += 1
            table.rows.append((row_no, values))
            table.paths[row_no] = places
            table.record_paths[row_no] = rpath if line is None else f"{rpath}.{rows}[{j}]"
            seen_cols.update(dict.fromkeys(values))
    table.columns = list(seen_cols)
    return table


# -- XML ------------------------------------------------------------------------------
def _local(elem) -> str:
    return etree.QName(elem).localname


def _children(elem, name: str):
    return [c for c in elem if isinstance(c.tag, str) and _local(c) == name]


def _find_all(elem, slash_path: str) -> list:
    nodes = [elem]
    for part in [p for p in slash_path.split("/") if p]:
        nodes = [c for n in nodes for c in _children(n, part)]
    return nodes


def _where(elem) -> str:
    tree = elem.getroottree()
    path = "/".join(p.split(":")[-1] for p in tree.getpath(elem).split("/"))
    return f"{path} (line {elem.sourceline})"


def _flatten_xml(elem, prefix: str, skip, out: dict, where: dict) -> None:
    for name, value in elem.attrib.items():
        col = f"{prefix}@{etree.QName(name).localname}"
        out[col], where[col] = value.strip(), _where(elem) + f" @{etree.QName(name).localname}"
    for child in elem:
        if not isinstance(child.tag, str) or child in skip:
            continue
        col = f"{prefix}{_local(child)}"
        if len([c for c in child if isinstance(c.tag, str)]) or child.attrib:
            _flatten_xml(child, col + "/", skip, out, where)
            if not len([c for c in child if isinstance(c.tag, str)]):
                text = (child.text or "").strip()
                if text:
                    out[col], where[col] = text, _where(child)
            continue
        text = (child.text or "").strip()
        if col in out:  # a repeated element outside the rows: keep every value
            out[col] = f"{out[col]}; {text}" if text else out[col]
        else:
            out[col], where[col] = text, _where(child)


def _flatten_containers(rec, line, rows: str, out: dict, where: dict) -> None:
    """The fields of the elements between a record and one of its rows (rows = "Goods/Line":
    the row's <Goods>, its attributes and leaf children, as Goods/@code …) belong to that row."""
    parts = [p for p in rows.split("/") if p]
    chain, node = [], line.getparent()
    while node is not None and node is not rec:
        chain.append(node)
        node = node.getparent()
    for depth, node in enumerate(reversed(chain), start=1):
        skip = set(_children(node, parts[depth])) if depth < len(parts) else set()
        _flatten_xml(node, "/".join(parts[:depth]) + "/", skip, out, where)


def read_xml(data: bytes, encoding: str = "auto", records: str = "", rows: str = "", **_) -> Table:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise InputError(str(exc)) from None
    items = _find_all(root, records) if records else [root]
    if records and not items:
        raise InputError(f"no <{records}> under <{_local(root)}>: the mapping expects the records there")
    table = Table(columns=[], rows=[], encoding=root.getroottree().docinfo.encoding or "utf-8", paths={},
                  record_paths={})
    seen_cols: dict[str, None] = {}
    row_no = 0
    for rec in items:
        lines = _find_all(rec, rows) if rows else []
        skip = set(lines)
        if rows:  # the rows' containers (e.g. <Goods>) are not head fields either
            top = rows.split("/")[0]
            skip |= set(_children(rec, top))
        head, where = {}, {}
        _flatten_xml(rec, "", skip, head, where)
        for line in lines or [None]:
            values, places = dict(head), dict(where)
            if line is not None:
                _flatten_containers(rec, line, rows, values, places)
                _flatten_xml(line, f"{rows}/", set(), values, places)
            row_no += 1
            table.rows.append((row_no, values))
            table.paths[row_no] = places
            table.record_paths[row_no] = _where(rec if line is None else line)
            seen_cols.update(dict.fromkeys(values))
    table.columns = list(seen_cols)
    return table
