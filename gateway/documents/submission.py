"""How a stored document says it is submitted (a declaration's DecSign/OperType), read from its
bytes alone: what `swgw status` and `trace` show without building any document type (no schema,
no mapping), so they stay fast."""
from __future__ import annotations

import re

# DecSign/OperType of the import format, by [documents.declaration] submit
SUBMIT = {"declare": "C", "draft": "G", "upload": "A", "upload-transit": "B", "declare-transit": "D",
          "manual-upload": "E"}
OPER_TYPES = {"A": "报关单上载 (upload)", "B": "报关单、转关单上载 (upload with transit)", "C": "报关单申报 (declare)",
              "D": "报关单、转关单申报 (declare with transit)", "E": "电子手册报关单上载 (manual upload)",
              "G": "报关单暂存 (draft)"}
_OPER_TYPE = re.compile(rb"<(?:\w+:)?OperType>\s*([A-Z])\s*</")


def declaration(document: bytes | None) -> str:
    document = document or b""
    at = document.find(b"OperType>")   # the regex from the tag's "<" on, not tried at every "<" before it
    if at < 0:
        return ""
    found = _OPER_TYPE.search(document, max(document.rfind(b"<", 0, at), 0))
    if not found:
        return ""
    code = found.group(1).decode()
    return f"OperType {code} {OPER_TYPES.get(code, '(unknown)')}"


# document type -> its description (a family whose documents say nothing about it has none)
DESCRIBE = {"declaration": declaration}


def describe(doc_type: str, document: bytes | None) -> str:
    how = DESCRIBE.get(doc_type)
    return how(document) if how else ""
