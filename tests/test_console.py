"""The operator console over HTTP (in-process, FastAPI's TestClient) on a store that real
declarations went through (daemon + sandbox), and the daemon's /metrics."""
from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient

from console_helpers import PASSWORD, XSS_NOTE, XSS_RULE, csrf_of, free_port, login
from support import SAMPLE_CSV, Workspace, csv_rows, wait_for


@pytest.fixture(scope="module")
def ws(tmp_path_factory, pki):
    w = Workspace(tmp_path_factory.mktemp("console"), pki, sandbox_mode="inprocess", extra_rules=XSS_RULE)
    w.drop("declaration.csv", SAMPLE_CSV.read_bytes())
    w.drop("xss.csv", csv_rows(1, prefix="XSS"))
    w.drop("bad.csv", _bad_hs_code(csv_rows(2, prefix="BAD")))
    w.swgw("run", "--drain", "--timeout", "60", check=True)
    env = {"SWGW_TEST_PW": PASSWORD}
    w.swgw("console", "user", "add", "olga", "--role", "operator", "--password-env", "SWGW_TEST_PW", env=env,
           check=True)
    w.swgw("console", "user", "add", "victor", "--role", "viewer", "--password-env", "SWGW_TEST_PW", env=env,
           check=True)
    yield w
    w.stop_all()


def _bad_hs_code(text: str) -> str:
    """The second declaration's first goods line with a 6-digit HS code (the first one stays good)."""
    lines = text.splitlines()
    cols = lines[0].split(",")
    row = lines[3].split(",")
    row[cols.index("hs_code")] = "731815"
    lines[3] = ",".join(row)
    return "\n".join(lines) + "\n"


@pytest.fixture
def app(ws):
    from gateway.config import load
    from gateway.console.app import create_app

    cfg = load(ws.config)
    cfg.console.lockout_minutes = 10
    application = create_app(cfg)
    yield application
    application.state.rt.engine.dispose()
    application.state.reader.dispose()


def client_of(app) -> TestClient:
    return TestClient(app, base_url="http://testserver")


def ids(client) -> dict:
    msgs = client.get("/api/messages").json()["messages"]
    return {m["business_key"]: m["id"] for m in msgs}


def test_every_page_and_api_answers_401_or_a_redirect_without_a_session(app):
    c = client_of(app)
    gets = [r.path.replace("{message_id}", "1").replace("{file_id}", "1") for r in app.routes
            if "GET" in getattr(r, "methods", ()) and r.path not in ("/login", "/healthz")
            and not r.path.startswith("/static")]
    assert {"/", "/messages", "/messages/1", "/intake", "/intake/1", "/alarms", "/subscriptions", "/cards",
            "/api/messages", "/api/messages/1", "/api/dashboard", "/api/openapi.json"} <= set(gets)
    for path in gets:
        r = c.get(path, follow_redirects=False)
        if path.startswith("/api/"):
            assert r.status_code == 401, path
            assert r.json() == {"detail": "log in first"}
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    posts = [r.path.replace("{message_id}", "1").replace("{alarm_id}", "1").replace("{sub_id}", "1")
             for r in app.routes if {"POST", "DELETE"} & set(getattr(r, "methods", ())) and r.path != "/login"]
    for path in posts:
        method = "DELETE" if path.startswith("/api/subscriptions/") else "POST"
        r = c.request(method, path, data={"csrf": "x"} if not path.startswith("/api/") else None,
                      json={} if path.startswith("/api/") else None, follow_redirects=False)
        assert r.status_code in (401, 303), (path, r.status_code)
    assert c.get("/healthz").json() == {"status": "ok", "process": "console", "store": "ok"}
    r = c.get("/api/messages", cookies={"swgw_session": "forged"})
    assert r.status_code == 401


