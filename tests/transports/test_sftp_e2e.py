"""The daemon and the sandbox over a real OpenSSH sftp server, with the PostgreSQL store."""
from __future__ import annotations

import base64
import re
import time

from lxml import etree

from support import Workspace, csv_rows, postgres_database, use_transport, wait_for

DXP = "{http://www.chinaport.gov.cn/dxp}"


def sftp_toml(sshd, outgoing, incoming, header: str) -> str:
    return (f'{header}\nkind = "sftp"\nhost = "{sshd.host}"\nport = {sshd.port}\nusername = "{sshd.user}"\n'
            f'key_file = "{sshd.client_key}"\nknown_hosts = "{sshd.known_hosts}"\n'
            f'outgoing = "{outgoing}"\nincoming = "{incoming}"\nconnect_timeout = 3\n'
            f'backoff_initial = 0.2\nbackoff_max = 1.0\n')


def test_sshd_stopped_mid_batch_every_declaration_arrives_once(sshd, tmp_path, pki):
    remote = sshd.root / f"exchange-{time.time_ns()}"
    to_sw, from_sw = remote / "to-sw", remote / "from-sw"
    to_sw.mkdir(parents=True)
    from_sw.mkdir()
    with postgres_database() as url:
        ws = Workspace(tmp_path, pki, store_url=url)
        use_transport(ws, sftp_toml(sshd, to_sw, from_sw, "[transports.exchange]"),
                      sftp_toml(sshd, from_sw, to_sw, "[transport]"))
        try:
            ws.start_sandbox()
            ws.start_daemon()
            ws.drop("batch.csv", csv_rows(30, lines=2, prefix="SFT"))
            wait_for(lambda: any(r["state"] != "prepared" for r in ws.status()), 60, what="the first envelopes")
            sshd.stop()  # the server goes away in the middle of the batch
            time.sleep(2.0)
            sshd.start()
            wait_for(lambda: len(ws.status()) == 30 and {r["state"] for r in ws.status()} == {"closed"}, 120,
                     what="all 30 declarations closed after sshd came back")
        finally:
            ws.stop_all()
            if not sshd.running:
                sshd.start()
        statuses = ws.status()
    keys = []
    for path in ws.received_envelopes():
        data = base64.b64decode(etree.parse(str(path)).getroot().findtext(f"{DXP}Data"))
        keys.append(re.search(rb"<ClientSeqNo>([^<]+)", data).group(1).decode())
    assert sorted(keys) == [f"SFT{i:07d}" for i in range(30)], "each declaration arrived exactly once"
    assert {p.stem for p in ws.received_envelopes()} == {r["cop_msg_id"] for r in statuses}
    assert not [p for p in to_sw.iterdir()] and not [p for p in from_sw.iterdir()], "nothing stuck on the server"
    assert len(list(ws.outbox.glob("*.xml"))) == 30 * 7   # DxpRep, import response, statuses 7 L J P R
    # the statuses as the platform sends them: bare <DEC_RESULT>, the first one 7 (申报成功)
    first = etree.parse(str(sorted(ws.outbox.glob("SFT0000000.dec-result.*.xml"))[0])).getroot()
    assert (first.tag, first.findtext("CHANNEL")) == ("DEC_RESULT", "7")
