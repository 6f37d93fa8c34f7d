"""DecSign before signing: the card's certificate number, the sign date and Sign (the card's signature over
the canonical DecMessage without Sign) go in their schema places, whatever DecSign already holds."""
from __future__ import annotations

import base64
import copy

import pytest
from lxml import etree

from card import pki as card_pki
from card.signer import CardInfo
from card.software import SoftwareSigner
from gateway import signing
from gateway.config import Enterprise, Operator
from gateway.documents import family
from gateway.documents.base import Context
from gateway.mapping.engine import Mapping
from support import ROOT, SAMPLE_CSV

DEC = "{http://www.chinaport.gov.cn/dec}"
ENT = Enterprise(code="91210200MA0QC8N67X", name="大连远洋五金进出口有限公司", customs_code="2102930001",
                 dxp_sender_id="DXPENT0000012345")


@pytest.fixture(scope="module")
def fam():
    return family("declaration")


@pytest.fixture(scope="module")
def built(fam):
    mapping = Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=fam.sections())
    mapped = next(iter(mapping.apply(mapping.read(SAMPLE_CSV.read_bytes()))))
    fam.enrich(mapped, Context(ENT, Operator(name="王丹", signer="op"), "8930000012345"))
    return fam.build(mapped).root


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    d = tmp_path_factory.mktemp("decsign")
    issued = card_pki.ensure_issued(d, "op", "op", card_pki.ensure_ca(d / "ca"), "sm2")
    return SoftwareSigner(issued.key, issued.cert, CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))


def reference(fam, root, signer, info, sign_date):
    """before_sign as it was written first, element by element (find, then insert by the schema's order)."""
    order = fam.order["DecSign"]

    def insert(parent, name):
        elem = etree.Element(DEC + name)
        for i, child in enumerate(parent):
            if order.index(etree.QName(child).localname) > order.index(name):
                parent.insert(i, elem)
                return elem
        parent.append(elem)
        return elem

    sign = root.find(DEC + "DecSign")
    for name, value in (("SignDate", sign_date), ("Certificate", info.cert_no)):
        elem = sign.find(DEC + name)
        if elem is None:
            elem = insert(sign, name)
        elem.text = value
    old = sign.find(DEC + "Sign")
    if old is not None:
        sign.remove(old)
    insert(sign, "Sign").text = base64.b64encode(signer.sign(signing.c14n(root))).decode()


class Deterministic:
    def __init__(self, signer):
        self.signer = signer

    def sign(self, data: bytes) -> bytes:
        return signing.hash_bytes("sha256", data)


def dec_sign(root, **children):
    """`root` with DecSign's children `children` added (in document order as given) or replaced."""
    root = copy.deepcopy(root)
    sign = root.find(DEC + "DecSign")
    for name, text in children.items():
        elem = sign.find(DEC + name)
        if elem is None:
            elem = etree.SubElement(sign, DEC + name)
        elem.text = text
    return root


VARIANTS = {
    "as built": {},
    "signed before": {"Sign": "b2xk", "SignDate": "20200101000000", "Certificate": "old"},
    "only a sign date": {"SignDate": "20200101000000"},
    "children after Certificate": {"HostId": "H1", "Note": "n"},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_decsign_is_filled_in_schema_order_and_its_sign_verifies(fam, built, signer, variant):
    root = dec_sign(built, **VARIANTS[variant])
    info = signer.info()
    fam.before_sign(root, signer, info, "20261122093000")
    sign = root.find(DEC + "DecSign")
    names = [etree.QName(c).localname for c in sign]
    order = fam.order["DecSign"]
    assert names == sorted(names, key=order.index) and len(names) == len(set(names))
    assert sign.findtext(DEC + "SignDate") == "20261122093000" and sign.findtext(DEC + "Certificate") == info.cert_no
    assert fam.verify_document(root, signer.certificate(), signer.algorithm) is None
    assert fam.schema.is_valid(root) or variant == "children after Certificate"   # HostId… as given
    sign.find(DEC + "OperName").text = "李四"
    assert fam.verify_document(root, signer.certificate(), signer.algorithm) == "DecSign/Sign does not match the declaration"


@pytest.mark.parametrize("variant", VARIANTS)
def test_decsign_is_what_the_element_by_element_form_gives(fam, built, signer, variant):
    mine, theirs = dec_sign(built, **VARIANTS[variant]), dec_sign(built, **VARIANTS[variant])
    fake = Deterministic(signer)
    fam.before_sign(mine, fake, signer.info(), "20261122093000")
    reference(fam, theirs, fake, signer.info(), "20261122093000")
    assert etree.tostring(mine) == etree.tostring(theirs)


def test_no_decsign_is_left_as_it_is(fam, built, signer):
    root = copy.deepcopy(built)
    root.remove(root.find(DEC + "DecSign"))
    before = etree.tostring(root)
    fam.before_sign(root, signer, signer.info(), "20261122093000")
    assert etree.tostring(root) == before
