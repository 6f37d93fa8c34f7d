"""MOFCOM licence applications (seed 004): export licence (出口许可证, 监管代码 4), M&E automatic
import licence (机电产品自动进口许可证, O; new/used equipment) and non-M&E automatic import licence
(非机电产品自动进口许可证, 7). One schema (xsd/licence.xsd), one shape: LicenseHead, the 规格型号
lines, and LicenseSign from the enterprise profile.

Receipts: LicenseApprovalResult (待初审 → 审批中 → 审批通过/已复审通过 with the licence number, or
退回 with 审批意见, or 撤销), then LicenseCustomsStatus (暂未到达海关, 海关入库成功, the three
failures, and 报关单核注 with the entry id and the remaining quantity 报关余量: a 一批一证 licence
is used up by its one entry; a 非一批一证 licence stays in use until nothing remains; the remaining
quantity after each entry is in the receipt's summary, so `swgw status` shows the current one).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from lxml import etree

from card.signer import CardInfo, Signer
from gateway import signing
from gateway.documents import checks
from gateway.documents.base import (PROFILE, Context, DocumentFamily, ReceiptOutcome, attachment_records,
                                     platform_outcome)
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError, MappingFileError


# approval status -> (state, rank), per family as the manual's screens list them; rank keeps a
# late, older receipt from moving a licence backwards. The draft words (未上报 / 暂存) after
# sending mean MOFCOM handed the application back to the enterprise (with 审批意见): returned.
EXPORT_APPROVAL = {
    "未上报": ("returned", 99),
    "待初审": ("pending-review", 5),
    "审批中": ("under-review", 6),
    "审批通过": ("approved", 7),
}
ME_APPROVAL = {
    "暂存": ("returned", 99),
    "审批中": ("under-review", 6),
    "审批通过": ("approved", 7),
}
AUTO_APPROVAL = {
    "暂存": ("returned", 99),
    "待初审": ("pending-review", 5),
    "复审通过": ("approved", 7),
    "已复审通过": ("approved", 7),
    "已打印或生成电子许可证": ("licence-issued", 7.5),
}
# 撤销状态: the answer to the enterprise's own withdrawal (撤回申请 / 撤销申请)
WITHDRAWAL = {
    "撤销成功": ("withdrawn", 99),
    "撤回成功": ("withdrawn", 99),
    "撤销失败": (None, 0),
    "撤回失败": (None, 0),
}
CUSTOMS = {
    "暂未到达海关": ("customs-pending", 8),
    "海关入库失败": ("customs-failed", 8),
    "发往海关失败": ("customs-failed", 8),
    "数据中心处理失败": ("customs-failed", 8),
    "海关入库成功": ("customs-accepted", 9),
    "报关单核注": ("in-use", 10),         # written-off (final) once nothing remains, or at once for 一批一证
}
RANK = {"sent": 3, "acknowledged": 4, "written-off": 11}
RANK.update({state: rank for state, rank in (*EXPORT_APPROVAL.values(), *ME_APPROVAL.values(),
                                             *AUTO_APPROVAL.values(), *CUSTOMS.values())})
USABLE = ("customs-accepted", "in-use")   # a declaration may use the licence (海关入库成功)
UNUSABLE = ("customs-failed", "returned", "withdrawn", "written-off", "rejected", "failed", "invalid")


class Licence(DocumentFamily):
    namespace = "urn:swgw:licence"
    xsd_name = "licence.xsd"
    key_name = "ApplyNo"
    supervision_code = ""
    holder = "ExporterCode"               # the head field that must be the enterprise's MOFCOM code
    approval: dict = {}                   # the family's status words (its screens)
    signs_with_mofcom_key = True          # 上报并签章: LicenseSign carries the MOFCOM key's signature
    final_states = ("written-off", "returned", "withdrawn", "rejected",
                    "withdrawal-sent", "registered", "filing-refused")   # the last three: withdrawals, filings
    resubmittable_states = ("returned", "withdrawn", "withdrawal-sent", "filing-refused")
    # ^ amend and declare again under the same number (a withdrawal message never blocks its application)
    waiting_states = ("pending-review", "under-review", "approved", "licence-issued", "customs-pending",
                      "customs-failed", "customs-accepted", "in-use")

    # -- building -----------------------------------------------------------------
    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        head = mapped.sections.setdefault("LicenseHead", [{}])[0]
        head["SupervisionCode"] = Value(self.supervision_code, PROFILE)
        lines = mapped.sections.get("LicenseLine", [])
        for i, line in enumerate(lines, start=1):
            line.setdefault("LineNo", Value(str(i), PROFILE))
            price, qty = line.get("UnitPrice"), line.get("Qty")
            if "Total" not in line and price and qty:  # 总价 = 单价 × 数量, derived where the ERP leaves it out
                line["Total"] = Value(checks.amount((Decimal(price.text) * Decimal(qty.text)).quantize(Decimal("0.0001"))),
                                      qty.origin)
        for goods in mapped.sections.get("LicenseGoods", []):   # each good's 合计数量 / 总金额
            mine = [ln for ln in lines if ln.get("GoodsNo") and goods.get("GoodsNo")
                    and ln["GoodsNo"].text == goods["GoodsNo"].text]
            for field, part in (("TotalQty", "Qty"), ("TotalAmount", "Total")):
                if mine and field not in goods and all(part in ln for ln in mine):
                    goods[field] = Value(checks.amount(sum(Decimal(ln[part].text) for ln in mine)), mine[0][part].origin)
        if lines and "TotalQty" not in head and all("Qty" in ln for ln in lines):
            head["TotalQty"] = Value(checks.amount(sum(Decimal(ln["Qty"].text) for ln in lines)), lines[0]["Qty"].origin)
        if lines and "TotalAmount" not in head and all("Total" in ln for ln in lines):
            head["TotalAmount"] = Value(checks.amount(sum(Decimal(ln["Total"].text) for ln in lines)),
                                        lines[0]["Total"].origin)
        sign = ctx.fill_sign(mapped, "LicenseSign")
        if ctx.enterprise.mofcom_code:
            sign["MofcomCode"] = Value(ctx.enterprise.mofcom_code, PROFILE)

    def carry(self, mapped: Mapped, files: list, ctx: Context) -> list[FieldError]:
        """合同信息表 / 上传附件: one LicenseAttachment per file (type code, file name, size, SHA-256);
        the file travels in the package under AttachName, signed over by the MOFCOM key with the rest."""
        records = attachment_records(files)
        if records:
            mapped.sections["LicenseAttachment"] = records
        return []

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("LicenseHead")
        lines = mapped.sections.get("LicenseLine", [])
        if not lines:
            errors.append(FieldError.at(mapped.key_origin, "LicenseLine", "lines",
                                        "an application needs at least one 规格型号 line (spec, unit price, quantity)"))
        for i, line in enumerate(lines, start=1):
            no = line.get("LineNo")
            if no and no.origin.row is not None and int(no.text) != i:
                errors.append(FieldError.at(no.origin, "LicenseLine/LineNo", "sequence",
                                            f"lines must be numbered 1, 2, 3 … in order; expected {i}", no.text))
            wrong = checks.price_times_qty("LicenseLine/Total", line.get("UnitPrice"), line.get("Qty"), line.get("Total"))
            if wrong:
                errors.append(wrong)
        for field, part in (("TotalQty", "Qty"), ("TotalAmount", "Total")):
            given = head.get(field)
            if given and lines and all(part in ln for ln in lines):
                expected = sum(Decimal(ln[part].text) for ln in lines)
                if abs(expected - Decimal(given.text)) > checks.TOLERANCE:
                    errors.append(FieldError.at(given.origin, f"LicenseHead/{field}", "sum",
                                                f"{given.text} is not the sum of the lines' {part} ({checks.amount(expected)})",
                                                given.text))
        holder, sign = head.get(self.holder), mapped.first("LicenseSign").get("MofcomCode")
        if holder and sign and holder.text != sign.text:
            errors.append(FieldError.at(holder.origin, f"LicenseHead/{self.holder}", "profile",
                                        f"is not the MOFCOM enterprise code of the applying enterprise "
                                        f"({sign.text}, whose electronic key signs the application)", holder.text))
        if holder and not sign:
            errors.append(FieldError.at(holder.origin, "LicenseSign/MofcomCode", "profile",
                                        "the enterprise profile has no mofcom_code (商务部企业代码); set it in "
                                        "[[enterprise]]"))
        year, until = head.get("Year"), head.get("ValidUntil")
        if year and until and until.text[:4] != year.text:
            errors.append(FieldError.at(until.origin, "LicenseHead/ValidUntil", "year",
                                        f"a licence is valid within its year {year.text}; {until.text} is not",
                                        until.text))
        errors.extend(self.more_rules(mapped))
        return errors

    def more_rules(self, mapped: Mapped) -> list[FieldError]:
        return []

    # -- signing ------------------------------------------------------------------
    def sign_document(self, root, signer: Signer, info: CardInfo, sign_date: str) -> None:
        """上报并签章: the MOFCOM key's certificate number and sign date into LicenseSign, then its
        enveloped XML-DSig over the whole application, as LicenseSign's last child."""
        sign = root.find(self._q("LicenseSign"))
        for old in sign.findall(f"{{{signing.DS_NS}}}Signature"):
            sign.remove(old)
        for name, value in (("KeyNo", info.cert_no), ("SignDate", sign_date)):
            elem = sign.find(self._q(name))
            if elem is None:
                elem = etree.SubElement(sign, self._q(name))
            elem.text = value
        signing.sign(root, signer, info.cert_no, parent=sign)

    def verify_licence_signature(self, root) -> signing.Verified:
        """The MOFCOM key's signature in LicenseSign (raises signing.SignatureError)."""
        sign = root.find(self._q("LicenseSign"))
        if sign is None:
            raise signing.SignatureError("the application has no LicenseSign")
        return signing.verify(root, parent=sign)

    @staticmethod
    def needs_mofcom_key(root) -> bool:
        """Applications and withdrawals are signed with the MOFCOM key; enterprise filings are not."""
        return etree.QName(root).localname != "MofcomFiling"

    @staticmethod
    def needs_filing(root) -> bool:
        """Only an application needs the enterprise's filing registered."""
        return etree.QName(root).localname not in ("MofcomFiling", "LicenseWithdrawal")

    # -- receipts -----------------------------------------------------------------
    def receipt_context(self, document: bytes | None) -> dict:
        """What the application itself says that its receipts need: 一批一证 or not, the quantity."""
        if not document:
            return {}
        from gateway import xmlsafe

        try:
            root = xmlsafe.parse(document)
        except xmlsafe.UnsafeXml:
            return {}
        out = {"_Root": etree.QName(root).localname}
        head = root.find(self._q("LicenseHead"))
        if head is not None:
            out.update(_BatchMode=head.findtext(self._q("BatchMode")) or "",
                       _TotalQty=head.findtext(self._q("TotalQty")) or "")
        return out

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            out = platform_outcome(fields, current_state, self._forward)
            if fields.get("_Root") == "LicenseWithdrawal" and out.state == "acknowledged":  # now MOFCOM's turn
                return ReceiptOutcome("withdrawal-sent", "withdrawal accepted by the platform (DxpRep 0); the "
                                      "application's 撤销状态 follows", final=True)
            return out
        if kind == "filing-result":
            status = fields.get("Status", "")
            keys = {"FilingKind": fields["FilingKind"]} if fields.get("FilingKind") else {}
            summary = f"MOFCOM filing {fields.get('FilingKind', '?')} {status}" + (
                f": {fields['Reason']}" if fields.get("Reason") else "")
            if status == "已注册":
                return ReceiptOutcome("registered", summary, keys, final=True)
            if status == "未通过":
                return ReceiptOutcome("filing-refused", summary, keys, final=True)
            return ReceiptOutcome(None, f"filing status {status!r} (unknown)", keys,
                                  unknown=f"MOFCOM filing status {status!r}")
        if kind == "licence-approval":
            status = fields.get("Status", "")
            keys = {k: fields[k] for k in ("LicenseNo", "MofcomApplyNo") if fields.get(k)}
            if status not in self.approval:
                return ReceiptOutcome(None, f"licence approval status {status!r} (unknown for a {self.key}; "
                                            f"known: {', '.join(self.approval)})", keys,
                                      unknown=f"licence approval status {status!r}")
            state = self.approval[status][0]
            summary = f"MOFCOM {status}"
            if fields.get("LicenseNo"):
                summary += f", licence {fields['LicenseNo']}"
            if fields.get("ApprovedQty"):
                summary += f", 审批数量 {fields['ApprovedQty']}"
            if fields.get("Opinion"):
                summary += f": 审批意见 {fields['Opinion']}"
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, out.summary, keys, final=state in self.final_states)
        if kind == "licence-withdrawal":
            status = fields.get("WithdrawStatus", "")
            summary = f"撤销状态 {status}" + (f": {fields['Reason']}" if fields.get("Reason") else "")
            if status not in WITHDRAWAL:
                return ReceiptOutcome(None, f"withdrawal status {status!r} (unknown)",
                                      unknown=f"撤销状态 {status!r}")
            state = WITHDRAWAL[status][0]
            if state is None:
                return ReceiptOutcome(None, summary + f" (MOFCOM refused the withdrawal; state {current_state} kept)")
            if current_state in ("approved", "licence-issued", *CUSTOMS_STATES, "written-off"):
                return ReceiptOutcome(None, summary + f" (after {current_state}; state kept)")
            return ReceiptOutcome(state, summary, final=True)
        if kind == "licence-customs":
            status = fields.get("CustomsStatus", "")
            keys = {k: fields[k] for k in ("LicenseNo", "EntryId") if fields.get(k)}
            if status not in CUSTOMS:
                return ReceiptOutcome(None, f"licence customs status {status!r} (unknown)", keys,
                                      unknown=f"licence customs status {status!r}")
            state = CUSTOMS[status][0]
            summary = f"licence customs status {status}"
            if status == "报关单核注":
                remaining = _decimal(fields.get("RemainingQty"))
                one_batch = fields.get("_BatchMode") == "1"
                summary += (f": entry {fields.get('EntryId', '?')} wrote off {fields.get('WriteOffQty', '?')}, "
                            f"{fields.get('UsedQty', '?')} used")
                if fields.get("_TotalQty"):
                    summary += f" of {fields['_TotalQty']} approved"
                if remaining is not None:  # in the summary (last receipt, trace): keys are for finding
                    summary += f", 报关余量 {checks.amount(remaining)}"
                if one_batch:
                    summary += " (一批一证: one entry uses the licence)"
                if one_batch or remaining is None or remaining <= 0:
                    state = "written-off"
            elif fields.get("Note"):
                summary += f": {fields['Note']}"
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, out.summary, keys, final=state in self.final_states)
        if kind == "licence-document":   # 电子许可证: stored and routed to the outbox
            return ReceiptOutcome(None, f"electronic licence {fields.get('LicenseNo', '')} "
                                        f"({fields.get('Format', '?')}) issued")
        return ReceiptOutcome(None, f"receipt kind {kind} not expected for a {self.key}")

    def _forward(self, current: str, new: str, summary: str) -> ReceiptOutcome:
        if current in self.final_states:
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        if new in self.final_states or RANK.get(new, 0) >= RANK.get(current, 0):
            return ReceiptOutcome(new if new != current else None, summary)
        return ReceiptOutcome(None, summary + f" (older than current state {current}; state kept)")


