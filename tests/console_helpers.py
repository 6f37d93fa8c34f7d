"""Helpers for the console tests: a workspace whose store holds real declarations (run through
the daemon and the sandbox), users, and logging in over HTTP."""
from __future__ import annotations

import re
import socket

XSS_NOTE = "<script>alert('owned')</script>"
# the sandbox rejects declarations XSS… with a NOTE that holds a script tag, as a hostile or
# broken platform might: the console must show it as text
XSS_RULE = """
[[declaration.rules]]
when = { ClientSeqNo = "^XSS" }
channels = ["L", "E"]
note = "%s"
""" % XSS_NOTE
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login_token(html: str) -> str:
    return re.search(r'name="login_token" value="([^"]+)"', html).group(1)


def login(client, name: str, password: str = PASSWORD):
    token = login_token(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "login_token": token, "next": "/"},
                       follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
