"""Document families, by key. The family classes are imported on first use (`family`, `FAMILIES`),
so what needs only a light part of this package (submission notes, checks) does not pay for them."""
from __future__ import annotations

from pathlib import Path

XSD_DIR = Path(__file__).resolve().parents[2] / "xsd"

_families: dict | None = None


def _load() -> dict:
    global _families
    if _families is None:
        from gateway.documents.declaration import Declaration
        from gateway.documents.inspection import InspectionFeedback
        from gateway.documents.licence import AutoImportLicense, ExportLicense, MeImportLicense
        from gateway.documents.origin import OriginCertificate, OriginFiling

        _families = {cls.key: cls for cls in (Declaration, ExportLicense, MeImportLicense, AutoImportLicense,
                                              InspectionFeedback, OriginCertificate, OriginFiling)}
    return _families


def __getattr__(name: str):
    if name == "FAMILIES":   # dict[str, type[DocumentFamily]]
        return _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def family(key: str, xsd_dir: Path = XSD_DIR):
    try:
        return _load()[key](xsd_dir)
    except KeyError:
        raise KeyError(f"unknown document type {key!r} (known: {', '.join(sorted(_load()))})") from None
