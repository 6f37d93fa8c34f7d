"""The certificate's route takes its transport word from the transport-mode table (2 水路 SEA,
5 航空 AIR …); a mode that is no means of transport (1 监管仓库) is refused with its name."""
from __future__ import annotations

import pytest

from support import ROOT, Workspace

REFERENCE = ROOT / "samples" / "origin.xml"


@pytest.fixture
def ws(tmp_path, pki):
    return Workspace(tmp_path, pki, families=["origin"])


@pytest.mark.parametrize("mode,expect", [("2", "FROM CNDLC TO VNHPH BY SEA"), ("5", "FROM CNDLC TO VNHPH BY AIR"),
                                         ("4", "FROM CNDLC TO VNHPH BY ROAD"), ("1", None)])
def test_route_words_come_from_the_transport_mode_table(ws, mode, expect):
    f = ws.root / "cert.xml"
    f.write_text(REFERENCE.read_text(encoding="utf-8").replace("<TransportMode>2</TransportMode>",
                                                             f"<TransportMode>{mode}</TransportMode>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin", "--xml")
    if expect:
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"<TransportRoute>{expect}</TransportRoute>" in out.stdout
    else:
        assert out.returncode == 1
        assert "CertHead/TransportMode: transport mode 1 (监管仓库) is not a means of transport" in out.stdout
        assert "[rule transport-mode] value '1'" in out.stdout


@pytest.mark.parametrize("name,message", [
    ("李强", "signatory 李强 of 91210200MA0QC8N67X is cancelled (已注销) and may no longer sign certificates"),
    ("张三", "张三 is not a registered signatory (手签员) of 91210200MA0QC8N67X (registered: 王丹)")])
def test_the_signatory_must_be_registered_and_not_cancelled(ws, name, message):
    f = ws.root / "cert.xml"
    f.write_text(REFERENCE.read_text(encoding="utf-8").replace("<Signatory>王丹</Signatory>",
                                                             f"<Signatory>{name}</Signatory>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin")
    assert out.returncode == 1
    assert f"CertHead/Signatory: {message} [rule signatory] value '{name}'" in out.stdout
    assert "/OriginApplications/Application/Signatory (line" in out.stdout


FILING = ROOT / "samples" / "origin-filing.json"


def test_materials_carry_hs4_cif_and_value_percent(tmp_path, pki):
    import json

    ws = Workspace(tmp_path, pki, families=["origin-filing"])
    batch = json.loads(FILING.read_text(encoding="utf-8"))
    wrong = json.loads(json.dumps(batch["filings"][0]))
    wrong["apply_no"], wrong["materials"][0]["value_percent"] = "PFBAD1", 30
    bare = json.loads(json.dumps(batch["filings"][0]))
    bare["apply_no"] = "PFBAD2"
    del bare["unit_price"]
    batch["filings"] += [wrong, bare]
    f = tmp_path / "filings.json"
    f.write_text(json.dumps(batch, ensure_ascii=False), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin-filing", "--xml")
    assert out.returncode == 1
    # computed from the CIF unit price and the product's unit price: 3.2 / 14.5 × 100, 0.4 / 14.5 × 100
    assert "<HsCode4>7218</HsCode4>" in out.stdout and "<CifUsd>3.2</CifUsd>" in out.stdout
    assert "<ValuePercent>22.07</ValuePercent>" in out.stdout and "<ValuePercent>2.76</ValuePercent>" in out.stdout
    assert "✓ PF2026000301" in out.stdout
    assert ("$.filings[1].materials[0].value_percent: FilingMaterial/ValuePercent: 从价百分比 30 is not CIF unit "
            "price 3.2 / unit price 14.5 × 100 = 22.07 [rule value-percent]") in out.stdout
    assert "✗ PFBAD2" in out.stdout and "从价百分比 is needed for every material" in out.stdout


def test_certificate_fields_of_the_screen(ws):
    extra_head = """<ApplyDate>2026-11-02</ApplyDate>
    <SignPlace>Dalian</SignPlace>
    <SignDate>2026-11-03</SignDate>
    <SecondVessel>FEEDER 7/0012S</SecondVessel>
    <PriceTermsDetail>FOB Dalian</PriceTermsDetail>
    <ContractNo>HT-2026-0891</ContractNo>
    <LcNo>LC26DL000123</LcNo>
    <LcDate>2026-10-20</LcDate>
    <Signatory>王丹</Signatory>"""
    text = REFERENCE.read_text(encoding="utf-8").replace("<Signatory>王丹</Signatory>", extra_head).replace(
        "<FobUsd>75000</FobUsd>", "<FobUsd>75000</FobUsd>\n        <UnitPrice>12.5</UnitPrice>\n"
                                  "        <Amount>75000</Amount>\n        <WeightFlag>净重</WeightFlag>")
    f = ws.root / "cert.xml"
    f.write_text(text, encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin", "--xml")
    assert out.returncode == 0, out.stdout + out.stderr
    for piece in ("<CustomsCode>2102930001</CustomsCode>", "<ApplyDate>20261102</ApplyDate>",
                  "<SignPlace>DALIAN</SignPlace>", "<SignDate>20261103</SignDate>",
                  "<SecondVessel>FEEDER 7/0012S</SecondVessel>", "<PriceTermsDetail>FOB DALIAN</PriceTermsDetail>",
                  "<ContractNo>HT-2026-0891</ContractNo>", "<LcNo>LC26DL000123</LcNo>", "<LcDate>20261020</LcDate>",
                  "<WeightFlag>N</WeightFlag>", "<UnitPrice>12.5</UnitPrice><Amount>75000</Amount>"):
        assert piece in out.stdout, piece
    f.write_text(text.replace("<Amount>75000</Amount>", "<Amount>70000</Amount>").replace(
        "<SignDate>2026-11-03</SignDate>", "<SignDate>2026-11-01</SignDate>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin")
    assert out.returncode == 1
    assert "CertGoods/Amount: total 70000 is not unit price 12.5 × quantity 6000 = 75000 [rule price*qty]" in out.stdout
    assert "CertHead/SignDate: sign date 20261101 is before the application date 20261102 [rule date-order]" in out.stdout


def _with_process(materials: str) -> str:
    """The reference certificate whose good has a unit price (交货单价 12.5 × 6000 = 75000) and the
    加工工序 screen's materials, as an ERP would add them to its <Item>."""
    return REFERENCE.read_text(encoding="utf-8").replace(
        "<FilingNo>26S2102M9997/00054</FilingNo>",
        "<FilingNo>26S2102M9997/00054</FilingNo>\n        <UnitPrice>12.5</UnitPrice><Amount>75000</Amount>\n"
        "        <ProcessSteps>CASTING, MACHINING, ASSEMBLY</ProcessSteps>\n"
        f"        <Process>{materials}</Process>")


def test_certificate_goods_carry_the_process_materials_of_the_screen(ws):
    f = ws.root / "cert.xml"
    f.write_text(_with_process("<Material><HsCode4>7218</HsCode4><CifUsd>4.20</CifUsd></Material>"
                               "<Material><HsCode4>7318</HsCode4><CifUsd>0.5</CifUsd></Material>"), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin", "--xml")
    assert out.returncode == 0, out.stdout + out.stderr
    # 从价百分比 computed from the good's unit price: 4.20 / 12.5 × 100, 0.5 / 12.5 × 100
    assert ("<ProcessSteps>CASTING, MACHINING, ASSEMBLY</ProcessSteps><ProcessMaterials><ProcessMaterial><Seq>1</Seq>"
            "<HsCode4>7218</HsCode4><CifUsd>4.20</CifUsd><ValuePercent>33.60</ValuePercent></ProcessMaterial>"
            "<ProcessMaterial><Seq>2</Seq><HsCode4>7318</HsCode4><CifUsd>0.5</CifUsd><ValuePercent>4.00</ValuePercent>"
            "</ProcessMaterial></ProcessMaterials>") in out.stdout.replace("\n", "").replace(" ", "").replace(
            "CASTING,MACHINING,ASSEMBLY", "CASTING, MACHINING, ASSEMBLY"), out.stdout
    # the platform takes it: its check of the materials' 从价百分比 passes, the certificate is approved
    from support import drain

    try:
        ws.start_sandbox()
        ws.drop_to("origin", "cert.xml", f.read_bytes())
        drain(ws)
    finally:
        ws.stop_all()
    (row,) = ws.status()
    assert row["state"] == "approved", row


@pytest.mark.parametrize("materials,message", [
    ("<Material><HsCode4>72</HsCode4><CifUsd>4.20</CifUsd></Material>",
     "CertGoods/ProcessMaterial/HsCode4: good 1, material 1: 海关税则号 is the 4-digit HS heading, e.g. 7219 "
     "[rule pattern] value '72'"),
    ("<Material><HsCode4>7218</HsCode4><CifUsd>cheap</CifUsd></Material>",
     "CertGoods/ProcessMaterial/CifUsd: good 1, material 1: CIF单价 (USD) is a number from 0 [rule decimal] value 'cheap'"),
    ("<Material><HsCode4>7218</HsCode4><CifUsd>4.20</CifUsd><ValuePercent>50</ValuePercent></Material>",
     "CertGoods/ProcessMaterial/ValuePercent: material 1 of good 1: 从价百分比 50 is not CIF unit price 4.20 / unit "
     "price 12.5 × 100 = 33.60 [rule value-percent] value '50'"),
    ("<Material><HsCode4>7218</HsCode4><CifUsd>4.20</CifUsd></Material><Material><HsCode4>7318</HsCode4></Material>",
     "CertGoods/ProcessMaterial/CifUsd: good 1 lists 2 material(s) (海关税则号) but 1 CifUsd"),
    ("".join(f"<Material><HsCode4>72{i:02d}</HsCode4><CifUsd>0.1</CifUsd></Material>" for i in range(6)),
     "CertGoods/ProcessMaterial: good 1 lists 6 materials; the 加工工序 screen takes at most 5 [rule max-materials]"),
])
def test_a_wrong_process_material_is_refused_at_its_element(ws, materials, message):
    f = ws.root / "cert.xml"
    f.write_text(_with_process(materials), encoding="utf-8")
    out = ws.swgw("map", "--dry-run", str(f), "--type", "origin")
    assert out.returncode == 1
    assert message in out.stdout, out.stdout
    assert "/OriginApplications/Application/Goods/Item/Process/Material" in out.stdout, "located at its element"
