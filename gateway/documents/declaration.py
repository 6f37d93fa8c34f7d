"""The customs declaration (报关单): DecMessage, its rules, and its receipts.

Receipts: DxpRep from the exchange platform, DecImportResponse from the customs
import (SeqNo assigned), then DEC_RESULT status pushes with a CHANNEL code.
"""
from __future__ import annotations

import base64
import functools
from decimal import Decimal

from lxml import etree

from card import crypto
from card.signer import CardInfo, Signer
from gateway.signing import c14n
from gateway.documents import checks
from gateway.documents import submission
from gateway.documents.base import PROFILE, Context, DocumentFamily, ReceiptOutcome
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError
from gateway.store import states

# The customs status code (DEC_RESULT/CHANNEL) -> (state, rank, meaning). Rank orders the customs
# flow so a late, older receipt never moves a declaration backwards; rejections and deletions end
# it whatever the rank. Meanings from public code tables (README "Customs status codes" names them):
# [A] an e-port data platform's GetStatus API (CHANNEL list), [B] a customs ERP's CusDecStatus
# enum, [C] a customs front end's receiptStatusParse table, [D] real receipts (7 直接申报成功,
# K回执). A code not here is kept raw, shown on the trace and alarmed once (on_receipt: unknown).
CHANNELS = {
    "0": ("imported", 5, "导入成功"),                                   # issue 11 table
    "S0": ("draft-saved", 5, "暂存成功"),                                # [B]
    "E0": ("declared", 6, "表格已申报"),                                 # [B]
    "E1": ("declared", 6, "表格申报成功"),                               # [B]
    "2": ("declared", 6, "QP接收成功，上载发往数据中心"),                  # [C]
    "6": ("declared", 6, "QP接收成功，申报发往数据中心"),                  # [C]
    "3": ("declared", 6, "上载成功"),                                   # [A] [C]
    "7": ("declared", 6, "申报成功（直接申报成功）"),                     # [A] [B] [C] [D]
    "L": ("customs-accepted", 7, "海关入库成功（海关已接收）"),           # [A] [B] [C]
    "M": ("re-review", 8, "报关单重审（海关重新审批）"),                  # [A] [B] [C]
    "Z": ("returned", 8, "退回修改"),                                   # [B] [C]
    "H": ("manual-required", 8, "海关挂起，需手工申报"),                  # [A] [B] [C]
    "V": ("valuation", 8, "报关单转现场验估岗"),                         # [A]
    "Q": ("valuation", 8, "现场验估岗处理反馈"),                         # [A]
    "b": ("ciq-review", 8, "已发检验检疫审核"),                          # [B]
    "G": ("concluded", 9, "报关单已审结（接单交单）"),                    # [A] [B] [C]
    "J": ("concluded", 9, "通关无纸化审结（审单中心确定办理税费及证件手续）"),  # [A] [B]
    "W": ("concluded", 9, "海关无纸验放通知（审结）"),                    # [A] [B] [C]
    "T": ("duties-payable", 9, "需交税费"),                             # [B] [C]
    "C": ("inspection", 10, "查验通知"),                                # [A] [B] [C]
    "S": ("inspection", 10, "施检"),                                   # [B] [C]
    "a": ("ciq-visa", 10, "签证，已被检务收单，领取证单"),                # [B] [C]
    "K": ("guarantee-released", 11, "通关无纸化担保放行（提货放行）"),     # [A] [B] [C] [D]
    "B": ("guarantee-released", 11, "担保放行（海关担保验放）"),           # [A] [B] [C]
    "F": ("released", 11, "放行交单"),                                  # [A] [B] [C]
    "I": ("released", 11, "海关无纸放行通知（放行）"),                    # [A] [B] [C]
    "P": ("released", 11, "海关已放行"),                                # [A] [B] [C]
    "X": ("released", 11, "海关准予进港（保税港区专用）"),                 # [A] [B]
    "O": ("released", 11, "准予进卡"),                                  # [A]
    "R": ("closed", 12, "已结关"),                                      # [A] [B] [C]
    "E": ("rejected", 99, "海关退单/不受理"),                            # [A] [B] [C]
    "Y": ("rejected", 99, "申报失败（没有申报权限/状态不对）"),           # [A] [B] [C]
    "1": ("rejected", 99, "导入失败"),                                  # issue 11 table
    "4": ("rejected", 99, "上载失败"),                                  # [A] [C]
    "8": ("rejected", 99, "上载成功但未申报（无申报权限，请办理现场授权）"),  # [A] [C]
    "9": ("rejected", 99, "直接申报时处理失败（请联系数据中心）"),         # [A] [C]
    "F1": ("rejected", 99, "暂存失败"),                                 # [B]
    "f0": ("rejected", 99, "客户端错误"),                               # [B]
    "D": ("deleted", 99, "海关删单（放行后删除）"),                       # [A] [B] [C]
    "A": ("deleted", 99, "海关放行前删除或异常处理（手工申报通知）"),      # [A] [B]
    "N": (states.FAILED, 99, "重传文件（平台要求重新发送）"),              # [A] [B] [C]
}
RANK = {states.SENT: 3, states.ACKNOWLEDGED: 4, "imported": 5}
RANK.update({state: rank for state, rank, _ in CHANNELS.values() if state != states.FAILED})
FINAL = ("closed", "rejected", "deleted")
WAITING = tuple(dict.fromkeys(["imported", *(s for s, _, _ in CHANNELS.values()
                                             if s not in FINAL and s != states.FAILED)]))


