// The officers' page: sign in, photograph, crop, search, compare, report. Plain ES module, no build step.
import { t, setLanguage, availableLanguages, currentLanguage, LANGUAGES, translatePage } from "./i18n.js";
import { matchStrength, searchVerdict } from "./strength.js";

const KEY_STORE = "artefact.key"; // sessionStorage: forgotten when the tab closes, never in a URL
const LANG_STORE = "artefact.lang";
const SHOWN_FIELDS = ["object_type", "materials", "date_period", "status", "source", "country", "case_reference", "contact"];
// Record fields and statuses come from the service (no key needed), so the page copies none of them.
const META = await (await fetch("/v1/meta", { cache: "no-store" })).json();
const RECORD_FIELDS = META.record_fields;
const STATUSES = META.statuses;
const MAX_CROP_SIDE = 3000; // a crop is re-encoded; more pixels than this add bytes, not accuracy

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORE) || "",
  who: null, stats: null,
  photos: [], // {id, name, original: File, blob, url, crop: {x,y,w,h} fractions | null, previewable}
  lastQuery: null, lastResponse: null,
  blobUrls: new Map(), // image URL -> object URL (images need the key header, so <img src> cannot fetch them)
};
let nextPhotoId = 1;

// ---------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

async function api(path, { method = "GET", body, json, raw = false } = {}) {
  const headers = authHeaders();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, String(err));
  }
  if (!response.ok) {
    let detail = "";
    try {
      const data = await response.json();
      detail = typeof data.detail === "string" ? data.detail
        : Array.isArray(data.detail) ? data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
        : JSON.stringify(data.detail ?? data);
    } catch { /* not JSON: keep the status alone */ }
    throw new ApiError(response.status, detail);
  }
  return raw ? response.blob() : response.json();
}

function errorText(err) {
  if (!(err instanceof ApiError)) return { main: t("error_other", { status: "?" }), detail: String(err) };
  const known = { 0: "error_network", 401: "error_401", 403: "error_403", 404: "error_404", 409: "error_409",
    413: "error_413", 415: "error_415", 422: "error_422", 503: "error_503" };
  const main = known[err.status] ? t(known[err.status]) : t("error_other", { status: err.status });
  return { main, detail: err.status === 0 ? "" : err.detail };
}

function showError(err) {
  const { main, detail } = errorText(err);
  const box = $("message");
  box.replaceChildren(el("strong", { text: main }), detail ? el("span", { class: "detail", text: t("error_details", { detail }) }) : null);
  box.hidden = false;
  if (err instanceof ApiError && err.status === 401 && state.who) signOut(false);
}

function clearMessages() {
  $("message").hidden = true;
  $("message").replaceChildren();
  $("notice").textContent = "";
}

function notify(text) {
  $("notice").textContent = text;
}

async function imageUrl(url) {
  if (!state.blobUrls.has(url)) {
    state.blobUrls.set(url, api(url, { raw: true }).then((blob) => URL.createObjectURL(blob)));
  }
  try {
    return await state.blobUrls.get(url);
  } catch (err) {
    state.blobUrls.delete(url);
    throw err;
  }
}

function catalogueImg(image, alt, { full = false } = {}) {
  const img = el("img", { alt, width: image.width, height: image.height, decoding: "async", class: "loading" });
  imageUrl(full ? image.url : image.thumbnail_url)
    .then((src) => { img.src = src; img.classList.remove("loading"); })
    .catch(() => img.classList.replace("loading", "broken"));
  return img;
}

function fieldLabel(name) {
  return t(`field_${name}`);
}

function statusWord(status) {
  return status ? t(`status_${status}`) : "";
}

function fieldValue(name, value) {
  return name === "status" ? statusWord(value) : value;
}

// ---------------------------------------------------------------- sign in / session
async function start() {
  const saved = localStorage.getItem(LANG_STORE);
  setLanguage(saved && saved in LANGUAGES ? saved : "en");
  buildLanguagePicker();
  buildAddForm();
  wireEvents();
  await enter();
}

