// The deepfake-detect page: choose or drop photos, send them to /v1/scan, show each face's verdict.
// Plain JavaScript, no build step, no third-party code: the page talks only to the server that served it.
"use strict";

const state = { files: [], urls: [], limits: null, authRequired: false, thresholdP: null, band: null };
// Shown with an "uncertain" verdict: what it means and what to do about it.
const UNCERTAIN_TEXT =
  "Uncertain: this score lies in the model's abstention band, where its verdicts on validation photos " +
  "(clean and recompressed) were too often wrong to state. Treat it as undecided and judge it yourself.";
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML: file names come from the user
  return node;
}

function formatBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(n % 1048576 ? 1 : 0)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// One clear sentence for an error answer (the JSON body's "detail" says what exactly).
function errorText(status, body) {
  const what = {
    401: "The API key is missing or wrong.",
    413: "Too large.",
    415: "Not an image.",
    422: "The request was refused.",
  }[status] || `The service failed (HTTP ${status}).`;
  return body && body.detail ? `${what} ${body.detail}` : what;
}

async function init() {
  try {
    const health = await (await fetch("/healthz")).json();
    state.limits = health.limits;
    state.authRequired = health.auth_required;
    const mp = (health.limits.max_pixels / 1e6).toFixed(0);
    $("limits").textContent =
      `Up to ${health.limits.max_files} files and ${formatBytes(health.limits.max_request_bytes)} a scan, ` +
      `${mp} megapixels an image. JPEG, PNG, WebP, BMP, GIF or TIFF.`;
    $("key-section").hidden = !state.authRequired;
    await loadModel();
  } catch (err) {
    showMessage(`The service does not answer (${err.message}). Is deepfake-detect serve running?`);
  }
}

async function loadModel() {
  if (state.authRequired && !$("api-key").value.trim()) {
    $("model-info").textContent = "This service needs an API key: enter it below.";
    return;
  }
  const response = await fetch("/v1/model", { headers: authHeaders() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("model-info").textContent = errorText(response.status, body);
    return;
  }
  state.thresholdP = body.threshold.p_fake;
  state.band = body.uncertain_band || null;
  $("model-info").textContent =
    `Model ${body.name} (${body.version}); ${verdictRule(body)}; runs on ${body.backend}.`;
}

// The decision rule in words: one threshold, or the band between "real" and "fake".
function verdictRule(body) {
  const band = body.uncertain_band;
  if (!band) return `verdict "fake" from p_fake ${body.threshold.p_fake.toFixed(3)}`;
  const fake = band.upper_p_fake === null ? "never" : `from p_fake ${band.upper_p_fake.toFixed(3)}`;
  const real = band.lower_p_fake === null ? "never" : `below ${band.lower_p_fake.toFixed(3)}`;
  return `verdict "fake" ${fake}, "real" ${real}, "uncertain" in between`;
}

function chooseFiles(list) {
  const files = Array.from(list);
  showMessage("");
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.files = files;
  state.urls = files.map((file) => URL.createObjectURL(file));
  renderPreviews();
  const limits = state.limits;
  const total = files.reduce((sum, file) => sum + file.size, 0);
  let problem = "";
  if (limits && files.length > limits.max_files) {
    problem = `${files.length} files chosen; the service takes at most ${limits.max_files} at a time.`;
  } else if (limits && total > limits.max_request_bytes) {
    problem = `These files hold ${formatBytes(total)}; the service takes at most ` +
      `${formatBytes(limits.max_request_bytes)} at a time.`;
  }
  showMessage(problem);
  $("scan-button").disabled = files.length === 0 || Boolean(problem);
}

function renderPreviews() {
  const box = $("previews");
  box.replaceChildren();
  state.files.forEach((file, i) => {
    const figure = el("figure");
    if (file.type.startsWith("image/")) {
      const img = el("img");
      img.src = state.urls[i];
      img.alt = `preview of ${file.name}`;
      figure.append(img);
    } else {
      figure.append(el("div", "placeholder"));
    }
    figure.append(el("figcaption", "", `${file.name} (${formatBytes(file.size)})`));
    box.append(figure);
  });
}

async function scan() {
  if (!state.files.length) return;
  const form = new FormData();
  state.files.forEach((file) => form.append("files", file, file.name));
  const query = new URLSearchParams({ explain: "true", detect: String($("detect").checked) });
  showMessage("");
  $("results").replaceChildren();
  $("scan-button").disabled = true;
  $("busy").hidden = false;
  try {
    const response = await fetch(`/v1/scan?${query}`, { method: "POST", body: form, headers: authHeaders() });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) showMessage(errorText(response.status, body));
    if (response.status === 401) $("key-section").hidden = false;
    if (body.results) renderResults(body.results);
  } catch (err) {
    showMessage(`Could not reach the service (${err.message}).`);
  } finally {
    $("scan-button").disabled = false;
    $("busy").hidden = true;
  }
}

function renderResults(results) {
  const box = $("results");
  results.forEach((result, i) => box.append(resultCard(result, state.urls[i])));
}

function resultCard(result, url) {
  const card = el("article", "card");
  const title = el("h2", "", `${result.path} `);
  if (result.verdict) title.append(el("span", `verdict ${result.verdict}`, result.verdict.toUpperCase()));
  card.append(title);
  if (result.error) card.append(el("p", "error", `Could not judge this file: ${result.error}`));
  if (result.verdict === "uncertain") card.append(el("p", "uncertain-note", UNCERTAIN_TEXT));
  if (result.note) card.append(el("p", "note", `Note: ${result.note}`));
  if (result.provenance) card.append(provenancePanel(result));
  if (!result.faces.length) return card;
  if (url) card.append(photoWithFaces(url, result.faces));
  const list = el("ol", "faces");
  result.faces.forEach((face, k) => list.append(faceRow(face, k)));
  card.append(list);
  return card;
}

