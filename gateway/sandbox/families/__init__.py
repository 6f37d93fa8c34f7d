"""What the sandbox plays for each document family, by the business document's root element.

Each module exposes `play(ctx: Play)` for the roots it lists in ROOTS; the peer has already
accepted, archived and acknowledged (DxpRep) the envelope.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from gateway import envelope
from gateway.sandbox import receipts


@dataclass
class Play:
    peer: object                  # the Peer: settings, schedule, counter, schemas
    env: envelope.Envelope | None  # None when playing the desktop client (bare business XML)
    doc: object                   # the parsed business document (lxml element)
    root_name: str
    now: float
    client_file: str | None = None   # the OutBox file name, when playing the desktop client

    @property
    def base(self) -> str:
        """What receipt file names are built on: the CopMsgId, or the client file's stem."""
        return self.env.trans.cop_msg_id if self.env else self.client_file.rsplit(".", 1)[0]

    def import_name(self, ok: bool) -> str:
        """The import response's file name; the desktop client writes Successed_/Failed_<file>."""
        if self.client_file:
            return f"{'Successed' if ok else 'Failed'}_{self.client_file}"
        return f"Receipt_{self.base}_1_import.xml"

    @property
    def settings(self):
        return self.peer.settings

    def text(self, name: str) -> str:
        """The first element called `name` anywhere in the document, whatever its namespace."""
        for el in self.doc.iter():
            if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == name:
                return (el.text or "").strip()
        return ""

    def reply(self, msg_type: str, payload: bytes, biz_keys: dict[str, str]) -> bytes:
        if self.env is None:  # the desktop client hands the business receipt over as it is
            return payload
        return receipts.wrap(self.settings.peer.platform_id, self.env.trans.sender_id, msg_type, payload, biz_keys)

    def later(self, delay: float, name: str, data: bytes) -> None:
        self.peer.later(self.now, delay, name, data)

    def serial(self) -> int:
        return self.peer.serial()

    def schema_errors(self):
        schema = self.peer.schema_for(self.root_name)
        return schema.errors(self.doc) if schema is not None else []


def match(rules, text: Callable[[str], str]):
    """The first rule whose every `when` pattern matches the document."""
    for rule in rules:
        if all(re.search(pattern, text(name)) for name, pattern in rule.when.items()):
            return rule
    return None


def players() -> dict[str, Callable[[Play], None]]:
    from gateway.sandbox.families import declaration, inspection, licence, origin

    out = {}
    for mod in (declaration, licence, inspection, origin):
        for root in mod.ROOTS:
            out[root] = mod.play
    return out