function buildLanguagePicker() {
  const langs = availableLanguages();
  if (!langs.includes(currentLanguage())) langs.push(currentLanguage());
  const select = $("lang-select");
  select.replaceChildren(...langs.map((code) => el("option", { value: code, text: LANGUAGES[code].name })));
  select.value = currentLanguage();
  $("lang-wrap").hidden = langs.length < 2;
}

async function enter() {
  clearMessages();
  try {
    state.who = await api("/v1/whoami");
  } catch (err) {
    state.who = null;
    if (err instanceof ApiError && err.status === 401) {
      if (state.key) showError(err);
      return showSignIn();
    }
    showError(err);
    return showSignIn();
  }
  await loadStats();
  showApp();
}

async function loadStats() {
  for (;;) {
    try {
      state.stats = await api("/v1/stats");
      return;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 503) throw err;
      notify(t("service_loading"));
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
}

function showSignIn() {
  $("signin-view").hidden = false;
  $("app-view").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("key-input").focus();
}

function showApp() {
  notify("");
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  const open = state.who.name === "anonymous" && !state.key;
  $("who").textContent = open ? t("open_mode") : t("signed_in_as", { name: state.who.name, role: state.who.role });
  $("signout").hidden = open;
  const s = state.stats;
  $("db-summary").textContent = t("database_summary", { objects: s.objects, images: s.images });
  const hasText = Boolean(s.model && s.model.has_text);
  $("text-form").hidden = !hasText;
  $("text-unavailable").hidden = hasText;
  const model = s.model ? `${s.model.backend}:${s.model.model_name}` : "?";
  $("text-unavailable").textContent = t("text_unavailable", { model });
  $("curator-section").hidden = !["curator", "admin"].includes(state.who.role);
}

function signOut(clearMessage = true) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = "";
  state.who = null;
  for (const p of state.blobUrls.values()) p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  state.blobUrls.clear();
  $("results").hidden = true;
  if (clearMessage) clearMessages();
  showSignIn();
}

// ---------------------------------------------------------------- photos
async function addPhotos(files) {
  for (const file of files) {
    const photo = { id: nextPhotoId++, name: file.name || "photo.jpg", original: file, blob: file, crop: null,
      url: URL.createObjectURL(file), previewable: true };
    photo.previewable = await canDecode(photo.url);
    state.photos.push(photo);
  }
  renderPhotos();
}

function canDecode(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img.naturalWidth > 0);
    img.onerror = () => resolve(false);
    img.src = url;
  });
}

function renderPhotos() {
  const list = $("photo-list");
  list.replaceChildren(...state.photos.map((p, i) => {
    const label = t("photo_n", { n: i + 1 }) + (p.crop ? ` (${t("photo_cropped")})` : "");
    const figure = p.previewable
      ? el("img", { src: p.url, alt: label })
      : el("div", { class: "no-preview", text: t("preview_unavailable") });
    return el("li", { class: "photo-item" },
      figure,
      el("span", { class: "photo-name", text: `${label} · ${p.name}` }),
      el("div", { class: "row" },
        p.previewable ? el("button", { type: "button", class: "secondary", text: t("crop_button"),
          "aria-label": `${t("crop_button")}: ${label}`, onclick: () => openCrop(p) }) : null,
        el("button", { type: "button", class: "secondary", text: t("remove_button"),
          "aria-label": `${t("remove_button")}: ${label}`, onclick: () => removePhoto(p) })));
  }));
  $("no-photos").hidden = state.photos.length > 0;
}

function removePhoto(photo) {
  URL.revokeObjectURL(photo.url);
  state.photos = state.photos.filter((p) => p !== photo);
  renderPhotos();
}

// ---------------------------------------------------------------- crop
const crop = { photo: null, img: null, sel: null, drag: null, scale: 1 };

