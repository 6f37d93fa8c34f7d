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
    """The customs status receipt as the platform sends it: a bare <DEC_RESULT> (no namespace),
    CUS_CIQ_NO the unified number, NOTICE_DATE like 2019-03-14T22:49:37, D_DATE like 20190314."""
    res = etree.Element("DEC_RESULT")
    now = dt.datetime.now()
    _el(res, "CUS_CIQ_NO", seq_no)
    _el(res, "ENTRY_ID", entry_id)
    _el(res, "NOTICE_DATE", now.strftime("%Y-%m-%dT%H:%M:%S"))
    _el(res, "CHANNEL", channel)
    _el(res, "NOTE", note)
    _el(res, "CUSTOM_MASTER", customs)
    _el(res, "I_E_DATE", ie_date)
    _el(res, "D_DATE", now.strftime("%Y%m%d"))
    return etree.tostring(res, xml_declaration=True, encoding="UTF-8", standalone=True)


def dec_data(seq_no: str, entry_id: str, channel: str, note: str, customs: str, ie_date: str,
             trade_co: str = "", bill_no: str = "") -> bytes:
    """The legacy form (the `legacy` receipt profile): DEC_DATA/DEC_RESULT with SEQ_NO, NOTICE_DATE
    like 20180208T15032200, DECL_PORT, TRADE_CO, BILL_NO … and a sibling RESULT_INFO, in GB2312."""
    root = etree.Element("DEC_DATA")
    res = _el(root, "DEC_RESULT")
    now = dt.datetime.now()
    for name, value in (("SEQ_NO", seq_no), ("ENTRY_ID", entry_id),
                        ("NOTICE_DATE", now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 10000:02d}"),
                        ("CHANNEL", channel), ("NOTE", note), ("DECL_PORT", customs), ("AGENT_NAME", ""),
                        ("DECLARE_NO", ""), ("TRADE_CO", trade_co), ("CUSTOMS_FIELD", ""), ("BONDED_NO", ""),
                        ("I_E_DATE", ie_date), ("PACK_NO", ""), ("BILL_NO", bill_no), ("TRAF_MODE", ""),
                        ("VOYAGE_NO", ""), ("NET_WT", ""), ("GROSS_WT", ""), ("D_DATE", now.strftime("%Y%m%d"))):
        _el(res, name, value)
    _el(root, "RESULT_INFO", note)
    return etree.tostring(root, xml_declaration=True, encoding="GB2312")


def client_failure(code: str, info: str) -> bytes:
    """The desktop client's own failure file (it could not sign or send what we gave it)."""
    root = etree.Element("Root")
    flag = _el(root, "resultFlag")
    _el(flag, "Type", "1")
    _el(flag, "Value", "11")
    _el(root, "failCode", code).set("version", "1")
    _el(root, "failInfo", info)
    _el(root, "retData", "")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def wrap(platform_id: str, receiver: str, msg_type: str, payload: bytes, biz_keys: dict[str, str]) -> bytes:
    env = envelope.Envelope(
        trans=envelope.TransInfo(uuid.uuid4().hex, platform_id, [receiver[:16]],
                                 dt.datetime.now().replace(microsecond=0), msg_type),
        data=payload, biz_keys=biz_keys)
    return etree.tostring(envelope.wrap(env), xml_declaration=True, encoding="UTF-8")


LICENCE_NS = "urn:swgw:licence"


def _now_iso() -> str:
    return dt.datetime.now().replace(microsecond=0).isoformat()


def _licence_doc(root_name: str, values: list[tuple[str, str]]) -> bytes:
    q = f"{{{LICENCE_NS}}}"
    root = etree.Element(q + root_name, nsmap={None: LICENCE_NS})
    for name, value in values:
        if value not in (None, ""):
            _el(root, q + name, str(value))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def licence_approval(code: str, apply_no: str, status: str, mofcom_apply_no: str = "", licence_no: str = "",
                     opinion: str = "", approved_qty: str = "") -> bytes:
    """MOFCOM's approval result (待初审 审批中 审批通过 退回 撤销) for one application."""
    return _licence_doc("LicenseApprovalResult", [
        ("SupervisionCode", code), ("ApplyNo", apply_no), ("MofcomApplyNo", mofcom_apply_no),
        ("LicenseNo", licence_no), ("Status", status), ("Opinion", opinion), ("ApprovedQty", approved_qty),
        ("NoticeTime", _now_iso())])


