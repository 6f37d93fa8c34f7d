"""SQLAlchemy models. The event table is append-only: the audit trail."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, WriteOnlyMapped, mapped_column, relationship

ID = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class IntakeFile(Base):
    """A drop file (or queued record) the gateway took, by content hash."""

    __tablename__ = "intake_files"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    doc_type: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(400))          # folder or queue it came from
    name: Mapped[str] = mapped_column(String(400))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20))          # accepted | partial | error | duplicate
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_intake_hash", "doc_type", "sha256"),)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    doc_type: Mapped[str] = mapped_column(String(40))
    enterprise: Mapped[str] = mapped_column(String(40))
    business_key: Mapped[str] = mapped_column(String(100))
    cop_msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(40))
    intake_file_id: Mapped[int | None] = mapped_column(ForeignKey("intake_files.id"), nullable=True)
    source_ref: Mapped[str] = mapped_column(String(400), default="")   # file and rows
    content_sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # business XML
    envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # signed DxpMsg
    errors: Mapped[list | None] = mapped_column(JSON, nullable=True)
    signer: Mapped[str] = mapped_column(String(60), default="")
    transport: Mapped[str] = mapped_column(String(60), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_receipt: Mapped[str] = mapped_column(String(300), default="")
    # lifecycle (revision 0002): retries, deadlines, resends, housekeeping
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    transmit_failures: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    overdue: Mapped[str] = mapped_column(String(40), default="")        # which deadline was missed
    overdue_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resends: Mapped[int] = mapped_column(Integer, default=0)
    pruned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # cluster (revision 0008_cluster): the process whose batch holds the message, until when
    lease_owner: Mapped[str] = mapped_column(String(120), default="")
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    keys: Mapped[list[MessageKey]] = relationship(back_populates="message", cascade="all, delete-orphan",
                                                  order_by="MessageKey.id")  # in the order they came
    # loaded with each batch of messages in one query (sign and transmit ask every message); the
    # bytes themselves only when a package is built
    attachments: Mapped[list[MessageAttachment]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                                order_by="MessageAttachment.seq")
    intake_file: Mapped[IntakeFile | None] = relationship()
    # write-only: appending an event never loads a message's whole history
    events: WriteOnlyMapped[Event] = relationship(passive_deletes=True)
    __table_args__ = (
        Index("ix_messages_state", "state"),
        Index("ix_messages_overdue", "overdue"),
        Index("ix_messages_key", "doc_type", "enterprise", "business_key"),
        Index("ix_messages_created", "created_at"),
        Index("ix_messages_type_state", "doc_type", "state"),
    )


class MessageKey(Base):
    """Every business number a message is known by (ClientSeqNo, SeqNo, entry id …)."""

    __tablename__ = "message_keys"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(100))
    message: Mapped[Message] = relationship(back_populates="keys")
    __table_args__ = (
        UniqueConstraint("message_id", "name", "value"),
        Index("ix_message_keys_value", "value"),
    )


class MessageAttachment(Base):
    """A file carried with a message (revision 0005_origin): checked, hashed, kept until sent."""

    __tablename__ = "message_attachments"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    seq: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(20))             # the format's type code (EdocCode …)
    name: Mapped[str] = mapped_column(String(255))            # as the ERP named it
    carried_as: Mapped[str] = mapped_column(String(100))      # its name in the package (EdocID …)
    media_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    __table_args__ = (Index("ix_message_attachments_message", "message_id"),)


class CcpitFiling(Base):
    """An approved (or partly approved) CCPIT product filing (商品备案) the enterprise may name on a
    preferential certificate (revision 0005_origin): from a filing receipt, a sync, or the CSV."""

    __tablename__ = "ccpit_filings"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    filing_no: Mapped[str] = mapped_column(String(32), unique=True)
    enterprise: Mapped[str] = mapped_column(String(40), default="")
    hs_code: Mapped[str] = mapped_column(String(10), default="")
    name_en: Mapped[str] = mapped_column(String(200), default="")
    areas: Mapped[list | None] = mapped_column(JSON, nullable=True)   # [{"area", "status", "reason"}]
    source: Mapped[str] = mapped_column(String(60), default="")      # receipt <id> | sync <id>
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncRequest(Base):
    """数据同步: one request to the platform for the enterprise's filings or registration data."""

    __tablename__ = "sync_requests"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    sync_type: Mapped[str] = mapped_column(String(20))                 # filings | enterprise
    enterprise: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(60), default="")
    status: Mapped[str] = mapped_column(String(20))                    # queued | requested | done | failed
    count: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(String(500), default="")
    cop_msg_id: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CcpitProfile(Base):
    """同步企业信息: the enterprise's registration data and registered signatories (手签员) as CCPIT's
    answer last gave them (revision 0007_origin13); they win over the config's [[enterprise.signatories]]."""

    __tablename__ = "ccpit_profiles"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    enterprise: Mapped[str] = mapped_column(String(40), unique=True)
    ent_name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(400), default="")
    signatories: Mapped[list | None] = mapped_column(JSON, nullable=True)   # [{"name", "status"}]
    source: Mapped[str] = mapped_column(String(60), default="")             # sync <request id>
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    """One line of a message's audit trail. Rows are only ever inserted."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))              # state | receipt | error | info
    from_state: Mapped[str] = mapped_column(String(40), default="")
    to_state: Mapped[str] = mapped_column(String(40), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    # set on a new message's event (its id comes at the flush); Message.events is the other side
    message: Mapped[Message | None] = relationship(overlaps="events")
    __table_args__ = (Index("ix_events_message", "message_id"),)


class Receipt(Base):
    """A receipt as it arrived. Kept even when it matches no message."""

    __tablename__ = "receipts"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True)
    transport: Mapped[str] = mapped_column(String(60))
    remote_name: Mapped[str] = mapped_column(String(400))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    doc_type: Mapped[str] = mapped_column(String(40), default="")
    summary: Mapped[str] = mapped_column(String(500), default="")
    enterprise: Mapped[str] = mapped_column(String(40), default="")   # an order without a message: who it names
    fields: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    routed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pruned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    __table_args__ = (Index("ix_receipts_routed", "routed_at"),)


class Subscription(Base):
    """状态推送: matching receipts also go to an extra folder or queue. Empty match fields match all."""

    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    business_key: Mapped[str] = mapped_column(String(100), default="")
    enterprise: Mapped[str] = mapped_column(String(40), default="")
    operator: Mapped[str] = mapped_column(String(60), default="")
    kinds: Mapped[str] = mapped_column(String(300), default="")          # comma-separated; empty: all
    folder: Mapped[str] = mapped_column(String(500), default="")
    queue: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SubscriptionPending(Base):
    """A subscription copy that waits for its queue (the broker was away); retried with backoff."""

    __tablename__ = "subscription_pending"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ID)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipts.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("subscription_id", "receipt_id"),)


# -- the operator console and what the daemon reports for it (revision 0006_console) ----------
class Alarm(Base):
    """An alarm as raised (gateway/alarms.py), kept so the console can list and acknowledge it."""

    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    message_id: Mapped[int | None] = mapped_column(ID, nullable=True)       # the message it is about, if any
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acked_by: Mapped[str] = mapped_column(String(80), default="")
    __table_args__ = (Index("ix_alarms_open", "acked_at"),)


class Component(Base):
    """What the daemon last knew of a transport link or a signer: up/down, present/absent/halted."""

    __tablename__ = "components"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)   # "transport exchange send", "signer op"
    kind: Mapped[str] = mapped_column(String(20))                        # link | signer
    state: Mapped[str] = mapped_column(String(20))                       # up, down | present, absent, halted
    detail: Mapped[str] = mapped_column(String(500), default="")
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleUser(Base):
    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))                        # viewer | operator | admin
    password_hash: Mapped[str] = mapped_column(String(200))              # argon2id
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)       # since the last good one
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSession(Base):
    """A logged-in browser: the cookie holds the token, the store only its SHA-256."""

    __tablename__ = "console_sessions"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """Every login attempt (by name and client address): the rate limit counts these."""

    __tablename__ = "console_login_attempts"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    client: Mapped[str] = mapped_column(String(80), default="")
    ok: Mapped[bool] = mapped_column(Integer, default=0)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_login_attempts_client", "client", "at"),)


# -- several `swgw run` processes on one store (revision 0008_cluster) ----------------------------
class ClusterMember(Base):
    """A `swgw run` process as it reports itself (gateway/cluster.py); `swgw doctor` lists them."""

    __tablename__ = "cluster_members"
    id: Mapped[str] = mapped_column(String(120), primary_key=True)      # host:pid:start — the lease owner
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(40), default="run")
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    leader: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