def test_login_cookie_headers_csrf_roles_and_the_api(app, ws):
    c = client_of(app)
    r = login(c, "olga")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "swgw_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = c.get("/")
    assert page.status_code == 200 and "Dashboard" in page.text
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    dash = c.get("/api/dashboard").json()
    assert dash["counts"]["declaration"]["closed"] >= 1 and dash["counts"]["declaration"]["rejected"] == 1
    assert c.get("/api/openapi.json").json()["paths"]["/api/messages/{message_id}/resend"]["post"]
    # find by EntryId (a key the platform gave): one match opens the message
    keys = {m["business_key"]: m for m in c.get("/api/messages").json()["messages"]}
    closed = next(m for m in keys.values() if m["state"] == "closed")
    entry_id = next(k["value"] for k in closed["keys"] if k["name"] == "EntryId")
    found = c.get("/api/messages", params={"key": entry_id}).json()
    assert [m["id"] for m in found["messages"]] == [closed["id"]]
    r = c.get("/messages", params={"key": entry_id}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/messages/{closed['id']}"
    assert c.get("/api/messages", params={"key": entry_id, "key_name": "ClientSeqNo"}).json()["total"] == 0
    assert c.get("/api/messages", params={"type": "declaration", "state": "closed"}).json()["total"] >= 1
    # an action without the CSRF token is refused, by form and by API; with it, it is done and recorded
    xss = keys["XSS0000000"]
    for r in (c.post(f"/messages/{xss['id']}/resend", data={"mode": "new"}, follow_redirects=False),
              c.post(f"/messages/{xss['id']}/resend", data={"mode": "new", "csrf": "wrong"}, follow_redirects=False),
              c.post(f"/api/messages/{xss['id']}/resend", json={"new_submission": True})):
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    me = c.get("/api/me").json()
    assert me["role"] == "operator" and me["can_act"]
    r = c.post("/api/subscriptions", json={"business_key": "XSS0000000", "folder": str(ws.root / "subs")},
               headers={"X-CSRF-Token": me["csrf"]})
    assert r.status_code == 200 and r.json()["result"].startswith("subscription ")
    sub_id = c.get("/api/subscriptions").json()["subscriptions"][0]["id"]
    html = c.get("/subscriptions").text
    r = c.post(f"/subscriptions/{sub_id}/delete", data={"csrf": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and c.get("/api/subscriptions").json()["subscriptions"] == []
    import sqlalchemy as sa

    with app.state.rt.engine.connect() as conn:
        details = list(conn.execute(sa.text("SELECT detail FROM events WHERE kind = 'subscription'")).scalars())
    assert any(d.startswith(f"subscription {sub_id} added by olga (operator, console)") for d in details)
    assert any(d.startswith(f"subscription {sub_id} removed by olga (operator, console)") for d in details)
    # a viewer sees, cannot act (even with a good token)
    v = client_of(app)
    assert login(v, "victor").status_code == 303
    vme = v.get("/api/me").json()
    assert vme["role"] == "viewer" and not vme["can_act"]
    r = v.post(f"/api/messages/{xss['id']}/resend", json={}, headers={"X-CSRF-Token": vme["csrf"]})
    assert r.status_code == 403 and "only an operator" in r.json()["detail"]
    assert 'id="resend"' not in v.get(f"/messages/{xss['id']}").text
    # logout ends the session
    html = c.get("/").text
    assert c.post("/logout", data={"csrf": csrf_of(html)}, follow_redirects=False).status_code == 303
    assert c.get("/api/me").status_code == 401


def test_a_resend_asked_twice_in_a_row_is_done_once_and_recorded_with_the_user(app, ws):
    c = client_of(app)
    login(c, "olga")
    csrf = c.get("/api/me").json()["csrf"]
    xss = ids(c)["XSS0000000"]  # rejected by customs: only a new submission may send it again
    r = c.post(f"/api/messages/{xss}/resend", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "new-submission" in r.json()["detail"]
    first = c.post(f"/api/messages/{xss}/resend", json={"new_submission": True}, headers={"X-CSRF-Token": csrf})
    assert first.status_code == 200 and "as a new submission with CopMsgId" in first.json()["result"]
    html = c.get(f"/messages/{xss}").text  # the double click, by form
    again = c.post(f"/messages/{xss}/resend", data={"mode": "new", "csrf": csrf_of(html)}, follow_redirects=False)
    assert again.status_code == 303
    assert "already queued to send again" in c.get(again.headers["location"]).text
    cli = ws.swgw("resend", str(xss), "--new-submission", check=True).stdout  # and the CLI after the console
    assert "already queued to send again" in cli
    events = c.get(f"/api/messages/{xss}").json()["events"]
    asked = [e["detail"] for e in events if "as a new submission" in e["detail"]]
    assert len(asked) == 1 and asked[0].startswith("resend requested by olga (operator, console) as a new submission")
    assert events[-1]["to_state"] == "prepared"


def test_alarms_are_listed_escaped_and_acknowledged_by_an_operator_only(app, ws):
    from gateway import alarms

    alarms.raise_alarm(app.state.rt, "transmit-failed", "message 1 failed: <img src=x onerror=alert(1)>",
                       message_id=1, business_key="DL2026110100001")
    v, c = client_of(app), client_of(app)
    login(v, "victor")
    login(c, "olga")
    (alarm,) = [a for a in v.get("/api/alarms").json()["alarms"] if a["kind"] == "transmit-failed"]
    assert alarm["message_id"] == 1 and alarm["fields"]["business_key"] == "DL2026110100001"
    html = v.get("/alarms").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert "Acknowledge" not in html  # a viewer gets no button …
    vcsrf = v.get("/api/me").json()["csrf"]
    assert v.post(f"/api/alarms/{alarm['id']}/ack", headers={"X-CSRF-Token": vcsrf}).status_code == 403  # … nor the act
    assert c.post(f"/alarms/{alarm['id']}/ack", data={}, follow_redirects=False).status_code == 403  # no token
    r = c.post(f"/alarms/{alarm['id']}/ack", data={"csrf": csrf_of(c.get("/alarms").text)}, follow_redirects=False)
    assert r.status_code == 303 and "acknowledged" in c.get("/alarms").text
    (acked,) = [a for a in c.get("/api/alarms", params={"show": "all"}).json()["alarms"] if a["id"] == alarm["id"]]
    assert acked["acked_by"] == "olga" and acked["acked_at"]
    assert alarm["id"] not in [a["id"] for a in c.get("/api/alarms").json()["alarms"]]
    events = c.get("/api/messages/1").json()["events"]
    assert events[-1]["kind"] == "alarm-acknowledged" and "by olga (operator, console)" in events[-1]["detail"]


def test_a_locked_out_user_stays_out(app, ws):
    from gateway.console import auth

    auth.add_user(app.state.rt.sessions, "lena", "operator", PASSWORD)
    c = client_of(app)
    for n in range(4):
        r = login(c, "lena", "wrong password")
        assert r.status_code == 401 and "wrong name or password" in r.text
    r = login(c, "lena", "wrong password")
    assert r.status_code == 401 and "locked out for 10 minutes" in r.text
    r = login(c, "lena", PASSWORD)  # the right password, too late
    assert r.status_code == 401 and "locked out" in r.text and "swgw_session" not in r.headers.get("set-cookie", "")
    assert c.get("/api/me").status_code == 401
    # the login form needs its own token (no login CSRF)
    r = c.post("/login", data={"name": "olga", "password": PASSWORD, "login_token": "forged"})
    assert r.status_code == 401 and "expired" in r.text
    # an admin resets the password: unlocked
    ws.swgw("console", "user", "passwd", "lena", "--password-env", "P", env={"P": "another long one"}, check=True)
    assert login(c, "lena", "another long one").status_code == 303


def test_login_attempts_from_one_address_are_rate_limited(app):
    app.state.rt.config.console.client_attempts_per_minute = 3
    c = client_of(app)
    c.headers["X-Forwarded-For"] = "1.2.3.4"  # not trusted: the limit is per connection address
    for _ in range(3):  # (earlier tests' attempts from this address within the minute count too)
        login(c, "nobody", "x" * 12)
    r = login(c, "olga")
    assert r.status_code == 401 and "too many login attempts" in r.text


def test_a_receipt_note_holding_a_script_tag_is_shown_as_text(app):
    c = client_of(app)
    login(c, "victor")
    xss = ids(c)["XSS0000000"]
    html = c.get(f"/messages/{xss}").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in html  # the decoded NOTE and the raw XML
    data = c.get(f"/api/messages/{xss}").json()
    assert any(r["fields"].get("NOTE") == XSS_NOTE for r in data["receipts"])
    assert [e for e in data["events"] if e["to_state"] == "rejected"]
    # every script the page loads is ours, and no inline style the CSP would block
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/htmx.min.js" defer>']
    for page in (html, c.get("/").text, c.get("/subscriptions").text, c.get("/messages").text):
        assert ' style="' not in page


def test_an_intake_file_with_a_refused_document_shows_its_located_errors(app):
    c = client_of(app)
    login(c, "victor")
    files = c.get("/api/intake", params={"outcome": "partial"}).json()["files"]
    (bad,) = [f for f in files if f["name"] == "bad.csv"]
    assert bad["rejected"] == 1
    data = c.get(f"/api/intake/{bad['id']}").json()
    (err,) = [e for e in data["errors"] if e.get("rule") == "pattern"]
    assert err["document"] == "BAD0000001" and err["row"] == 4 and err["column"] == "hs_code"
    assert err["value"] == "731815" and err["field"].endswith("CodeTS")
    html = c.get(f"/intake/{bad['id']}").text
    assert "731815" in html and "hs_code" in html and "BAD0000000" in html  # the good one is listed
    assert c.get("/intake").status_code == 200
    (invalid,) = [m for m in data["messages"] if m["business_key"] == "BAD0000001"]
    assert invalid["state"] == "invalid"
    page = c.get(f"/messages/{invalid['id']}").text
    assert "<h2>Errors</h2>" in page and "731815" in page and "pattern" in page


def test_trusted_proxy_header_only_from_a_trusted_address(ws):
    from gateway.config import load
    from gateway.console.app import create_app

    cfg = load(ws.config)
    cfg.console.trusted_proxy_header = "X-Remote-User"
    cfg.console.trusted_proxies = ["testclient"]
    c = TestClient(create_app(cfg))
    assert c.get("/api/me", headers={"X-Remote-User": "olga"}).json()["name"] == "olga"
    assert c.get("/api/me", headers={"X-Remote-User": "nobody-known"}, cookies={}).status_code in (200, 401)
    cfg2 = load(ws.config)
    cfg2.console.trusted_proxy_header = "X-Remote-User"  # default trusted: 127.0.0.1 only
    c2 = TestClient(create_app(cfg2))
    assert c2.get("/api/me", headers={"X-Remote-User": "olga"}).status_code == 401


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_exposes_the_gauges_and_they_follow_the_messages(tmp_path, pki):
    w = Workspace(tmp_path, pki)
    port = free_port()
    w.config.write_text(w.config.read_text() + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\ngauge_interval = 0.2\n')
    w.swgw("db", "upgrade", check=True)
    w.start_daemon()
    wait_for(lambda: _up(port), 20, what="the daemon's /metrics")
    assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read())["status"] == "ok"
    m = scrape(port)
    for gauge in ("swgw_messages_overdue", "swgw_messages_failed", "swgw_messages_retrying",
                  "swgw_oldest_unanswered_seconds", "swgw_alarms_open", 'swgw_link_up{link="exchange"}',
                  'swgw_signer_state{signer="op",state="present"}', 'swgw_intake_queue_depth{doc_type="declaration"}'):
        assert gauge in m, gauge
    assert m['swgw_signer_state{signer="op",state="present"}'] == 1.0
    assert not any(k.startswith("swgw_messages{") for k in m)
    w.drop("two.csv", csv_rows(2, prefix="MET"))  # no sandbox: they stay sent, unanswered
    sent = 'swgw_messages{doc_type="declaration",state="sent"}'
    wait_for(lambda: scrape(port).get(sent) == 2.0, 20, what="two sent declarations in /metrics")
    time.sleep(1.2)
    m = scrape(port)
    assert m["swgw_oldest_unanswered_seconds"] >= 1.0
    assert 'swgw_stage_seconds_count{stage="intake"}' in m or any(k.startswith("swgw_stage_seconds") for k in m)
    # the sandbox answers them: they move on, the gauges follow
    w.start_sandbox()
    closed = 'swgw_messages{doc_type="declaration",state="closed"}'
    wait_for(lambda: scrape(port).get(closed) == 2.0, 30, what="closed in /metrics")
    m = scrape(port)
    assert m.get(sent, 0.0) == 0.0 and m["swgw_oldest_unanswered_seconds"] == 0.0


def _up(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        return True
    except OSError:
        return False