def licence_customs(code: str, licence_no: str, apply_no: str, status: str, entry_id: str = "",
                    write_off: str = "", used: str = "", remaining: str = "", note: str = "") -> bytes:
    """The licence's customs status (海关入库成功 … 报关单核注 with the entry and 报关余量)."""
    return _licence_doc("LicenseCustomsStatus", [
        ("SupervisionCode", code), ("LicenseNo", licence_no), ("ApplyNo", apply_no), ("CustomsStatus", status),
        ("EntryId", entry_id), ("WriteOffQty", write_off), ("UsedQty", used), ("RemainingQty", remaining),
        ("Note", note), ("NoticeTime", _now_iso())])


def licence_document(code: str, licence_no: str, apply_no: str, fmt: str, content: bytes) -> bytes:
    """The electronic licence (电子许可证): data (xml) or a PDF, base64 in Content."""
    import base64

    return _licence_doc("LicenseDocument", [
        ("SupervisionCode", code), ("LicenseNo", licence_no), ("ApplyNo", apply_no), ("Format", fmt),
        ("Content", base64.b64encode(content).decode()), ("NoticeTime", _now_iso())])


def licence_withdrawal(code: str, apply_no: str, status: str, reason: str = "") -> bytes:
    """The 撤销状态 of an enterprise's withdrawal (撤销成功 / 撤销失败 with the reason)."""
    return _licence_doc("LicenseWithdrawalResult", [
        ("SupervisionCode", code), ("ApplyNo", apply_no), ("WithdrawStatus", status), ("Reason", reason),
        ("NoticeTime", _now_iso())])


def filing_result(kind: str, filing_no: str, uscc: str, status: str, reason: str = "") -> bytes:
    """MOFCOM's answer to an enterprise filing (已注册 / 未通过 with the reason)."""
    return _licence_doc("MofcomFilingResult", [
        ("FilingKind", kind), ("FilingNo", filing_no), ("EnterpriseScc", uscc), ("Status", status),
        ("Reason", reason), ("NoticeTime", _now_iso())])


INSPECTION_NS = "urn:swgw:inspection"


def _inspection_doc(root_name: str, values: list[tuple[str, str]]):
    q = f"{{{INSPECTION_NS}}}"
    root = etree.Element(q + root_name, nsmap={None: INSPECTION_NS})
    for name, value in values:
        if value not in (None, ""):
            _el(root, q + name, str(value))
    return root


def inspection_order(inspection_no: str, entry_id: str, customs: str, unload_place: str, trade_name: str,
                     containers: list[tuple[str, str]], note: str = "") -> bytes:
    """海关查验指令: customs orders the containers of a declaration to the inspection area."""
    root = _inspection_doc("InspectionOrder", [
        ("InspectionNo", inspection_no), ("EntryId", entry_id), ("InspCustoms", customs),
        ("UnloadPlaceCode", unload_place), ("TradeName", trade_name),
        ("NoticeTime", dt.datetime.now().strftime("%Y%m%d%H%M%S")), ("Note", note)])
    if containers:
        q = f"{{{INSPECTION_NS}}}"
        box = _el(root, q + "OrderContainers")
        for cid, md in containers:
            item = _el(box, q + "OrderContainer")
            _el(item, q + "ContainerId", cid)
            if md:
                _el(item, q + "ContainerMd", md)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def feedback_receipt(message_no: str, inspection_no: str, entry_id: str, ok: bool, reason: str = "") -> bytes:
    """The answer to a container-shift feedback, with 回执时间."""
    root = _inspection_doc("InspectionFeedbackReceipt", [
        ("MessageNo", message_no), ("InspectionNo", inspection_no), ("EntryId", entry_id),
        ("Status", "成功" if ok else "退回"), ("Reason", reason),
        ("ReceiptTime", dt.datetime.now().strftime("%Y%m%d%H%M%S"))])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


ORIGIN_NS = "urn:swgw:origin"


def ccpit_result(root_name: str, values: list[tuple[str, str]]) -> bytes:
    """CCPIT's audit result (OriginAuditResult / FilingAuditResult)."""
    q = f"{{{ORIGIN_NS}}}"
    root = etree.Element(q + root_name, nsmap={None: ORIGIN_NS})
    for name, value in [*values, ("NoticeTime", _now_iso())]:
        if isinstance(value, list):   # a repeated record, e.g. AreaResult: [(PrefArea, E), (Status, …)]
            item = _el(root, q + name)
            for sub, text in value:
                if text not in (None, ""):
                    _el(item, q + sub, str(text))
        elif value not in (None, ""):
            _el(root, q + name, str(value))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
