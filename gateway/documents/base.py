"""What every document family provides, and the generic tree builder they share.

A family (declaration, origin, licence …) names its schema and root, enriches mapped
data with what the enterprise profile supplies, checks its business rules, and says
how each receipt moves its state. The tree is built in schema order, and every
element remembers the ERP row/column it came from, so schema and rule errors can
be reported in the user's terms.
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from card.signer import CardInfo, Signer
from gateway import xmlsafe
from gateway.config import Enterprise, Operator
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError, Origin
from gateway.validation import Schema

PROFILE = Origin()  # values that come from the enterprise profile, not from the file
_MISSING = re.compile(r"(?:Unexpected child with tag .*|The content of element .* is not complete)\. "
                      r"Tag '(?:\{[^}]*\})?(\w+)' expected")


@dataclass
class Context:
    enterprise: Enterprise
    operator: Operator
    media_no: str                 # the operator's card (介质号), from the signer config
    submit: str | None = None     # how the document type is submitted ([documents.<type>] submit)
    signatories: list | None = None   # CCPIT 手签员 as synced over the config's (None: the config's)
    signatories_of: object = None     # or a function that returns them, asked when a rule reads them

    @property
    def registered_signatories(self) -> list:
        if self.signatories is None and self.signatories_of is not None:
            self.signatories, self.signatories_of = self.signatories_of(), None
        return self.enterprise.signatories if self.signatories is None else self.signatories

    def fill_sign(self, mapped: Mapped, section: str) -> dict[str, Value]:
        """The document's signing section, with the operator's name and card (介质号) filled in
        from the profile where the document has none; returns it for the family's own fields.
        (A card the document names itself is checked by `card_errors`.)"""
        sign = mapped.sections.setdefault(section, [{}])[0]
        sign.setdefault("OperName", Value(self.operator.name, PROFILE))
        sign.setdefault("ICCode", Value(self.media_no, PROFILE))
        return sign

    def card_errors(self, mapped: Mapped, section: str) -> list[FieldError]:
        """A document that names its card (DecSign/ICCode) must name the card that signs it."""
        card = (mapped.sections.get(section) or [{}])[0].get("ICCode")
        if card is None or card.origin is PROFILE or card.text == self.media_no:
            return []
        return [FieldError.at(card.origin, f"{section}/ICCode", "profile",
                              f"names card {card.text}, but operator {self.operator.name} of {self.enterprise.code} "
                              f"signs with card {self.media_no}", card.text)]


def attachment_records(files: list) -> list[dict[str, Value]]:
    """The format's record of each checked attachment (CertAttachment, LicenseAttachment): its name
    in the package (sequence + hash + the type's extension), type code, the enterprise's file name,
    size and SHA-256 — the file travels in the package under AttachName."""
    return [{k: Value(v, att.origin) for k, v in (
        ("AttachName", f"{i:02d}-{att.sha256[:16]}{att.suffix}"), ("AttachType", att.code),
        ("FileName", att.name[-200:]), ("FileSize", str(att.size)), ("Sha256", att.sha256))}
        for i, att in enumerate(files, start=1)]


class _NotAsText(Exception):
    """A value the text form of a document cannot carry unchanged."""


_TEXT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _escape_attr(value: str) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").replace(">", "&gt;")


class _Positions(dict):
    """child name -> rank in schema order; `wrappers`: nested item name -> its wrapper's name."""

    def __init__(self):
        super().__init__()
        self.wrappers: dict[str, str] = {}
        self.orders: dict[tuple, list] = {}    # a record's field names -> [(name, qualified name)] in order
        self.forms: dict[tuple, tuple] = {}    # a record's field names -> (element names in order, the tags
                                               # around their values), for _text_records


@dataclass
class Built:
    root: etree._Element
    origins: dict = field(default_factory=dict)   # element -> Origin, or the Value it holds (see origin())
    rebuild: object = None    # a tree parsed from text: builds it again element by element for origins
    serialized: bytes | None = None   # a tree parsed from text: that text, which is what
                                      # etree.tostring(root, xml_declaration=True, encoding="UTF-8") writes
                                      # of it (XML declaration, UTF-8), until the tree is changed

    def origin(self, elem) -> Origin | None:
        if self.rebuild is not None:   # the same tree built with origins: its elements pair with ours
            located = self.rebuild()
            self.rebuild = None
            self.origins = {mine: located.origins.get(theirs)
                            for mine, theirs in zip(self.root.iter(), located.root.iter())}
        found = self.origins.get(elem)
        return found.origin if isinstance(found, Value) else found
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceiptOutcome:
    """What a receipt means for its message."""

    state: str | None             # new state, or None to leave it
    summary: str
    keys: dict[str, str] = field(default_factory=dict)
    final: bool = False
    unknown: str = ""             # what swgw does not know, e.g. "CHANNEL 'Q9'": kept, shown raw, alarmed once


class DocumentFamily(abc.ABC):
    key: str = ""
    root_name: str = ""
    namespace: str = ""
    xsd_name: str = ""
    key_name: str = "BusinessKey"         # what the business key is called (ClientSeqNo …)
    msg_type: str = ""
    final_states: tuple[str, ...] = ()
    waiting_states: tuple[str, ...] = ()  # waiting for the authority, nothing owed by the gateway
    resubmittable_states: tuple[str, ...] = ()  # after these, an amended document may reuse the key
    # the family's own XML document dropped as it is (gateway/mapping/native.py): where its key is,
    # and where the declaring enterprise's code may be (the first one configured wins); None: no
    native_key: tuple[str, str] | None = None
    native_enterprise: tuple[tuple[str, str], ...] = ()

    def __init__(self, xsd_dir: Path):
        self.schema = Schema(Path(xsd_dir) / self.xsd_name)
        self.order = self.schema.element_order(self.root_name)
        self._plans: dict[str, list] = {}
        self._below: dict[str, frozenset] = {}   # element -> the names under it (_descendants)
        self._repeatable: set[str] | None = None

    @property
    def repeatable(self) -> set[str]:
        """Elements that may occur more than once (for reading a document as another builder wrote it)."""
        if self._repeatable is None:
            self._repeatable = self.schema.repeatable(self.root_name)
        return self._repeatable

    def sections(self) -> dict[str, set[str]]:
        """Section name -> allowed field names, for checking mapping files."""
        return {name: set(kids) for name, kids in self.order.items() if name != self.root_name}

    # -- building -----------------------------------------------------------------
    submit_modes: dict[str, str] = {}   # [documents.<type>] submit -> how the document says so

    def enrich(self, mapped: Mapped, ctx: Context) -> list[FieldError] | None:
        """Add profile values (sender codes, operator) to the mapped sections; returns errors
        the profile finds in the document (e.g. it names another card), if any."""

    def describe(self, document: bytes | None) -> str:
        """A short note on how a stored document is submitted (status, trace), or ""."""
        return ""

    def carry(self, mapped: Mapped, files: list, ctx: Context) -> list[FieldError]:
        """Put the document's checked attachments (attachments.Attachment) where the format
        carries them; an error for each the family cannot carry."""
        return [FieldError.at(mapped.attachments[0].origin if mapped.attachments else None, "attachments",
                              "attachments", f"swgw does not carry attachments with {self.key} documents yet")
                ] if files else []

    def replaces(self, prior, mapped: Mapped) -> bool:
        """True when `mapped` may reuse the business key of the stored message `prior` because it
        replaces it (e.g. 改证重发 of an approved certificate under the same invoice number)."""
        return False

    def profile_rules(self, mapped: Mapped, ctx: Context) -> list[FieldError]:
        """Rules that check the document against the enterprise profile (registered signatories …)."""
        return []

    def rules(self, mapped: Mapped) -> list[FieldError]:
        """Business rules beyond the schema."""
        return []

    root_attributes: dict[str, str] = {}  # attributes the root carries (DecMessage version)

    def build(self, mapped: Mapped) -> Built:
        """The document's tree: written as text in schema order and parsed by lxml in one call (what
        each element came from is found only when an error asks, see Built.origin); a value the text
        cannot carry as it is (a carriage return, an empty text) builds element by element. The text
        is kept as the document's serialization (Built.serialized): it is what lxml writes of the
        tree, because the text writes each value as lxml does (&, < and > escaped, nothing else) and
        the root as lxml writes it (its namespace, then its attributes)."""
        attrs = "".join(f' {k}="{_escape_attr(v)}"' for k, v in self.root_attributes.items())
        out: list[str] = [f"{xmlsafe.DECLARATION}<{self.root_name} xmlns=\"{_escape_attr(self.namespace)}\"{attrs}>"]
        try:
            self._text_fill(out, self.root_name, mapped)
        except _NotAsText:
            return self.build_elements(mapped)
        out.append(f"</{self.root_name}>")
        try:
            data = "".join(out).encode("utf-8")
            root = etree.fromstring(data, _TEXT_PARSER)
        except (etree.XMLSyntaxError, ValueError):   # a character XML cannot hold: as the elements say it
            return self.build_elements(mapped)       # (UnicodeEncodeError, a lone surrogate, is a ValueError)
        return Built(root=root, rebuild=lambda: self.build_elements(mapped), serialized=data)

    def build_elements(self, mapped: Mapped) -> Built:
        """The document built element by element, each element's origin kept."""
        built = Built(root=etree.Element(self._q(self.root_name), self.root_attributes,
                                         nsmap={None: self.namespace}))
        self._fill(built, built.root, self.root_name, mapped)
        return built

    def _text_fill(self, out: list[str], parent_name: str, mapped: Mapped, filled: set | None = None) -> None:
        """_fill as text. `filled`: the sections with a record (what _has_data looks for)."""
        sections = mapped.sections
        if filled is None:
            filled = {name for name, items in sections.items() if any(items)}
        for child in self.order.get(parent_name, []):
            if child in sections:
                self._text_records(out, child, sections[child], skip_empty=True)
            elif child in self.order and not filled.isdisjoint(self._descendants(child)):
                out.append(f"<{child}>")
                self._text_fill(out, child, mapped, filled)
                out.append(f"</{child}>")

    def _text_records(self, out: list[str], name: str, records: list, skip_empty: bool = False) -> None:
        """_record as text, for each of the records: the same elements in the same order (`skip_empty`:
        an empty record is no element, as _fill has it). A record of values only (no records nested
        in it) is its form with the values put in, escaped only when one needs it."""
        pos = self._positions(name)
        forms = pos.forms
        for rec in records:
            if skip_empty and not rec:
                continue
            keys = tuple(rec)
            form = forms.get(keys)
            if form is None:
                form = self._text_form(pos, name, rec, keys)
            names, tags = form
            try:
                texts = [rec[k].text for k in names]
            except AttributeError:   # records nested in it (a list under their name): one by one
                self._text_nested(out, pos, name, rec, keys)
                continue
            if not all(texts):
                raise _NotAsText
            joined = "".join(texts)
            if "\r" in joined:
                raise _NotAsText
            if "&" in joined or "<" in joined or ">" in joined:
                texts = [xmlsafe.escape_text(t) for t in texts]
            parts = tags.copy()
            parts[1::2] = texts
            out += parts

    def _text_form(self, pos: "_Positions", name: str, rec: dict, keys: tuple) -> tuple:
        """A record's element names in schema order, and the tags around their values (None: a
        value's place); the records of a mapping share a few sets of fields: each made once."""
        if len(pos.forms) > 256:
            pos.forms.clear()
        names = [k for k, _ in self._order(pos, rec, keys)]
        tags = [f"<{name}><{names[0]}>" if names else f"<{name}/>"]   # as lxml writes an empty element
        for a, b in zip(names, names[1:]):
            tags += (None, f"</{a}><{b}>")
        if names:
            tags += (None, f"</{names[-1]}></{name}>")
        form = pos.forms[keys] = (names, tags)
        return form

    def _text_nested(self, out: list[str], pos: "_Positions", name: str, rec: dict, keys: tuple) -> None:
        """A record with records nested in it, as text element by element."""
        append = out.append
        append(f"<{name}>")
        start = len(out)
        open_wrapper = None
        for fname, _ in self._order(pos, rec, keys):
            value = rec[fname]
            if isinstance(value, list):
                wrapper_name = pos.wrappers.get(fname)
                if wrapper_name is not None and not value:
                    continue
                if wrapper_name != open_wrapper:
                    if open_wrapper is not None:
                        append(f"</{open_wrapper}>")
                    if wrapper_name is not None:
                        append(f"<{wrapper_name}>")
                    open_wrapper = wrapper_name
                self._text_records(out, fname, value)
                continue
            if open_wrapper is not None:
                append(f"</{open_wrapper}>")
                open_wrapper = None
            text = value.text
            if not text or "\r" in text:
                raise _NotAsText
            append(f"<{fname}>{xmlsafe.escape_text(text)}</{fname}>")
        if open_wrapper is not None:
            append(f"</{open_wrapper}>")
        if len(out) == start:   # nothing in it: an empty element, as lxml writes one
            out[-1] = f"<{name}/>"
        else:
            append(f"</{name}>")

    def _order(self, pos: "_Positions", rec: dict, keys: tuple) -> list:
        """The record's element names (with their qualified names) in schema order; the records of a
        mapping share a few sets of fields: each sorted once. Fields that are no elements are left out."""
        order = pos.orders.get(keys)
        if order is None:
            if len(pos.orders) > 256:
                pos.orders.clear()
            order = pos.orders[keys] = [(k, self._q(k)) for k in sorted((k for k in rec if k in pos),
                                                                        key=pos.__getitem__)]
        return order

    def _q(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def _fill(self, built: Built, parent, parent_name: str, mapped: Mapped) -> None:
        for child in self.order.get(parent_name, []):
            if child in mapped.sections:
                for rec in mapped.sections[child]:
                    if rec:  # an empty record (no value in any of its columns) is no element
                        self._record(built, etree.SubElement(parent, self._q(child)), child, rec)
            elif child in self.order and self._has_data(child, mapped):
                wrapper = etree.SubElement(parent, self._q(child))
                self._fill(built, wrapper, child, mapped)

    def _has_data(self, name: str, mapped: Mapped) -> bool:
        """Does a section under `name` (at any depth) have a record?"""
        return any(any(mapped.sections.get(kid) or ()) for kid in self._descendants(name))

    def _descendants(self, name: str) -> frozenset:
        """Every element name under `name` in schema order, at any depth."""
        found = self._below.get(name)
        if found is None:
            below: set[str] = set()
            for kid in self.order.get(name, []):
                below.add(kid)
                if kid in self.order:
                    below |= self._descendants(kid)
            found = self._below[name] = frozenset(below)
        return found

    def _record(self, built: Built, elem, name: str, rec: dict) -> None:
        """One record's element: its values in schema order; records nested in it (a list under
        the nested element's name) become that element, inside its wrapper when it has one."""
        first = None
        pos = self._positions(name)
        order = self._order(pos, rec, tuple(rec))
        origins = built.origins
        wrappers: dict[str, object] = {}
        sub_element = etree.SubElement
        for fname, qname in order:
            value = rec[fname]
            if isinstance(value, list):
                wrapper_name = pos.wrappers.get(fname)
                parent = elem
                if wrapper_name is not None:
                    if not value:
                        continue
                    parent = wrappers.get(wrapper_name)
                    if parent is None:
                        parent = wrappers[wrapper_name] = sub_element(elem, self._q(wrapper_name))
                for r in value:
                    self._record(built, sub_element(parent, qname), fname, r)
                continue
            sub = sub_element(elem, qname)
            sub.text = value.text
            origins[sub] = value     # its origin is made only when an error names it
            if first is None:
                first = value
        origins[elem] = first if first is not None else Origin()

    def _positions(self, name: str) -> "_Positions":
        """Where each child of a record goes in schema order: its own elements, and the items of
        the wrappers it holds (DecGoodsLimit of DecGoodsLimits) at their wrapper's place."""
        pos = self._plans.get(name)
        if pos is None:
            pos = self._plans[name] = _Positions()
            for i, kid in enumerate(self.order.get(name, [])):
                pos[kid] = 2 * i
                grandkids = self.order.get(kid) or []
                if grandkids and all(g in self.order for g in grandkids):  # a wrapper of records
                    for g in grandkids:
                        pos.setdefault(g, 2 * i + 1)
                        pos.wrappers[g] = kid
        return pos

    def locate(self, built: Built, errors) -> list[FieldError]:
        """Turn schema errors into located field errors."""
        out = []
        for err in errors:
            origin = built.origin(err.element) if err.element is not None else None
            if origin is None and err.element is not None:  # error on a parent: use its first child's origin
                origin = built.origin(err.element.getparent()) if err.element.getparent() is not None else None
            path = err.path
            field_name = "/".join(p.split("[")[0] for p in path.split("/")[-2:])
            value = err.element.text if err.element is not None and len(err.element) == 0 else None
            missing = _MISSING.search(err.reason) if err.element is not None else None
            if missing:  # the builder writes schema order: a child out of place means one before it is missing
                name = etree.QName(err.element).localname
                out.append(FieldError.at(origin, f"{name}/{missing.group(1)}", "required",
                                         f"{name} has no {missing.group(1)}, which the schema requires"))
                continue
            out.append(FieldError.at(origin, field_name, "xsd", err.reason, value))
        return out

    # -- signing ------------------------------------------------------------------
    def before_sign(self, root: etree._Element, signer: Signer, info: CardInfo, sign_date: str) -> None:
        """Fill what only the card knows (certificate number, sign date, a document-level
        signature) into the business document, before the envelope is built and signed."""

    def verify_document(self, root: etree._Element, certificate: bytes, algorithm: str) -> str | None:
        """The sandbox's check of a document-level signature: None if fine, else why not."""
        return None

    # -- receipts -----------------------------------------------------------------
    def receipt_context(self, document: bytes | None) -> dict:
        """What the sent document itself adds to its receipts' fields (keys start with _)."""
        return {}

    @abc.abstractmethod
    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome: ...

    def outcome(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        """What a receipt means: the receipts every family shares, then the family's own."""
        from gateway.store import states

        if kind == "client-failure":  # the desktop client's <Root> failure file for our OutBox file
            code, info = fields.get("failCode", ""), fields.get("failInfo", "")
            summary = f"the desktop client failed it: {code} {info}".strip()
            if current_state in self.final_states:
                return ReceiptOutcome(None, summary + f" (after {current_state}; state kept)")
            return ReceiptOutcome(states.FAILED, summary)
        return self.on_receipt(kind, fields, current_state)

    def is_settled(self, state: str) -> bool:
        from gateway.store import states

        return state in self.final_states or state in self.waiting_states or state in states.LOCAL_FINAL


def platform_outcome(fields: dict, current_state: str, forward) -> ReceiptOutcome:
    """The exchange platform's DxpRep, the same for every family: 0 acknowledged, else rejected."""
    from gateway.store import states

    code = fields.get("ResponseCode", "")
    if code in ("0", "00", "0000"):
        return forward(current_state, states.ACKNOWLEDGED, "platform accepted (DxpRep 0)")
    return ReceiptOutcome(states.REJECTED, f"platform rejected: DxpRep {code} {fields.get('ResponseInfo', '')}"
                          .strip(), final=True)
