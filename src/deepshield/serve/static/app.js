// deepshield serve: upload a file to /api/predict?wait=false, poll /api/jobs/ID, draw the result.
// Plain DOM, no build step. User-provided text (file names, messages) only ever goes in textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let health = null;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

function showError(message) {
  $("progress").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

function setProgress(percent, stage) {
  $("progress").hidden = false;
  if (percent === null) $("bar").removeAttribute("value"); else $("bar").value = percent;
  $("stage").textContent = stage;
}

async function loadHealth() {
  try {
    const r = await fetch("/api/health");
    health = await r.json();
    const m = health.model;
    $("model-line").textContent = `model: ${m.checkpoint} (${m.backbone}, ${m.image_size} px)` +
      (health.frames ? `, ${health.frames} frames per video` : "") +
      (m.threshold == null ? "" : `; threshold ${thresholdText(m.threshold, m.threshold_source)}`);
    $("limit").textContent = `videos and images up to ${health.max_upload_bytes / 1e6} MB`;
    const pick = $("model-pick");
    if (!pick.options.length) {
      for (const name of health.models || [m.checkpoint]) pick.append(el("option", { value: name }, name));
    }
    $("model-pick-line").hidden = pick.options.length < 2;
  } catch (e) {
    $("model-line").textContent = "the server does not answer; is deepshield serve running?";
  }
}

async function upload(file) {
  $("error").hidden = true;
  $("result").hidden = true;
  try {  // fresh limits and queue; the server checks both again
    health = await (await fetch("/api/health")).json();
  } catch (e) { /* the upload below reports a dead server */ }
  if (health && health.queue.active >= health.queue.limit) {
    showError(`the server is busy (${health.queue.limit} jobs queued or running); try again in a minute.`);
    return;
  }
  if (health && file.size > health.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB: larger than this server's upload limit ` +
              `of ${health.max_upload_bytes / 1e6} MB. Upload a shorter clip, or start the server with a ` +
              "larger --max-upload-mb.");
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  const model = $("model-pick").value;
  xhr.open("POST", "/api/predict?wait=false" + (model ? `&model=${encodeURIComponent(model)}` : ""));
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setProgress(Math.round(50 * e.loaded / e.total), `uploading ${file.name}…`);
  };
  xhr.onload = () => {
    const body = xhr.response || {};
    if (xhr.status === 202) poll(body.status_url, file.name);
    else showError(body.error || `the server answered ${xhr.status}`);
  };
  xhr.onerror = () => showError("the upload failed (connection lost): the server may be busy, refusing the " +
                                "file, or not running; try again.");
  setProgress(0, `uploading ${file.name}…`);
  xhr.send(form);
}

async function poll(url, name) {
  for (;;) {
    let job;
    try {
      const r = await fetch(url);
      job = await r.json();
      if (!r.ok) return showError(job.error || `the server answered ${r.status}`);
    } catch (e) {
      return showError("lost the connection to the server while waiting for the result");
    }
    if (job.state === "done") { setProgress(100, "done"); return render(job.result); }
    if (job.state === "failed") return showError(job.error);
    if (job.state === "queued") {
      setProgress(50, `${name}: waiting (${job.position} job${job.position === 1 ? "" : "s"} ahead)…`);
    } else {
      const total = job.frames_total;
      const frac = total ? Math.min(1, job.frames_done / total) : 0;
      const frames = total ? ` (${job.frames_done}/${total} frames)` : "";
      setProgress(50 + Math.round(45 * frac), `${name}: ${job.stage}${frames}…`);
    }
    await new Promise((ok) => setTimeout(ok, 400));
  }
}

function render(r) {
  $("progress").hidden = true;
  $("result").hidden = false;
  const verdict = $("verdict");
  if (r.status === "no_face") {
    verdict.textContent = "NO FACE FOUND";
    verdict.className = "verdict NOFACE";
    $("verdict-detail").textContent = `${r.file}: none of the ${r.frames_sampled} sampled frame(s) showed a ` +
      "face the detector trusts; try a clip where a face is clearly visible.";
  } else {
    const abstain = r.label === "ABSTAIN";
    verdict.textContent = abstain ? "NO VERDICT (possible attack)" : r.label;
    verdict.className = `verdict ${r.label}`;
    $("verdict-detail").textContent = `${r.file}, model ${r.model.checkpoint}: p(fake) = ${r.p_fake.toFixed(3)} ` +
      `(FAKE when ≥ ${+Number(r.threshold).toFixed(3)}${r.threshold_source ? `; ${r.threshold_source}` : ""}` +
      `${abstain ? "; not trusted: the attack alarm flagged this input" : ""}), ` +
      `${r.faces_found} face(s) in ${r.frames_sampled} sampled frame(s), judged in ${r.seconds} s.`;
  }
  renderAlarm(r.alarm);
  drawTimeline(r);
  renderFaces(r);
  $("no-face").textContent = r.no_face_frames.length
    ? r.no_face_frames.map((f) => `frame ${f.frame} (${f.t.toFixed(2)} s)`).join(", ")
    : "none: every sampled frame had a face.";
  renderModel(r.model);
  const warnings = $("warnings");
  warnings.replaceChildren(...r.warnings.map((w) => el("li", {}, w)));
}

