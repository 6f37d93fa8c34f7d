"""CCPIT certificates of origin and product filings (贸促会原产地证, seed 003).

`origin`: OriginCertMessage, general (C) or preferential (B N X R H L HM I S A K E GE F), new or
amend-and-reissue (改证重发, naming the certificate it replaces). Exporter, importer, producer and
special clause are codes of the enterprise's base data (mappings/reference/), resolved by the
mapping. A preferential certificate needs, for every good, an approved product filing (FilingNo)
that covers its agreement and its HS code. Receipt: OriginAuditResult (审核通过 with the
certificate number, 退回 with the reason, 作废). Keyed by invoice number; the certificate number
becomes a key on approval.

`origin-filing`: OriginFilingMessage, product + preferential areas (ECFA H on its own) + at least
one material/part. Receipt: FilingAuditResult (审核通过 with the filing number, 退回 with reason).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from gateway.documents import checks
from gateway.documents.base import (PROFILE, Context, DocumentFamily, ReceiptOutcome, attachment_records,
                                     platform_outcome)
from gateway.mapping.engine import Mapped, Value
from gateway.mapping.errors import FieldError, MappingFileError

PREFERENTIAL = ("B", "N", "X", "R", "H", "L", "HM", "I", "S", "A", "K", "E", "GE", "F")
TRANSPORT_TABLE = "traf_mode"      # the route's word for a transport mode: its column route_word
FILINGS = "ccpit_filings"          # reference table of approved product filings (同步商品备案信息)


class _Ccpit(DocumentFamily):
    namespace = "urn:swgw:origin"
    xsd_name = "origin.xsd"
    final_states = ("approved", "returned", "voided", "rejected")
    resubmittable_states = ("returned",)      # 退回: amend and declare again under the same number
    waiting_states = ()
    sign_section = ""
    result_kind = ""
    number_key = ""                      # the key the authority's number is kept under

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        if kind == "dxp-rep":
            return platform_outcome(fields, current_state, self._forward)
        if kind == "certificate" and self.key == "origin":   # 证书自助打印: stored and routed, state kept
            return ReceiptOutcome(None, f"certificate {fields.get('CertNo', '?')} issued for printing "
                                        f"({fields.get('FileType', '?')}, {fields.get('FileName', '')})".replace(", )", ")"))
        if kind != self.result_kind:
            return ReceiptOutcome(None, f"receipt kind {kind} not expected for {self.key}")
        status, number = fields.get("Status", ""), fields.get(self.number_key, "")
        keys = {self.number_key: number} if number else {}
        if status == "审核通过":
            out = self._forward(current_state, "approved", f"CCPIT 审核通过, {self.number_key} {number or '?'}")
        elif status == "退回":
            out = self._forward(current_state, "returned", f"CCPIT 退回: {fields.get('Reason', '') or 'no reason given'}")
        elif status == "作废":
            out = self._forward(current_state, "voided", f"CCPIT 作废 {number}: {fields.get('Reason', '')}".rstrip(": "))
        else:
            return ReceiptOutcome(None, f"CCPIT audit status {status!r} (unknown)", keys)
        return ReceiptOutcome(out.state, out.summary, keys, final=out.state in self.final_states)

    def _forward(self, current: str, new: str, summary: str) -> ReceiptOutcome:
        if current == "approved" and new == "voided":       # a certificate issued can later be voided
            return ReceiptOutcome(new, summary)
        if current in self.final_states:
            return ReceiptOutcome(None, summary + f" (after {current}; state kept)")
        return ReceiptOutcome(new if new != current else None, summary)


class OriginCertificate(_Ccpit):
    key = "origin"
    root_name = "OriginCertMessage"
    msg_type = "OriginCertMessage"
    key_name = "InvoiceNo"
    sign_section = "CertSign"
    result_kind = "origin-audit"
    number_key = "CertNo"

    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        head = mapped.sections.setdefault("CertHead", [{}])[0]
        head.setdefault("ApplyType", Value("2" if "OriCertNo" in head else "1", PROFILE))
        if "TransportRoute" not in head and all(k in head for k in ("DeparturePort", "DestinationPort")):
            mode = head.get("TransportMode")
            route = f"FROM {head['DeparturePort'].text} TO {head['DestinationPort'].text}"
            if "TransitPort" in head:
                route += f" VIA {head['TransitPort'].text}"
            word = _route_word(mapped, mode.text) if mode else ""
            if mode is None or word:  # a mode that is no means of transport (监管仓库 …): refused in rules
                if word:
                    route += f" BY {word}"
                head["TransportRoute"] = Value(route, head["DeparturePort"].origin)
        errors = []
        for i, goods in enumerate(mapped.sections.get("CertGoods", []), start=1):
            goods.setdefault("GNo", Value(str(i), PROFILE))
            if goods.get("ProcessMaterial"):   # 加工工序编辑: one record per material, 从价百分比 filled in
                materials, wrong = process_materials(goods["ProcessMaterial"], i)
                errors.extend(wrong)
                if wrong:
                    del goods["ProcessMaterial"]   # refused at its element; no second error from the rules
                else:
                    goods["ProcessMaterial"] = materials
                    fill_value_percent(materials, goods.get("UnitPrice"))
        if ctx.enterprise.customs_code:  # 企业海关编码 from the profile unless the ERP gives it
            head.setdefault("CustomsCode", Value(ctx.enterprise.customs_code, PROFILE))
        ctx.fill_sign(mapped, self.sign_section)
        return errors

    def carry(self, mapped: Mapped, files: list, ctx: Context) -> list[FieldError]:
        """佐证材料: one CertAttachment per file; the file travels in the package under AttachName."""
        records = attachment_records(files)
        if records:
            mapped.sections["CertAttachment"] = records
        return []

    def profile_rules(self, mapped: Mapped, ctx: Context) -> list[FieldError]:
        """The signatory (手签员) must be 「已备案且未注销」: one of the enterprise's signatories in the
        profile ([[enterprise.signatories]], overridden by what 同步企业信息 answered: gateway/ccpit_profile.py),
        not cancelled. An enterprise that lists none is not checked."""
        listed = ctx.registered_signatories
        who = mapped.first("CertHead").get("Signatory")
        if not listed or who is None:
            return []
        found = next((s for s in listed if s.name == who.text), None)
        if found is None:
            return [FieldError.at(who.origin, "CertHead/Signatory", "signatory",
                                  f"{who.text} is not a registered signatory (手签员) of {ctx.enterprise.code} "
                                  f"(registered: {', '.join(s.name for s in listed if not s.cancelled) or 'none'})",
                                  who.text)]
        if found.cancelled:
            return [FieldError.at(who.origin, "CertHead/Signatory", "signatory",
                                  f"signatory {who.text} of {ctx.enterprise.code} is cancelled (已注销) and may no "
                                  f"longer sign certificates", who.text)]
        return []

    def replaces(self, prior, mapped: Mapped) -> bool:
        """改证重发 under the same invoice number: a new application (ApplyType 2) naming, as OriCertNo,
        the certificate number the approved message got."""
        head = mapped.first("CertHead")
        old = head.get("OriCertNo")
        return (prior.state == "approved" and old is not None and head.get("ApplyType") is not None
                and head["ApplyType"].text == "2"
                and any(k.name == "CertNo" and k.value == old.text for k in prior.keys))

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("CertHead")
        goods = mapped.sections.get("CertGoods", [])
        cert_type = head.get("CertType")
        mode = head.get("TransportMode")
        if mode and "TransportRoute" not in head and not _route_word(mapped, mode.text):
            name = mapped.reference.lookup(TRANSPORT_TABLE, "name", mode.text) if mapped.reference else None
            errors.append(FieldError.at(mode.origin, "CertHead/TransportMode", "transport-mode",
                                        f"transport mode {mode.text}{f' ({name})' if name else ''} is not a means of "
                                        f"transport a certificate's route can name (水路 2, 铁路 3, 公路 4, 航空 5, "
                                        f"邮件 6); give the route (TransportRoute) instead", mode.text))
        if not goods:
            errors.append(FieldError.at(mapped.key_origin, "CertGoods", "goods",
                                        "a certificate lists at least one good"))
        filings = mapped.reference.rows(FILINGS) if mapped.reference else {}
        preferential = cert_type is not None and cert_type.text in PREFERENTIAL
        for item in goods:
            filing, hs = item.get("FilingNo"), item.get("HsCode")
            if not preferential:
                continue
            if filing is None:
                errors.append(FieldError.at(hs.origin if hs else mapped.key_origin, "CertGoods/FilingNo", "filing",
                                            f"a preferential certificate ({cert_type.text}) needs the approved product "
                                            f"filing (FilingNo) of every good"))
                continue
            row = filings.get(filing.text)
            if row is None or row.get("status", "approved") != "approved":
                errors.append(FieldError.at(filing.origin, "CertGoods/FilingNo", "filing",
                                            f"{filing.text} is not an approved product filing in the reference data "
                                            f"({FILINGS}.csv; sync approved filings there)", filing.text))
                continue
            areas = re.split(r"[\s;,]+", row.get("areas", "").strip())
            if cert_type.text not in areas:
                errors.append(FieldError.at(filing.origin, "CertGoods/FilingNo", "filing-area",
                                            f"filing {filing.text} covers {' '.join(areas) or 'no agreement'}, not "
                                            f"{cert_type.text}", filing.text))
            filed_hs = row.get("hs_code", "")
            if hs and filed_hs and not (hs.text.startswith(filed_hs) or filed_hs.startswith(hs.text)):
                errors.append(FieldError.at(hs.origin, "CertGoods/HsCode", "filing-hs",
                                            f"HS code {hs.text} differs from {filed_hs} of filing {filing.text}",
                                            hs.text))
        for i, item in enumerate(goods, start=1):   # 加工工序: every material's 从价百分比 of the 交货单价
            errors.extend(material_errors(item.get("ProcessMaterial") or [], item.get("UnitPrice"),
                                          "CertGoods/ProcessMaterial", f"material {{n}} of good {i}",
                                          "the good's unit price (UnitPrice, 交货单价)", mapped.key_origin))
        for item in goods:   # per-good 单价 × 数量 = 金额
            wrong = checks.price_times_qty("CertGoods/Amount", item.get("UnitPrice"), item.get("Quantity"),
                                           item.get("Amount"))
            if wrong:
                errors.append(wrong)
        apply_date, sign_date = head.get("ApplyDate"), head.get("SignDate")
        if apply_date and sign_date and sign_date.text < apply_date.text:
            errors.append(FieldError.at(sign_date.origin, "CertHead/SignDate", "date-order",
                                        f"sign date {sign_date.text} is before the application date {apply_date.text}",
                                        sign_date.text))
        lc_no, lc_date = head.get("LcNo"), head.get("LcDate")
        if lc_date and not lc_no:
            errors.append(FieldError.at(lc_date.origin, "CertHead/LcNo", "pair",
                                        "an L/C issue date (L/C开证日期) needs the L/C number (信用证号)"))
        fob = head.get("FobUsd")
        if fob and goods and all("FobUsd" in g for g in goods):
            total = sum(Decimal(g["FobUsd"].text) for g in goods)
            if total > Decimal(fob.text):
                errors.append(FieldError.at(fob.origin, "CertHead/FobUsd", "fob",
                                            f"the goods' FOB values add up to {total}, more than the certificate's "
                                            f"{fob.text}", fob.text))
        invoice, transport = head.get("InvoiceDate"), head.get("TransportDate")
        if invoice and transport and transport.text < invoice.text:
            errors.append(FieldError.at(transport.origin, "CertHead/TransportDate", "date-order",
                                        f"transport date {transport.text} is before the invoice date {invoice.text}",
                                        transport.text))
        apply_type = head.get("ApplyType")
        if apply_type and apply_type.text == "2" and "OriCertNo" not in head:
            errors.append(FieldError.at(apply_type.origin, "CertHead/OriCertNo", "reissue",
                                        "amend and reissue (改证重发) names the certificate it replaces (OriCertNo)"))
        return errors


def value_percent(cif_usd: str, unit_price: str) -> Decimal:
    """从价百分比: a material's CIF unit price (USD) as a percentage of the product's unit price."""
    return (Decimal(cif_usd) / Decimal(unit_price) * 100).quantize(Decimal("0.01"))


MAX_PROCESS_MATERIALS = 5    # the 加工工序编辑 screen's 序号 1-5
_HS4 = re.compile(r"[0-9]{4}")


def fill_value_percent(items: list[dict], price: Value | None) -> None:
    """从价百分比 computed from the CIF unit price where a material leaves it out (product price known)."""
    for item in items:
        if "ValuePercent" not in item and price and Decimal(price.text) > 0 and "CifUsd" in item:
            item["ValuePercent"] = Value(str(value_percent(item["CifUsd"].text, price.text)), item["CifUsd"].origin)


def material_errors(items: list[dict], price: Value | None, path: str, label: str, price_name: str,
                    key_origin) -> list[FieldError]:
    """The rule of a product's materials (filings' FilingMaterial, a good's ProcessMaterial): every one has
    its 从价百分比, and it is CIF单价 / the product's unit price × 100 (±0.01) when that price is known."""
    errors = []
    for n, item in enumerate(items, start=1):
        pct, cif = item.get("ValuePercent"), item.get("CifUsd")
        where = f"{label.format(n=n)}: " if label else ""
        if pct is None:
            errors.append(FieldError.at(cif.origin if cif else key_origin, f"{path}/ValuePercent", "value-percent",
                                        f"{where}从价百分比 is needed for every material: give it, or "
                                        f"{price_name} to compute it from the CIF unit price"))
        elif price and cif and Decimal(price.text) > 0:
            want = value_percent(cif.text, price.text)
            if abs(Decimal(pct.text) - want) > Decimal("0.01"):
                errors.append(FieldError.at(pct.origin, f"{path}/ValuePercent", "value-percent",
                                            f"{where}从价百分比 {pct.text} is not CIF unit price "
                                            f"{cif.text} / unit price {price.text} × 100 = {want}", pct.text))
    return errors


