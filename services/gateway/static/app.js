// The imagemesh page: a streamed generation from POST v1/images/generations ("stream": true),
// read with fetch and a ReadableStream (EventSource cannot POST), so the progress bar follows
// every step and the partial images replace each other until the final one arrives.
// `#run[data-state]` says where the page is (idle, running, done, stopped, error) for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "imagemesh.apiKey";
const GENERATIONS = "v1/images/generations";
let controller = null; // the AbortController of the running request

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
  const models = body.data.filter((m) =>
    (m.endpoints || [m.url]).some((url) => url.endsWith("/v1/images/generations")),
  );
  select.replaceChildren(
    ...models.map((m) => {
      const option = new Option(m.ready ? m.id : `${m.id} (not ready)`, m.id);
      option.title = m.reason || "";
      return option;
    }),
  );
  const ready = models.find((m) => m.ready);
  if (ready) select.value = ready.id;
  if (!$("run").dataset.state || $("run").dataset.state === "error") setState("idle", "Ready.");
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
    show(src, `${data.size}, seed ${data.seed ?? "?"}, ${seconds} s.`, data.url);
    $("bar").value = 100;
    setState("done", `Done in ${seconds} s.`);
  } else if (event === "error" || data.error) {
    showError(data.message || (data.error && data.error.message) || "the stream failed");
  }
}

async function generate(submitted) {
  submitted.preventDefault();
  controller = new AbortController();
  $("go").disabled = true;
  $("stop").disabled = false;
  $("error").hidden = true;
  $("bar").value = 0;
  $("run").dataset.previews = "0";
  setState("running", "Sending...");
  const body = {
    model: $("model").value || undefined,
    prompt: $("prompt").value,
    size: $("size").value,
    num_inference_steps: Number($("steps").value) || undefined,
    partial_images: Number($("partials").value) || 0,
    response_format: "url",
    stream: true,
  };
  const started = performance.now();
  try {
    const answer = await fetch(GENERATIONS, {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
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
  setState("idle");
  loadModels();
}

start();