// "0.372 (calibrated: EER of the validation videos of dfdc)": the value and where it comes from
function thresholdText(value, source) {
  const shown = `${+Number(value).toFixed(3)}`;
  return source ? `${shown} (${source})` : shown;
}

function renderAlarm(alarm) {
  const box = $("alarm");
  box.hidden = false;
  if (!alarm) {
    box.className = "";
    box.textContent = "Attack alarm: not checked.";
    return;
  }
  box.className = alarm.flagged ? "flagged" : "";
  const probes = (alarm.probes || []).join(", ");
  box.textContent = (alarm.flagged
    ? `Attack alarm: FLAGGED: the scores move a lot under small changes (${probes}), as adversarially ` +
      "perturbed inputs do; do not trust this verdict."
    : `Attack alarm: not flagged: the scores are stable under small changes (${probes}).`) +
    ` (score ${Number(alarm.score).toFixed(3)}, threshold ${alarm.threshold})`;
}

function drawTimeline(r) {
  const plot = $("timeline");
  const W = 900, H = 220, L = 40, R = 10, T = 10, B = 30;
  plot.setAttribute("viewBox", `0 0 ${W} ${H}`);
  plot.replaceChildren();
  const pts = r.timeline;
  const times = pts.map((p) => p.t).concat(r.no_face_frames.map((f) => f.t));
  const tmax = Math.max(1e-3, ...times);
  const x = (t) => L + (W - L - R) * (times.length > 1 ? t / tmax : 0.5);
  const y = (p) => T + (H - T - B) * (1 - p);
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    plot.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    plot.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2)));
  }
  plot.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  plot.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  plot.append(svg("line", { x1: L, x2: W - R, y1: y(r.threshold), y2: y(r.threshold), class: "threshold" }));
  plot.append(svg("text", { x: W - R, y: y(r.threshold) - 4, "text-anchor": "end" },
                  `threshold ${+Number(r.threshold).toFixed(3)}`));
  plot.append(svg("text", { x: (L + W) / 2, y: H - 6, "text-anchor": "middle" },
                  `time in the video (s, 0 to ${tmax.toFixed(1)})`));
  if (pts.length > 1) {
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.p_fake).toFixed(1)}`).join(" ");
    plot.append(svg("path", { d, class: "curve" }));
  }
  for (const p of pts) {
    const dot = svg("circle", { cx: x(p.t), cy: y(p.p_fake), r: 3.5, class: "dot" });
    dot.append(svg("title", {}, `frame ${p.frame} at ${p.t.toFixed(2)} s: p(fake) ${p.p_fake.toFixed(3)}`));
    plot.append(dot);
  }
  for (const f of r.no_face_frames) {
    const mark = svg("rect", { x: x(f.t) - 2, y: H - B - 8, width: 4, height: 8, class: "noface" });
    mark.append(svg("title", {}, `frame ${f.frame} at ${f.t.toFixed(2)} s: no face`));
    plot.append(mark);
  }
  $("timeline-note").textContent = `${pts.length} face score(s); grey marks: sampled frames without a face; ` +
    "dashed: the threshold.";
}

function renderFaces(r) {
  const box = $("faces");
  box.replaceChildren();
  for (const f of r.faces) {
    const card = el("figure", { class: "face" });
    const pair = el("div", { class: "pair" });
    pair.append(el("img", { src: f.crop, alt: `face crop, frame ${f.frame}`, class: "crop" }));
    if (f.heatmap) pair.append(el("img", { src: f.heatmap, alt: `Grad-CAM, frame ${f.frame}`, class: "heatmap" }));
    card.append(pair, el("figcaption", {}, `${f.t.toFixed(2)} s · p(fake) ${f.p_fake.toFixed(3)}`));
    box.append(card);
  }
  const shown = r.faces.length, total = r.faces_found;
  $("faces-note").textContent = total === 0 ? "no faces." :
    `${shown} of ${total} face(s), spread over the video; left: the crop the model saw, right: red = ` +
    "evidence for FAKE.";
}

function renderModel(m) {
  const table = el("table");
  const rows = [["checkpoint", m.checkpoint], ["architecture", `${m.backbone}, ${m.image_size} px`],
                ["adversarial training", m.adv || "none"],
                ...(m.threshold == null ? [] : [["threshold", thresholdText(m.threshold, m.threshold_source)]]),
                ...m.card];
  for (const [k, v] of rows) {
    const tr = el("tr");
    tr.append(el("td", {}, k), el("td", {}, String(v)));
    table.append(tr);
  }
  $("model").replaceChildren(table);
}

function setup() {
  const drop = $("drop"), input = $("file");
  input.addEventListener("change", () => { if (input.files.length) upload(input.files[0]); input.value = ""; });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  loadHealth();
}

document.addEventListener("DOMContentLoaded", setup);
