// Retouch review page: two OpenSeadragon viewers on the store's IIIF images (before | after, synced, or one
// viewer with a swipe), the damage map as one overlay per class, and brush editing saved to the server.
"use strict";

const COLOURS = { 1: "rgb(230,40,40)", 2: "rgb(40,210,230)", 3: "rgb(60,200,80)" };
const MAP_NAMES = { damage: "detected", mask_edited: "edited", scribbles: "scribbles", adapt_changes: "changed by adapt" };
const CLASS_NAMES = { 1: "craquelure", 2: "paint_loss", 3: "clean" };
const TARGET_CLASSES = { mask_edited: [1, 2], scribbles: [1, 2, 3] };
const $ = (id) => document.getElementById(id);

const state = {
  meta: null, mode: "side", map: "damage", overlays: {}, scan: null, restoredA: null,
  strokes: [], current: null, versions: {}, saving: false,
};

function iiif(name) { return `/iiif/${name}/info.json`; }

function status(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind || "";
}

const options = {
  showNavigationControl: false, drawer: "canvas", crossOriginPolicy: false, maxZoomPixelRatio: 8,
  gestureSettingsMouse: { clickToZoom: false }, preserveImageSizeOnResize: true,
};
const before = OpenSeadragon({ id: "before", ...options });
const after = OpenSeadragon({ id: "after", ...options });

function addImage(viewer, name, opacity, index) {
  return new Promise((resolve, reject) => {
    viewer.addTiledImage({
      tileSource: iiif(name), opacity, index, preload: true,
      success: (e) => resolve(e.item),
      error: (e) => reject(new Error(`${name}: ${e.message}`)),
    });
  });
}

// ---- synced zoom: whichever viewer moves, the other follows (guarded against echo)
let syncing = false;
function follow(src, dst) {
  src.addHandler("viewport-change", () => {
    if (syncing || state.mode !== "side") return;
    syncing = true;
    dst.viewport.zoomTo(src.viewport.getZoom(), null, true);
    dst.viewport.panTo(src.viewport.getCenter(), true);
    syncing = false;
  });
}
follow(before, after);
follow(after, before);

// ---- overlays: one tiled image per class of the chosen map, each with its toggle and opacity
function mapVersion() {  // a new version gives new tile URLs, so no tile of an older map is shown
  const of = state.map === "adapt_changes" ? "damage" : state.map;
  return state.versions[of] ? `~${state.versions[of].slice(0, 12)}` : "";
}

function overlayName(value) {
  return `${state.map}-${value === "removed" ? "removed" : CLASS_NAMES[value]}${mapVersion()}`;
}

async function showOverlays() {
  for (const item of Object.values(state.overlays)) before.world.removeItem(item);
  state.overlays = {};
  let names = { 1: overlayName(1), 2: overlayName(2) };
  if (state.map === "scribbles") names = { all: `scribbles${mapVersion()}` };
  if (state.map === "adapt_changes") names = { ...names, removed: overlayName("removed") };
  $("legend-clean").hidden = state.map !== "scribbles";
  $("legend-removed").hidden = $("opacity-removed").hidden = state.map !== "adapt_changes";
  for (const [key, name] of Object.entries(names)) {
    state.overlays[key] = await addImage(before, name, 0);
  }
  applyOverlayStyle();
  applySwipe();
}

function applyOverlayStyle() {
  for (const [key, item] of Object.entries(state.overlays)) {
    const cls = key === "all" ? "craquelure" : key === "removed" ? "removed" : CLASS_NAMES[key];
    const shown = $(`show-${cls}`).checked;
    item.setOpacity(shown ? $(`opacity-${cls}`).value / 100 : 0);
  }
}
for (const cls of ["craquelure", "paint_loss", "removed"]) {
  $(`show-${cls}`).addEventListener("change", applyOverlayStyle);
  $(`opacity-${cls}`).addEventListener("input", applyOverlayStyle);
}

// ---- modes: side by side, or one viewer with the restored image clipped by the swipe position
function applyMode() {
  const swipe = state.mode === "swipe";
  $("after-figure").hidden = swipe;
  $("swipe").hidden = !swipe;
  $("mode-side").classList.toggle("on", !swipe);
  $("mode-swipe").classList.toggle("on", swipe);
  $("caption-before").textContent = swipe ? "before | after (swipe)" : "before (scan) + damage map";
  if (state.restoredA) {
    state.restoredA.setOpacity(swipe ? 1 : 0);
    applySwipe();
  }
  if (!swipe) { after.viewport.zoomTo(before.viewport.getZoom(), null, true); after.viewport.panTo(before.viewport.getCenter(), true); }
}
function applySwipe() {  // restored right of the line, the damage map left of it (on the scan)
  const item = state.restoredA;
  if (!item) return;
  const size = item.getContentSize();
  const x = Math.round(size.x * $("swipe").value / 100);
  const swipe = state.mode === "swipe";
  item.setClip(new OpenSeadragon.Rect(x, 0, size.x - x, size.y));
  for (const overlay of Object.values(state.overlays)) overlay.setClip(swipe ? new OpenSeadragon.Rect(0, 0, x, size.y) : null);
}
$("mode-side").onclick = () => { state.mode = "side"; applyMode(); };
$("mode-swipe").onclick = () => { state.mode = "swipe"; applyMode(); };
$("swipe").addEventListener("input", applySwipe);