async function openCrop(photo) {
  const img = new Image();
  img.src = URL.createObjectURL(photo.original);
  await img.decode();
  crop.photo = photo;
  crop.img = img;
  crop.sel = photo.crop ? { ...photo.crop } : { x: 0.1, y: 0.1, w: 0.8, h: 0.8 };
  const dialog = $("crop-dialog");
  dialog.showModal();
  sizeCropCanvas();
  drawCrop();
  $("crop-canvas").focus();
}

function sizeCropCanvas() {
  const canvas = $("crop-canvas");
  const maxW = Math.min(canvas.parentElement.clientWidth || 320, 900);
  const maxH = Math.max(200, window.innerHeight * 0.55);
  crop.scale = Math.min(maxW / crop.img.naturalWidth, maxH / crop.img.naturalHeight, 1);
  canvas.width = Math.round(crop.img.naturalWidth * crop.scale);
  canvas.height = Math.round(crop.img.naturalHeight * crop.scale);
}

function clampSel(s) {
  const w = Math.min(Math.max(s.w, 0.01), 1);
  const h = Math.min(Math.max(s.h, 0.01), 1);
  return { x: Math.min(Math.max(s.x, 0), 1 - w), y: Math.min(Math.max(s.y, 0), 1 - h), w, h };
}

function drawCrop() {
  const canvas = $("crop-canvas");
  const ctx = canvas.getContext("2d");
  const { width: W, height: H } = canvas;
  ctx.drawImage(crop.img, 0, 0, W, H);
  const s = crop.sel;
  ctx.fillStyle = "rgba(0,0,0,0.55)";
  ctx.beginPath();
  ctx.rect(0, 0, W, H);
  ctx.rect(s.x * W, s.y * H, s.w * W, s.h * H);
  ctx.fill("evenodd");
  ctx.strokeStyle = "#ffd400";
  ctx.lineWidth = 2;
  ctx.strokeRect(s.x * W + 1, s.y * H + 1, s.w * W - 2, s.h * H - 2);
  const pct = (v) => Math.round(v * 100);
  $("crop-x").value = pct(s.x);
  $("crop-y").value = pct(s.y);
  $("crop-w").value = pct(s.w);
  $("crop-h-input").value = pct(s.h);
}

function canvasPoint(event) {
  const r = $("crop-canvas").getBoundingClientRect();
  return { x: Math.min(Math.max((event.clientX - r.left) / r.width, 0), 1), y: Math.min(Math.max((event.clientY - r.top) / r.height, 0), 1) };
}

function wireCrop() {
  const canvas = $("crop-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    crop.drag = canvasPoint(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!crop.drag) return;
    const p = canvasPoint(e);
    crop.sel = clampSel({ x: Math.min(p.x, crop.drag.x), y: Math.min(p.y, crop.drag.y),
      w: Math.abs(p.x - crop.drag.x), h: Math.abs(p.y - crop.drag.y) });
    drawCrop();
  });
  const end = () => { crop.drag = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("keydown", (e) => {
    const step = e.altKey ? 0.002 : 0.02; // arrows follow the photo, which is never mirrored
    const dx = { ArrowLeft: -step, ArrowRight: step }[e.key] ?? 0;
    const dy = { ArrowUp: -step, ArrowDown: step }[e.key] ?? 0;
    if (!dx && !dy) return;
    e.preventDefault();
    const s = { ...crop.sel };
    if (e.shiftKey) { s.w += dx; s.h += dy; } else { s.x += dx; s.y += dy; }
    crop.sel = clampSel(s);
    drawCrop();
  });
  for (const id of ["crop-x", "crop-y", "crop-w", "crop-h-input"]) {
    $(id).addEventListener("change", () => {
      const v = (i) => (Number($(i).value) || 0) / 100;
      crop.sel = clampSel({ x: v("crop-x"), y: v("crop-y"), w: v("crop-w"), h: v("crop-h-input") });
      drawCrop();
    });
  }
  $("crop-apply").addEventListener("click", applyCrop);
  $("crop-reset").addEventListener("click", () => { setPhotoCrop(crop.photo, null, crop.photo.original); closeCrop(); });
  $("crop-cancel").addEventListener("click", closeCrop);
  window.addEventListener("resize", () => { if ($("crop-dialog").open) { sizeCropCanvas(); drawCrop(); } });
}

