"""Card-bound mode: virtual cards over the real PC/SC stack with a real UKey's signing latency.

Measures the card's own limit (signatures/s through PcscSigner in a tight loop; a declaration
needs two: DecSign/Sign and the envelope), then the gateway's drop->sent rate with one card and
with two cards (two enterprises, each with its own card, signing in parallel).
"""
from __future__ import annotations

import time
from pathlib import Path

import harness
import workload
from card import testbed

ENT2 = "91210200MA0QC9XX1Y"
PIN = b"135790"


def available() -> str | None:
    try:
        testbed.check_installed()
        return None
    except testbed.TestbedUnavailable as exc:
        return str(exc)


def _signer_toml(name: str, media_no: str, enterprise: str, pin_file: Path) -> str:
    return (f'[signers.{name}]\nkind = "pcsc"\nmedia_no = "{media_no}"\npin = {{ file = "{pin_file}" }}\n'
            f'enterprise = "{enterprise}"\n')


def run(tmp: Path, keys: dict, latency_ms: float, n_per_card: int, say) -> None:
    bed = testbed.Testbed(tmp / "pcsc").start()
    pin_file = tmp / "card.pin"
    pin_file.write_bytes(PIN + b"\n")
    try:
        ca = keys["ca"]
        specs = [testbed.issue_card(tmp / "cards", f"bench-{i}", media_no=f"ZKBENCH00000{i}", holder="王丹",
                                    enterprise=ent, pin=PIN, ca=ca, sign_latency_ms=latency_ms)
                 for i, ent in enumerate(("91210200MA0QC8N67X", ENT2))]
        for slot, spec in enumerate(specs):
            bed.insert(spec, slot=slot)
        from card.pcsc import PcscSigner

        probe = PcscSigner(PIN, media_no=specs[0].media_no)
        probe.sign(b"warm-up")
        start = time.perf_counter()
        for i in range(8):
            probe.sign(b"x" * 200 + bytes([i]))
        sig_rate = 8 / (time.perf_counter() - start)
        probe.close()
        limit = sig_rate / 2
        say("card's own limit", latency_ms=latency_ms, signatures_per_s=sig_rate, declarations_per_s=limit)
        for cards in (1, 2):
            rate = _gateway(tmp, keys, specs[:cards], pin_file, n_per_card * cards)
            say(f"card-bound, {cards} card{'s' if cards > 1 else ''}", declarations=n_per_card * cards, per_s=rate,
                ratio_to_one_card_limit=rate / limit)
    finally:
        bed.stop()


def _gateway(tmp: Path, keys: dict, specs, pin_file: Path, n: int) -> float:
    signers = "".join(_signer_toml(f"card{i}", s.media_no, s.enterprise, pin_file) for i, s in enumerate(specs))
    operators = '  [[enterprise.operators]]\n  name = "王丹"\n  signer = "card0"\n'
    extra = ""
    if len(specs) > 1:
        extra = (f'[[enterprise]]\ncode = "{ENT2}"\nname = "第二企业"\ncustoms_code = "2102930002"\n'
                 f'dxp_sender_id = "DXPENT0000012346"\n  [[enterprise.operators]]\n  name = "李明"\n'
                 f'  signer = "card1"\n')
    site = harness.Site(tmp / f"cardsite{len(specs)}", keys, signer_toml=signers, operators_toml=operators,
                        extra_toml=extra)
    rt, daemon = site.open()
    files = workload.files(n, n, "CRD", seed=3)
    name, text, _ = files[0]
    if len(specs) > 1:  # every other declaration belongs to the second enterprise
        lines = text.splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            key = line.split(",", 1)[0]
            out.append(line.replace("91210200MA0QC8N67X", ENT2) if int(key[3:]) % 2 else line)
        text = "\n".join(out) + "\n"
    running = harness.Running(daemon)
    t0 = time.time()
    site.drop(name, text)
    harness.wait_count(site, "sent", n, timeout=600)
    sent = site.event_times("sent")
    running.stop()
    return n / (max(sent.values()) - t0)
