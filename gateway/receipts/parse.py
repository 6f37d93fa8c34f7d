"""Parse a received file into a receipt: its kind, fields, and the keys that find its message.

A receipt is a DxpRep (the exchange platform's answer to one DxpMsg, one or several Response
elements), a DxpMsg from the platform whose Data is a business receipt, or a business receipt
as a bare file (what the desktop client writes into its InBox). Each business receipt kind is
one entry in KINDS: root element -> kind, document type, fields to read, and which fields
identify the message. The customs status receipt comes in two forms, both kind `dec-result`:

- the bare `<DEC_RESULT>` root (no namespace), CUS_CIQ_NO = the unified number (统一编号);
- the legacy `<DEC_DATA><DEC_RESULT>…</DEC_RESULT><RESULT_INFO/></DEC_DATA>` form, often
  GB2312 (the encoding comes from the XML declaration), with SEQ_NO for the unified number
  and DECL_PORT, TRADE_CO, BILL_NO … beside it.

Well-formed XML of a root swgw does not know is a `generic` receipt (kept, routed to the
unmatched outbox, alarmed), not an error; only what is not XML at all is unreadable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from gateway import envelope, xmlsafe
from gateway.receipts import dates

DXP = envelope.DXP_NS


@dataclass(frozen=True)
class Kind:
    name: str
    doc_type: str
    fields: tuple[str, ...]
    refs: tuple[str, ...]          # field names that identify the message, most specific first
    record: str | None = None      # element holding the fields, if not the root
    doc_type_by: tuple[str, dict[str, str]] | None = None   # receipts shared by families: field -> type
    form: str = ""                 # which form of the kind this root is (shown by `swgw receipt`)
    lists: tuple[tuple[str, tuple[str, ...]], ...] = ()     # repeated records: element -> its fields


LICENCE_TYPES = {"4": "export-license", "O": "me-import-license", "7": "auto-import-license"}

# the customs status receipt: the bare form's fields, and the legacy form's
DEC_RESULT_FIELDS = ("CUS_CIQ_NO", "ENTRY_ID", "NOTICE_DATE", "CHANNEL", "NOTE", "CUSTOM_MASTER", "I_E_DATE",
                     "D_DATE")
DEC_DATA_FIELDS = ("SEQ_NO", "CUS_CIQ_NO", "ENTRY_ID", "NOTICE_DATE", "CHANNEL", "NOTE", "DECL_PORT", "AGENT_NAME",
                   "DECLARE_NO", "TRADE_CO", "CUSTOMS_FIELD", "BONDED_NO", "I_E_DATE", "PACK_NO", "BILL_NO",
                   "TRAF_MODE", "VOYAGE_NO", "NET_WT", "GROSS_WT", "D_DATE", "I_E_FLAG", "CUSTOM_MASTER")

KINDS: dict[str, Kind] = {
    "DecImportResponse": Kind("import-response", "declaration",
                              ("ResponseCode", "ErrorMessage", "ClientSeqNo", "SeqNo", "TrnPreId"),
                              ("ClientSeqNo", "SeqNo")),
    "DEC_RESULT": Kind("dec-result", "declaration", DEC_RESULT_FIELDS, ("CUS_CIQ_NO", "ENTRY_ID"),
                       form="DEC_RESULT"),
    "DEC_DATA": Kind("dec-result", "declaration", DEC_DATA_FIELDS, ("SEQ_NO", "CUS_CIQ_NO", "ENTRY_ID"),
                     record="DEC_RESULT", form="DEC_DATA (legacy)"),
    # 修撤单 (modification / withdrawal request) answers: found by the modification's number
    "DecModSaveResponse": Kind("mod-response", "declaration", ("DecModSeqNo", "ResultCode", "ResultMessage"),
                               ("DecModSeqNo",)),
    # MOFCOM licences: one receipt shape for the three licence families, told apart by 监管代码
    "LicenseApprovalResult": Kind("licence-approval", "",
                                  ("SupervisionCode", "ApplyNo", "MofcomApplyNo", "LicenseNo", "Status", "Opinion",
                                   "ApprovedQty", "NoticeTime"),
                                  ("ApplyNo", "LicenseNo"), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    "LicenseCustomsStatus": Kind("licence-customs", "",
                                 ("SupervisionCode", "LicenseNo", "ApplyNo", "CustomsStatus", "EntryId", "WriteOffQty",
                                  "UsedQty", "RemainingQty", "Note", "NoticeTime"),
                                 ("ApplyNo", "LicenseNo"), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    "LicenseWithdrawalResult": Kind("licence-withdrawal", "",
                                    ("SupervisionCode", "ApplyNo", "WithdrawStatus", "Reason", "NoticeTime"),
                                    ("ApplyNo",), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    "LicenseDocument": Kind("licence-document", "",
                            ("SupervisionCode", "LicenseNo", "ApplyNo", "Format", "NoticeTime"),
                            ("ApplyNo", "LicenseNo"), doc_type_by=("SupervisionCode", LICENCE_TYPES)),
    "MofcomFilingResult": Kind("filing-result", "",
                               ("FilingKind", "FilingNo", "EnterpriseScc", "Status", "Reason", "NoticeTime"),
                               ("FilingNo",), doc_type_by=("FilingKind", {"me": "me-import-license",
                                                                           "agri": "auto-import-license"})),
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
                             "EntName", "EntNameEn", "Address", "NoticeTime"), ("RequestId",),
                            lists=(("Filing", ("FilingNo", "HsCode", "NameEn", "PrefAreas")),
                                   ("Signatory", ("Name", "Status")))),   # 手签员 已备案 / 已注销
}
# how a ref field is stored as a message key
REF_KEYS = {"ClientSeqNo": "ClientSeqNo", "SeqNo": "SeqNo", "CUS_CIQ_NO": "SeqNo", "SEQ_NO": "SeqNo",
            "ENTRY_ID": "EntryId"}
# DxpMsg AddInfo/BizKey entries that describe the receipt, not the message it answers
METADATA_KEYS = frozenset({"RetType", "DealFlag"})
# where a receipt says when it was issued, first found wins
NOTICE_FIELDS = ("NOTICE_DATE", "NoticeTime", "ReceiptTime")
GENERIC_MAX_FIELDS = 50


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
    root: str = ""                                                # the business receipt's root element
    form: str = ""                                                # e.g. "DEC_DATA (legacy)"
    msg_type: str = ""                                            # the DxpMsg's MsgType, when wrapped
    notice_at: str = ""                                           # when it was issued, ISO 8601, if known


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
        parsed.msg_type = env.trans.msg_type
        for key, value in env.biz_keys.items():
            if key and value and key not in METADATA_KEYS and (key, value) not in parsed.refs:
                parsed.refs.append((key, value))
        return parsed
    return _business(root, data)


def parse_business(data: bytes) -> Parsed:
    try:
        root = xmlsafe.parse(data)
    except xmlsafe.UnsafeXml as exc:
        raise ReceiptError(f"business receipt: {exc}") from None
    return _business(root, data)


def _business(root, data: bytes) -> Parsed:
    name = _local(root)
    if name == "Root" and _client_failure(root):
        return _client_failure_receipt(root, data)
    kind = KINDS.get(name)
    if kind is None:
        return _generic(root, data)
    record = root
    if kind.record:
        record = next((c for c in root if isinstance(c.tag, str) and _local(c) == kind.record), None)
        if record is None:
            raise ReceiptError(f"<{name}> has no <{kind.record}>")
    fields = _read_fields(record, kind.fields)
    if kind.record:  # what the wrapper carries beside the record (DEC_DATA's RESULT_INFO)
        for child in root:
            if isinstance(child.tag, str) and child is not record and len(child) == 0:
                fields.setdefault(_local(child), (child.text or "").strip())
    for element, names in kind.lists:   # fields["AreaResult"] = [{"PrefArea": "E", "Status": …}, …]
        items = [_read_fields(c, names) for c in record if isinstance(c.tag, str) and _local(c) == element]
        if items:
            fields[element] = items
    refs = []
    for r in kind.refs:
        ref = (REF_KEYS.get(r, r), fields.get(r, ""))
        if ref[1] and ref not in refs:
            refs.append(ref)
    doc_type = kind.doc_type
    if kind.doc_type_by:
        by, table = kind.doc_type_by
        doc_type = table.get(fields.get(by, ""), "")   # unknown: correlate across families
    return Parsed(kind.name, doc_type, fields, refs, data, root=name, form=kind.form or name,
                  notice_at=_notice(fields))


def _notice(fields: dict[str, str]) -> str:
    for name in NOTICE_FIELDS:
        if fields.get(name):
            return dates.iso(fields[name])
    return ""


# -- the desktop client's own failure file --------------------------------------------
# <Root><resultFlag><Type>1</Type><Value>11</Value></resultFlag><failCode>C134</failCode>
# <failInfo>[读卡器底层库]打开读卡器失败…</failInfo><retData/></Root>, with or without the dec namespace

def _client_failure(root) -> bool:
    return any(isinstance(c.tag, str) and _local(c) in ("failCode", "resultFlag") for c in root)


def _client_failure_receipt(root, data: bytes) -> Parsed:
    fields = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name == "resultFlag":
            for sub in child:
                if isinstance(sub.tag, str):
                    fields[f"resultFlag{_local(sub)}"] = (sub.text or "").strip()
        elif len(child) == 0:
            fields[name] = " ".join((child.text or "").split())
    return Parsed("client-failure", "", fields, [], data, root="Root", form="desktop client failure")


def _generic(root, data: bytes) -> Parsed:
    """A well-formed receipt of a root swgw does not know: its direct simple children, kept."""
    fields = {}
    for child in root:
        if isinstance(child.tag, str) and len(child) == 0 and len(fields) < GENERIC_MAX_FIELDS:
            fields.setdefault(_local(child), (child.text or "").strip()[:500])
    name = _local(root)
    ns = etree.QName(root).namespace or ""
    return Parsed("generic", "", fields, [], data, root=name, form=f"{{{ns}}}{name}" if ns else name,
                  notice_at=_notice(fields))


def _dxp_rep(root, data: bytes) -> Parsed:
    """The platform's answer to one DxpMsg: one or several Response elements (one per node that
    handled it), each with the original TransInfo (OriHead) and, optionally, Results per receiver.
    The first failing Response decides the code; all are kept in the fields."""
    responses = root.findall(f"{{{DXP}}}Response")
    if not responses:
        raise ReceiptError("DxpRep has no Response")
    fields: dict[str, str] = {}
    refs: list[tuple[str, str]] = []
    infos, results = [], []
    chosen = None
    for response in responses:
        own = _read_fields(response, ("ResponseCode", "ResponseInfo", "NoticeTime", "Note", "NodeId"))
        if chosen is None or (chosen.get("ResponseCode") in ("0", "00", "0000")
                              and own.get("ResponseCode") not in ("0", "00", "0000")):
            chosen = own
        infos.append(" ".join(v for v in (own.get("NodeId", ""), own.get("ResponseCode", ""),
                                          own.get("ResponseInfo", "")) if v))
        for result in response.iter(f"{{{DXP}}}Result"):
            r = _read_fields(result, ("RecId", "Code", "Info", "Note"))
            results.append(" ".join(v for v in (r.get("RecId", ""), r.get("Code", ""), r.get("Info", "")) if v))
        ori = response.find(f"{{{DXP}}}OriHead")
        if ori is not None:
            trans = envelope.read_trans_info(ori)
            fields.setdefault("OriCopMsgId", trans.cop_msg_id)
            fields.setdefault("OriSenderId", trans.sender_id)
            if trans.cop_msg_id and ("CopMsgId", trans.cop_msg_id) not in refs:
                refs.append(("CopMsgId", trans.cop_msg_id))
    fields.update(chosen or {})
    if len(responses) > 1:
        fields["Responses"] = "; ".join(infos)
    if results:
        fields["Results"] = "; ".join(results)
    return Parsed("dxp-rep", "", fields, refs, data, root="DxpRep", form="DxpRep",
                  notice_at=dates.iso(fields.get("NoticeTime")))
