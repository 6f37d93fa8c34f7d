"""The declarative mapping: encodings, quoting, grouping, and located errors."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from support import ROOT, SAMPLE_CSV
from gateway.documents import family
from gateway.mapping.engine import Mapping
from gateway.mapping.errors import InputError, MappingFileError

MAPPING = ROOT / "mappings" / "declaration-csv.toml"


@pytest.fixture(scope="module")
def mapping():
    return Mapping.load(MAPPING, allowed=family("declaration").sections())


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def to_csv(rows: list[dict], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


SAMPLE = SAMPLE_CSV.read_text(encoding="utf-8")
HEADER = SAMPLE.splitlines()[0].split(",")


def errors_by_field(docs):
    return {e.field: e for d in docs for e in d.errors}


@pytest.mark.parametrize("encoding,prefix", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gb18030", b"")])
def test_reference_export_in_every_encoding(mapping, encoding, prefix):
    data = prefix + SAMPLE.encode(encoding)
    table = mapping.read(data)
    docs = mapping.apply(table)
    assert [d.key for d in docs] == ["DL2026110100001", "DL2026110100002"]
    assert all(not d.errors for d in docs)
    first = docs[0]
    assert first.first("DecHead")["TradeName"].text == "大连远洋五金进出口有限公司"
    assert len(first.sections["DecList"]) == 2
    assert len(first.sections["Container"]) == 1, "the container repeated on both rows is listed once"
    assert table.encoding == ("utf-8-sig" if prefix else encoding)


def test_quoted_fields_with_commas_and_newlines(mapping):
    rows = rows_of(SAMPLE)
    rows[0]["goods_model"] = 'DN50, PN16\n304 "不锈钢"'
    docs = mapping.apply(mapping.read(to_csv(rows, HEADER).encode()))
    assert docs[0].sections["DecList"][0]["GModel"].text == 'DN50, PN16\n304 "不锈钢"'
    assert not docs[0].errors


@pytest.mark.parametrize("column,value,field,rule", [
    ("unit", "999", "DecList/GUnit", "code"),
    ("hs_code", "84818040", "DecList/CodeTS", "pattern"),
    ("qty", "six thousand", "DecList/GQty", "type"),
    ("goods_name", "", "DecList/GName", "required"),
    ("currency", "ZZZ", "DecList/TradeCurr", "code"),
    ("container_no", "CSLU22", "Container/ContainerId", "pattern"),
])
def test_bad_value_is_located(mapping, column, value, field, rule):
    rows = rows_of(SAMPLE)
    rows[1][column] = value  # row 3 of the file (header is row 1)
    docs = mapping.apply(mapping.read(to_csv(rows, HEADER).encode()))
    bad, good = docs
    assert not good.errors, "the other declaration in the file is unaffected"
    err = errors_by_field([bad])[field]
    assert (err.row, err.column, err.rule, err.value) == (3, column, rule, value)
    assert err.column_number == HEADER.index(column) + 1


def test_header_fields_must_agree_within_a_declaration(mapping):
    rows = rows_of(SAMPLE)
    rows[1]["bill_no"] = "OTHERBILL"
    docs = mapping.apply(mapping.read(to_csv(rows, HEADER).encode()))
    err = errors_by_field(docs)["DecHead/BillNo"]
    assert (err.row, err.rule, err.value) == (3, "consistent", "OTHERBILL")


def test_missing_column_is_an_input_error(mapping):
    rows = rows_of(SAMPLE)
    header = [h for h in HEADER if h != "hs_code"]
    for r in rows:
        del r["hs_code"]
    with pytest.raises(InputError, match="hs_code"):
        mapping.apply(mapping.read(to_csv(rows, header).encode()))


def test_undecodable_file_says_so(mapping):
    with pytest.raises(InputError, match="GB18030"):
        mapping.read(b"client_seq_no\n\xff\xfe\xff\x00\x81")


def test_mapping_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('document="declaration"\nformat="csv"\ngroup_by="x"\n'
                   '[sections.DecHead]\nper="group"\nfields.NoSuchField = "col"\n')
    with pytest.raises(MappingFileError, match="NoSuchField"):
        Mapping.load(bad, codes_dir=ROOT / "mappings" / "codes", allowed=family("declaration").sections())
    bad.write_text('document="declaration"\nformat="csv"\ngroup_by="x"\n'
                   '[sections.DecHead]\nfields.IEFlag = { column = "a", codes = "nosuchtable" }\n')
    with pytest.raises(MappingFileError, match="nosuchtable"):
        Mapping.load(bad, codes_dir=ROOT / "mappings" / "codes")


text_values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
                      | st.sampled_from([",", '"', "\n", "，", "、"]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(name=text_values.filter(lambda s: s.strip() and len(s.strip()) <= 255),
       model=text_values.filter(lambda s: len(s.strip()) <= 255))
def test_any_text_survives_csv_quoting(mapping, name, model):
    rows = rows_of(SAMPLE)
    rows[0]["goods_name"], rows[0]["goods_model"] = name, model
    for encoding in ("utf-8", "gb18030"):
        try:
            data = to_csv(rows, HEADER).encode(encoding)
        except UnicodeEncodeError:
            continue
        docs = mapping.apply(mapping.read(data, encoding=encoding))
        item = docs[0].sections["DecList"][0]
        assert item["GName"].text == name.strip()
        assert item.get("GModel").text == model.strip() if model.strip() else "GModel" not in item


def test_json_rows_mapping_extends_the_csv_one_and_maps_the_same(mapping):
    """mappings/declaration-json.toml only changes the format: the same rows as JSON objects
    (numbers as JSON numbers, an optional column left out) give the same documents."""
    import json

    json_mapping = Mapping.load(ROOT / "mappings" / "declaration-json.toml")
    assert json_mapping.format == "json" and json_mapping.group_by == mapping.group_by
    rows = rows_of(SAMPLE)
    as_json = []
    for row in rows:
        obj = {k: v for k, v in row.items() if k != "goods_place"}           # an absent key is empty
        obj["qty"] = float(row["qty"]) if "." in row["qty"] else int(row["qty"])
        as_json.append(obj)
    for row in rows:
        row["goods_place"] = ""
    from_csv = mapping.apply(mapping.read(to_csv(rows, HEADER).encode()))
    from_json = json_mapping.apply(json_mapping.read(json.dumps({"rows": as_json}, ensure_ascii=False).encode()))
    def texts(docs):
        return [(d.key, d.errors, {s: [{f: v.text for f, v in r.items()} for r in recs]
                                   for s, recs in d.sections.items()}) for d in docs]

    assert len(from_json) == 2 and texts(from_json) == texts(from_csv)
    with pytest.raises(InputError, match="list of records"):
        json_mapping.read(b'{"rows": [{"client_seq_no": "X", "lines": [{"a": 1}]}]}')
    with pytest.raises(InputError, match="not valid JSON"):
        json_mapping.read(b"{rows")


def _decimal_before(text, scale, max_digits):
    """A decimal read as the converter read it when its plain case was a regex (it now uses
    str.isdecimal): (text, None) or ("", (rule, message))."""
    import re
    from decimal import Decimal, InvalidOperation

    plain = re.fullmatch(r"(\d+)(?:\.(\d+))?", text)
    if plain is not None:
        whole, frac = plain.group(1), plain.group(2) or ""
        if scale is not None and len(frac) > scale:
            return "", ("scale", f"has more than {scale} decimal places")
        whole = whole.lstrip("0") or "0"
        if max_digits is not None and (len(whole) if whole != "0" else 1) > max_digits - (scale or 0):
            return "", ("max_digits", f"is too large: at most {max_digits - (scale or 0)} digits before the "
                                      f"decimal point")
        return (whole if frac.strip("0") == "" else f"{whole}.{frac}"), None
    try:
        num = Decimal(text.replace(",", "")) if re.fullmatch(r"[+-]?[\d,]*\.?\d*", text) else None
    except InvalidOperation:
        num = None
    if num is None or not num.is_finite():
        return "", ("type", "must be a number")
    if scale is not None:
        exp = num.as_tuple().exponent
        if isinstance(exp, int) and -exp > scale:
            return "", ("scale", f"has more than {scale} decimal places")
    if max_digits is not None and len(str(abs(int(num)))) > max_digits - (scale or 0):
        return "", ("max_digits", f"is too large: at most {max_digits - (scale or 0)} digits before the decimal point")
    return (format(num.normalize(), "f") if num == num.to_integral() else format(num, "f")), None


number_text = st.text(alphabet=st.sampled_from("0123456789.,+-eE ٠١٢٣²x"), max_size=12)


@settings(max_examples=400, deadline=None)
@given(raw=number_text | text_values, required=st.booleans(), default=st.sampled_from([None, "", "7", "x"]),
       ftype=st.sampled_from(["str", "int", "decimal", "date"]), scale=st.sampled_from([None, 0, 2, 5]),
       max_digits=st.sampled_from([None, 4, 19]), max_length=st.sampled_from([None, 3]),
       pattern=st.sampled_from([None, r"\d+"]))
@example(raw="1.²", required=True, default=None, ftype="decimal", scale=5, max_digits=19, max_length=None, pattern=None)
@example(raw=" ١٢.٣ ", required=True, default=None, ftype="decimal", scale=None, max_digits=None, max_length=None,
         pattern=None)
@example(raw="", required=False, default="7", ftype="decimal", scale=2, max_digits=4, max_length=None, pattern=None)
def test_compiled_converters_say_what_the_general_one_says(raw, required, default, ftype, scale, max_digits,
                                                           max_length, pattern):
    """The converter's shortcuts (plain, typed only, lengths and pattern only) answer as the general
    converter does; a plain decimal reads as the regex read it."""
    import re

    from gateway.mapping.codes import CodeTables
    from gateway.mapping.engine import FieldSpec, converter

    spec = dict(name="F", column="c", required=required, default=default, type=ftype, scale=scale,
                max_digits=max_digits, max_length=max_length, pattern=re.compile(pattern) if pattern else None)
    codes = CodeTables(ROOT / "mappings" / "codes")
    fast = converter(FieldSpec(**spec), codes)
    general = converter(FieldSpec(**spec, map={"\0never": "\0never"}), codes)   # a map: the general path
    assert fast(raw) == general(raw)
    if ftype == "decimal" and raw.strip() and max_length is None and pattern is None:
        assert fast(raw) == _decimal_before(raw.strip(), scale, max_digits)
