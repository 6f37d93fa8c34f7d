"""The DXP envelope (DxpMsg): wrap a business document, unwrap a received one.

Validates against the official dxp-terminal-node-202205.xsd (copied into xsd/dxp/).
"""
from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway import signing, xmlsafe
from gateway.validation import Schema

DXP_NS = "http://www.chinaport.gov.cn/dxp"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_D = f"{{{DXP_NS}}}"


@dataclass
class TransInfo:
    cop_msg_id: str
    sender_id: str
    receiver_ids: list[str]
    created: dt.datetime
    msg_type: str


@dataclass
class Envelope:
    trans: TransInfo
    data: bytes
    file_name: str = ""
    ic_card: str = ""
    biz_keys: dict[str, str] = field(default_factory=dict)


class EnvelopeError(Exception):
    pass


def schema(xsd_dir: Path) -> Schema:
    return Schema(Path(xsd_dir) / "dxp" / "dxp-terminal-node-202205.xsd")


def _sub(parent, name: str, text: str | None = None):
    elem = etree.SubElement(parent, _D + name)
    if text is not None:
        elem.text = text
    return elem


def _trans_info(parent, name: str, t: TransInfo):
    ti = _sub(parent, name)
    _sub(ti, "CopMsgId", t.cop_msg_id)
    _sub(ti, "SenderId", t.sender_id)
    rids = _sub(ti, "ReceiverIds")
    for rid in t.receiver_ids:
        _sub(rids, "ReceiverId", rid)
    _sub(ti, "CreatTime", t.created.strftime("%Y-%m-%dT%H:%M:%S"))
    _sub(ti, "MsgType", t.msg_type)
    return ti


def wrap(env: Envelope) -> etree._Element:
    root = etree.Element(_D + "DxpMsg", nsmap={None: DXP_NS, "ds": DS_NS})
    root.set("ver", "1.0")
    _trans_info(root, "TransInfo", env.trans)
    _sub(root, "Data", base64.b64encode(env.data).decode("ascii"))
    add = _sub(root, "AddInfo")
    if env.file_name:
        _sub(add, "FileName", env.file_name)
    if env.ic_card:
        _sub(add, "IcCard", env.ic_card)
    if env.biz_keys:
        bk = _sub(add, "BizKey")
        for name, value in list(env.biz_keys.items())[:5]:
            _sub(bk, "Key", value).set("name", name)
    return root


# -- the envelope as text, for signing ----------------------------------------------------
# Inclusive C14N of the DxpMsg wrap() builds, written directly: what signing digests. Without empty
# elements and carriage returns it is also, byte for byte, how lxml serializes that tree, so the
# signed envelope is this text with the ds:Signature before the closing tag (signing.sign_canonical).
IN_SCOPE = f'xmlns="{DXP_NS}" xmlns:ds="{DS_NS}"'   # the namespaces C14N writes on a subtree of DxpMsg
CLOSE = b"</DxpMsg>"
_NOT_PLAIN = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")   # \r: C14N and lxml differ
_ESCAPED_IN_ATTRIBUTE = re.compile('[&<>"\t\n]')


def canonical(env: Envelope) -> bytes | None:
    """The DxpMsg of `env` without signature in inclusive C14N: `signing.c14n(wrap(env))`, byte for
    byte, without building the tree. None where the text would not also be lxml's serialization —
    a value with a control character or carriage return, a key name needing escapes in an attribute,
    an empty ReceiverIds or AddInfo (lxml writes <X/>) —: then the tree is the way (wrap, which also
    refuses what is not XML)."""
    t = env.trans
    keys = list(env.biz_keys.items())[:5]
    names = "".join(k for k, _ in keys)
    if not t.receiver_ids or not (env.file_name or env.ic_card or keys) or _ESCAPED_IN_ATTRIBUTE.search(names) \
            or _NOT_PLAIN.search("".join((t.cop_msg_id, t.sender_id, *t.receiver_ids, t.msg_type, env.file_name,
                                          env.ic_card, names, *(v for _, v in keys)))):
        return None
    parts = [f'<DxpMsg {IN_SCOPE} ver="1.0"><TransInfo><CopMsgId>{xmlsafe.escape_text(t.cop_msg_id)}</CopMsgId>'
             f'<SenderId>{xmlsafe.escape_text(t.sender_id)}</SenderId><ReceiverIds>']
    parts += [f"<ReceiverId>{xmlsafe.escape_text(rid)}</ReceiverId>" for rid in t.receiver_ids]
    parts.append(f'</ReceiverIds><CreatTime>{t.created.strftime("%Y-%m-%dT%H:%M:%S")}</CreatTime>'
                 f'<MsgType>{xmlsafe.escape_text(t.msg_type)}</MsgType></TransInfo><Data>')
    head = "".join(parts).encode()
    add = ["</Data><AddInfo>"]
    if env.file_name:
        add.append(f"<FileName>{xmlsafe.escape_text(env.file_name)}</FileName>")
    if env.ic_card:
        add.append(f"<IcCard>{xmlsafe.escape_text(env.ic_card)}</IcCard>")
    if keys:
        add += ["<BizKey>", *(f'<Key name="{k}">{xmlsafe.escape_text(v)}</Key>' for k, v in keys), "</BizKey>"]
    add.append("</AddInfo></DxpMsg>")
    return b"".join((head, base64.b64encode(env.data), "".join(add).encode()))


def signed(env: Envelope, signer, cert_no: str, profile: str = "chinaport-2022") -> bytes:
    """The envelope, signed and serialized: `signing.sign(wrap(env), …)`, from the text form when it
    has one (a test holds the two byte for byte equal)."""
    text = canonical(env)
    if text is None or _NOT_PLAIN.search(cert_no):
        return signing.sign(wrap(env), signer, cert_no, profile)
    return signing.sign_canonical(text, CLOSE, IN_SCOPE, signer, cert_no, profile)


def _text(elem, path: str) -> str:
    found = elem.find(path)
    return (found.text or "").strip() if found is not None else ""


def read_trans_info(ti) -> TransInfo:
    created_text = _text(ti, _D + "CreatTime")
    try:
        created = dt.datetime.fromisoformat(created_text)
    except ValueError:
        created = dt.datetime.min
    return TransInfo(
        cop_msg_id=_text(ti, _D + "CopMsgId"),
        sender_id=_text(ti, _D + "SenderId"),
        receiver_ids=[(r.text or "").strip() for r in ti.iter(_D + "ReceiverId")],
        created=created,
        msg_type=_text(ti, _D + "MsgType"),
    )


def unwrap(root: etree._Element) -> Envelope:
    if root.tag != _D + "DxpMsg":
        raise EnvelopeError(f"expected a DxpMsg, got {etree.QName(root).localname}")
    ti = root.find(_D + "TransInfo")
    if ti is None:
        raise EnvelopeError("DxpMsg has no TransInfo")
    try:
        data = base64.b64decode(_text(root, _D + "Data"), validate=True)
    except ValueError:
        raise EnvelopeError("DxpMsg Data is not valid base64") from None
    add = root.find(_D + "AddInfo")
    keys = {}
    if add is not None:
        for key in add.iter(_D + "Key"):
            keys[key.get("name", "")] = (key.text or "").strip()
    return Envelope(
        trans=read_trans_info(ti),
        data=data,
        file_name=_text(add, _D + "FileName") if add is not None else "",
        ic_card=_text(add, _D + "IcCard") if add is not None else "",
        biz_keys=keys,
    )


def parse(data: bytes) -> tuple[etree._Element, Envelope]:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise EnvelopeError(str(exc)) from None
    return root, unwrap(root)
