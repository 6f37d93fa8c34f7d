"""The unavoidable work alone, in one tight loop: parse, build, validate (lxml), sign with the
same key (DecSign/Sign and the envelope, as the gateway does), base64, write."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from lxml import etree

from card.signer import CardInfo
from card.software import SoftwareSigner
from gateway import envelope, signing
from gateway.documents import family
from gateway.documents.base import Context
from gateway.config import Enterprise, Operator
from gateway.mapping.engine import Mapping

ROOT = Path(__file__).resolve().parents[1]


def run(files: list[tuple[str, str, list[str]]], keys: dict, out_dir: Path) -> tuple[int, float]:
    fam = family("declaration")
    mapping = Mapping.load(ROOT / "mappings" / "declaration-csv.toml", allowed=fam.sections())
    signer = SoftwareSigner(keys["key"], keys["cert"], CardInfo("8930000012345", "王丹", "91210200MA0QC8N67X", ""))
    info = signer.info()
    ent = Enterprise(code="91210200MA0QC8N67X", name="x", customs_code="2102930001", dxp_sender_id="DXPENT0000012345")
    ctx = Context(ent, Operator(name="王丹", signer="op"), info.media_no)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    start = time.perf_counter()
    for _, text, _ in files:
        for mapped in mapping.apply(mapping.read(text.encode("utf-8"))):
            fam.enrich(mapped, ctx)
            built = fam.build(mapped)
            assert fam.schema.is_valid(built.root)
            fam.before_sign(built.root, signer, info, "20261122000000")
            doc = etree.tostring(built.root, xml_declaration=True, encoding="UTF-8")
            env = envelope.Envelope(envelope.TransInfo(f"b{n}", "DXPENT0000012345", ["DXPEDCSW00000001"],
                                                       dt.datetime.now(), "DecMessage"), doc,
                                    biz_keys={"ClientSeqNo": mapped.key})
            data = signing.sign(envelope.wrap(env), signer, info.cert_no)
            (out_dir / f"b{n}.xml").write_bytes(data)
            n += 1
    return n, time.perf_counter() - start
