"""Parse a received file into a receipt: its kind, fields, and the keys that find its message.

A receipt is either a bare DxpRep (the platform's answer to one DxpMsg) or a DxpMsg
from the platform whose Data is a business receipt (DecImportResponse, DEC_DATA …).
Each business receipt kind is one entry in KINDS: root element -> kind, document
type, fields to read, and which fields identify the message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from gateway import envelope, xmlsafe

DXP = envelope.DXP_NS


@dataclass(frozen=True)
class Kind:
    name: str
    doc_type: str
    fields: tuple[str, ...]
    refs: tuple[str, ...]          # field names that identify the message, most specific first
    record: str | None = None      # element holding the fields, if not the root
    doc_type_by: tuple[str, dict[str, str]] | None = None   # receipts shared by families: field -> type
    lists: tuple[tuple[str, tuple[str, ...]], ...] = ()     # repeated records: element -> its fields


LICENCE_TYPES = {"4": "export-license", "O": "me-import-license", "7": "auto-import-license"}

KINDS: dict[str, Kind] = {
    "DecImportResponse": Kind("import-response", "declaration",
                              ("ResponseCode", "ErrorMessage", "ClientSeqNo", "SeqNo", "TrnPreId"),
                              ("ClientSeqNo", "SeqNo")),
    "DEC_DATA": Kind("dec-result", "declaration",
                     ("CUS_CIQ_NO", "ENTRY_ID", "NOTICE_DATE", "CHANNEL", "NOTE", "CUSTOM_MASTER", "I_E_DATE",
                      "D_DATE"),
                     ("CUS_CIQ_NO", "ENTRY_ID"), record="DEC_RESULT"),
    # MOFCOM licences: one receipt shape for the three licence families, told apart by 监管代码
    "LicenseApprovalResult": Kind("licence-approval", "",
                                  ("SupervisionCode", "ApplyNo", "MofcomApplyNo", "LicenseNo", "Status", "Opinion",
                                   "ApprovedQty", "NoticeTime"),
                                  ("ApplyNo", "LicenseNo"), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    "LicenseCustomsStatus": Kind("licence-customs", "",
                                 ("SupervisionCode", "LicenseNo", "ApplyNo", "CustomsStatus", "EntryId", "WriteOffQty",
                                  "UsedQty", "RemainingQty", "Note", "NoticeTime"),
                                 ("ApplyNo", "LicenseNo"), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    # customs inspection: the order finds its declaration by 报关单号; the feedback receipt its feedback
    "InspectionOrder": Kind("inspection-order", "declaration",
                            ("InspectionNo", "EntryId", "InspCustoms", "UnloadPlaceCode", "TradeName", "TradeCode",
                             "NoticeTime", "Note"),
                            ("EntryId", "InspectionNo")),
    "InspectionFeedbackReceipt": Kind("feedback-receipt", "inspection-feedback",
                                      ("MessageNo", "InspectionNo", "EntryId", "Status", "Reason", "ReceiptTime"),
                                      ("MessageNo",)),
    # CCPIT audits: a certificate by its invoice number (a void, by the certificate number), a filing
    # by its application number
    "OriginAuditResult": Kind("origin-audit", "origin", ("InvoiceNo", "CertType", "CertNo", "Status", "Reason",
                                                          "NoticeTime"), ("CertNo", "InvoiceNo")),
    "FilingAuditResult": Kind("filing-audit", "origin-filing", ("FilingApplyNo", "FilingNo", "Status", "Reason",
                                                                 "NoticeTime"), ("FilingApplyNo", "FilingNo"),
                              lists=(("AreaResult", ("PrefArea", "Status", "Reason")),)),   # 优惠区域备案状态
    # 证书自助打印: the issued certificate for printing (PDF/OFD or print data, base64 in Content)
    "CertificatePrint": Kind("certificate", "origin", ("InvoiceNo", "CertType", "CertNo", "FileType", "FileName",
                                                       "NoticeTime"), ("CertNo", "InvoiceNo")),
    # 数据同步: the platform's answer to a sync request, by its RequestId
    "CcpitSyncResult": Kind("ccpit-sync", "origin-filing",
                            ("RequestId", "SyncType", "CcpitEntCode", "EnterpriseCode", "Status", "Reason", "Count",
                             "EntName", "Address", "Signatories", "NoticeTime"), ("RequestId",),
                            lists=(("Filing", ("FilingNo", "HsCode", "NameEn", "PrefAreas")),)),
}
# how a ref field is stored as a message key
REF_KEYS = {"ClientSeqNo": "ClientSeqNo", "SeqNo": "SeqNo", "CUS_CIQ_NO": "SeqNo", "ENTRY_ID": "EntryId"}


class ReceiptError(Exception):
    pass


@dataclass
class Parsed:
    kind: str
    doc_type: str
    fields: dict[str, str]
    refs: list[tuple[str, str]] = field(default_factory=list)   # (key name, value); "CopMsgId" for our id
    payload: bytes = b""                                          # the business XML (or the DxpRep itself)
    enterprise: str = ""


def _local(elem) -> str:
    return etree.QName(elem).localname


def _read_fields(elem, names) -> dict[str, str]:
    out = {}
    for child in elem:
        if isinstance(child.tag, str) and _local(child) in names:
            out[_local(child)] = (child.text or "").strip()
    return out


def parse(data: bytes) -> Parsed:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise ReceiptError(str(exc)) from None
    name = _local(root)
    if name == "DxpRep":
        return _dxp_rep(root, data)
    if name == "DxpMsg":
        try:
            env = envelope.unwrap(root)
        except envelope.EnvelopeError as exc:
            raise ReceiptError(str(exc)) from None
        parsed = parse_business(env.data)
        for key, value in env.biz_keys.items():
            if key and value and (key, value) not in parsed.refs:
                parsed.refs.append((key, value))
        return parsed
    return parse_business(data)


def parse_business(data: bytes) -> Parsed:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise ReceiptError(f"business receipt: {exc}") from None
    kind = KINDS.get(_local(root))
    if kind is None:
        raise ReceiptError(f"unknown receipt type <{_local(root)}>")
    record = root
    if kind.record:
        record = next((c for c in root.iter() if isinstance(c.tag, str) and _local(c) == kind.record), None)
        if record is None:
            raise ReceiptError(f"<{_local(root)}> has no <{kind.record}>")
    fields = _read_fields(record, kind.fields)
    for element, names in kind.lists:   # fields["AreaResult"] = [{"PrefArea": "E", "Status": …}, …]
        items = [_read_fields(c, names) for c in record if isinstance(c.tag, str) and _local(c) == element]
        if items:
            fields[element] = items
    refs = [(REF_KEYS.get(r, r), fields[r]) for r in kind.refs if fields.get(r)]
    doc_type = kind.doc_type
    if kind.doc_type_by:
        name, table = kind.doc_type_by
        doc_type = table.get(fields.get(name, ""), "")   # unknown: correlate across families
    return Parsed(kind.name, doc_type, fields, refs, data)


def _dxp_rep(root, data: bytes) -> Parsed:
    response = root.find(f"{{{DXP}}}Response")
    if response is None:
        raise ReceiptError("DxpRep has no Response")
    fields = _read_fields(response, ("ResponseCode", "ResponseInfo", "NoticeTime", "Note"))
    ori = response.find(f"{{{DXP}}}OriHead")
    refs = []
    if ori is not None:
        trans = envelope.read_trans_info(ori)
        fields["OriCopMsgId"] = trans.cop_msg_id
        fields["OriSenderId"] = trans.sender_id
        refs.append(("CopMsgId", trans.cop_msg_id))
    return Parsed("dxp-rep", "", fields, refs, data)
