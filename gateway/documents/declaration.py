"""The customs declaration (报关单): DecMessage, its rules, and its receipts.

Receipts: DxpRep from the exchange platform, DecImportResponse from the customs
import (SeqNo assigned), then DEC_RESULT status pushes with a CHANNEL code.
"""
from __future__ import annotations

from decimal import Decimal

import base64

from card import crypto
from card.signer import CardInfo, Signer
from gateway.signing import c14n
from gateway.documents import checks
from gateway.documents.base import PROFILE, Context, DocumentFamily, ReceiptOutcome
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError
from gateway.store import states

# CHANNEL -> (state, rank). Rank orders the customs flow so a late, older receipt never
# moves a declaration backwards; rejections end it whatever the rank.
CHANNELS = {
    "L": ("customs-accepted", 6, "海关入库成功"),
    "G": ("reviewed", 7, "已审核"),
    "M": ("re-review", 7, "重审"),
    "Z": ("returned", 7, "退回修改"),
    "J": ("concluded", 8, "审结"),
    "T": ("duties-payable", 8, "待缴税"),
    "K": ("guarantee", 8, "担保放行"),
    "B": ("guarantee", 8, "担保"),
    "H": ("suspended", 8, "挂起"),
    "C": ("inspection", 9, "查验"),
    "P": ("released", 10, "放行"),
    "I": ("released", 10, "放行"),
    "R": ("closed", 11, "结关"),
    "E": ("rejected", 99, "退单/不受理"),
    "Y": ("rejected", 99, "申报失败"),
    "D": ("deleted", 99, "删除"),
    "A": ("deleted", 99, "删除"),
}
RANK = {states.SENT: 3, states.ACKNOWLEDGED: 4, "imported": 5}
RANK.update({state: rank for state, rank, _ in CHANNELS.values()})


class Declaration(DocumentFamily):
    key = "declaration"
    root_name = "DecMessage"
    namespace = "http://www.chinaport.gov.cn/dec"
    xsd_name = "declaration.xsd"
    key_name = "ClientSeqNo"
    msg_type = "DecMessage"
    final_states = ("closed", "rejected", "deleted")
    waiting_states = ("imported", "customs-accepted", "reviewed", "re-review", "returned", "concluded",
                      "duties-payable", "guarantee", "suspended", "inspection", "released")

    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        sign = ctx.fill_sign(mapped, "DecSign")
        sign.setdefault("OperType", Value("G", PROFILE))
        if ctx.enterprise.customs_code:
            sign["CopCode"] = Value(ctx.enterprise.customs_code, PROFILE)

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
                                                f"goods line {gno.text} appears twice (also row {seen[gno.text]})",
                                                gno.text))
                elif int(gno.text) != i:
                    errors.append(FieldError.at(gno.origin, "DecList/GNo", "sequence",
                                                f"goods lines must be numbered 1, 2, 3 … in order; expected {i}",
                                                gno.text))
                seen.setdefault(gno.text, gno.origin.row)
            wrong = checks.price_times_qty("DecList/DeclTotal", item.get("DeclPrice"), item.get("GQty"),
                                           item.get("DeclTotal"))
            if wrong:
                errors.append(wrong)
            first_qty, first_unit = item.get("FirstQty"), item.get("FirstUnit")
            if bool(first_qty) != bool(first_unit):
                present = first_qty or first_unit
                errors.append(FieldError.at(present.origin, "DecList/FirstQty", "pair",
                                            "first quantity and first unit go together: give both or neither"))
        return errors

    def before_sign(self, root, signer: Signer, info: CardInfo, sign_date: str) -> None:
        """DecSign gets the card's certificate number, the sign date, and Sign: the card's
        signature (base64) over the canonical DecMessage without its Sign element."""
        sign = root.find(self._q("DecSign"))
        if sign is None:
            return
        for name, value in (("SignDate", sign_date), ("Certificate", info.cert_no)):
            elem = sign.find(self._q(name))
            if elem is None:
                elem = self._insert(sign, name)
            elem.text = value
        old = sign.find(self._q("Sign"))
        if old is not None:
            sign.remove(old)
        value = signer.sign(c14n(root))
        self._insert(sign, "Sign").text = base64.b64encode(value).decode()

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

    def _insert(self, parent, name: str):
        from lxml import etree

        order = self.order["DecSign"]
        elem = etree.Element(self._q(name))
        pos = order.index(name)
        for i, child in enumerate(parent):
            if order.index(etree.QName(child).localname) > pos:
                parent.insert(i, elem)
                return elem
        parent.append(elem)
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
            if fields.get("CUS_CIQ_NO"):
                keys["SeqNo"] = fields["CUS_CIQ_NO"]
            if channel not in CHANNELS:
                return ReceiptOutcome(None, f"customs status {channel!r} (unknown channel) {fields.get('NOTE', '')}",
                                      keys)
            state, _, label = CHANNELS[channel]
            note = fields.get("NOTE", "")
            summary = f"customs {channel} {label}" + (f": {note}" if note else "")
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, summary, keys, final=state in self.final_states)
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