// ---- editing: strokes in level-0 image px; the brush size is in screen px at any zoom
const canvas = document.createElement("canvas");
canvas.className = "strokes";
before.canvas.appendChild(canvas);

function toImage(point) { return state.scan.viewerElementToImageCoordinates(point); }
function toScreen(x, y) { return state.scan.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y)); }

function drawStrokes() {
  const rect = before.container.getBoundingClientRect();
  canvas.width = rect.width;
  canvas.height = rect.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.scan) return;
  const all = state.current ? [...state.strokes, state.current] : state.strokes;
  for (const s of all) {
    const p0 = toScreen(0, 0), p1 = toScreen(s.radius, 0);
    const width = Math.max(1, 2 * Math.abs(p1.x - p0.x));
    ctx.strokeStyle = s.erase ? "rgba(255,255,255,0.8)" : COLOURS[s.value];
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.setLineDash(s.erase ? [4, 4] : []);
    ctx.beginPath();
    s.points.forEach(([x, y], i) => { const p = toScreen(x, y); if (i) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y); });
    if (s.points.length === 1) { const p = toScreen(...s.points[0]); ctx.arc(p.x, p.y, width / 2, 0, 2 * Math.PI); ctx.fill(); }
    else ctx.stroke();
  }
}
before.addHandler("update-viewport", drawStrokes);

function tool() { return $("tool").value; }
function fillClasses() {
  const sel = $("class");
  sel.innerHTML = "";
  for (const v of TARGET_CLASSES[$("target").value]) {
    const o = document.createElement("option");
    o.value = v; o.textContent = CLASS_NAMES[v].replace("_", " ");
    sel.appendChild(o);
  }
}
$("target").addEventListener("change", () => {
  if (state.strokes.length) { status("save or undo the strokes of the other target first", "error"); return; }
  fillClasses();
  if ($("target").value === "scribbles" && state.meta.images.includes("scribbles")) setMap("scribbles");
  else if ($("target").value === "mask_edited") setMap(state.meta.images.includes("mask_edited") ? "mask_edited" : "damage");
});

before.addHandler("canvas-press", (e) => {
  if (tool() === "none" || !state.scan) return;
  e.preventDefaultAction = true;
  const a = toImage(e.position);
  const b = toImage(e.position.plus(new OpenSeadragon.Point($("size").value / 2, 0)));
  state.current = { value: Number($("class").value), erase: tool() === "eraser",
                    radius: Math.max(0.5, Math.abs(b.x - a.x)), points: [[a.x, a.y]] };
  drawStrokes();
});
before.addHandler("canvas-drag", (e) => {
  if (tool() === "none" || !state.current) return;
  e.preventDefaultAction = true;
  const p = toImage(e.position);
  state.current.points.push([p.x, p.y]);
  drawStrokes();
});
before.addHandler("canvas-release", (e) => {
  if (!state.current) return;
  e.preventDefaultAction = true;
  state.strokes.push(state.current);
  state.current = null;
  status(`${state.strokes.length} unsaved stroke(s)`);
  drawStrokes();
});
before.addHandler("canvas-click", (e) => { if (tool() !== "none") e.preventDefaultAction = true; });

$("undo").onclick = () => { state.strokes.pop(); drawStrokes(); status(`${state.strokes.length} unsaved stroke(s)`); };

async function save() {
  if (!state.strokes.length) { status("nothing to save"); return; }
  const target = $("target").value;
  state.saving = true;
  status("saving…");
  const response = await fetch("/api/save", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ target, base_version: state.versions[target], strokes: state.strokes }),
  });
  const text = await response.text();
  state.saving = false;
  if (response.status === 409) { status(`not saved: ${text.trim()}`, "error"); return; }
  if (!response.ok) { status(`not saved: ${text.trim()}`, "error"); return; }
  const result = JSON.parse(text);
  state.versions[target] = result.version;
  state.strokes = [];
  drawStrokes();
  const changed = Object.entries(result.pixels_changed)
    .map(([k, v]) => `${k} +${v.added} -${v.removed}`).join(", ");
  status(`saved ${target} (${changed})`, "ok");
  await loadMeta();
  await setMap(target);
}
$("save").onclick = save;

