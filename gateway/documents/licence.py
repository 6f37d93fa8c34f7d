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

from gateway.documents import checks
from gateway.documents.base import PROFILE, Context, DocumentFamily, ReceiptOutcome, platform_outcome
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError


# approval status -> (state, rank); rank keeps a late, older receipt from moving a licence backwards
APPROVAL = {
    "待初审": ("pending-review", 5),
    "审批中": ("under-review", 6),
    "审批通过": ("approved", 7),
    "已复审通过": ("approved", 7),
    "退回": ("returned", 99),
    "撤销": ("revoked", 99),
}
CUSTOMS = {
    "暂未到达海关": ("customs-pending", 8),
    "海关入库失败": ("customs-failed", 8),
    "发往海关失败": ("customs-failed", 8),
    "数据中心处理失败": ("customs-failed", 8),
    "海关入库成功": ("customs-accepted", 9),
    "报关单核注": ("in-use", 10),         # written-off (final) once nothing remains
}
RANK = {"sent": 3, "acknowledged": 4, "written-off": 11}
RANK.update({state: rank for state, rank in (*APPROVAL.values(), *CUSTOMS.values())})


class Licence(DocumentFamily):
    namespace = "urn:swgw:licence"
    xsd_name = "licence.xsd"
    key_name = "ApplyNo"
    supervision_code = ""
    holder = "ExporterCode"               # the head field that must be the enterprise's MOFCOM code
    final_states = ("written-off", "returned", "revoked", "rejected")
    resubmittable_states = ("returned",)      # 退回: amend and declare again under the same number
    waiting_states = ("pending-review", "under-review", "approved", "customs-pending", "customs-failed",
                      "customs-accepted", "in-use")

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
        if lines and "TotalQty" not in head and all("Qty" in ln for ln in lines):
            head["TotalQty"] = Value(checks.amount(sum(Decimal(ln["Qty"].text) for ln in lines)), lines[0]["Qty"].origin)
        if lines and "TotalAmount" not in head and all("Total" in ln for ln in lines):
            head["TotalAmount"] = Value(checks.amount(sum(Decimal(ln["Total"].text) for ln in lines)),
                                        lines[0]["Total"].origin)
        sign = ctx.fill_sign(mapped, "LicenseSign")
        if ctx.enterprise.mofcom_code:
            sign["MofcomCode"] = Value(ctx.enterprise.mofcom_code, PROFILE)

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

    # -- receipts -----------------------------------------------------------------
    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            return platform_outcome(fields, current_state, self._forward)
        if kind == "licence-approval":
            status = fields.get("Status", "")
            keys = {k: fields[k] for k in ("LicenseNo", "MofcomApplyNo") if fields.get(k)}
            if status not in APPROVAL:
                return ReceiptOutcome(None, f"licence approval status {status!r} (unknown)", keys)
            state = APPROVAL[status][0]
            summary = f"MOFCOM {status}"
            if fields.get("LicenseNo"):
                summary += f", licence {fields['LicenseNo']}"
            if fields.get("Opinion"):
                summary += f": 审批意见 {fields['Opinion']}"
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, out.summary, keys, final=state in self.final_states)
        if kind == "licence-customs":
            status = fields.get("CustomsStatus", "")
            keys = {k: fields[k] for k in ("LicenseNo", "EntryId") if fields.get(k)}
            if status not in CUSTOMS:
                return ReceiptOutcome(None, f"licence customs status {status!r} (unknown)", keys)
            state = CUSTOMS[status][0]
            summary = f"licence customs status {status}"
            if status == "报关单核注":
                remaining = _decimal(fields.get("RemainingQty"))
                summary += (f": entry {fields.get('EntryId', '?')} wrote off {fields.get('WriteOffQty', '?')}, "
                            f"{fields.get('UsedQty', '?')} used")
                if remaining is not None:  # in the summary (last receipt, trace): keys are for finding
                    summary += f", 报关余量 {checks.amount(remaining)}"
                if remaining is None or remaining <= 0:
                    state = "written-off"
            elif fields.get("Note"):
                summary += f": {fields['Note']}"
            out = self._forward(current_state, state, summary)
            return ReceiptOutcome(out.state, out.summary, keys, final=state in self.final_states)
        return ReceiptOutcome(None, f"receipt kind {kind} not expected for a {self.key}")

    def _forward(self, current: str, new: str, summary: str) -> ReceiptOutcome:
        if current in self.final_states:
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        if new in self.final_states or RANK.get(new, 0) >= RANK.get(current, 0):
            return ReceiptOutcome(new if new != current else None, summary)
        return ReceiptOutcome(None, summary + f" (older than current state {current}; state kept)")


class ExportLicense(Licence):
    key = "export-license"
    root_name = "ExportLicenseMessage"
    msg_type = "ExportLicenseMessage"
    supervision_code = "4"


class ImportLicence(Licence):
    holder = "ImporterCode"


class MeImportLicense(ImportLicence):
    key = "me-import-license"
    root_name = "MeImportLicenseMessage"
    msg_type = "MeImportLicenseMessage"
    supervision_code = "O"

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

    def more_rules(self, mapped: Mapped) -> list[FieldError]:
        state = mapped.first("LicenseHead").get("EquipmentState")
        if state:
            return [FieldError.at(state.origin, "LicenseHead/EquipmentState", "not-applicable",
                                  "equipment state (设备状态) belongs to M&E licences, not to a non-M&E one",
                                  state.text)]
        return []


def _decimal(text) -> Decimal | None:
    try:
        return Decimal(text) if text not in (None, "") else None
    except InvalidOperation:
        return None
