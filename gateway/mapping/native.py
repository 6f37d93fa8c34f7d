"""A family's own document as another builder writes it: a DecMessage that an ERP wrote for the
desktop client, dropped into the declaration inbox beside the CSV exports.

It is taken as it is: its elements in any order, an empty element (`<OwnerCode></OwnerCode>`,
`<SecondUnit/>`) as absent, wrappers (DecLists, DecGoodsLimits …) unwrapped into the sections
the builder takes, so the document is rebuilt in the schema's one canonical order and then
validated strictly like any mapped one. Each value keeps its element path and line, so every
error names them. What the document cannot say is refused, located: an element the import format
does not have (with a value), a value given twice, a code not in the mapping's code table (the
checks of the family's mapping apply to the element they fill: CutMode against cut_mode …).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from lxml import etree

from gateway import xmlsafe
from gateway.mapping.engine import Mapped, Mapping, Value, convert
from gateway.mapping.errors import FieldError, InputError, Origin

_BOM = b"\xef\xbb\xbf"
_checks_cache: dict[int, dict] = {}


def sniff(data: bytes, root_name: str) -> bool:
    """Is this the family's own XML document (by its content, whatever the file is called)?"""
    head = data[:4096]
    if head.startswith(_BOM):
        head = head[3:]
    if not head.lstrip().startswith(b"<"):
        return False
    return re.search(rb"<(?:[\w.-]+:)?" + root_name.encode() + rb"[\s/>]", head) is not None


def read(data: bytes, family, mapping: Mapping, known_enterprise: Callable[[str], object]) -> tuple[str, list[Mapped]]:
    """(encoding, [the one document]) or InputError when it is not a readable document at all."""
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise InputError(str(exc)) from None
    name = etree.QName(root).localname
    if name != family.root_name:
        raise InputError(f"root element <{name}> (line {root.sourceline}) is not a {family.root_name}")
    ns = etree.QName(root).namespace
    if ns not in (None, family.namespace):
        raise InputError(f"<{name}> in namespace {ns!r}: a {family.root_name} is in {family.namespace!r} (or none)")
    reader = _Reader(family, _checks(mapping), mapping)
    sections = reader.document(root)
    key_section, key_field = family.native_key
    key_value = (sections.get(key_section) or [{}])[0].get(key_field)
    errors = reader.errors
    root_origin = Origin(path=f"{name} (line {root.sourceline})")
    if key_value is None:
        errors.append(FieldError.at(Origin(path=f"{name}/{key_section} (line {root.sourceline})"),
                                    f"{key_section}/{key_field}", "required",
                                    f"the document has no {key_field}: it identifies the {family.key} "
                                    f"(the enterprise's own number)"))
    enterprise, enterprise_field = "", family.native_enterprise[0][0] + "/" + family.native_enterprise[0][1]
    for sname, fname in family.native_enterprise:   # the first code the profile knows declares it
        value = (sections.get(sname) or [{}])[0].get(fname)
        if value is None:
            continue
        if not enterprise:
            enterprise, enterprise_field = value.text, f"{sname}/{fname}"
        if known_enterprise(value.text) is not None:
            enterprise, enterprise_field = value.text, f"{sname}/{fname}"
            break
    encoding = root.getroottree().docinfo.encoding or "utf-8"
    mapped = Mapped(key_value.text if key_value else "", key_value.origin if key_value else root_origin,
                    enterprise, [], sections, errors, mapping.codes, enterprise_field)
    return encoding, [mapped]


def _checks(mapping: Mapping) -> dict[tuple[str, str], object]:
    """The mapping's value checks (type, pattern, length, code table) by (section, element):
    not what only an ERP export needs (required columns, defaults, translations, look-ups)."""
    checks = _checks_cache.get(id(mapping))
    if checks is None:
        checks = {}
        for s in mapping.sections:
            for f in s.fields:
                if f.column and not f.lookup:
                    checks[(s.name, f.name)] = dataclasses.replace(f, required=False, default=None, map={},
                                                                   value=None)
        _checks_cache[id(mapping)] = checks
    return checks