async function applyCrop() {
  const { img, sel } = crop;
  const sx = Math.round(sel.x * img.naturalWidth), sy = Math.round(sel.y * img.naturalHeight);
  const sw = Math.max(1, Math.round(sel.w * img.naturalWidth)), sh = Math.max(1, Math.round(sel.h * img.naturalHeight));
  const scale = Math.min(1, MAX_CROP_SIDE / Math.max(sw, sh));
  const out = document.createElement("canvas");
  out.width = Math.round(sw * scale);
  out.height = Math.round(sh * scale);
  out.getContext("2d").drawImage(img, sx, sy, sw, sh, 0, 0, out.width, out.height);
  const blob = await new Promise((resolve) => out.toBlob(resolve, "image/jpeg", 0.92));
  setPhotoCrop(crop.photo, { ...sel }, blob);
  closeCrop();
}

function setPhotoCrop(photo, sel, blob) {
  photo.crop = sel;
  photo.blob = blob;
  URL.revokeObjectURL(photo.url);
  photo.url = URL.createObjectURL(blob);
  renderPhotos();
}

function closeCrop() {
  if (crop.img) URL.revokeObjectURL(crop.img.src);
  $("crop-dialog").close();
  crop.img = null;
  const again = crop.photo && [...$("photo-list").querySelectorAll("button")].find((b) => b.textContent === t("crop_button"));
  if (again) again.focus();
}

// ---------------------------------------------------------------- search
function uploadName(photo) {
  if (!photo.crop) return photo.name;
  return photo.name.replace(/\.[^.]*$/, "") + "-crop.jpg";
}

async function searchPhotos(event) {
  event.preventDefault();
  clearMessages();
  if (!state.photos.length) {
    $("message").replaceChildren(el("strong", { text: t("need_photo") }));
    $("message").hidden = false;
    return;
  }
  const form = new FormData();
  for (const p of state.photos) form.append("photos", p.blob, uploadName(p));
  form.append("k", String(Math.min(Math.max(Number($("k-input").value) || 5, 1), 50)));
  form.append("include_recovered", $("recovered-input").checked ? "true" : "false");
  await runSearch(() => api("/v1/search/photo", { method: "POST", body: form }),
    { kind: "photo", photos: state.photos.map((p) => ({ url: p.url, previewable: p.previewable, name: p.name })) });
}

async function searchText(event) {
  event.preventDefault();
  clearMessages();
  const text = $("text-input").value.trim();
  if (!text) return;
  const k = Math.min(Math.max(Number($("k-input").value) || 5, 1), 50);
  await runSearch(() => api("/v1/search/text", { method: "POST", json: { text, k, include_recovered: $("recovered-input").checked } }),
    { kind: "text", text });
}

