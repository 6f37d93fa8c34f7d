"""The console in headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
log in, find a declaration by its EntryId, open its trace, resend a failed message and see it
reach `sent`, and a viewer who cannot resend. With SWGW_SCREENSHOTS=DIR it saves a screenshot
of every page there."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from console_helpers import PASSWORD, free_port
from support import SAMPLE_CSV, Workspace, csv_rows, wait_for

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and DRIVER.exists()),
                                reason="chromium + chromium-driver are not installed (scripts/install-test-deps.sh)")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1360,900",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=str(DRIVER)))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _state(ws, key):
    rows = [r for r in ws.status() if r["key"] == key]
    return rows[0]["state"] if rows else None


def test_find_trace_resend_and_a_viewer_cannot(tmp_path, pki, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    shots = os.environ.get("SWGW_SCREENSHOTS")
    ws = Workspace(tmp_path, pki, sandbox_mode="inprocess")
    try:
        # declarations the sandbox answered (they get EntryIds) …
        ws.drop("declaration.csv", SAMPLE_CSV.read_bytes())
        ws.swgw("run", "--drain", "--timeout", "60", check=True)
        # … and one whose sending failed: the exchange folder is broken, one attempt allowed
        ws.write_config(sandbox_mode="off")
        ws.config.write_text(ws.config.read_text() + "\n[lifecycle.retries]\ninitial = 0.2\nlimit = 1\n")
        to_sw = ws.exchange / "to-sw"
        shutil.rmtree(to_sw)
        to_sw.write_text("not a folder")
        ws.start_daemon()
        ws.drop("fail.csv", csv_rows(1, prefix="FAIL"))
        wait_for(lambda: _state(ws, "FAIL0000000") == "failed", 30, what="the declaration failed")
        to_sw.unlink()
        to_sw.mkdir()
        env = {"SWGW_TEST_PW": PASSWORD}
        for name, role in (("olga", "operator"), ("victor", "viewer")):
            ws.swgw("console", "user", "add", name, "--role", role, "--password-env", "SWGW_TEST_PW", env=env,
                    check=True)
        port = free_port()
        ws.start("console", "--config", str(ws.config), "--listen", f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), 20, what="the console")
        closed = next(r for r in ws.status() if r["state"] == "closed")
        entry_id = closed["keys"]["EntryId"]
        from selenium.common.exceptions import StaleElementReferenceException

        # htmx swaps parts of a page (the search results, the message head): an element found just
        # before a swap is stale, and the wait looks again
        wait = WebDriverWait(browser, 15, ignored_exceptions=[StaleElementReferenceException])

        def click(by, what):
            for _ in range(5):  # the element may be swapped by htmx between finding and clicking it
                try:
                    return wait.until(EC.element_to_be_clickable((by, what))).click()
                except StaleElementReferenceException:
                    time.sleep(0.2)
            raise AssertionError(f"{what} stayed stale")

        def shot(name):
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                height = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(1360, min(max(height, 900), 3000))
                browser.save_screenshot(str(Path(shots) / f"{name}.png"))
                browser.set_window_size(1360, 900)

        def log_in(name):
            browser.get(base + "/messages")           # no session: sent to the login page
            wait.until(EC.presence_of_element_located((By.ID, "name")))
            assert "/login?next=" in browser.current_url
            shot("login")
            browser.find_element(By.ID, "name").send_keys(name)
            browser.find_element(By.ID, "password").send_keys(PASSWORD)
            browser.find_element(By.ID, "login").click()
            wait.until(EC.text_to_be_present_in_element((By.ID, "whoami"), name))

        # an operator logs in, finds the declaration by its EntryId and opens its trace
        log_in("olga")
        assert browser.current_url.endswith("/messages")
        box = browser.find_element(By.ID, "key")
        box.send_keys(entry_id)
        browser.find_element(By.ID, "search").click()
        wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#messages a.mkey")] == [closed["key"]])
        shot("messages")
        click(By.CSS_SELECTOR, "#messages a.mkey")
        wait.until(EC.presence_of_element_located((By.ID, "timeline")))
        timeline = browser.find_element(By.ID, "timeline").text
        for step in ("received", "prepared", "signed", "sent", "customs-accepted", "closed"):
            assert step in timeline, step
        assert entry_id in browser.page_source and "dec-result" in browser.page_source
        shot("message")
        # the failed one: resend it, and it reaches sent, sent once
        browser.get(base + "/messages?state=failed")
        click(By.CSS_SELECTOR, "#messages a.mkey")
        wait.until(EC.text_to_be_present_in_element((By.ID, "state"), "failed"))
        click(By.ID, "resend")
        wait.until(EC.text_to_be_present_in_element((By.ID, "flash"), "queued to send again"))
        shot("resent")
        wait.until(EC.element_to_be_clickable((By.ID, "resend")))
        wait_for(lambda: _refreshed_state(browser, By) == "sent", 30, what="the page shows sent")
        assert _state(ws, "FAIL0000000") == "sent"
        failed_id = browser.current_url.rsplit("/", 1)[-1]
        trace = ws.swgw("trace", "FAIL0000000", check=True).stdout
        assert "resend requested by olga (operator, console) (same CopMsgId)" in trace
        assert trace.count("failed -> signed") == 1
        for path in ("/", "/intake", "/alarms", "/subscriptions", "/cards"):
            browser.get(base + path)
            wait.until(EC.presence_of_element_located((By.ID, "whoami")))
            assert "Internal Server Error" not in browser.page_source
            shot(path.strip("/") or "dashboard")
        browser.get(base + "/intake")
        browser.find_element(By.CSS_SELECTOR, "#intake a").click()
        wait.until(EC.presence_of_element_located((By.ID, "whoami")))
        shot("intake_file")
        browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait.until(EC.presence_of_element_located((By.ID, "name")))
        # a viewer sees the message but has no resend button, and the API refuses them
        log_in("victor")
        browser.get(f"{base}/messages/{failed_id}")
        wait.until(EC.presence_of_element_located((By.ID, "viewer-note")))
        assert not browser.find_elements(By.ID, "resend")
        status = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/api/me').then(r => r.json()).then(me => fetch('/api/messages/' + arguments[0] + '/resend', {
                method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                body: '{}'})).then(r => done(r.status));""", failed_id)
        assert status == 403
        shot("viewer")
        assert ws.swgw("trace", "FAIL0000000", check=True).stdout.count("resend requested") == 1
    finally:
        ws.stop_all()


def _refreshed_state(browser, By) -> str:
    browser.refresh()
    time.sleep(0.3)
    els = browser.find_elements(By.ID, "state")
    return els[0].text if els else ""


def _healthy(base: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(base + "/healthz", timeout=1).status == 200
    except OSError:
        return False
