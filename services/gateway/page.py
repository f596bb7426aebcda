"""The web page at `/`: the quickest way to see the mesh work after `make run`.

Plain HTML, JS and CSS from `static/` (no build step): a prompt, a model picker filled from
`/v1/models`, size and steps, a progress bar and partial previews driven by the streamed
generation, the final image with its link, and a stop button. With API keys set, the page needs
one like every other path unless `/` is in `GATEWAY_OPEN_PATHS` (its files then open with it: it
holds no data); its own calls send the key typed into it. `GATEWAY_PAGE=false` turns it off.
The page is served with a Content-Security-Policy that allows only its own files to run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
ASSETS = "/ui"
# The page's exact paths, opened together when "/" is an open path (the key check matches whole
# paths, not prefixes).
PATHS = ("/", *(f"{ASSETS}/{f.name}" for f in sorted(STATIC.iterdir()) if f.is_file()))

router = APIRouter(include_in_schema=False)

# The page runs only its own files: no inline script or style, no other origin's script, no
# framing (clickjacking), no plugins. Images may come from anywhere (the result links point at
# the bucket's host), and as data:/blob: URLs (streamed previews).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: http: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    # no-cache: a browser revalidates, so a new gateway's page is never mixed with old scripts.
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="ui")
