"""Declarations as the platform takes them: the full DecMessage of the import format, OperType,
the valuation rule, and DecMessage files written by other builders taken as they are."""
from __future__ import annotations

import base64
import csv
import io
import json
import re

import pytest
from lxml import etree

from support import DXP_XSD, ROOT, SAMPLE_CSV, Workspace, drain
from gateway import signing
from gateway.config import Enterprise, Operator
from gateway.documents import family
from gateway.documents.base import Context
from gateway.mapping import native
from gateway.mapping.engine import Mapping

FIXTURES = ROOT / "tests" / "fixtures" / "decmessage"
GOOD = FIXTURES / "foreign-export-cif.xml"        # hand-written from the public format
BAD = FIXTURES / "foreign-import-fob-bad.xml"
DEC = "{http://www.chinaport.gov.cn/dec}"
DXP = "{http://www.chinaport.gov.cn/dxp}"
ENT = Enterprise(code="91210200MA0QC8N67X", name="大连远洋五金进出口有限公司", customs_code="2102930001",
                 dxp_sender_id="DXPENT0000012345")
OP = Operator(name="王丹", signer="op")
CARD = "8930000012345"


@pytest.fixture(scope="module")
def fam():
    return family("declaration")


@pytest.fixture(scope="module")
def mapping(fam):
    return Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=fam.sections())


def evaluate(fam, mapped, submit=None):
    """What intake.evaluate does for one document, without a store: profile, rules, build, XSD."""
    errors = list(mapped.errors)
    errors += fam.enrich(mapped, Context(ENT, OP, CARD, submit)) or []
    errors += fam.rules(mapped)
    if errors:
        return None, errors
    built = fam.build(mapped)
    return built.root, fam.locate(built, fam.schema.errors(built.root))


def read_native(fam, mapping, data: bytes):
    return native.read(data, fam, mapping, lambda code: ENT if code in (ENT.code, ENT.customs_code) else None)[1]


def with_columns(extra: dict[str, str], **changes) -> bytes:
    """The reference export with extra (optional) columns on every row and some values changed."""
    rows = list(csv.DictReader(io.StringIO(SAMPLE_CSV.read_text(encoding="utf-8"))))
    header = list(rows[0]) + list(extra)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, **extra, **changes})
    return buf.getvalue().encode("utf-8")


def test_reference_export_maps_unchanged_and_is_declared_unless_the_config_says_draft(fam, mapping):
    docs = mapping.apply(mapping.read(SAMPLE_CSV.read_bytes()))
    assert [d.key for d in docs] == ["DL2026110100001", "DL2026110100002"]
    root, errors = evaluate(fam, docs[0])
    assert errors == []
    assert root.findtext(f"{DEC}DecSign/{DEC}OperType") == "C"
    assert root.get("version") == "3.1"
    assert root.findtext(f"{DEC}DecHead/{DEC}TypistNo") == CARD          # the operator keyed it (录入员)
    assert fam.describe(etree.tostring(root)) == "OperType C 报关单申报 (declare)"
    draft, _ = evaluate(fam, mapping.apply(mapping.read(SAMPLE_CSV.read_bytes()))[0], submit="draft")
    assert draft.findtext(f"{DEC}DecSign/{DEC}OperType") == "G"


