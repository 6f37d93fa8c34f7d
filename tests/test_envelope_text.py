"""The envelope signed from its text form (envelope.signed, what the sign stage uses) is the envelope
signed from the tree (signing.sign over envelope.wrap), byte for byte: the digested text is the
inclusive C14N of the DxpMsg, the output lxml's serialization; and it verifies, in both profiles."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from lxml import etree

from card.signer import SM2_SM3, CardInfo
from card.software import SoftwareSigner
from gateway import attachments, envelope, signing
from support import DXP_XSD

DOC = "<DecMessage>报关单 &amp; 货物</DecMessage>".encode()
ZIP = attachments.package("cop-1.xml", DOC, [("2102IM000000000000000001.pdf", b"%PDF-1.4 x" * 50)])


def env(data=DOC, file_name="cop-1.xml", ic_card="8930000012345", keys=None, receivers=("DXPEDCSW00000001",),
        cop="cop-1", sender="DXPENT0000012345", msg_type="DecMessage"):
    return envelope.Envelope(
        trans=envelope.TransInfo(cop, sender, list(receivers), dt.datetime(2026, 11, 22, 9, 0, 5), msg_type),
        data=data, file_name=file_name, ic_card=ic_card,
        biz_keys={"ClientSeqNo": "DL1"} if keys is None else keys)


PLAIN = {
    "declaration": env(),
    "attachments zip": env(data=ZIP, file_name="cop-1.zip"),
    "escapes and quotes": env(keys={"ClientSeqNo": 'A&B<C>"D\'', "SeqNo": "x\ty\nz"}, cop="a&b"),
    "not ascii": env(keys={"ClientSeqNo": "报关单-1\u2028\U0001f600"}, sender="发送方"),
    "two receivers, five keys of six": env(receivers=("R1", "R2"), keys={f"K{i}": str(i) for i in range(6)}),
    "empty texts": env(keys={"ClientSeqNo": ""}, receivers=("",), ic_card=""),
    "no file name, no card": env(file_name="", ic_card=""),
    "only a card": env(file_name="", keys={}),
}
TREE_ONLY = {   # what the text form would write differently from lxml: signed() takes the tree
    "carriage return": env(keys={"ClientSeqNo": "a\r\nb"}),
    "no receiver": env(receivers=()),
    "empty AddInfo": env(file_name="", ic_card="", keys={}),
    "key name lxml escapes": env(keys={"a>b\tc": "1"}),
}


class Deterministic(SoftwareSigner):
    """A signature that depends only on the data signed, so two signings can be compared byte for byte."""
    algorithm = SM2_SM3

    def __init__(self, cert: bytes):
        self._cert = cert
        self._info = CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", "0300000000123abc")

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha512(data).digest()


@pytest.fixture(scope="module")
def keys(sm2_and_rsa):
    return sm2_and_rsa


def real(issued) -> SoftwareSigner:
    return SoftwareSigner(issued.key, issued.cert, CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))


@pytest.mark.parametrize("name", PLAIN)
def test_the_text_form_is_the_inclusive_c14n_and_the_serialization_of_the_tree(name):
    e = PLAIN[name]
    root = envelope.wrap(e)
    assert envelope.canonical(e) == signing.c14n(root) == etree.tostring(root, encoding="UTF-8")


@pytest.mark.parametrize("name", TREE_ONLY)
def test_what_the_text_form_would_write_differently_has_none(name):
    e = TREE_ONLY[name]
    assert envelope.canonical(e) is None
    root = envelope.wrap(e)
    assert signing.c14n(root) != etree.tostring(root, encoding="UTF-8")   # why: C14N and lxml differ there


def test_a_value_that_is_not_xml_is_refused_as_by_the_tree():
    e = env(keys={"ClientSeqNo": "a\x01b"})
    assert envelope.canonical(e) is None
    with pytest.raises(ValueError):
        envelope.signed(e, Deterministic(b"cert"), "0300000000123abc")


@pytest.mark.parametrize("profile", signing.PROFILES)
@pytest.mark.parametrize("name", [*PLAIN, *TREE_ONLY])
def test_signed_from_text_is_byte_for_byte_signed_from_the_tree(keys, profile, name):
    e = {**PLAIN, **TREE_ONLY}[name]
    signer = Deterministic(real(keys["sm2"]).certificate())
    for cert_no in ("0300000000123abc", "A&B<1>"):
        assert envelope.signed(e, signer, cert_no, profile) == \
            signing.sign(envelope.wrap(e), signer, cert_no, profile)


@pytest.mark.parametrize("alg", ["sm2", "rsa"])
@pytest.mark.parametrize("profile", signing.PROFILES)
@pytest.mark.parametrize("name", ["declaration", "attachments zip", "escapes and quotes", "not ascii"])
def test_signed_from_text_validates_and_verifies(keys, alg, profile, name):
    signer = real(keys[alg])
    data = envelope.signed(PLAIN[name], signer, signer.info().cert_no, profile)
    if alg == "rsa":   # PKCS#1 v1.5 is deterministic: the very bytes of the tree's way
        assert data == signing.sign(envelope.wrap(PLAIN[name]), signer, signer.info().cert_no, profile)
    root = etree.fromstring(data)
    schema = etree.XMLSchema(etree.parse(str(DXP_XSD)))
    assert schema.validate(root), schema.error_log
    verified = signing.verify(root)
    assert verified.signature_method == signing.methods(signer.algorithm, profile)[0]
    assert envelope.unwrap(root).data == PLAIN[name].data
    root.find(f"{{{envelope.DXP_NS}}}TransInfo/{{{envelope.DXP_NS}}}CopMsgId").text = "cop-2"
    with pytest.raises(signing.SignatureError, match="digest mismatch"):
        signing.verify(root)


@pytest.mark.parametrize("hashlib_sm3", [True, False])
def test_sm3_is_the_standard_sm3_through_either_library(monkeypatch, hashlib_sm3):
    if hashlib_sm3 and not signing._HASHLIB_SM3:
        pytest.skip("this OpenSSL's hashlib has no SM3")
    monkeypatch.setattr(signing, "_HASHLIB_SM3", hashlib_sm3)
    assert signing.hash_bytes("sm3", b"abc").hex() == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"   # GB/T 32905 example 1
