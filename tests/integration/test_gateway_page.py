"""The web page at `/` in a real headless browser (Debian's chromium, driven by Playwright) over
the real mesh: it lists the models, generates a 256x256 image on the tiny model with the progress
bar reaching 100% and a preview on the way, shows the final image from its link, and its stop
button frees the model server. A screenshot is kept in tests/artifacts/."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.mesh import Mesh
from tests.support.processes import ROOT
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches outside the machine.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"no {CHROMIUM}: run `make chromium` (Debian's chromium package)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, mesh: Mesh) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 1100})
    page = context.new_page()
    page.goto(mesh.gateway_url + "/")
    # The picker is filled from /v1/models, ready models first choice.
    expect(page.locator("#model")).to_have_value("qwen-image", timeout=30_000)
    yield page
    context.close()


def fill(page: Page, prompt: str, size: str, steps: int, previews: int) -> None:
    page.fill("#prompt", prompt)
    page.select_option("#size", size)
    page.fill("#steps", str(steps))
    page.fill("#partials", str(previews))


def test_the_page_generates_an_image_with_progress_and_previews(page: Page, mesh: Mesh) -> None:
    options = page.locator("#model option").all_inner_texts()
    assert "qwen-image" in options and not any("qwen-image-edit" in o for o in options)
    fill(page, "a red fox in the snow", "256x256", steps=4, previews=1)
    page.click("#go")
    run = page.locator("#run")
    expect(run).to_have_attribute("data-state", "done", timeout=120_000)
    assert page.eval_on_selector("#bar", "bar => bar.value") == 100
    assert run.get_attribute("data-previews") == "1"
    picture = page.locator("#picture")
    link = page.locator("#caption a").get_attribute("href") or ""
    assert link.startswith(mesh.link_prefix)
    assert picture.get_attribute("src") == link
    page.wait_for_function(
        "() => { const img = document.getElementById('picture');"
        " return img.complete && img.naturalWidth === 256 && img.naturalHeight === 256; }",
        timeout=30_000,
    )
    expect(page.locator("#status")).to_have_text(re.compile(r"^Done in [\d.]+ s\.$"))
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)


def test_the_stop_button_frees_the_model_server(page: Page, mesh: Mesh) -> None:
    request_id = f"page-stop-{uuid.uuid4().hex[:12]}"
    # The page's calls carry this id, so the model server's log line can be found.
    page.route(
        "**/v1/images/generations",
        lambda route: route.continue_(
            headers={**route.request.headers, "x-request-id": request_id}
        ),
    )
    fill(page, "a very long one", "256x256", steps=100, previews=0)
    page.click("#go")
    expect(page.locator("#status")).to_have_text(re.compile(r"^Step [1-9]"), timeout=60_000)
    page.click("#stop")
    expect(page.locator("#run")).to_have_attribute("data-state", "stopped")
    pattern = re.compile(rf"\[{request_id}\] job stopped after (\d+) of 100 steps")
    log = mesh.process("qwen_image").log_path
    wait_until(lambda: bool(pattern.search(log.read_text(errors="replace"))), 60, "the stop")


KEY = "sk-page-5d1e0b7a"


@pytest.fixture(scope="module")
def keyed(mesh: Mesh) -> Iterator[str]:
    """A second gateway over the mesh's backends, with an API key set and the page opened."""
    env = {"GATEWAY_API_KEYS": KEY, "GATEWAY_OPEN_PATHS": "/healthz,/"}
    process, url = mesh.another_gateway("gateway-page-keyed", env)
    yield url
    process.stop()


def test_with_api_keys_the_page_loads_and_asks_for_the_key(browser: Browser, keyed: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(keyed + "/")  # opened: the page and its files answer without a key
    expect(page.locator("#error")).to_contain_text("missing API key", timeout=30_000)
    assert page.locator("#auth").get_attribute("open") is not None
    page.fill("#key", KEY)
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#model")).to_have_value("qwen-image", timeout=30_000)
    assert page.locator("#error").is_hidden()
    # Kept in this browser: a reload needs no typing.
    page.reload()
    expect(page.locator("#model")).to_have_value("qwen-image", timeout=30_000)
    assert page.evaluate("localStorage.getItem('imagemesh.apiKey')") == KEY
    context.close()
