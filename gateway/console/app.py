"""The operator console: a FastAPI app (Jinja2 pages, htmx for partial refreshes, no JS build
step) over the store, in its own process. Every page has a JSON twin under /api (OpenAPI at
/api/openapi.json); both need a session. Actions need the operator or admin role and the
session's CSRF token (a form field, or the X-CSRF-Token header)."""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from gateway.console import actions, auth, queries
from gateway.console.auth import Who
from gateway.store import db

HERE = Path(__file__).parent
COOKIE = "swgw_session"
LOGIN_COOKIE = "swgw_login"
FLASH_COOKIE = "swgw_flash"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class StoreRuntime:
    """What the console's actions need of a runtime: the config and the store (no schemas,
    mappings, transports or signers are built)."""

    config: object
    engine: object
    sessions: object


class NotLoggedIn(Exception):
    pass


class ResendBody(BaseModel):
    new_submission: bool = False


class ResendFailedBody(BaseModel):
    doc_type: str = ""


class SubscriptionBody(BaseModel):
    business_key: str = ""
    enterprise: str = ""
    operator: str = ""
    kinds: str = ""
    folder: str = ""
    queue: str = ""


def _date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"dates are YYYY-MM-DD (got {value!r})") from None


def create_app(cfg, engine=None) -> FastAPI:
    cc = cfg.console
    engine = engine or db.make_engine(cfg.store.resolved_url())
    rt = StoreRuntime(cfg, engine, db.sessions(engine))
    sessions = rt.sessions          # actions, logins: they write
    reader = db.make_engine(cfg.store.resolved_url(), readonly=True)
    read_sessions = db.sessions(reader)  # pages: on SQLite, reading never takes the daemon's write lock
    app = FastAPI(title="swgw console", version="1", openapi_url=None, docs_url=None, redoc_url=None,
                  description="The operator console's JSON API: the same data and actions as its pages.")
    app.state.rt, app.state.reader = rt, reader
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["age"] = queries.age
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # -- security headers, cookies -----------------------------------------------------------
    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static"):
            response.headers["Cache-Control"] = "no-store"
        token = getattr(request.state, "new_token", None)
        if token:
            _set_cookie(request, response, COOKIE, token, max_age=int(cc.session_hours * 3600))
        return response

    def _secure(request: Request) -> bool:
        if cc.secure_cookies is not None:
            return cc.secure_cookies
        return request.url.scheme == "https"

    def _set_cookie(request, response, name, value, max_age=None):
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=_secure(request), path="/")

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn):
        if request.url.path.startswith("/api/") or request.headers.get("HX-Request"):
            return JSONResponse({"detail": "log in first"}, status_code=401,
                                headers={"WWW-Authenticate": 'Cookie realm="swgw console"'})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    # -- who is asking -----------------------------------------------------------------------
    def who(request: Request) -> Who:
        w = auth.session_user(read_sessions, request.cookies.get(COOKIE))
        if w is None and cc.trusted_proxy_header:
            client = request.client.host if request.client else ""
            name = request.headers.get(cc.trusted_proxy_header, "")
            if name and client in cc.trusted_proxies:
                opened = auth.proxy_session(sessions, cc, name)
                if opened is not None:
                    w, request.state.new_token = opened
        if w is None:
            raise NotLoggedIn()
        request.state.who = w
        return w

    def actor(w: Who, given: str | None) -> Who:
        if not auth.csrf_ok(w, given):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        if not w.can_act:
            raise HTTPException(403, f"{w.name} is a {w.role}: only an operator or admin may do this")
        return w

    def page(request: Request, name: str, w: Who, **ctx) -> HTMLResponse:
        flash = request.cookies.get(FLASH_COOKIE)
        response = templates.TemplateResponse(request, name, {"who": w, "flash": unquote(flash) if flash else "",
                                                              "nav": name.split(".")[0], **ctx})
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def done(request: Request, to: str, message: str) -> RedirectResponse:
        response = RedirectResponse(to, status_code=303)
        _set_cookie(request, response, FLASH_COOKIE, quote(message[:600]), max_age=60)
        return response

    def run_action(request, to, fn, *args, **kw) -> RedirectResponse:
        try:
            return done(request, to, fn(*args, **kw))
        except actions.ActionRefused as exc:
            return done(request, to, f"refused: {exc}")

    def api_action(fn, *args, **kw) -> dict:
        try:
            return {"ok": True, "result": fn(*args, **kw)}
        except actions.ActionRefused as exc:
            raise HTTPException(409, str(exc)) from None

    def read(fn, *args, **kw):
        with read_sessions() as s:
            return fn(s, *args, **kw)

    def filters(type_: str, state: str, enterprise: str, key: str, key_name: str, since: str | None,
                until: str | None, overdue: bool, page_no: int) -> queries.Filters:
        return queries.Filters(type_.strip(), state.strip(), enterprise.strip(), key.strip(), key_name.strip(),
                               _date(since), _date(until), overdue, page_no)

    # -- open to all -------------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def healthz():
        try:
            with read_sessions() as s:
                s.execute(db_ping)
            return {"status": "ok", "process": "console", "store": "ok"}
        except Exception as exc:
            return JSONResponse({"status": "error", "process": "console", "store": type(exc).__name__},
                                status_code=503)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        token = secrets.token_urlsafe(24)
        response = templates.TemplateResponse(request, "login.html", {"who": None, "next": _safe_next(next),
                                                                      "login_token": token, "error": ""})
        _set_cookie(request, response, LOGIN_COOKIE, token, max_age=900)
        return response

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, name: str = Form(""), password: str = Form(""), login_token: str = Form(""),
              next: str = Form("/")):
        expected = request.cookies.get(LOGIN_COOKIE, "")
        error = ""
        if not expected or not secrets.compare_digest(expected, login_token):
            error = "the login form expired; try again"
        else:
            client = request.client.host if request.client else ""
            try:
                w, token = auth.login(sessions, cc, name.strip(), password, client)
            except auth.LoginRefused as exc:
                error = str(exc)
        if error:
            token2 = secrets.token_urlsafe(24)
            response = templates.TemplateResponse(request, "login.html",
                                                  {"who": None, "next": _safe_next(next), "login_token": token2,
                                                   "error": error, "name": name}, status_code=401)
            _set_cookie(request, response, LOGIN_COOKIE, token2, max_age=900)
            return response
        response = RedirectResponse(_safe_next(next), status_code=303)
        _set_cookie(request, response, COOKIE, token, max_age=int(cc.session_hours * 3600))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form(""), w: Who = Depends(who)):
        if not auth.csrf_ok(w, csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        auth.logout(sessions, request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages -------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page(request: Request, w: Who = Depends(who)):
        data = read(queries.dashboard)
        if request.headers.get("HX-Request"):
            return templates.TemplateResponse(request, "_dashboard.html", {"who": w, "d": data})
        return page(request, "dashboard.html", w, d=data)

    @app.get("/messages", response_class=HTMLResponse, include_in_schema=False)
    def messages_page(request: Request, w: Who = Depends(who), type: str = "", state: str = "",
                      enterprise: str = "", key: str = "", key_name: str = "", since: str | None = None,
                      until: str | None = None, overdue: bool = False, page_no: int = Query(1, alias="page")):
        f = filters(type, state, enterprise, key, key_name, since, until, overdue, page_no)
        with read_sessions() as s:
            data = queries.messages(s, f, cc.page_size)
            opts = queries.choices(s)
        if len(data["messages"]) == 1 and key and data["total"] == 1 and not request.headers.get("HX-Request"):
            return RedirectResponse(f"/messages/{data['messages'][0]['id']}", status_code=303)
        if request.headers.get("HX-Request"):
            return templates.TemplateResponse(request, "_message_rows.html", {"who": w, "d": data})
        return page(request, "messages.html", w, d=data, opts=opts)

    @app.get("/messages/{message_id}", response_class=HTMLResponse, include_in_schema=False)
    def message_page(request: Request, message_id: int, w: Who = Depends(who)):
        data = read(queries.message, message_id)
        if data is None:
            raise HTTPException(404, f"no message {message_id}")
        if request.headers.get("HX-Request"):
            return templates.TemplateResponse(request, "_message_head.html", {"who": w, "m": data})
        return page(request, "message.html", w, m=data)

    @app.get("/intake", response_class=HTMLResponse, include_in_schema=False)
    def intake_page(request: Request, w: Who = Depends(who), outcome: str = "", type: str = "",
                    page_no: int = Query(1, alias="page")):
        return page(request, "intake.html", w, d=read(queries.intake, outcome, type, page_no, cc.page_size))

    @app.get("/intake/{file_id}", response_class=HTMLResponse, include_in_schema=False)
    def intake_file_page(request: Request, file_id: int, w: Who = Depends(who)):
        data = read(queries.intake_file, file_id)
        if data is None:
            raise HTTPException(404, f"no intake file {file_id}")
        return page(request, "intake_file.html", w, f=data)

    @app.get("/alarms", response_class=HTMLResponse, include_in_schema=False)
    def alarms_page(request: Request, w: Who = Depends(who), show: str = "open"):
        return page(request, "alarms.html", w, d=read(queries.alarms, show))

    @app.get("/subscriptions", response_class=HTMLResponse, include_in_schema=False)
    def subscriptions_page(request: Request, w: Who = Depends(who)):
        return page(request, "subscriptions.html", w, d=read(queries.subscriptions))

    @app.get("/cards", response_class=HTMLResponse, include_in_schema=False)
    def cards_page(request: Request, w: Who = Depends(who)):
        return page(request, "cards.html", w, d=read(queries.cards, cfg))

    # -- page actions (forms) ----------------------------------------------------------------
    @app.post("/messages/{message_id}/resend", include_in_schema=False)
    def resend_form(request: Request, message_id: int, csrf: str = Form(""), mode: str = Form("same"),
                    w: Who = Depends(who)):
        actor(w, csrf)
        return run_action(request, f"/messages/{message_id}", actions.resend, rt, w, message_id,
                          new_submission=(mode == "new"))

    @app.post("/messages/resend-failed", include_in_schema=False)
    def resend_failed_form(request: Request, csrf: str = Form(""), doc_type: str = Form(""), w: Who = Depends(who)):
        actor(w, csrf)
        return run_action(request, "/messages?state=failed", actions.resend_failed, rt, w, doc_type)

    @app.post("/alarms/{alarm_id}/ack", include_in_schema=False)
    def ack_form(request: Request, alarm_id: int, csrf: str = Form(""), w: Who = Depends(who)):
        actor(w, csrf)
        return run_action(request, "/alarms", actions.acknowledge, rt, w, alarm_id)

    @app.post("/subscriptions", include_in_schema=False)
    def subscribe_form(request: Request, csrf: str = Form(""), business_key: str = Form(""),
                       enterprise: str = Form(""), operator: str = Form(""), kinds: str = Form(""),
                       folder: str = Form(""), queue: str = Form(""), w: Who = Depends(who)):
        actor(w, csrf)
        return run_action(request, "/subscriptions", actions.subscribe, rt, w, business_key=business_key,
                          enterprise=enterprise, operator=operator, kinds=kinds, folder=folder, queue=queue)

    @app.post("/subscriptions/{sub_id}/delete", include_in_schema=False)
    def unsubscribe_form(request: Request, sub_id: int, csrf: str = Form(""), w: Who = Depends(who)):
        actor(w, csrf)
        return run_action(request, "/subscriptions", actions.unsubscribe, rt, w, sub_id)

    # -- the JSON API ------------------------------------------------------------------------
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(w: Who = Depends(who)):
        return app.openapi()

    @app.get("/api/me", tags=["session"])
    def api_me(w: Who = Depends(who)):
        """The logged-in user, their role, and the CSRF token actions need (header X-CSRF-Token)."""
        return {"name": w.name, "role": w.role, "can_act": w.can_act, "csrf": w.csrf}

    @app.get("/api/dashboard", tags=["pages"])
    def api_dashboard(w: Who = Depends(who)):
        """Counts by type and state, overdue/failed/retrying, open alarms, links and signers, intake in the
        last hour, the oldest message waiting for an answer."""
        return read(queries.dashboard)

    @app.get("/api/messages", tags=["pages"])
    def api_messages(w: Who = Depends(who), type: str = "", state: str = "", enterprise: str = "",
                     key: str = Query("", description="any business key (ClientSeqNo, SeqNo, EntryId …) or CopMsgId"),
                     key_name: str = "", since: str | None = Query(None, description="YYYY-MM-DD"),
                     until: str | None = Query(None, description="YYYY-MM-DD"), overdue: bool = False,
                     page: int = 1):
        """Messages, newest first, filtered and paged."""
        return read(queries.messages, filters(type, state, enterprise, key, key_name, since, until, overdue, page),
                    cc.page_size)

    @app.get("/api/messages/{message_id}", tags=["pages"])
    def api_message(message_id: int, w: Who = Depends(who)):
        """One message: keys, errors, events (the trace), receipts decoded and raw, document, envelope, source."""
        data = read(queries.message, message_id)
        if data is None:
            raise HTTPException(404, f"no message {message_id}")
        return data

    @app.get("/api/intake", tags=["pages"])
    def api_intake(w: Who = Depends(who), outcome: str = "", type: str = "", page: int = 1):
        return read(queries.intake, outcome, type, page, cc.page_size)

    @app.get("/api/intake/{file_id}", tags=["pages"])
    def api_intake_file(file_id: int, w: Who = Depends(who)):
        data = read(queries.intake_file, file_id)
        if data is None:
            raise HTTPException(404, f"no intake file {file_id}")
        return data

    @app.get("/api/alarms", tags=["pages"])
    def api_alarms(w: Who = Depends(who), show: str = "open"):
        return read(queries.alarms, show)

    @app.get("/api/subscriptions", tags=["pages"])
    def api_subscriptions(w: Who = Depends(who)):
        return read(queries.subscriptions)

    @app.get("/api/cards", tags=["pages"])
    def api_cards(w: Who = Depends(who)):
        return read(queries.cards, cfg)

    csrf_header = Header("", alias="X-CSRF-Token")

    @app.post("/api/messages/{message_id}/resend", tags=["actions"])
    def api_resend(message_id: int, body: ResendBody, w: Who = Depends(who), x_csrf_token: str = csrf_header):
        """Send again: the same CopMsgId, or `new_submission` (a new CopMsgId, signed again). Asked twice in a
        row, it is sent once."""
        return api_action(actions.resend, rt, actor(w, x_csrf_token), message_id, body.new_submission)

    @app.post("/api/resend-failed", tags=["actions"])
    def api_resend_failed(body: ResendFailedBody, w: Who = Depends(who), x_csrf_token: str = csrf_header):
        """Every failed message (of one type), same CopMsgId."""
        return api_action(actions.resend_failed, rt, actor(w, x_csrf_token), body.doc_type)

    @app.post("/api/alarms/{alarm_id}/ack", tags=["actions"])
    def api_ack(alarm_id: int, w: Who = Depends(who), x_csrf_token: str = csrf_header):
        return api_action(actions.acknowledge, rt, actor(w, x_csrf_token), alarm_id)

    @app.post("/api/subscriptions", tags=["actions"])
    def api_subscribe(body: SubscriptionBody, w: Who = Depends(who), x_csrf_token: str = csrf_header):
        return api_action(actions.subscribe, rt, actor(w, x_csrf_token), **body.model_dump())

    @app.delete("/api/subscriptions/{sub_id}", tags=["actions"])
    def api_unsubscribe(sub_id: int, w: Who = Depends(who), x_csrf_token: str = csrf_header):
        return api_action(actions.unsubscribe, rt, actor(w, x_csrf_token), sub_id)

    return app


def _safe_next(target: str) -> str:
    """Only a path on this site (never //host or a scheme): no open redirect after login."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


from sqlalchemy import text as _text  # noqa: E402

db_ping = _text("SELECT 1")