def process_materials(records: list[dict], good: int) -> tuple[list[dict], list[FieldError]]:
    """A good's 加工工序 materials as the mapping read them (a repeated <Material> or a list: each field's
    values joined by "; ") -> one record per material (Seq, HsCode4, CifUsd, ValuePercent), and an error,
    at the element, for each value that is not what the screen takes."""
    out, errors = [], []
    for rec in records:
        parts = {name: [p.strip() for p in v.text.split(";")] for name, v in rec.items() if isinstance(v, Value)}
        count = len(parts.get("HsCode4", []))
        for name, values in parts.items():
            if len(values) != count and not (name == "ValuePercent" and not any(values)):
                errors.append(FieldError.at(rec[name].origin, f"CertGoods/ProcessMaterial/{name}", "materials",
                                            f"good {good} lists {count} material(s) (海关税则号) but {len(values)} "
                                            f"{name}: give every material its 海关税则号 and CIF单价 (and 从价百分比 "
                                            f"for all or none)", rec[name].text))
        if errors:
            return [], errors
        for j in range(count):
            item = {"Seq": Value(str(len(out) + 1), PROFILE)}
            for name, values in parts.items():
                if j < len(values) and values[j]:
                    item[name] = Value(values[j], rec[name].origin)
            out.append(item)
    for n, item in enumerate(out, start=1):
        where = f"good {good}, material {n}"
        hs, cif, pct = item.get("HsCode4"), item.get("CifUsd"), item.get("ValuePercent")
        if hs is None or not _HS4.fullmatch(hs.text):
            errors.append(FieldError.at(hs.origin if hs else None, "CertGoods/ProcessMaterial/HsCode4", "pattern",
                                        f"{where}: 海关税则号 is the 4-digit HS heading, e.g. 7219",
                                        hs.text if hs else None))
        for name, value, low, high, what in (("CifUsd", cif, 0, None, "CIF单价 (USD)"),
                                             ("ValuePercent", pct, 0, 100, "从价百分比")):
            if value is None:
                if name == "CifUsd":
                    errors.append(FieldError.at(hs.origin if hs else None, "CertGoods/ProcessMaterial/CifUsd",
                                                "required", f"{where}: CIF单价 (USD) is needed"))
                continue
            try:
                number = Decimal(value.text.rstrip("%"))
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite() or number < low or (high is not None and number > high):
                errors.append(FieldError.at(value.origin, f"CertGoods/ProcessMaterial/{name}", "decimal",
                                            f"{where}: {what} is a number from {low}" + (f" to {high}" if high else "")
                                            , value.text))
            else:
                item[name] = Value(str(number), value.origin)
    if len(out) > MAX_PROCESS_MATERIALS:
        errors.append(FieldError.at(out[MAX_PROCESS_MATERIALS]["HsCode4"].origin, "CertGoods/ProcessMaterial",
                                    "max-materials", f"good {good} lists {len(out)} materials; the 加工工序 screen "
                                    f"takes at most {MAX_PROCESS_MATERIALS}"))
    return out, errors