async function runSearch(call, query) {
  const buttons = document.querySelectorAll("#photo-form button[type=submit], #text-form button[type=submit]");
  buttons.forEach((b) => { b.disabled = true; });
  notify(t("searching"));
  try {
    const response = await call();
    state.lastQuery = query;
    state.lastResponse = response;
    renderResults(response, query);
    notify("");
    $("results-h").focus();
  } catch (err) {
    notify("");
    showError(err);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function queryFigure(query, hit) {
  if (query.kind === "text") {
    return el("figure", { class: "compare-side query-side" },
      el("blockquote", { class: "query-text", text: query.text }), el("figcaption", { text: t("your_text") }));
  }
  const photo = query.photos[hit ? hit.query : 0] || query.photos[0];
  const caption = query.photos.length > 1 ? `${t("your_photo")} (${t("photo_n", { n: (hit ? hit.query : 0) + 1 })})` : t("your_photo");
  return el("figure", { class: "compare-side query-side" },
    photo.previewable ? el("img", { src: photo.url, alt: caption }) : el("div", { class: "no-preview", text: photo.name }),
    el("figcaption", { text: caption }));
}

function matchCard(match, response, query) {
  const strength = matchStrength(match, response.threshold);
  const f = match.object.fields;
  const title = f.title || t("untitled");
  const hit = match.hits[0];
  const image = hit ? hit.image : match.object.images[0];
  const others = match.object.images.filter((im) => !image || im.image_id !== image.image_id);
  const headingId = `match-${match.rank}-h`;
  return el("li", { class: `match strength-${strength}`, "aria-labelledby": headingId },
    el("div", { class: "match-head" },
      el("span", { class: `badge badge-${strength}`, text: t(`strength_${strength}`) }),
      el("h3", { id: headingId }, el("span", { class: "visually-hidden", text: `${t("rank_n", { n: match.rank })}: ` }), title),
      el("span", { class: "score", text: scoreText(match, response) })),
    el("div", { class: "compare" },
      queryFigure(query, hit),
      el("figure", { class: "compare-side" },
        image ? catalogueImg(image, `${t("catalogue_photo")}: ${title}`) : el("div", { class: "no-preview" }),
        el("figcaption", { text: t("catalogue_photo") }))),
    others.length ? el("div", { class: "thumbs" }, others.map((im) => catalogueImg(im, `${t("catalogue_photo")}: ${title}`))) : null,
    match.evidence_url ? evidenceFigure(match, title) : null,
    el("dl", { class: "fields" },
      el("div", {}, el("dt", { text: fieldLabel("id") }), el("dd", { text: match.object.id })),
      SHOWN_FIELDS.filter((name) => f[name]).map((name) =>
        el("div", { class: `field-${name}` }, el("dt", { text: fieldLabel(name) }), el("dd", { text: fieldValue(name, f[name]) })))),
    el("button", { type: "button", class: "secondary open-record", text: t("open_record"),
      "aria-label": `${t("open_record")}: ${title}`, onclick: () => openRecord(match.object.id) }));
}

// The verified correspondences drawn between the two photos: what an officer shows an expert.
function evidenceFigure(match, title) {
  const img = el("img", { alt: t("evidence_alt", { title, n: match.inliers || 0 }), decoding: "async", class: "loading evidence-img" });
  imageUrl(match.evidence_url)
    .then((src) => { img.src = src; img.classList.remove("loading"); })
    .catch(() => img.classList.replace("loading", "broken"));
  return el("details", { class: "evidence" },
    el("summary", { text: t("evidence_summary", { n: match.inliers || 0 }) }),
    el("figure", {}, img, el("figcaption", { text: t("evidence_caption") })));
}

function scoreText(match, response) {
  const parts = [t("similarity", { score: match.score.toFixed(2), threshold: response.threshold.toFixed(2) })];
  if (typeof match.probability === "number") parts.push(t("probability", { percent: Math.round(match.probability * 100) }));
  if (typeof match.inliers === "number") parts.push(t("inliers", { n: match.inliers }));
  return parts.join(" · ");
}

function renderResults(response, query) {
  const verdict = searchVerdict(response);
  const box = $("verdict");
  box.className = `verdict verdict-${verdict}`;
  box.replaceChildren(
    el("p", { class: "verdict-words", text: t(`verdict_${verdict}`) }),
    el("p", { class: "verdict-help", text: t(`verdict_${verdict}_help`) }));
  $("search-ref").textContent = `${t("search_reference", { id: response.search_id, time: response.at_utc.replace("T", " ").slice(0, 19) })}. ${t("record_saved")}`;
  // Only strong and possible matches are shown open; the rest stay folded so nobody mistakes them for hits.
  const shown = verdict === "none" ? [] : response.matches.filter((m) => matchStrength(m, response.threshold) !== "weak");
  const hiddenOnes = response.matches.filter((m) => !shown.includes(m));
  $("match-list").replaceChildren(...shown.map((m) => matchCard(m, response, query)));
  $("nearest").hidden = hiddenOnes.length === 0;
  $("nearest").open = false;
  $("nearest-summary").textContent = t(verdict === "none" ? "nearest_anyway" : "other_results", { n: hiddenOnes.length });
  $("nearest-list").replaceChildren(...hiddenOnes.map((m) => matchCard(m, response, query)));
  $("results").hidden = false;
}

// ---------------------------------------------------------------- search record: download, print
async function fetchRecord() {
  return api(`/v1/searches/${encodeURIComponent(state.lastResponse.search_id)}`);
}

async function downloadRecord() {
  clearMessages();
  try {
    const record = await fetchRecord();
    const blob = new Blob([JSON.stringify(record, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `search-record-${record.at_utc.replace(/[:.]/g, "-")}-${record.search_id}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    showError(err);
  }
}

async function printRecord() {
  clearMessages();
  let record;
  try {
    record = await fetchRecord();
  } catch (err) {
    return showError(err);
  }
  const row = (label, value) => el("tr", {}, el("th", { scope: "row", text: label }), el("td", { text: value }));
  const query = record.kind === "text" ? record.query.text
    : (record.query.filenames || []).map((n, i) => `${n || t("photo_n", { n: i + 1 })} (sha256 ${record.query.photos_sha256[i]})`).join("; ");
  const titles = new Map(state.lastResponse.matches.map((m) => [m.object.id, m.object.fields.title || ""]));
  const view = $("print-view");
  view.replaceChildren(
    el("h1", { text: `${t("app_title")}: ${t("print_heading")}` }),
    el("table", { class: "print-table" }, el("tbody", {},
      row(t("print_time"), record.at_utc),
      row(t("print_search_id"), record.search_id),
      row(t("print_user"), record.key_name),
      row(t("print_model"), record.model),
      row(t("print_query"), query),
      row(t("print_threshold"), String(record.threshold)),
      row(t("print_verdict"), `${t(`verdict_${searchVerdict(state.lastResponse)}`)} (${record.verdict})`))),
    el("table", { class: "print-table" },
      el("thead", {}, el("tr", {}, ["#", t("print_object"), t("field_title"), t("print_score"), t("print_close")].map((h) => el("th", { text: h })))),
      el("tbody", {}, record.results.map((r, i) => el("tr", {},
        el("td", { text: String(i + 1) }), el("td", { text: r.object_id }), el("td", { text: titles.get(r.object_id) || "" }),
        el("td", { text: r.score.toFixed(4) }), el("td", { text: r.close ? t("yes") : t("no") }))))));
  view.dataset.searchId = record.search_id;
  window.print();
}

// ---------------------------------------------------------------- full record
async function openRecord(objectId) {
  clearMessages();
  let obj;
  try {
    obj = await api(`/v1/objects/${encodeURIComponent(objectId)}`);
  } catch (err) {
    return showError(err);
  }
  renderRecord(obj);
  const dialog = $("record-dialog");
  if (!dialog.open) dialog.showModal();
  $("record-close").focus();
}

function renderRecord(obj) {
  const f = obj.fields;
  const title = f.title || t("untitled");
  const canEdit = state.who && ["curator", "admin"].includes(state.who.role);
  const body = $("record-body");
  body.replaceChildren(
    el("h3", { class: "record-title", text: title }),
    el("h4", { text: t("record_photos") }),
    el("div", { class: "record-photos" }, obj.images.map((im, i) =>
      el("figure", {}, catalogueImg(im, `${title}: ${t("photo_n", { n: i + 1 })}`, { full: true }),
        el("figcaption", { text: `${t("photo_n", { n: i + 1 })} (${im.width} × ${im.height})` })))),
    el("dl", { class: "fields record-fields" },
      el("div", {}, el("dt", { text: fieldLabel("id") }), el("dd", { text: obj.id })),
      RECORD_FIELDS.filter((name) => f[name]).map((name) =>
        el("div", { class: `field-${name}` }, el("dt", { text: fieldLabel(name) }), el("dd", { text: fieldValue(name, f[name]) }))),
      Object.entries(obj.extra || {}).map(([k, v]) =>
        el("div", {}, el("dt", { text: k.replace(/_/g, " ") }), el("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })))),
    canEdit ? statusForm(obj) : null);
}

function statusForm(obj) {
  const select = el("select", { id: "status-select" },
    STATUSES.map((s) => el("option", { value: s, text: statusWord(s), selected: s === obj.fields.status })));
  const form = el("form", { class: "row status-form", novalidate: true },
    el("label", { for: "status-select", text: t("change_status") }), select,
    el("button", { type: "submit", class: "primary", text: t("change_status") }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearMessages();
    try {
      const updated = await api(`/v1/objects/${encodeURIComponent(obj.id)}/status`, { method: "PUT", json: { status: select.value } });
      renderRecord(updated);
      notify(t("status_saved", { status: statusWord(updated.fields.status) }));
      $("record-body").prepend(el("p", { class: "notice-inline", role: "status", text: t("status_saved", { status: statusWord(updated.fields.status) }) }));
    } catch (err) {
      showError(err);
      $("record-body").prepend(el("p", { class: "message", role: "alert", text: errorText(err).main + (err.detail ? ` ${err.detail}` : "") }));
    }
  });
  return form;
}

// ---------------------------------------------------------------- curators: add an object
function buildAddForm() {
  const fields = ["id", ...RECORD_FIELDS];
  $("add-fields").replaceChildren(...fields.map((name) => {
    const id = `add-${name}`;
    let input;
    if (name === "status") {
      input = el("select", { id, name }, STATUSES.map((s) => el("option", { value: s, "data-status": s, text: statusWord(s) })));
    } else if (name === "description") {
      input = el("textarea", { id, name, rows: 3 });
    } else {
      input = el("input", { id, name, type: name === "date_reported" ? "date" : "text", required: name === "id" });
    }
    return el("div", { class: `field field-${name}` }, el("label", { for: id, "data-field": name, text: fieldLabel(name) }), input);
  }));
}

async function addObject(event) {
  event.preventDefault();
  clearMessages();
  const form = event.target;
  const record = {};
  for (const name of ["id", ...RECORD_FIELDS]) {
    const value = form.elements[name].value.trim();
    if (value) record[name] = value;
  }
  const files = $("add-photos").files;
  if (!record.id) return form.elements.id.focus();
  if (!files.length) return $("add-photos").focus();
  const body = new FormData();
  body.append("record", JSON.stringify(record));
  for (const file of files) body.append("photos", file, file.name);
  notify(t("add_saving"));
  try {
    const obj = await api("/v1/objects", { method: "POST", body });
    form.reset();
    state.stats = await api("/v1/stats");
    $("db-summary").textContent = t("database_summary", { objects: state.stats.objects, images: state.stats.images });
    notify(t("add_done", { id: obj.id, n: obj.images.length }));
  } catch (err) {
    notify("");
    showError(err);
  }
}

// ---------------------------------------------------------------- events
function wireEvents() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return $("key-input").focus();
    state.key = key;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    notify(t("signin_checking"));
    await enter();
    if (!state.who) { sessionStorage.removeItem(KEY_STORE); state.key = ""; }
  });
  $("signout").addEventListener("click", () => signOut());
  $("lang-select").addEventListener("change", (e) => {
    localStorage.setItem(LANG_STORE, e.target.value);
    setLanguage(e.target.value);
    buildAddForm();
    if (state.who) showApp();
    renderPhotos();
    if (state.lastResponse && !$("results").hidden) renderResults(state.lastResponse, state.lastQuery);
  });
  const onFiles = (e) => { addPhotos([...e.target.files]); e.target.value = ""; };
  $("camera-input").addEventListener("change", onFiles);
  $("files-input").addEventListener("change", onFiles);
  $("photo-form").addEventListener("submit", searchPhotos);
  $("text-form").addEventListener("submit", searchText);
  $("download-record").addEventListener("click", downloadRecord);
  $("print-record").addEventListener("click", printRecord);
  $("record-close").addEventListener("click", () => $("record-dialog").close());
  $("add-form").addEventListener("submit", addObject);
  wireCrop();
}

translatePage(document);
start();
