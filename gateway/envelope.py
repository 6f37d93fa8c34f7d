"""The DXP envelope (DxpMsg): wrap a business document, unwrap a received one.

Validates against the official dxp-terminal-node-202205.xsd (copied into xsd/dxp/).
"""
from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gateway import xmlsafe
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
