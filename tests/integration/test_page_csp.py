"""The web page is served with a Content-Security-Policy (issue 19 section 3) that lets only its
own files run, and the page holds nothing the policy would block (inline scripts, inline styles,
handlers in attributes): the browser tests (test_gateway_page.py) then run it under the policy."""

from __future__ import annotations

import re

import httpx

from services.gateway.page import STATIC
from tests.support.mesh import Mesh


def test_the_page_is_served_with_a_policy_that_runs_only_its_own_files(mesh: Mesh):
    answer = httpx.get(f"{mesh.gateway_url}/", timeout=10)
    assert answer.status_code == 200
    policy = {
        part.split()[0]: part.split()[1:]
        for part in answer.headers["content-security-policy"].split(";")
    }
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_nothing_inline_the_policy_would_block():
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
    script = (STATIC / "app.js").read_text()
    assert "eval(" not in script and "new Function" not in script
