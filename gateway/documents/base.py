"""What every document family provides, and the generic tree builder they share.

A family (declaration, origin, licence …) names its schema and root, enriches mapped
data with what the enterprise profile supplies, checks its business rules, and says
how each receipt moves its state. The tree is built in schema order, and every
element remembers the ERP row/column it came from, so schema and rule errors can
be reported in the user's terms.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from card.signer import CardInfo, Signer
from gateway.config import Enterprise, Operator
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError, Origin
from gateway.validation import Schema

PROFILE = Origin()  # values that come from the enterprise profile, not from the file


@dataclass
class Context:
    enterprise: Enterprise
    operator: Operator
    media_no: str                 # the operator's card (介质号), from the signer config

    def fill_sign(self, mapped: Mapped, section: str) -> dict[str, Value]:
        """The document's signing section, with the operator's name and card (介质号) filled in
        from the profile; returns it for the family's own fields."""
        sign = mapped.sections.setdefault(section, [{}])[0]
        sign["OperName"] = Value(self.operator.name, PROFILE)
        sign["ICCode"] = Value(self.media_no, PROFILE)
        return sign


@dataclass
class Built:
    root: etree._Element
    origins: dict = field(default_factory=dict)   # element -> Origin
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceiptOutcome:
    """What a receipt means for its message."""

    state: str | None             # new state, or None to leave it
    summary: str
    keys: dict[str, str] = field(default_factory=dict)
    final: bool = False


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

    def __init__(self, xsd_dir: Path):
        self.schema = Schema(Path(xsd_dir) / self.xsd_name)
        self.order = self.schema.element_order(self.root_name)

    def sections(self) -> dict[str, set[str]]:
        """Section name -> allowed field names, for checking mapping files."""
        return {name: set(kids) for name, kids in self.order.items() if name != self.root_name}

    # -- building -----------------------------------------------------------------
    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        """Add profile values (sender codes, operator) to the mapped sections."""

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

    def build(self, mapped: Mapped) -> Built:
        built = Built(root=etree.Element(self._q(self.root_name), nsmap={None: self.namespace}))
        self._fill(built, built.root, self.root_name, mapped)
        return built

    def _q(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def _fill(self, built: Built, parent, parent_name: str, mapped: Mapped) -> None:
        for child in self.order.get(parent_name, []):
            if child in mapped.sections:
                for rec in mapped.sections[child]:
                    self._record(built, etree.SubElement(parent, self._q(child)), child, rec)
            elif child in self.order and self._has_data(child, mapped):
                wrapper = etree.SubElement(parent, self._q(child))
                self._fill(built, wrapper, child, mapped)

    def _has_data(self, name: str, mapped: Mapped) -> bool:
        for kid in self.order.get(name, []):
            if mapped.sections.get(kid) or (kid in self.order and self._has_data(kid, mapped)):
                return True
        return False

    def _record(self, built: Built, elem, name: str, rec: dict[str, Value]) -> None:
        built.origins[elem] = next(iter(rec.values())).origin if rec else Origin()
        for fname in self.order.get(name, []):
            if fname in rec:
                sub = etree.SubElement(elem, self._q(fname))
                sub.text = rec[fname].text
                built.origins[sub] = rec[fname].origin

    def locate(self, built: Built, errors) -> list[FieldError]:
        """Turn schema errors into located field errors."""
        out = []
        for err in errors:
            origin = built.origins.get(err.element) if err.element is not None else None
            if origin is None and err.element is not None:  # error on a parent: use its first child's origin
                origin = built.origins.get(err.element.getparent()) if err.element.getparent() is not None else None
            path = err.path
            field_name = "/".join(p.split("[")[0] for p in path.split("/")[-2:])
            value = err.element.text if err.element is not None and len(err.element) == 0 else None
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
    @abc.abstractmethod
    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome: ...

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
