// The imagemesh page: a streamed generation from POST v1/images/generations ("stream": true),
// or in edit mode a streamed multipart POST v1/images/edits with the input images, the mask
// painted on a canvas over the first one (exported as OpenAI's mask: transparent where painted,
// opaque elsewhere), strength, LoRA and output format. The answer is read with fetch and a
// ReadableStream (EventSource cannot POST), so the progress bar follows every step and the
// partial images replace each other until the final one arrives.
// `#run[data-state]` says where the page is (idle, running, done, stopped, error) for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "imagemesh.apiKey";
const GENERATIONS = "v1/images/generations";
const EDITS = "v1/images/edits";
let controller = null; // the AbortController of the running request
let models = []; // GET v1/models' data
let files = []; // edit mode's input images, in order
let stroke = null; // the last point of the brush stroke under way, in canvas pixels

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function headers(json) {
  const result = json ? { "Content-Type": "application/json" } : {};
  const key = $("key").value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

function setState(state, text) {
  $("run").dataset.state = state;
  if (text !== undefined) $("status").textContent = text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error", "Failed.");
}

async function loadModels() {
  const select = $("model");
  let answer, body;
  try {
    answer = await fetch("v1/models", { headers: headers(false) });
    body = await answer.json();
  } catch (err) {
    select.replaceChildren(new Option("gateway unreachable", ""));
    showError(`Could not list the models: ${err.message}`);
    return;
  }
  if (!answer.ok) {
    select.replaceChildren(new Option("no models", ""));
    if (answer.status === 401) $("auth").open = true;
    showError(body.message || `GET v1/models answered ${answer.status}`);
    return;
  }
  $("error").hidden = true;
  models = body.data;
  fillModels();
  if (!$("run").dataset.state || $("run").dataset.state === "error") setState("idle", "Ready.");
}

// The models of the mode's endpoint, ready ones first choice; then that model's LoRAs.
function fillModels() {
  const endpoint = mode() === "edit" ? "/v1/images/edits" : "/v1/images/generations";
  const listed = models.filter((m) =>
    (m.endpoints || [m.url]).some((url) => url.endsWith(endpoint)),
  );
  const select = $("model");
  select.replaceChildren(
    ...listed.map((m) => {
      const option = new Option(m.ready ? m.id : `${m.id} (not ready)`, m.id);
      option.title = m.reason || "";
      return option;
    }),
  );
  const ready = listed.find((m) => m.ready);
  if (ready) select.value = ready.id;
  fillLoras();
}

function fillLoras() {
  const model = models.find((m) => m.id === $("model").value);
  const loras = ((model && model.loras) || []).filter((lora) => lora.available !== false);
  $("lora").replaceChildren(
    new Option("none", ""),
    ...loras.map((lora) => new Option(lora.name, lora.name)),
  );
}

function setMode() {
  const edit = mode() === "edit";
  $("editor").hidden = !edit;
  $("go").textContent = edit ? "Edit" : "Generate";
  const size = $("size");
  size.querySelector('option[value="auto"]').hidden = !edit;
  if (edit) size.value = "auto";
  else if (size.value === "auto") size.value = "1024x1024";
  fillModels();
}

// -- edit mode: input images and the mask canvas ----------------------------------------------

async function takeImages(list) {
  files = [...list].filter((file) => file.type.startsWith("image/"));
  if (!files.length) return;
  const first = await createImageBitmap(files[0]);
  for (const canvas of [$("base"), $("mask")]) {
    canvas.width = first.width;
    canvas.height = first.height;
  }
  $("base").getContext("2d").drawImage(first, 0, 0);
  $("mask").getContext("2d").clearRect(0, 0, first.width, first.height);
  $("canvases").hidden = false;
  const names = files.map((file) => file.name).join(", ");
  $("inputs").textContent = `${files.length} image(s): ${names}; the first is ${first.width}x${first.height}.`;
}

function point(event) {
  const canvas = $("mask");
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  return { x: (event.clientX - box.left) * scale, y: (event.clientY - box.top) * scale, scale };
}

function paint(event) {
  const canvas = $("mask");
  const context = canvas.getContext("2d");
  const here = point(event);
  const from = stroke || here;
  context.globalCompositeOperation =
    $("tool").value === "eraser" ? "destination-out" : "source-over";
  context.strokeStyle = "#ff2828";
  context.lineWidth = Number($("brush").value) * here.scale;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(here.x + 0.01, here.y);
  context.stroke();
  stroke = here;
}

// OpenAI's mask: fully transparent pixels mark the area to change; null when nothing is painted.
function maskBlob() {
  const canvas = $("mask");
  const { width, height } = canvas;
  if (!width || !height) return Promise.resolve(null);
  const painted = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const out = new ImageData(width, height);
  let any = false;
  for (let i = 3; i < painted.length; i += 4) {
    const change = painted[i] > 0;
    any = any || change;
    out.data[i] = change ? 0 : 255;
  }
  if (!any) return Promise.resolve(null);
  const mask = document.createElement("canvas");
  mask.width = width;
  mask.height = height;
  mask.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => mask.toBlob(resolve, "image/png"));
}

// One server-sent event block ("event: x\ndata: {...}") -> {event, data}, or null.
function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const parsed = parseBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (parsed) onEvent(parsed.event, parsed.data);
    }
  }
}