CUSTOMS_STATES = tuple(dict.fromkeys(state for state, _ in CUSTOMS.values()))


class ExportLicense(Licence):
    key = "export-license"
    root_name = "ExportLicenseMessage"
    msg_type = "ExportLicenseMessage"
    supervision_code = "4"
    approval = EXPORT_APPROVAL


class ImportLicence(Licence):
    holder = "ImporterCode"


class MeImportLicense(ImportLicence):
    key = "me-import-license"
    root_name = "MeImportLicenseMessage"
    msg_type = "MeImportLicenseMessage"
    supervision_code = "O"
    approval = ME_APPROVAL

    def more_rules(self, mapped: Mapped) -> list[FieldError]:
        head = mapped.first("LicenseHead")
        if "EquipmentState" not in head:
            return [FieldError.at(mapped.key_origin, "LicenseHead/EquipmentState", "required",
                                  "an M&E import licence needs the equipment state (设备状态: new or used)")]
        return []


class AutoImportLicense(ImportLicence):
    key = "auto-import-license"
    root_name = "AutoImportLicenseMessage"
    msg_type = "AutoImportLicenseMessage"
    supervision_code = "7"
    approval = AUTO_APPROVAL

    def more_rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("LicenseHead")
        state = head.get("EquipmentState")
        if state:
            errors.append(FieldError.at(state.origin, "LicenseHead/EquipmentState", "not-applicable",
                                        "equipment state (设备状态) belongs to M&E licences, not to a non-M&E one",
                                        state.text))
        goods = mapped.sections.get("LicenseGoods", [])
        lines = mapped.sections.get("LicenseLine", [])
        if not goods:
            errors.append(FieldError.at(mapped.key_origin, "LicenseGoods", "goods",
                                        "a non-M&E application names 1 to 4 goods (商品代码1-4)"))
        if len(goods) > 4:
            errors.append(FieldError.at(goods[4]["GoodsNo"].origin if "GoodsNo" in goods[4] else mapped.key_origin,
                                        "LicenseGoods/GoodsNo", "max-goods",
                                        f"the screen takes at most 4 goods (商品代码1-4); this application has {len(goods)}"))
        for i, g in enumerate(goods, start=1):
            no = g.get("GoodsNo")
            if no and int(no.text) != i:
                errors.append(FieldError.at(no.origin, "LicenseGoods/GoodsNo", "sequence",
                                            f"goods must be numbered 1, 2, 3, 4 in order; expected {i}", no.text))
            if no and not any(ln.get("GoodsNo") and ln["GoodsNo"].text == no.text for ln in lines):
                errors.append(FieldError.at(no.origin, "LicenseLine", "lines",
                                            f"goods {no.text} has no 规格型号 line", no.text))
        bulk = self._bulk_goods(mapped)
        if bulk and "BulkContractNo" not in head:
            code, name = bulk
            errors.append(FieldError.at(mapped.key_origin, "LicenseHead/BulkContractNo", "required",
                                        f"goods {code} is {name}: the manual requires the 大宗合同许可证申领号 "
                                        f"(from the filing system) for it", code))
        return errors

    @staticmethod
    def _bulk_goods(mapped: Mapped) -> tuple[str, str] | None:
        """The first good whose HS heading the manual lists as bulk (mappings/codes/bulk_goods.csv)."""
        if mapped.reference is None:
            return None
        try:
            table = mapped.reference.table("bulk_goods")
        except MappingFileError:   # a mapping folder without the table: no bulk rule
            return None
        for g in mapped.sections.get("LicenseGoods", []):
            code = g.get("GoodsCode")
            if code and code.text[:4] in table:
                return code.text, table[code.text[:4]]
        return None


def _decimal(text) -> Decimal | None:
    try:
        return Decimal(text) if text not in (None, "") else None
    except InvalidOperation:
        return None
