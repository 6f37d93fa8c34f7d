"""The customs declaration: DecImportResponse (DxpMsg DECCUSSH1), then status receipts (DxpMsg DECCUS001)
with the channels 7 L J P R (or a rule's), as bare DEC_RESULT or, with receipt_form = "legacy", DEC_DATA.
Playing the desktop client: Successed_/Failed_<file>_<timestamp> answers, bare receipts, and a rule's
<Root> failure file.

Only a declaration submitted to be declared (DecSign/OperType C, or D with transit) goes on to
customs; a draft (G 暂存) or an upload (A, B, E 上载) is only saved: its import response, no channels."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from gateway.sandbox import receipts
from gateway.sandbox.families import Play, inspection, licence, match

ROOTS = ("DecMessage",)
IMPORT_MSG_TYPE = "DECCUSSH1"     # the customs import response, as in the real receipts
STATUS_MSG_TYPE = "DECCUS001"     # the customs status receipt
META = {"RetType": "1", "DealFlag": "1"}   # the BizKey entries the real import response carries
DEFAULT_NOTES = {"7": "直接申报成功", "L": "入库成功", "J": "通关无纸化审结", "P": "报关单已放行", "R": "报关单已结关"}


def answer_name(p: Play, ok: bool) -> str:
    """The import answer's file name: the desktop client appends its timestamp to Successed_/Failed_<file>
    (e.g. Successed_<file>_202408191442314383412)."""
    if not p.client_file:
        return p.import_name(ok)
    now = dt.datetime.now()
    return f"{p.import_name(ok)}_{now:%Y%m%d%H%M%S}{now.microsecond * 10:07d}"


def play(p: Play) -> None:
    sc = p.settings.declaration
    client_seq = p.text("ClientSeqNo")
    customs = p.text("CustomMaster") or "0000"
    rule = match(sc.rules, p.text)
    keys = {"ClientSeqNo": client_seq}
    if rule and rule.silent:
        return
    if rule and rule.client_failure and p.client_file:   # the client could not sign or send it
        code, _, info = rule.client_failure.partition(" ")
        p.later(sc.import_delay, answer_name(p, False), receipts.client_failure(code, info))
        return
    n = p.serial()
    year = time.strftime("%Y")
    seq_no = f"{customs}{year}{n:010d}"[:18]
    errors = p.schema_errors()
    import_error = rule.import_error if rule else None
    if errors and not import_error:
        import_error = f"报文格式错误: {errors[0].path}: {errors[0].reason}"
    base = p.base
    if import_error:
        p.later(sc.import_delay, answer_name(p, False),
                p.reply(IMPORT_MSG_TYPE, receipts.import_response(client_seq, "", False, import_error), META))
        return
    declared = p.text("OperType") in ("C", "D")
    p.later(sc.import_delay, answer_name(p, True),
            p.reply(IMPORT_MSG_TYPE, receipts.import_response(client_seq, seq_no, True,
                                                              "导入成功" if declared else "暂存成功"), META))
    if not declared:
        return
    channels = rule.channels if rule and rule.channels else sc.channels
    entry_id = f"{customs}{year}{'1' if p.text('IEFlag') == 'I' else '0'}{n:09d}"[:18]
    refused = _licences(p, channels, entry_id, sc)
    if refused:   # customs checks the licences it names (联网核查): a licence it cannot use is 退单
        channels, rule = ["E"], None
        payload = receipts.dec_result(seq_no, "", "E", refused, customs, p.text("IEDate"))
        p.later(sc.import_delay + sc.delay, f"Receipt_{base}_2_E.xml", p.reply("DEC_DATA", payload, keys))
        return
    for i, channel in enumerate(channels, start=1):
        note = rule.note if rule and i == len(channels) else ""
        entry = entry_id if channel not in ("7", "E", "Y") else ""   # the entry id comes with L
        if (rule.receipt_form if rule and rule.receipt_form else sc.receipt_form) == "legacy":
            payload = receipts.dec_data(seq_no, entry, channel, note, customs, p.text("IEDate"),
                                        p.text("TradeCode"), p.text("BillNo"))
        else:
            payload = receipts.dec_result(seq_no, entry, channel, note or DEFAULT_NOTES.get(channel, ""), customs,
                                          p.text("IEDate"))
        p.later(sc.import_delay + sc.delay * i, f"Receipt_{base}_{i + 1}_{channel}.xml",
                p.reply(STATUS_MSG_TYPE, payload, {}))
        if channel == "C":  # 查验: customs also pushes an inspection order to the enterprise
            inspection.issue(p, sc.import_delay + sc.delay * i + sc.delay / 2, entry_id, customs, n, keys)


def _licences(p: Play, channels: list[str], entry_id: str, sc) -> str:
    """报关单核注: each licence the declaration names is written off when it is released (P/I, or
    its last channel); '' or why customs refuses the declaration."""
    certs = [el.text.strip() for el in p.doc.iter()
             if isinstance(el.tag, str) and el.tag.endswith("}CertCode") and el.text and el.text.strip()]
    if not certs:
        return ""
    released = next((i for i, c in enumerate(channels, start=1) if c in ("P", "I")), len(channels))
    qty = sum((Decimal(el.text) for el in p.doc.iter()
               if isinstance(el.tag, str) and el.tag.endswith("}GQty") and el.text), Decimal(0))
    for cert in certs:
        why = licence.write_off(p, cert, entry_id, qty, sc.import_delay + sc.delay * released + sc.delay / 2)
        if why:
            return why
    return ""