function show(src, caption, link) {
  $("picture").src = src;
  const figcaption = $("caption");
  figcaption.replaceChildren(caption);
  if (link) {
    const anchor = document.createElement("a");
    anchor.href = link;
    anchor.target = "_blank";
    anchor.rel = "noopener";
    anchor.textContent = link;
    figcaption.append(" ", anchor);
  }
  $("result").hidden = false;
}

function onEvent(event, data, started) {
  const type = data.type || event;
  if (type.endsWith(".progress")) {
    const { step, total_steps: total, queue_position: ahead } = data;
    if (step === 0 && ahead > 0) {
      $("bar").value = 0;
      setState("running", `Queued: ${ahead} ahead.`);
    } else {
      $("bar").value = total ? Math.round((100 * step) / total) : 0;
      setState("running", step ? `Step ${step} of ${total}.` : "Starting...");
    }
  } else if (type.endsWith(".partial_image")) {
    $("run").dataset.previews = String(Number($("run").dataset.previews || 0) + 1);
    show(
      `data:image/${data.output_format || "png"};base64,${data.b64_json}`,
      `Preview ${data.partial_image_index + 1}, after step ${data.step}.`,
    );
  } else if (type.endsWith(".completed")) {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const src = data.url || `data:image/${data.output_format || "png"};base64,${data.b64_json}`;
    const size = data.width && data.height ? `${data.width}x${data.height}` : data.size;
    const caption = `${size} ${data.output_format || "png"}, seed ${data.seed ?? "?"}, ${seconds} s.`;
    show(src, caption, data.url);
    $("bar").value = 100;
    setState("done", `Done in ${seconds} s.`);
  } else if (event === "error" || data.error) {
    showError(data.message || (data.error && data.error.message) || "the stream failed");
  }
}

// The request of the form: JSON for a generation, multipart for an edit.
async function request() {
  const fields = {
    model: $("model").value || undefined,
    prompt: $("prompt").value,
    size: $("size").value === "auto" ? undefined : $("size").value,
    num_inference_steps: Number($("steps").value) || undefined,
    partial_images: Number($("partials").value) || 0,
    output_format: $("format").value,
    seed: $("seed").value === "" ? undefined : Number($("seed").value),
    response_format: "url",
    stream: true,
  };
  const lora = $("lora").value
    ? { name: $("lora").value, scale: Number($("lora-scale").value) }
    : undefined;
  if (mode() !== "edit") {
    const body = JSON.stringify({ ...fields, lora });
    return { url: GENERATIONS, init: { method: "POST", headers: headers(true), body } };
  }
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) form.append(name, String(value));
  }
  for (const file of files) form.append("image", file, file.name);
  const mask = await maskBlob();
  if (mask) form.append("mask", mask, "mask.png");
  if ($("use-strength").checked) form.append("strength", $("strength").value);
  if (lora) form.append("lora", JSON.stringify(lora));
  return { url: EDITS, init: { method: "POST", headers: headers(false), body: form } };
}

async function generate(submitted) {
  submitted.preventDefault();
  if (mode() === "edit" && !files.length) {
    showError("Pick or drop an input image first.");
    return;
  }
  controller = new AbortController();
  $("go").disabled = true;
  $("stop").disabled = false;
  $("error").hidden = true;
  $("bar").value = 0;
  $("run").dataset.previews = "0";
  setState("running", "Sending...");
  const started = performance.now();
  try {
    const { url, init } = await request();
    const answer = await fetch(url, { ...init, signal: controller.signal });
    const type = answer.headers.get("content-type") || "";
    if (!type.startsWith("text/event-stream")) {
      const error = await answer.json().catch(() => ({}));
      throw new Error(error.message || `the gateway answered ${answer.status}`);
    }
    await readEvents(answer.body, (event, data) => onEvent(event, data, started));
    if ($("run").dataset.state === "running") showError("the stream ended before the image");
  } catch (err) {
    if (err.name === "AbortError") setState("stopped", "Stopped: the server dropped the job.");
    else showError(err.message);
  } finally {
    controller = null;
    $("go").disabled = false;
    $("stop").disabled = true;
  }
}

function start() {
  $("key").value = localStorage.getItem(KEY_STORE) || "";
  $("key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORE, $("key").value.trim());
    loadModels();
  });
  $("form").addEventListener("submit", generate);
  $("stop").addEventListener("click", () => controller && controller.abort());
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", setMode);
  }
  $("model").addEventListener("change", fillLoras);
  $("images").addEventListener("change", () => takeImages($("images").files));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    takeImages(event.dataTransfer.files);
  });
  const mask = $("mask");
  mask.addEventListener("pointerdown", (event) => {
    mask.setPointerCapture(event.pointerId);
    stroke = null;
    paint(event);
  });
  mask.addEventListener("pointermove", (event) => {
    if (stroke) paint(event);
  });
  for (const end of ["pointerup", "pointercancel"]) {
    mask.addEventListener(end, () => {
      stroke = null;
    });
  }
  $("clear").addEventListener("click", () => {
    mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
  });
  $("strength").addEventListener("input", () => {
    $("strength-value").textContent = Number($("strength").value).toFixed(2);
    $("use-strength").checked = true;
  });
  setState("idle");
  loadModels();
}

start();