# Which costs the declared value must be completed with (完税价格: CIF on imports, FOB on exports),
# by (IEFlag, TransMode 成交方式): freight (运费) and/or insurance (保险费).
VALUATION = {
    ("I", "3"): ("freight", "insurance"),   # FOB
    ("I", "7"): ("freight", "insurance"),   # EXW
    ("I", "2"): ("insurance",),             # C&F / CFR
    ("I", "4"): ("freight",),               # C&I
    ("E", "1"): ("freight", "insurance"),   # CIF
    ("E", "2"): ("freight",),               # C&F / CFR
    ("E", "4"): ("insurance",),             # C&I
}
TERMS = {"1": "CIF", "2": "C&F", "3": "FOB", "4": "C&I", "5": "市场价", "6": "垫仓", "7": "EXW"}
COSTS = {"freight": ("FeeMark", "FeeRate", "FeeCurr", "运费"), "insurance": ("InsurMark", "InsurRate", "InsurCurr", "保险费"),
         "other": ("OtherMark", "OtherRate", "OtherCurr", "杂费")}


class Declaration(DocumentFamily):
    key = "declaration"
    root_name = "DecMessage"
    namespace = "http://www.chinaport.gov.cn/dec"
    xsd_name = "declaration.xsd"
    key_name = "ClientSeqNo"
    msg_type = "DecMessage"
    final_states = FINAL
    waiting_states = WAITING
    root_attributes = {"version": "3.1"}
    native_key = ("DecSign", "ClientSeqNo")
    native_enterprise = (("DecHead", "TradeCoScc"), ("DecHead", "AgentCodeScc"), ("DecHead", "OwnerCodeScc"),
                         ("DecHead", "CopCodeScc"), ("DecSign", "CopCode"), ("DecHead", "TradeCode"),
                         ("DecHead", "AgentCode"))

    submit_modes = submission.SUBMIT

    def enrich(self, mapped: Mapped, ctx: Context) -> list[FieldError]:
        """DecSign: the operator and card where the document has none, OperType from the document
        config's submit mode (declare: C) unless the document says; DecHead: the typist (录入员)
        is the operator, unless the document names one."""
        errors = ctx.card_errors(mapped, "DecSign")
        sign = ctx.fill_sign(mapped, "DecSign")
        sign.setdefault("OperType", Value(submission.SUBMIT[ctx.submit or "declare"], PROFILE))
        if ctx.enterprise.customs_code:
            sign.setdefault("CopCode", Value(ctx.enterprise.customs_code, PROFILE))
        head = mapped.sections.get("DecHead")
        if head:
            head[0].setdefault("TypistNo", Value(ctx.media_no, PROFILE))
            head[0].setdefault("InputerName", Value(ctx.operator.name, PROFILE))
        return errors

    def describe(self, document: bytes | None) -> str:
        return submission.declaration(document)

    def carry(self, mapped: Mapped, files: list, ctx: Context) -> list[FieldError]:
        """随附单据: one EdocRealation per file; the file travels in the package under its EdocID
        (申报口岸 + type code + IM + an 18-digit serial from the file's hash + extension)."""
        port = mapped.first("DecHead").get("IEPort")
        records = []
        for att in files:
            serial = int(att.sha256[:16], 16) % 10**18
            rec = {"EdocID": f"{port.text if port else '0000'}{att.code}IM{serial:018d}{att.suffix}",
                   "EdocCode": att.code, "EdocFomatType": "US", "EdocCopId": att.name[-64:],
                   "EdocSize": str(att.size)}
            if ctx.enterprise.customs_code:
                rec["EdocOwnerCode"] = rec["SignUnit"] = ctx.enterprise.customs_code
            rec["EdocOwnerName"] = ctx.enterprise.name[:100]
            records.append({k: Value(v, att.origin) for k, v in rec.items()})
        if records:
            mapped.sections["EdocRealation"] = records
        return []

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("DecHead")
        gross, net = head.get("GrossWet"), head.get("NetWt")
        if gross and net and Decimal(net.text) > Decimal(gross.text):
            errors.append(FieldError.at(net.origin, "DecHead/NetWt", "net<=gross",
                                        f"net weight {net.text} exceeds gross weight {gross.text}", net.text))
        seen = {}
        for i, item in enumerate(mapped.sections.get("DecList", []), start=1):
            gno = item.get("GNo")
            if gno:
                if gno.text in seen:
                    errors.append(FieldError.at(gno.origin, "DecList/GNo", "unique",
                                                f"goods line {gno.text} appears twice (also row "
                                                f"{seen[gno.text].origin.row})", gno.text))
                elif int(gno.text) != i:
                    errors.append(FieldError.at(gno.origin, "DecList/GNo", "sequence",
                                                f"goods lines must be numbered 1, 2, 3 … in order; expected {i}",
                                                gno.text))
                seen.setdefault(gno.text, gno)   # its origin made only if another line repeats it
            wrong = checks.price_times_qty("DecList/DeclTotal", item.get("DeclPrice"), item.get("GQty"),
                                           item.get("DeclTotal"))
            if wrong:
                errors.append(wrong)
            for qty_name, unit_name, what in (("FirstQty", "FirstUnit", "first"), ("SecondQty", "SecondUnit", "second")):
                qty, unit = item.get(qty_name), item.get(unit_name)
                if (qty is None) != (unit is None):
                    present = qty or unit
                    errors.append(FieldError.at(present.origin, f"DecList/{qty_name}", "pair",
                                                f"{what} quantity and {what} unit go together: give both or neither"))
        errors.extend(self._valuation(head))
        return errors

    @staticmethod
    def _valuation(head) -> list[FieldError]:
        """The costs the 成交方式 requires (an import on FOB needs freight and insurance …), and
        each declared cost complete: a mark, its rate or amount, and a currency unless a rate."""
        errors = []
        ie, terms = head.get("IEFlag"), head.get("TransMode")
        if ie and terms:
            for cost in VALUATION.get((ie.text, terms.text), ()):
                mark, rate, _, label = COSTS[cost]
                if not head.get(mark) or not head.get(rate):
                    direction = "an import" if ie.text == "I" else "an export"
                    errors.append(FieldError.at(
                        terms.origin, f"DecHead/{rate}", "valuation",
                        f"{direction} on {TERMS[terms.text]} terms (TransMode {terms.text}) must declare its "
                        f"{cost} ({label}): {mark} and {rate}", terms.text))
        for cost, (mark, rate, curr, label) in COSTS.items():
            m, r, c = head.get(mark), head.get(rate), head.get(curr)
            if (m or r or c) and not (m and r):
                present = m or r or c
                errors.append(FieldError.at(present.origin, f"DecHead/{rate if m else mark}", "pair",
                                            f"{cost} ({label}) needs both {mark} and {rate}"))
            elif m and m.text in ("2", "3") and not c:
                errors.append(FieldError.at(m.origin, f"DecHead/{curr}", "pair",
                                            f"{cost} ({label}) given as {'a unit price' if m.text == '2' else 'a total'} "
                                            f"(mark {m.text}) needs its currency {curr}", m.text))
        return errors

    def before_sign(self, root, signer: Signer, info: CardInfo, sign_date: str) -> None:
        """DecSign gets the card's certificate number, the sign date, and Sign: the card's
        signature (base64) over the canonical DecMessage without its Sign element."""
        sign = root.find(self._q("DecSign"))
        if sign is None:
            return
        children = list(sign)
        for name, value in (("SignDate", sign_date), ("Certificate", info.cert_no)):
            self._child(sign, children, name).text = value
        old = next((c for c in children if c.tag == self._q("Sign")), None)
        if old is not None:
            sign.remove(old)
            children.remove(old)
        value = signer.sign(c14n(root))
        self._child(sign, children, "Sign").text = base64.b64encode(value).decode()

    def verify_document(self, root, certificate: bytes, algorithm: str) -> str | None:
        sign = root.find(f"{self._q('DecSign')}/{self._q('Sign')}")
        if sign is None or not (sign.text or "").strip():
            return "DecSign/Sign is missing"
        value = base64.b64decode(sign.text)
        parent = sign.getparent()
        index = list(parent).index(sign)
        parent.remove(sign)
        try:
            crypto.verify(algorithm, certificate, c14n(root), value)
        except crypto.InvalidSignature:
            return "DecSign/Sign does not match the declaration"
        finally:
            parent.insert(index, sign)
        return None

    @functools.cached_property
    def _sign_rank(self) -> dict[str, int]:
        """DecSign's children (qualified tags) -> their place in the schema's order."""
        return {self._q(name): i for i, name in enumerate(self.order["DecSign"])}

    def _child(self, sign, children: list, name: str):
        """DecSign's first child `name`, or a new one in its schema place (`children`: DecSign's, kept)."""
        tag, rank = self._q(name), self._sign_rank
        found = next((child for child in children if child.tag == tag), None)
        if found is not None:
            return found
        pos = rank[tag]
        for i, child in enumerate(children):
            if rank.get(child.tag, -1) > pos:
                elem = etree.Element(tag)
                child.addprevious(elem)
                children.insert(i, elem)
                return elem
        elem = etree.SubElement(sign, tag)
        children.append(elem)
        return elem

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            code = fields.get("ResponseCode", "")
            if code in ("0", "00", "0000"):
                return self._forward(current_state, states.ACKNOWLEDGED, "platform accepted (DxpRep 0)")
            return ReceiptOutcome(states.REJECTED, f"platform rejected: DxpRep {code} {fields.get('ResponseInfo', '')}"
                                  .strip(), final=True)
        if kind == "import-response":
            keys = {k: fields[k] for k in ("SeqNo", "TrnPreId") if fields.get(k)}
            if fields.get("ResponseCode") == "0":
                out = self._forward(current_state, "imported", f"customs import ok, SeqNo {fields.get('SeqNo', '')}")
                return ReceiptOutcome(out.state, out.summary, keys)
            return ReceiptOutcome(states.REJECTED, f"customs import failed: {fields.get('ErrorMessage', '')}".strip(),
                                  keys, final=True)
        if kind == "dec-result":
            channel = fields.get("CHANNEL", "")
            keys = {}
            if fields.get("ENTRY_ID"):
                keys["EntryId"] = fields["ENTRY_ID"]
            for name in ("CUS_CIQ_NO", "SEQ_NO"):
                if fields.get(name):
                    keys["SeqNo"] = fields[name]
            note = fields.get("NOTE", "")
            if channel not in CHANNELS:
                return ReceiptOutcome(None, f"customs status CHANNEL {channel!r}: a code swgw does not know "
                                      f"(kept as received; state unchanged)" + (f": {note}" if note else ""),
                                      keys, unknown=f"CHANNEL {channel!r}")
            state, _, label = CHANNELS[channel]
            summary = f"customs {channel} {label}" + (f": {note}" if note else "")
            if state == states.FAILED:  # N: the platform asks for the file again (swgw resend)
                if current_state in FINAL:
                    return ReceiptOutcome(None, summary + f" (after {current_state}; state kept)", keys)
                return ReceiptOutcome(states.FAILED, summary + " — resend it (swgw resend)", keys)
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, out.summary, keys, final=state in self.final_states)
        if kind == "mod-response":  # 修撤单: the answer to a modification / withdrawal request
            code = fields.get("ResultCode", "")
            return ReceiptOutcome(None, f"modification/withdrawal {fields.get('DecModSeqNo', '')} answered "
                                  f"{code} {fields.get('ResultMessage', '')}".strip())
        if kind == "inspection-order":  # 海关查验指令 for this declaration (found by its 报关单号)
            keys = {k: fields[k] for k in ("InspectionNo", "EntryId") if fields.get(k)}
            summary = (f"customs inspection order {fields.get('InspectionNo', '?')} at customs "
                       f"{fields.get('InspCustoms', '?')}, unloading place {fields.get('UnloadPlaceCode', '?')}")
            if fields.get("Note"):
                summary += f": {fields['Note']}"
            out = self._forward(current_state, "inspection", summary)
            return ReceiptOutcome(out.state, out.summary, keys)
        return ReceiptOutcome(None, f"receipt kind {kind} not expected for a declaration")

    @staticmethod
    def _forward(current: str, new: str, summary: str) -> ReceiptOutcome:
        if current in (states.REJECTED, "deleted", "closed"):
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        if new in (states.REJECTED, "deleted") or RANK.get(new, 0) >= RANK.get(current, 0):
            return ReceiptOutcome(new if new != current else None, summary)
        return ReceiptOutcome(None, summary + f" (older than current state {current}; state kept)")
