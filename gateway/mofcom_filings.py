"""MOFCOM enterprise filings: 机电 企业信息备案 (`me`) and 非机电 重农信息备案 (`agri`).

「初次在“单一窗口”申请机电产品自动进口许可证的企业，应先…进行企业备案申请」: an M&E application
needs the enterprise's `me` filing registered, a non-M&E one its `agri` filing. A filing is
registered when MOFCOM answered swgw's filing (`swgw enterprise file me|agri`) with 已注册, or
when the profile says it was registered before swgw (`[[enterprise]] mofcom_filings`, what
「获取商务部备案信息」 finds).
"""
from __future__ import annotations

from sqlalchemy import select

from gateway.store.models import Message, MessageKey

REQUIRED = {"me-import-license": "me", "auto-import-license": "agri"}
NAMES = {"me": "机电企业信息备案", "agri": "重农信息备案"}
DOC_TYPES = {"me": "me-import-license", "agri": "auto-import-license"}   # a filing travels as its family


class NotFiled(Exception):
    """The enterprise's required MOFCOM filing is not registered: the application is not sent."""


def registered(s, ent, kind: str) -> bool:
    if kind in ent.mofcom_filings:
        return True
    q = select(Message.id).where(Message.doc_type == DOC_TYPES[kind], Message.enterprise == ent.code,
                                 Message.state == "registered",
                                 Message.id.in_(select(MessageKey.message_id).where(
                                     MessageKey.name == "FilingKind", MessageKey.value == kind)))
    return s.scalar(q.limit(1)) is not None


def require(s, ent, doc_type: str, key: str) -> None:
    kind = REQUIRED.get(doc_type)
    if kind and not registered(s, ent, kind):
        raise NotFiled(f"enterprise {ent.code} has no registered {NAMES[kind]} at MOFCOM, which a {doc_type} "
                       f"application needs: send it with `swgw enterprise file {kind}` (or list it in "
                       f"[[enterprise]] mofcom_filings if MOFCOM has it already)")
