"""What the Single Window answers, as XML: DxpRep, and business receipts in a DxpMsg."""
from __future__ import annotations

import datetime as dt
import uuid

from lxml import etree

from gateway import envelope

DEC_NS = "http://www.chinaport.gov.cn/dec"


def _el(parent, tag, text=None):
    e = etree.SubElement(parent, tag)
    if text is not None:
        e.text = text
    return e


def dxp_rep(receiver: str, code: str, info: str, ori: envelope.TransInfo | None) -> bytes:
    d = f"{{{envelope.DXP_NS}}}"
    root = etree.Element(d + "DxpRep", nsmap={None: envelope.DXP_NS})
    root.set("ver", "1.0")
    _el(root, d + "RecevierId", (receiver or "UNKNOWN")[:16])
    resp = _el(root, d + "Response")
    _el(resp, d + "ResponseCode", code)
    _el(resp, d + "ResponseInfo", info[:300])
    _el(resp, d + "NoticeTime", dt.date.today().isoformat())
    envelope._trans_info(resp, "OriHead", ori or envelope.TransInfo("UNKNOWN", "UNKNOWN", ["UNKNOWN"],
                                                                     dt.datetime.now(), ""))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def import_response(client_seq_no: str, seq_no: str, ok: bool, message: str) -> bytes:
    q = f"{{{DEC_NS}}}"
    root = etree.Element(q + "DecImportResponse", nsmap={None: DEC_NS})
    _el(root, q + "ResponseCode", "0" if ok else "1")
    _el(root, q + "ErrorMessage", message)
    _el(root, q + "ClientSeqNo", client_seq_no)
    _el(root, q + "SeqNo", seq_no if ok else "")
    _el(root, q + "TrnPreId", "")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def dec_result(seq_no: str, entry_id: str, channel: str, note: str, customs: str, ie_date: str) -> bytes:
    root = etree.Element("DEC_DATA")
    res = _el(root, "DEC_RESULT")
    now = dt.datetime.now()
    _el(res, "CUS_CIQ_NO", seq_no)
    _el(res, "ENTRY_ID", entry_id)
    _el(res, "NOTICE_DATE", now.strftime("%Y-%m-%dT%H:%M:%S"))
    _el(res, "CHANNEL", channel)
    _el(res, "NOTE", note)
    _el(res, "CUSTOM_MASTER", customs)
    _el(res, "I_E_DATE", ie_date)
    _el(res, "D_DATE", now.strftime("%Y%m%d"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def wrap(platform_id: str, receiver: str, msg_type: str, payload: bytes, biz_keys: dict[str, str]) -> bytes:
    env = envelope.Envelope(
        trans=envelope.TransInfo(uuid.uuid4().hex, platform_id, [receiver[:16]],
                                 dt.datetime.now().replace(microsecond=0), msg_type),
        data=payload, biz_keys=biz_keys)
    return etree.tostring(envelope.wrap(env), xml_declaration=True, encoding="UTF-8")
