// The page of `menet-tf serve`: photos go to POST /v1/derain one at a time (the server runs one
// model; the page waits its turn instead of filling the server's queue), each gets a card with a
// before/after slider, its size, mode and time, and a PNG download. A bad file gets one line.
"use strict";

const queue = [];
let running = false, done = 0, total = 0;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function megapixels(pixels) { return (pixels / 1e6).toFixed(1) + " MP"; }

async function describeModel() {
  const model = document.getElementById("model"), limits = document.getElementById("limits");
  try {
    const info = await (await fetch("/v1/model")).json();
    model.textContent = "";
    model.append(el("strong", {}, info.name), ": " + info.card);
    const l = info.limits;
    limits.textContent = "menet-tf " + info.version + ", " + info.precision + " on " +
      info.backend + ". Up to " + megapixels(l.pixel_limit) + " and " +
      Math.round(l.upload_bytes / 1e6) + " MB a photo; photos above " +
      megapixels(l.tile_pixels) + " are de-rained in tiles.";
  } catch (err) {
    model.textContent = "The server did not describe its model (" + err + ").";
  }
}

function overall() {
  const line = document.getElementById("overall");
  line.textContent = total ? (done + " of " + total + " photos done" +
    (running ? "; de-raining\u2026" : ".")) : "";
}

function addFiles(files) {
  for (const file of files) {
    const card = el("article", { class: "card" });
    card.append(el("h2", {}, file.name));
    const status = el("p", { class: "status" }, "Waiting\u2026");
    card.append(status);
    document.getElementById("results").append(card);
    queue.push({ file, card, status });
    total += 1;
  }
  overall();
  if (!running) next();
}

async function next() {
  const job = queue.shift();
  if (!job) { running = false; overall(); return; }
  running = true;
  overall();
  await derain(job);
  done += 1;
  next();
}

function sleep(ms) { return new Promise(resolve => setTimeout(resolve, ms)); }

async function post(url, file) {
  const form = new FormData();
  form.append("image", file, file.name);
  return fetch(url, { method: "POST", body: form });
}

async function errorLine(response, name) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (err) { /* not JSON */ }
  return name + ": the server answered " + response.status + " " + response.statusText;
}

function fail(job, message) {
  job.card.classList.add("failed");
  job.status.replaceWith(el("p", { class: "error" }, message));
}

async function derain(job) {
  const { file, status } = job;
  const bar = el("div", { class: "progress", role: "progressbar", "aria-label": "de-raining" });
  status.textContent = "De-raining\u2026";
  status.after(bar);
  const started = performance.now();
  const ticker = setInterval(() => {
    status.textContent = "De-raining\u2026 " + ((performance.now() - started) / 1000).toFixed(0) + " s";
  }, 1000);
  try {
    let response;
    for (let attempt = 0; ; attempt++) {
      response = await post("/v1/derain", file);
      if (response.status !== 503 || attempt >= 30) break;
      status.textContent = "The server is busy; trying again\u2026";
      await sleep(1000);
    }
    if (!response.ok) { fail(job, await errorLine(response, file.name)); return; }
    const seconds = (performance.now() - started) / 1000;
    const result = URL.createObjectURL(await response.blob());
    await show(job, result, response.headers, seconds);
  } catch (err) {
    fail(job, file.name + ": the server did not answer (is menet-tf serve still running?)");
  } finally {
    clearInterval(ticker);
    bar.remove();
  }
}

function loads(src) {
  return new Promise(resolve => {
    const probe = new Image();
    probe.onload = () => resolve(true);
    probe.onerror = () => resolve(false);
    probe.src = src;
  });
}

async function rainySource(file) {
  // The browser shows JPEG, PNG, WebP and BMP itself; TIFF comes back from the server as PNG.
  const own = URL.createObjectURL(file);
  if (await loads(own)) return own;
  const response = await post("/v1/decode", file);
  return response.ok ? URL.createObjectURL(await response.blob()) : null;
}

async function show(job, result, headers, seconds) {
  const { file, card, status } = job;
  const stem = file.name.replace(/\.[^.]*$/, "") || "image";
  const before = await rainySource(file);
  const compare = el("div", { class: "compare" });
  const after = el("img", { class: "after", src: result, alt: "de-rained " + file.name });
  compare.append(after);
  if (before) {
    const rainy = el("img", { class: "before", src: before, alt: "rainy " + file.name });
    const divider = el("div", { class: "divider" });
    const slider = el("input", { type: "range", min: "0", max: "100", value: "50",
                                 "aria-label": "rainy | de-rained" });
    slider.addEventListener("input", () => {
      rainy.style.clipPath = "inset(0 " + (100 - slider.value) + "% 0 0)";
      divider.style.left = slider.value + "%";
    });
    compare.append(rainy, divider, el("span", { class: "tag left" }, "rainy"),
                   el("span", { class: "tag right" }, "de-rained"), slider);
  }
  const size = (headers.get("X-Image-Size") || "").replace("x", " x ");
  const meta = el("p", { class: "meta" }, size + " \u00b7 mode " + headers.get("X-Derain-Mode") +
    " \u00b7 " + seconds.toFixed(2) + " s (network " +
    Number(headers.get("X-Derain-Seconds")).toFixed(2) + " s)");
  const link = el("a", { class: "download", href: result, download: stem + "-derained.png" },
                  "Download PNG");
  status.replaceWith(compare);
  card.append(meta);
  if (headers.get("X-Warning")) card.append(el("p", { class: "meta" }, headers.get("X-Warning")));
  card.append(link);
  card.classList.add("done");
}

function setUp() {
  const drop = document.getElementById("drop"), input = document.getElementById("files");
  input.addEventListener("change", () => { addFiles(Array.from(input.files)); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, event => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", event => {
    event.preventDefault();
    addFiles(Array.from(event.dataTransfer.files));
  });
  describeModel();
}

document.addEventListener("DOMContentLoaded", setUp);
