"""Generated declarations in the reference ERP layout, with realistic sizes; by default with the
richer declaration's optional columns too (CIF terms with freight and insurance, 征免性质, 指运港,
the inspection-quarantine head and goods fields, an enterprise promise)."""
from __future__ import annotations

import csv
import io
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (ROOT / "samples" / "declaration.csv").read_text(encoding="utf-8")
HEADER = SAMPLE.splitlines()[0].split(",")
TEMPLATE = dict(zip(HEADER, SAMPLE.splitlines()[1].split(",")))
# the optional columns of mappings/declaration-csv.toml a full declaration usually carries
RICH_HEAD = {"trans_mode": "1", "cut_mode": "101", "distinate_port": "USLAX", "fee_mark": "3", "fee_rate": "1850",
             "fee_curr": "USD", "insur_mark": "1", "insur_rate": "0.3", "chk_surety": "0", "no_other_pack": "1",
             "promise_items": "999", "mark_no": "N/M", "overseas_consignee_ename": "PACIFIC VALVE SUPPLY INC.",
             "org_code": "210200", "insp_org_code": "210200", "vsa_org_code": "210200", "desp_date": "20261105",
             "orig_box_flag": "0", "promise_code": "102053", "voy_no": "012E"}
RICH_GOODS = {"ciq_code": "999", "goods_name_en": "STEEL PARTS", "goods_brand": "远洋牌", "no_dang_flag": "1",
              "goods_spec": "DN50 PN16", "produce_date": "20261015", "batch_no": "B2610-07"}
RICH_HEADER = HEADER + [c for c in list(RICH_HEAD) + list(RICH_GOODS) if c not in HEADER]
GOODS = [("8481804090", "不锈钢球阀", "007"), ("7318159001", "六角头螺栓", "011"), ("8458110090", "数控卧式车床", "001"),
         ("7307910000", "法兰", "007"), ("8413702990", "离心泵", "001"), ("4016931000", "橡胶密封圈", "007")]


def lines_for(rng: random.Random) -> int:
    """1–50 goods lines, most declarations small (mean ~7)."""
    return min(50, int(rng.expovariate(1 / 6)) + 1)


def declaration_rows(key: str, rng: random.Random, rich: bool = True) -> list[dict]:
    n = lines_for(rng)
    containers = [f"CSLU{rng.randrange(10**7):07d}" for _ in range(rng.randint(1, 3))]
    rows = []
    for g in range(1, n + 1):
        code, name, unit = rng.choice(GOODS)
        qty = rng.randint(1, 5000)
        price = rng.randint(1, 20000) / 100
        row = dict(TEMPLATE, client_seq_no=key, item_no=str(g), hs_code=code, goods_name=name, unit=unit,
                   qty=str(qty), first_qty=str(qty), first_unit=unit, unit_price=f"{price:.2f}",
                   total=f"{qty * price:.2f}", goods_model=f"型号 {rng.randrange(1000)}, 规格 {g}",
                   container_no=containers[g % len(containers)])
        if rich:
            row.update(RICH_HEAD, **RICH_GOODS)
        rows.append(row)
    return rows


def csv_text(rows: list[dict], rich: bool = True) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RICH_HEADER if rich else HEADER, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def files(n_decls: int, per_file: int, prefix: str, seed: int = 7, rich: bool = True) -> list[tuple[str, str, list[str]]]:
    """[(file name, CSV text, keys)] for n_decls declarations, per_file to a file (rich: with the
    optional columns; else exactly the reference layout)."""
    rng = random.Random(seed)
    out = []
    for start in range(0, n_decls, per_file):
        keys = [f"{prefix}{i:08d}" for i in range(start, min(n_decls, start + per_file))]
        rows = [r for k in keys for r in declaration_rows(k, rng, rich)]
        out.append((f"{prefix}-{start:06d}.csv", csv_text(rows, rich), keys))
    return out