def _route_word(mapped: Mapped, mode: str) -> str:
    """The transport mode's word in the route (FROM … TO … BY SEA), from the transport-mode table."""
    if mapped.reference is None:
        return ""
    try:
        return mapped.reference.lookup(TRANSPORT_TABLE, "route_word", mode.upper()) or ""
    except MappingFileError:  # no such table beside the mapping: no word
        return ""


class OriginFiling(_Ccpit):
    key = "origin-filing"
    root_name = "OriginFilingMessage"
    msg_type = "OriginFilingMessage"
    key_name = "FilingApplyNo"
    sign_section = "FilingSign"
    result_kind = "filing-audit"
    number_key = "FilingNo"
    final_states = ("approved", "partially-approved", "returned", "voided", "rejected")

    def on_receipt(self, kind: str, fields: dict, current_state: str) -> ReceiptOutcome:
        """Each preferential area has its own result (优惠区域备案状态): all approved -> approved, some ->
        partially-approved (only those areas may be used), none -> returned; the reasons per area."""
        areas = fields.get("AreaResult") if kind == self.result_kind else None
        if not areas:
            return super().on_receipt(kind, fields, current_state)
        number = fields.get("FilingNo", "")
        ok = [a.get("PrefArea", "") for a in areas if a.get("Status") == "审核通过"]
        back = [(a.get("PrefArea", ""), a.get("Reason", "")) for a in areas if a.get("Status") != "审核通过"]
        per = "; ".join([f"{a} 审核通过" for a in ok] + [f"{a} 退回: {r or 'no reason given'}" for a, r in back])
        new = "approved" if ok and not back else "partially-approved" if ok else "returned"
        out = self._forward(current_state, new, f"CCPIT {fields.get('Status', '')} {number}: {per}".replace("  ", " "))
        return ReceiptOutcome(out.state, out.summary, {"FilingNo": number} if number else {}, final=True)

    def enrich(self, mapped: Mapped, ctx: Context) -> None:
        head = mapped.sections.setdefault("FilingHead", [{}])[0]
        areas = head.get("PrefAreas")
        if areas:  # "E; K" or "E,K" from a list -> the schema's space-separated list
            head["PrefAreas"] = Value(" ".join(a for a in re.split(r"[\s;,]+", areas.text.upper()) if a),
                                      areas.origin)
        for i, item in enumerate(mapped.sections.get("FilingMaterial", []), start=1):
            item.setdefault("Seq", Value(str(i), PROFILE))
        fill_value_percent(mapped.sections.get("FilingMaterial", []), head.get("UnitPrice"))
        ctx.fill_sign(mapped, self.sign_section)

    def rules(self, mapped: Mapped) -> list[FieldError]:
        errors = []
        head = mapped.first("FilingHead")
        areas = head.get("PrefAreas")
        if areas:
            codes = areas.text.split()
            unknown = [a for a in codes if a not in PREFERENTIAL]
            if unknown:
                errors.append(FieldError.at(areas.origin, "FilingHead/PrefAreas", "area",
                                            f"{', '.join(unknown)} not preferential agreement code(s) "
                                            f"({' '.join(PREFERENTIAL)}); C needs no filing", areas.text))
            if "H" in codes and len(codes) > 1:
                errors.append(FieldError.at(areas.origin, "FilingHead/PrefAreas", "ecfa-alone",
                                            "ECFA (H) is filed on its own: file the other areas separately",
                                            areas.text))
            if len(set(codes)) != len(codes):
                errors.append(FieldError.at(areas.origin, "FilingHead/PrefAreas", "unique",
                                            "an area is listed twice", areas.text))
        if not mapped.sections.get("FilingMaterial"):
            errors.append(FieldError.at(mapped.key_origin, "FilingMaterial", "materials",
                                        "a product filing lists at least one material or part (原材料、零部件)"))
        errors.extend(material_errors(mapped.sections.get("FilingMaterial", []), head.get("UnitPrice"),
                                      "FilingMaterial", "", "the product's unit price (UnitPrice)",
                                      mapped.key_origin))
        return errors