// What the file's metadata says and what each signal is worth (the server words both: one owner).
function provenancePanel(result) {
  const panel = el("section", "provenance");
  panel.append(el("h3", "", "Provenance"));
  if (result.reason) panel.append(el("p", "reason", `Verdict fake: ${result.reason}. The pixel scores are below.`));
  const list = el("ul");
  result.provenance.findings.forEach((finding) => {
    const item = el("li");
    item.append(el("strong", "", `${finding.signal}: `), `${finding.found}. `, el("em", "", finding.worth));
    list.append(item);
  });
  panel.append(list);
  return panel;
}

const SVG_NS = "http://www.w3.org/2000/svg";

// A face's verdict as a class and a word: null when the face was too small to judge.
function verdictClass(face) {
  return face.verdict || "unjudged";
}

function verdictWord(face) {
  return face.verdict ? face.verdict.toUpperCase() : "NOT JUDGED";
}

// The shape of a face over the photo, in image pixels: its quad (the oriented square it was framed by) as
// a polygon, or, from a server without quads (box framing, older versions), its box as a rectangle.
// Quads are in pixel-centre coordinates (pixel i spans i - 0.5 to i + 0.5); the SVG's run from pixel edges.
function faceShape(face) {
  const kind = face.quad ? "polygon" : "rect";
  const shape = document.createElementNS(SVG_NS, kind);
  shape.setAttribute("class", `face-shape ${face.quad ? "quad" : "box"} ${verdictClass(face)}`);
  if (face.quad) {
    shape.setAttribute("points", face.quad.map(([x, y]) => `${x + 0.5},${y + 0.5}`).join(" "));
  } else {
    const [x, y, w, h] = face.box;
    [["x", x], ["y", y], ["width", w], ["height", h]].forEach(([name, v]) => shape.setAttribute(name, v));
  }
  return shape;
}

// The highest point of a face's shape: where its label goes.
function labelAnchor(face) {
  if (!face.quad) return [face.box[0], face.box[1]];
  return face.quad.reduce((top, point) => (point[1] < top[1] ? point : top));
}

// The photo with each face's shape drawn over it: an SVG in image pixels, stretched over the displayed image.
function photoWithFaces(url, faces) {
  const wrap = el("div", "photo");
  const img = el("img");
  img.alt = "the uploaded photo";
  img.addEventListener("load", () => {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "overlay");
    svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    faces.forEach((face) => svg.append(faceShape(face)));
    wrap.append(svg);
    faces.forEach((face, k) => {
      const [x, y] = labelAnchor(face);
      const text = `face ${k + 1}: ${face.verdict || "not judged"}`;
      const label = el("span", `face-label ${verdictClass(face)}`, text);
      label.style.left = `${(100 * x) / img.naturalWidth}%`;
      label.style.top = `${(100 * y) / img.naturalHeight}%`;
      wrap.append(label);
    });
  });
  img.src = url;
  wrap.append(img);
  return wrap;
}

function faceRow(face, k) {
  const row = el("li", "face");
  row.append(el("span", `verdict ${verdictClass(face)}`, verdictWord(face)));
  const bar = el("div", "bar");
  bar.title = `p_fake ${face.p_fake.toFixed(3)}`;
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", `face ${k + 1} p_fake`);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "1");
  bar.setAttribute("aria-valuenow", face.p_fake.toFixed(3));
  const fill = el("div", `fill ${verdictClass(face)}`);
  fill.style.width = `${(100 * face.p_fake).toFixed(1)}%`;
  bar.append(fill);
  if (state.band) {
    const band = el("div", "band");
    const lower = state.band.lower_p_fake === null ? 0 : state.band.lower_p_fake;
    const upper = state.band.upper_p_fake === null ? 1 : state.band.upper_p_fake;
    band.style.left = `${(100 * lower).toFixed(1)}%`;
    band.style.width = `${(100 * (upper - lower)).toFixed(1)}%`;
    band.title = "uncertain band";
    bar.append(band);
  }
  if (state.thresholdP !== null) {
    const mark = el("div", "threshold");
    mark.style.left = `${(100 * state.thresholdP).toFixed(1)}%`;
    mark.title = "threshold";
    bar.append(mark);
  }
  row.append(bar);
  row.append(el("span", "p-fake", `face ${k + 1}: p_fake ${face.p_fake.toFixed(3)}`));
  if (face.heatmap) {
    const toggle = el("button", "secondary heatmap-toggle", "Show heatmap");
    toggle.type = "button";
    toggle.setAttribute("aria-pressed", "false");
    const img = el("img", "heatmap");
    img.alt = `Grad-CAM heatmap of face ${k + 1}: red areas drove the verdict most`;
    img.hidden = true;
    toggle.addEventListener("click", () => {
      img.hidden = !img.hidden;
      if (!img.src) img.src = face.heatmap;
      toggle.textContent = img.hidden ? "Show heatmap" : "Hide heatmap";
      toggle.setAttribute("aria-pressed", String(!img.hidden));
    });
    row.append(toggle, img);
  }
  return row;
}

function setUpDropZone() {
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((type) =>
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) =>
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.remove("over");
    }),
  );
  drop.addEventListener("drop", (event) => chooseFiles(event.dataTransfer.files));
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file-input").click();
  });
}

$("file-input").addEventListener("change", (event) => {
  chooseFiles(event.target.files);
  event.target.value = ""; // choosing the same file again still fires "change"
});
$("scan-button").addEventListener("click", scan);
$("key-button").addEventListener("click", loadModel);
setUpDropZone();
init();
