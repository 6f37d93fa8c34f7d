"""XSD validation: lxml for speed, xmlschema for error paths a person can read (imported and built
only when a document has errors to explain: it is a fifth of the daemon's start-up otherwise)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from gateway import schema_cache

if TYPE_CHECKING:
    import xmlschema


@dataclass(frozen=True)
class SchemaError:
    element: object | None     # the lxml element at fault, if known
    path: str                  # element path without namespaces, e.g. DecLists/DecList[2]/CodeTS
    reason: str


class Schema:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lxml = etree.XMLSchema(etree.parse(str(self.path)))
        self._readable: xmlschema.XMLSchema | None = None

    @property
    def readable(self) -> xmlschema.XMLSchema:
        if self._readable is None:
            import xmlschema

            self._readable = xmlschema.XMLSchema(str(self.path))
        return self._readable

    def is_valid(self, root: etree._Element) -> bool:
        return self._lxml.validate(root)

    def errors(self, root: etree._Element) -> list[SchemaError]:
        """Every schema error, located. Empty when valid (lxml decides, fast)."""
        if self._lxml.validate(root):
            return []
        out = []
        for err in self.readable.iter_errors(root):
            elem = getattr(err, "elem", None)
            out.append(SchemaError(elem, _plain_path(root, elem) if elem is not None else (err.path or ""),
                                   _reason(err)))
        if not out:  # lxml and xmlschema disagree: report lxml's own words
            for entry in self._lxml.error_log:
                out.append(SchemaError(None, entry.path or "", entry.message))
        return out

    def element_order(self, root_name: str) -> dict[str, list[str]]:
        """For every complex element under `root_name`, its child element names in schema order
        (kept on disk between runs: gateway/schema_cache.py)."""
        return schema_cache.cached(self.path, f"order-{root_name}", lambda: self._element_order(root_name))

    def _element_order(self, root_name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}

        def walk(el):
            content = getattr(el.type, "content", None)
            if not el.type.is_complex() or content is None or not hasattr(content, "iter_elements"):
                return
            kids = [k for k in content.iter_elements() if getattr(k, "type", None) is not None]  # not xs:any
            out.setdefault(el.local_name, [k.local_name for k in kids])
            for k in kids:
                walk(k)

        for name, el in self.readable.elements.items():
            if name == root_name:
                walk(el)
        return out

    def repeatable(self, root_name: str) -> set[str]:
        """Names of the elements under `root_name` that may occur more than once (cached as above)."""
        return set(schema_cache.cached(self.path, f"repeatable-{root_name}",
                                       lambda: sorted(self._repeatable(root_name))))

    def _repeatable(self, root_name: str) -> set[str]:
        out: set[str] = set()

        def walk(el, seen):
            content = getattr(el.type, "content", None)
            if not el.type.is_complex() or content is None or not hasattr(content, "iter_elements"):
                return
            for k in content.iter_elements():
                if k.max_occurs is None or k.max_occurs > 1:
                    out.add(k.local_name)
                if k.local_name not in seen:
                    walk(k, seen | {k.local_name})

        for name, el in self.readable.elements.items():
            if name == root_name:
                walk(el, {name})
        return out


def _reason(err) -> str:
    reason = err.reason or str(err)
    return reason.replace("\n", " ").strip()


def _plain_path(root, elem) -> str:
    parts = []
    node = elem
    while node is not None and node is not root:
        parent = node.getparent()
        name = etree.QName(node).localname
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == name]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/".join(reversed(parts)) or etree.QName(root).localname