def test_new_columns_fill_the_rest_of_the_format(fam, mapping):
    data = with_columns({"cut_mode": "101", "distinate_port": "uslax", "fee_mark": "3", "fee_rate": "1850",
                         "fee_curr": "usd", "insur_mark": "1", "insur_rate": "0.3", "insp_org_code": "210200",
                         "desp_date": "2026-11-03", "orig_box_flag": "0", "ciq_code": "999",
                         "goods_name_en": "BALL VALVE", "goods_brand": "远洋牌", "no_dang_flag": "1",
                         "promise_code": "102053", "other_pack_type": "92", "other_pack_qty": "4",
                         "goods_licence_type": "325", "goods_licence_no": "PL2026-0001", "voy_no": "012E"},
                        trans_mode="1")   # an export on CIF: freight and insurance declared
    doc = mapping.apply(mapping.read(data))[0]
    root, errors = evaluate(fam, doc)
    assert errors == []
    head = root.find(f"{DEC}DecHead")
    assert [head.findtext(DEC + n) for n in ("CutMode", "DistinatePort", "FeeCurr", "InspOrgCode", "DespDate")] == \
           ["101", "USLAX", "USD", "210200", "20261103"]
    first = root.find(f"{DEC}DecLists/{DEC}DecList")
    assert first.findtext(f"{DEC}DecGoodsLimits/{DEC}DecGoodsLimit/{DEC}LicenceNo") == "PL2026-0001"
    assert first.findtext(f"{DEC}DecGoodsLimits/{DEC}DecGoodsLimit/{DEC}GoodsNo") == "1"
    assert root.findtext(f"{DEC}DecCopPromises/{DEC}DecCopPromise/{DEC}DeclaratioMaterialCode") == "102053"
    assert len(root.findall(f"{DEC}DecOtherPacks/{DEC}DecOtherPack")) == 1      # one per distinct kind
    assert root.findtext(f"{DEC}DecFreeTxt/{DEC}VoyNo") == "012E"


@pytest.mark.parametrize("ie,terms,costs,missing", [
    ("I", "3", {}, ["FeeRate", "InsurRate"]),                                    # import FOB: both
    ("I", "3", {"fee_mark": "3", "fee_rate": "900", "fee_curr": "USD"}, ["InsurRate"]),
    ("I", "2", {}, ["InsurRate"]),                                               # import C&F: insurance
    ("E", "1", {"insur_mark": "1", "insur_rate": "0.3"}, ["FeeRate"]),          # export CIF: both
    ("E", "2", {}, ["FeeRate"]),                                                 # export C&F: freight
    ("E", "3", {}, []),                                                          # export FOB: none
    ("I", "1", {}, []),                                                          # import CIF: none
])
def test_valuation_rule_from_the_terms_is_located_at_trans_mode(fam, mapping, ie, terms, costs, missing):
    doc = mapping.apply(mapping.read(with_columns(costs, ie_flag=ie, trans_mode=terms)))[0]
    _, errors = evaluate(fam, doc)
    found = [e for e in errors if e.rule == "valuation"]
    assert [e.field for e in found] == [f"DecHead/{m}" for m in missing]
    for e in found:
        assert (e.row, e.column, e.value) == (2, "trans_mode", terms)
        assert "must declare its" in e.located("d.csv") and "[rule valuation]" in e.located("d.csv")


def test_a_cost_needs_its_amount_and_a_total_its_currency(fam, mapping):
    doc = mapping.apply(mapping.read(with_columns({"fee_mark": "3", "fee_rate": "900", "other_rate": "12"})))[0]
    _, errors = evaluate(fam, doc)
    assert {(e.field, e.rule) for e in errors} == {("DecHead/FeeCurr", "pair"), ("DecHead/OtherMark", "pair")}


def test_foreign_decmessage_in_any_order_with_empties_builds_the_canonical_document(fam, mapping):
    docs = read_native(fam, mapping, GOOD.read_bytes())
    assert len(docs) == 1 and docs[0].key == "DX2026120300001" and docs[0].errors == []
    root, errors = evaluate(fam, docs[0])
    assert errors == []
    sign = root.find(f"{DEC}DecSign")
    assert [etree.QName(c).localname for c in sign] == ["OperType", "ICCode", "CopCode", "OperName", "ClientSeqNo"]
    assert sign.findtext(f"{DEC}ICCode") == CARD and sign.findtext(f"{DEC}OperName") == "王丹"
    assert root.find(f"{DEC}DecHead/{DEC}OwnerCode") is None                 # <OwnerCode></OwnerCode>: absent
    assert root.find(f"{DEC}DecLicenseDocus") is None and root.find(f"{DEC}DecUsers") is None
    assert root.find(f".//{DEC}DecGoodsLimits") is None                       # a limit of empty elements
    # the same document with every head element reversed and the sections shuffled builds the same bytes
    tree = etree.fromstring(GOOD.read_bytes())
    head = tree.find(f"{DEC}DecHead")
    head[:] = list(reversed(list(head)))
    tree[:] = list(reversed(list(tree)))
    shuffled, _ = evaluate(fam, read_native(fam, mapping, etree.tostring(tree))[0])
    assert etree.tostring(shuffled) == etree.tostring(root)
    # what swgw sends is in the schema's one order and validates strictly
    assert fam.schema.is_valid(root)