class _Reader:
    def __init__(self, family, checks, mapping):
        self.order = family.order
        self.ns = family.namespace
        self.repeatable = family.repeatable
        self.checks = checks
        self.codes = mapping.codes
        self.errors: list[FieldError] = []

    def _is_wrapper(self, name: str) -> bool:
        kids = self.order.get(name)
        return bool(kids) and all(k in self.order for k in kids)

    def _name(self, elem) -> str | None:
        if not isinstance(elem.tag, str):
            return None                                  # comments, processing instructions
        q = etree.QName(elem)
        return q.localname if q.namespace in (None, self.ns) else "{" + q.namespace + "}" + q.localname

    def document(self, root) -> dict[str, list]:
        sections: dict[str, list] = {}
        top = etree.QName(root).localname
        self._children(root, top, top, sections, toplevel=True)
        return sections

    def _children(self, elem, name: str, path: str, into: dict, toplevel: bool = False) -> None:
        """Read elem's children into `into`: a record (field -> Value / nested records), or at the
        top level the document's sections."""
        allowed = self.order.get(name, [])
        counts: dict[str, int] = {}
        for child in elem:
            cname = self._name(child)
            if cname is None:
                continue
            counts[cname] = counts.get(cname, 0) + 1
            here = f"{path}/{cname}" + (f"[{counts[cname]}]" if cname in self.repeatable else "")
            if cname not in allowed:
                if _has_content(child):
                    self.errors.append(FieldError.at(
                        Origin(path=f"{here} (line {child.sourceline})"), f"{name}/{cname}", "element",
                        f"<{cname}> is not an element of {name} in the import format", _text(child)))
                continue
            if cname in self.order:                      # complex: a wrapper or a record
                if self._is_wrapper(cname):
                    kids = self.order[cname]
                    n = 0
                    for item in child:
                        iname = self._name(item)
                        if iname is None:
                            continue
                        n += 1
                        ipath = f"{here}/{iname}[{n}]"
                        if iname not in kids:
                            if _has_content(item):
                                self.errors.append(FieldError.at(
                                    Origin(path=f"{ipath} (line {item.sourceline})"), f"{cname}/{iname}", "element",
                                    f"<{iname}> is not an element of {cname} in the import format", _text(item)))
                            continue
                        self._record(item, iname, ipath, into)
                else:
                    if cname not in self.repeatable and counts[cname] > 1 and _has_content(child):
                        self.errors.append(FieldError.at(Origin(path=f"{here} (line {child.sourceline})"), cname,
                                                         "repeated", f"<{cname}> may appear once in {name}"))
                        continue
                    self._record(child, cname, here, into)
                continue
            if toplevel:
                continue
            text = (child.text or "").strip()
            if not text:
                if len(child) and _has_content(child):
                    self.errors.append(FieldError.at(Origin(path=f"{here} (line {child.sourceline})"),
                                                     f"{name}/{cname}", "type", f"<{cname}> holds elements, not a value"))
                continue                                 # an empty element is an absent one
            origin = Origin(path=f"{here} (line {child.sourceline})")
            if cname in into:
                self.errors.append(FieldError.at(origin, f"{name}/{cname}", "repeated",
                                                 f"<{cname}> is given twice in {name} (also line "
                                                 f"{_line(into[cname])})", text))
                continue
            spec = self.checks.get((name, cname))
            if spec is not None:
                text, err = convert(spec, text, self.codes)
                if err:
                    self.errors.append(FieldError.at(origin, f"{name}/{cname}", err[0], err[1],
                                                     (child.text or "").strip()))
                    continue
            into[cname] = Value(text, origin)

    def _record(self, elem, name: str, path: str, into: dict) -> None:
        rec: dict = {}
        self._children(elem, name, path, rec)
        if rec:                                          # a record of empty elements is no record
            into.setdefault(name, []).append(rec)


def _line(value) -> str:
    where = value.origin.path or ""
    found = re.search(r"line (\d+)", where)
    return found.group(1) if found else "?"


def _has_content(elem) -> bool:
    return any((e.text or "").strip() for e in elem.iter() if isinstance(e.tag, str))


def _text(elem) -> str:
    return " ".join((e.text or "").strip() for e in elem.iter() if isinstance(e.tag, str) and (e.text or "").strip())[:100]