// ---- re-runs with progress: inpainting on the edited map, adapt on the saved scribbles (then detection)
function rerun(stage, doing, whenDone) {
  return async () => {
    const response = await fetch(`/api/${stage}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                    body: "{}" });
    if (!response.ok) { status((await response.text()).trim(), "error"); return; }
    const job = await response.json();
    const poll = async () => {
      const s = await (await fetch(`/api/jobs/${job.id}`)).json();
      if (s.status === "running" || s.status === "queued") { status(`${doing}: ${s.progress || s.status}`); setTimeout(poll, 1000); return; }
      if (s.status === "done") {
        status(`${stage} done (${s.summary})`, s.summary.includes("warning:") ? "warn" : "ok");
        await whenDone();
      }
      else status(`${stage} failed: ${s.error}`, "error");
    };
    poll();
  };
}
$("inpaint").onclick = rerun("inpaint", "inpainting", () => reloadRestored());
$("adapt").onclick = rerun("adapt", "adapting", async () => {
  await loadMeta();
  await setMap(state.meta.images.includes("adapt_changes") ? "adapt_changes" : "damage");
});
$("undo-adapt").onclick = rerun("undo", "undoing adapt", async () => {
  await loadMeta();
  await setMap("damage");
});

async function reloadRestored() {
  await loadMeta();
  const version = `~${Date.now()}`;
  after.world.removeAll();
  await addImage(after, `restored${version}`, 1);
  if (state.restoredA) before.world.removeItem(state.restoredA);
  state.restoredA = await addImage(before, `restored${version}`, 0, 1);
  applyMode();
}

// ---- metadata panel
function table(rows) {
  return "<table>" + rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("") + "</table>";
}
function esc(v) { return String(v ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

function captionAfter() {
  const restored = state.meta.stages.restored;
  $("caption-after").textContent = !state.meta.images.includes("restored") ? "after: not restored yet (scan shown)"
    : restored && restored.stale ? "after (restored from an earlier damage map: stale until inpainting runs again)"
    : "after (restored)";
}

async function loadMeta() {
  const meta = await (await fetch("/api/meta")).json();
  state.meta = meta;
  state.versions = { ...meta.versions };
  if (state.scan) captionAfter();
  const c = meta.catalog;
  if (c) {
    $("title").textContent = `${c.title} — ${c.creator}`;
    $("catalog").innerHTML = [c.date, c.institution, `accession ${c.accession_number}`, c.licence].map(esc).join(" · ");
  } else {
    $("catalog").textContent = `${meta.source.source} (not in the catalog)`;
  }
  $("stages").innerHTML = Object.entries(meta.stages).map(([name, s]) => `<h3>${esc(name)}</h3>` + table([
    ...(s.weights ? [["weights", `${esc(s.weights)}<br>${esc((s.weights_sha256 || "").slice(0, 16))}`]] : []),
    ...Object.entries(s.params || {}).filter(([k]) => k !== "weights").map(([k, v]) => [esc(k), esc(JSON.stringify(v))]),
    ...(s.pixels_changed ? [["changed", esc(JSON.stringify(s.pixels_changed))], ["saved", esc(s.time)]] : []),
  ])).join("");
  $("runs").innerHTML = table(meta.runs.map((r) => [esc(r.stage),
    `${esc((r.start || "").replace("T", " ").slice(0, 19))} (${((new Date(r.end) - new Date(r.start)) / 1000).toFixed(1)} s)`]));
  $("provenance").innerHTML = meta.runs.map((r) =>
    `<li><a href="/provenance/${encodeURIComponent(r.document)}" target="_blank">${esc(r.document)}</a></li>`).join("");
  const maps = meta.images.filter((n) => n in MAP_NAMES);
  const sel = $("map");
  const previous = sel.value;
  sel.innerHTML = maps.map((n) => `<option value="${n}">${MAP_NAMES[n]}</option>`).join("");
  if (maps.includes(previous)) sel.value = previous;
}

async function setMap(name) {
  state.map = name;
  $("map").value = name;
  await showOverlays();
}
$("map").addEventListener("change", () => setMap($("map").value));

async function start() {
  await loadMeta();
  fillClasses();
  const images = state.meta.images;
  state.scan = await addImage(before, "scan", 1, 0);
  const afterName = images.includes("restored") ? "restored" : "scan";
  captionAfter();
  await addImage(after, afterName, 1);
  if (images.includes("restored")) state.restoredA = await addImage(before, "restored", 0, 1);
  else $("mode-swipe").disabled = true;
  if (images.includes("damage") || images.includes("mask_edited")) {
    await setMap(images.includes("mask_edited") ? "mask_edited" : "damage");
  } else {
    $("edit-tools").hidden = true;
  }
  applyMode();
  window.reviewReady = true;
  const warnings = state.meta.warnings || [];
  if (warnings.length) status(warnings.map((w) => `warning: ${w}`).join(" "), "warn");
  else status("ready");
}
window.review = { before, after, state, save, setMap };
start().catch((err) => status(`failed to load: ${err.message}`, "error"));