def test_bad_foreign_decmessage_errors_name_element_line_and_rule(fam, mapping):
    doc = read_native(fam, mapping, BAD.read_bytes())[0]
    _, errors = evaluate(fam, doc)
    located = sorted(e.located("bad.xml") for e in errors)
    assert located == sorted([
        "bad.xml, DecMessage/DecHead/CutMode (line 17): DecHead/CutMode: is not a code in table 'cut_mode' "
        "[rule code] value '777'",
        "bad.xml, DecMessage/DecLists/DecList[1]/HS_CODE (line 35): DecList/HS_CODE: <HS_CODE> is not an element "
        "of DecList in the import format [rule element] value '84581100'",
        "bad.xml, DecMessage/DecHead/TransMode (line 20): DecHead/InsurRate: an import on FOB terms (TransMode 3) "
        "must declare its insurance (保险费): InsurMark and InsurRate [rule valuation] value '3'",
    ])
    # a card the document names must be the one that signs it
    other = GOOD.read_bytes().replace(b"<OperType>C</OperType>", b"<OperType>C</OperType><ICCode>8930000099999</ICCode>")
    _, errors = evaluate(fam, read_native(fam, mapping, other)[0])
    assert [(e.field, e.rule, e.value) for e in errors] == [("DecSign/ICCode", "profile", "8930000099999")]
    assert "line " in errors[0].path


def test_a_required_element_left_out_is_named_at_its_goods_line(fam, mapping):
    data = GOOD.read_bytes().replace("<GName>六角头螺栓</GName>".encode(), b"")
    _, errors = evaluate(fam, read_native(fam, mapping, data)[0])
    assert [(e.field, e.rule) for e in errors] == [("DecList/GName", "required")]
    assert errors[0].path.startswith("DecMessage/DecLists/DecList[2]/") and "(line " in errors[0].path


def test_not_a_decmessage_or_not_xml_is_refused_whole(fam, mapping):
    from gateway.mapping.errors import InputError

    assert not native.sniff(SAMPLE_CSV.read_bytes(), "DecMessage")
    assert native.sniff(b"\xef\xbb\xbf\n <?xml version='1.0'?><DecMessage/>", "DecMessage")
    with pytest.raises(InputError, match="not well-formed"):
        read_native(fam, mapping, b"<DecMessage><DecHead></DecMessage>")
    with pytest.raises(InputError, match="DOCTYPE"):
        read_native(fam, mapping, b'<!DOCTYPE x [<!ENTITY e "x">]><DecMessage>&e;</DecMessage>')


