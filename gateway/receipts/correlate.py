"""Find the message a receipt answers, from the keys it carries."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.receipts.parse import Parsed
from gateway.store import states
from gateway.store.models import Message, MessageKey


def correlate(session: Session, receipt: Parsed) -> Message | None:
    for name, value in receipt.refs:
        if name == "CopMsgId":
            msg = session.scalar(select(Message).where(Message.cop_msg_id == value))
        else:
            q = select(Message).where(Message.state != states.INVALID).order_by(Message.id.desc())
            if receipt.doc_type:
                q = q.where(Message.doc_type == receipt.doc_type)
            by_key = q.where(Message.id.in_(select(MessageKey.message_id).where(
                MessageKey.name == name, MessageKey.value == value)))
            msg = session.scalars(by_key.limit(1)).first()
        if msg is not None:
            return msg
    return None
