"""The web page at `/`: the quickest way to see the mesh work after `make run`.

Plain HTML, JS and CSS from `static/` (no build step): a prompt, a model picker filled from
`/v1/models`, size and steps, a progress bar and partial previews driven by the streamed
generation, the final image with its link, and a stop button. With API keys set, the page needs
one like every other path unless `/` is in `GATEWAY_OPEN_PATHS` (its files then open with it: it
holds no data); its own calls send the key typed into it. `GATEWAY_PAGE=false` turns it off.
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


@router.get("/")
async def index() -> FileResponse:
    # no-cache: a browser revalidates, so a new gateway's page is never mixed with old scripts.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="ui")