def test_foreign_decmessage_is_sent_once_declared_and_a_bad_one_refused_while_the_batch_goes_on(tmp_path, pki):
    """Done when: a DecMessage another builder wrote, for a configured enterprise, dropped beside a bad
    one and the reference CSV in one batch, is sent once, declared (C), in an envelope that validates
    against the official DXP schema and verifies; the bad one is refused with element, line and rule."""
    ws = Workspace(tmp_path, pki)
    try:
        ws.start_sandbox()
        ws.drop("erp-0001.xml", GOOD.read_bytes())
        ws.drop("erp-0002.xml", BAD.read_bytes())
        ws.drop("declaration.csv", SAMPLE_CSV.read_bytes())
        draft = GOOD.read_bytes().replace(b"<OperType>C</OperType>", b"<OperType>G</OperType>") \
            .replace(b"DX2026120300001", b"DX2026120300003")
        ws.drop("erp-0003.xml", draft)                       # a builder's draft (暂存) keeps its OperType
        out = drain(ws).stdout
        assert "3 closed" in out and "1 invalid" in out and "1 imported" in out
        dxp = etree.XMLSchema(etree.parse(str(DXP_XSD)))
        sent = {}
        for path in ws.received_envelopes():
            env = etree.parse(str(path)).getroot()
            assert dxp.validate(env), dxp.error_log
            signing.verify(env)                               # raises unless it verifies
            doc = etree.fromstring(base64.b64decode(env.findtext(f"{DXP}Data")))
            sent.setdefault(doc.findtext(f"{DEC}DecSign/{DEC}ClientSeqNo"), []).append(doc)
        assert sorted(sent) == ["DL2026110100001", "DL2026110100002", "DX2026120300001", "DX2026120300003"]
        doc = sent["DX2026120300001"]
        assert len(doc) == 1, "sent once"
        doc = doc[0]
        assert doc.findtext(f"{DEC}DecSign/{DEC}OperType") == "C"
        assert doc.findtext(f"{DEC}DecSign/{DEC}ICCode") == "8930000012345" and doc.findtext(f"{DEC}DecSign/{DEC}Sign")
        assert doc.findtext(f"{DEC}DecHead/{DEC}InspOrgCode") == "210200"
        assert family("declaration").schema.is_valid(doc)
        # the bad file: refused with where and why; nothing of it was sent
        report = json.loads((ws.inbox / ".error" / "erp-0002.xml.error.json").read_text(encoding="utf-8"))
        errors = report["rejected"][0]["errors"]
        assert {(e["field"], e["rule"], re.search(r"line (\d+)", e["path"]).group(1)) for e in errors} == {
            ("DecHead/CutMode", "code", "17"), ("DecList/HS_CODE", "element", "35"),
            ("DecHead/InsurRate", "valuation", "20")}
        rows = {r["key"]: r for r in ws.status()}
        assert rows["DX2026120300001"]["state"] == "closed"
        assert rows["DX2026120300001"]["submit"] == "OperType C 报关单申报 (declare)"
        assert rows["DX2026120300002"]["state"] == "invalid"
        assert rows["DX2026120300003"]["state"] == "imported", "a draft is saved, customs never sees it"
        assert rows["DX2026120300003"]["submit"] == "OperType G 报关单暂存 (draft)"
        assert not any(n.startswith("DX2026120300003.dec-result.") for n in ws.outbox_files())
        trace = ws.swgw("trace", "DX2026120300001", check=True).stdout
        assert "submit: OperType C 报关单申报 (declare)" in trace and "DecMessage as written" in trace
        table = ws.swgw("status", check=True).stdout
        assert "SUBMIT" in table and "C declare" in table
    finally:
        ws.stop_all()


def test_a_submit_mode_must_be_one_the_family_has(tmp_path, pki):
    ws = Workspace(tmp_path, pki)
    ws.config.write_text(ws.config.read_text().replace('[documents.declaration]\n',
                                                       '[documents.declaration]\nsubmit = "sideways"\n'))
    bad = ws.swgw("map", "--dry-run", str(SAMPLE_CSV), "--type", "declaration")
    assert bad.returncode == 2 and "submit = 'sideways' is not one of declare, draft" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


def test_a_decmessage_record_from_the_queue_is_read_as_written_too(fam):
    """Queue records go through the type's record mapping (JSON rows); a DecMessage among them is
    recognised by its content and taken as it is, as in the drop folder."""
    from types import SimpleNamespace

    from gateway import intake

    json_mapping = Mapping.load(ROOT / "mappings" / "declaration-json.toml", allowed=fam.sections())
    dt = SimpleNamespace(family=fam, mapping=json_mapping, encoding="auto")
    rt = SimpleNamespace(enterprise=lambda code: ENT if code == ENT.code else None)
    encoding, docs, reader = intake.read_documents(rt, dt, GOOD.read_bytes())
    assert reader == "DecMessage as written" and [d.key for d in docs] == ["DX2026120300001"]
    rows = json.dumps({"rows": list(csv.DictReader(io.StringIO(SAMPLE_CSV.read_text(encoding="utf-8"))))})
    encoding, docs, reader = intake.read_documents(rt, dt, rows.encode())
    assert reader == "mapping declaration-json.toml" and len(docs) == 2
