"""The web page at `/` in a real headless browser (Debian's chromium, driven by Playwright) over
the real mesh: it lists the models, generates a 256x256 image on the tiny model with the progress
bar reaching 100% and a preview on the way, shows the final image from its link, and its stop
button frees the model server. In edit mode a mask painted on the canvas reaches the model server
as the mask, and a picked LoRA (and strength) as the LoRA: the API sent the same parts gives the
same picture, and without them another. Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.mesh import Mesh
from tests.support.processes import ROOT
from tests.support.tiny_models import BROKEN_LORA
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


# -- edit mode --------------------------------------------------------------------------------

INPUT_COLOR = (30, 120, 200)
# The page's own mask export (app.js maskBlob), as base64, or null when nothing is painted.
MASK_JS = """async () => {
  const blob = await maskBlob();
  if (!blob) return null;
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return btoa(String.fromCharCode(...bytes));
}"""


def input_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), INPUT_COLOR).save(out, format="PNG")
    return out.getvalue()


def start_edit(page: Page, tmp_path: Path, model: str) -> dict[str, str]:
    """Edit mode with one 64x64 input image; the text fields it will send."""
    source = tmp_path / "input.png"
    source.write_bytes(input_png())
    page.check('input[name="mode"][value="edit"]')
    expect(page.locator("#go")).to_have_text("Edit")
    page.select_option("#model", model)
    page.set_input_files("#images", str(source))
    expect(page.locator("#canvases")).to_be_visible()
    fields = {"model": model, "prompt": "make it sunset orange", "num_inference_steps": "2"}
    page.fill("#prompt", fields["prompt"])
    page.fill("#steps", "2")
    page.fill("#partials", "0")
    page.fill("#seed", "21")
    return {**fields, "seed": "21"}


def submitted(page: Page, mesh: Mesh) -> tuple[str, bytes]:
    """Submits; the request's content type, and the stored image the page shows."""
    with page.expect_request(lambda r: r.url.endswith("/v1/images/edits")) as sent:
        page.click("#go")
    expect(page.locator("#run")).to_have_attribute("data-state", "done", timeout=120_000)
    link = page.locator("#caption a").get_attribute("href") or ""
    assert link.startswith(mesh.link_prefix), link
    return sent.value.headers["content-type"], httpx.get(link, timeout=30).content


def by_api(mesh: Mesh, fields: dict[str, str], mask: bytes | None = None) -> bytes:
    """The same edit through the API directly (b64_json, no stream)."""
    files = [("image", ("input.png", input_png(), "image/png"))]
    if mask is not None:
        files.append(("mask", ("mask.png", mask, "image/png")))
    answer = httpx.post(
        f"{mesh.gateway_url}/v1/images/edits",
        data={**fields, "response_format": "b64_json"},
        files=files,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()["data"][0]["b64_json"])


def test_the_edit_mode_sends_the_painted_mask_as_the_mask(
    page: Page, mesh: Mesh, tmp_path: Path
) -> None:
    fields = start_edit(page, tmp_path, "qwen-image-edit")
    page.select_option("#format", "webp")
    assert page.evaluate(MASK_JS) is None  # nothing painted: no mask sent
    page.eval_on_selector("#brush", "brush => { brush.value = 160; }")
    box = page.locator("#mask").bounding_box()
    assert box is not None
    # One broad stroke down the left edge: about the left sixth of the picture.
    page.mouse.move(box["x"] + 8, box["y"] + 8)
    page.mouse.down()
    page.mouse.move(box["x"] + 8, box["y"] + box["height"] - 8, steps=12)
    page.mouse.up()
    mask = base64.b64decode(page.evaluate(MASK_JS))
    picture = Image.open(io.BytesIO(mask))
    assert (picture.format, picture.size, picture.mode) == ("PNG", (64, 64), "RGBA")
    alpha = picture.getchannel("A")
    assert alpha.getpixel((2, 32)) == 0 and alpha.getpixel((60, 32)) == 255  # painted / kept
    content_type, shown = submitted(page, mesh)
    assert content_type.startswith("multipart/form-data")
    assert Image.open(io.BytesIO(shown)).format == "WEBP"
    # The model server got that mask: the API with it gives the same picture, without it another.
    fields["output_format"] = "webp"
    assert by_api(mesh, fields, mask) == shown
    assert by_api(mesh, fields) != shown
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-edit.png"), full_page=True)


def test_the_edit_mode_sends_the_picked_lora_and_strength(
    page: Page, mesh: Mesh, tmp_path: Path
) -> None:
    served = httpx.get(f"{mesh.gateway_url}/v1/models", timeout=30).json()["data"]
    adapters = [
        lora["name"]
        for item in served
        if item["id"] == "qwen-image"
        for lora in item.get("loras", [])
        if lora.get("available")
    ]
    if not adapters:
        pytest.skip("the session mesh's Qwen-Image server has no LoRA adapters (its LORA_DIR)")
    fields = start_edit(page, tmp_path, "qwen-image")  # img2img: strength without a mask
    listed = page.locator("#lora option").all_inner_texts()
    assert listed == ["none", *adapters], listed
    # The mesh's LORA_DIR also holds a broken file (listed until its first load): not that one.
    pick = next(name for name in adapters if name != BROKEN_LORA)
    page.select_option("#lora", pick)
    page.fill("#lora-scale", "1.5")
    page.locator("#strength").fill("0.8")
    assert page.locator("#use-strength").is_checked()
    _, shown = submitted(page, mesh)
    fields.update(strength="0.8", output_format="png")
    lora = json.dumps({"name": pick, "scale": 1.5})
    assert by_api(mesh, {**fields, "lora": lora}) == shown
    assert by_api(mesh, fields) != shown
