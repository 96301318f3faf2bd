// The officers' page: sign in, photograph, crop, search, compare, report. Plain ES module, no build step.
import { t, setLanguage, availableLanguages, currentLanguage, preferredLanguage, LANGUAGES, translatePage } from "./i18n.js";
import { likelihoodPercent, matchStrength, searchVerdict } from "./strength.js";
import { $, el, fill, reveal } from "./dom.js";
import { ApiError, Stopped, api, upload, currentKey, setKey, forgetKey } from "./api.js";
import { SEND_SIDE, MAX_CROP_SIDE, cropRegion, decodeUpright, examinePhoto, sentName, toJpeg } from "./photos.js";
import { openCrop, wireCrop } from "./crop.js";
import { mailtoHref, parseContact } from "./contact.js";

const LANG_STORE = "artefact.lang";
const TIMEOUT_STORE = "artefact.search_timeout_s"; // a per-device override of the search timeout
const DEFAULT_TIMEOUT_S = 30;
const SHOWN_FIELDS = ["object_type", "materials", "date_period", "status", "source", "country", "case_reference", "contact"];
// Record fields and statuses come from the service (no key needed), so the page copies none of them.
// A service that cannot be reached (or answers no meta) must still get a page that says so on sign-in.
const META = await fetch("/v1/meta", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : {}))
  .catch(() => ({}));
const RECORD_FIELDS = META.record_fields || [];
const STATUSES = META.statuses || [];
const FEATURES = new Set(META.features || []); // what this service offers beyond the basics

const state = {
  who: null, stats: null,
  // {id, name, original: File, source: Blob the browser can draw, previewable, width, height,
  //  reduced: {blob, width, height} | null, crop: {x,y,w,h} fractions | null, cropped: {blob, width, height} | null, url}
  photos: [],
  lastQuery: null, lastResponse: null,
  search: null, // the running search: {controller}
  blobUrls: new Map(), // image URL -> object URL (images need the key header, so <img src> cannot fetch them)
};
let nextPhotoId = 1;

// ---------------------------------------------------------------- helpers
function errorText(err) {
  if (err instanceof Stopped) {
    return { main: err.reason === "timeout" ? t("search_timeout", { seconds: err.seconds }) : t("search_cancelled"), detail: "" };
  }
  if (err.plain) return { main: err.message, detail: "" };
  if (!(err instanceof ApiError)) return { main: t("error_other", { status: "?" }), detail: String(err) };
  const known = { 0: "error_network", 401: "error_401", 403: "error_403", 404: "error_404", 409: "error_409",
    413: "error_413", 415: "error_415", 422: "error_422", 429: "error_429", 503: "error_503" };
  const main = known[err.status] ? t(known[err.status]) : t("error_other", { status: err.status });
  return { main, detail: err.status === 0 ? "" : err.detail };
}

/** An error that is only a sentence for the officer (nothing from the service). */
function plainError(text) {
  return Object.assign(new Error(text), { plain: true });
}

/** The message box for `err`, moved just before `place` (where the answer would have been). */
function showError(err, place = null) {
  const { main, detail } = errorText(err);
  const box = $("message");
  fill(box, el("strong", { text: main }), detail ? el("span", { class: "detail", text: t("error_details", { detail }) }) : null);
  box.classList.toggle("message-quiet", err instanceof Stopped && err.reason === "cancelled");
  const signedOut = err instanceof ApiError && err.status === 401 && state.who; // back to the sign-in view
  if (place && !signedOut) place.before(box);
  else $("main").prepend(box);
  box.hidden = false;
  if (signedOut) signOut(false);
  else if (place) reveal(box, "center");
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

function loadInto(img, url) {
  imageUrl(url)
    .then((src) => { img.src = src; img.classList.remove("loading"); })
    .catch(() => img.classList.replace("loading", "broken"));
}

function catalogueImg(image, alt, { full = false } = {}) {
  const img = el("img", { alt, width: image.width, height: image.height, decoding: "async", class: "loading" });
  loadInto(img, full ? image.url : image.thumbnail_url);
  return img;
}

function searchTimeoutS() {
  const local = Number(localStorage.getItem(TIMEOUT_STORE));
  if (local > 0) return local;
  return Number(META.search_timeout_s) > 0 ? Number(META.search_timeout_s) : DEFAULT_TIMEOUT_S;
}

function fieldLabel(name) {
  return t(`field_${name}`);
}

function statusWord(status) {
  const word = status ? t(`status_${status}`) : "";
  return word === `status_${status}` ? status : word; // a status newer than the page's tables: as it is
}

function fieldValue(name, value) {
  return name === "status" ? statusWord(value) : value;
}

function roleWord(role) {
  return ["officer", "curator", "admin"].includes(role) ? t(`role_${role}`) : role;
}

function modelLabel() {
  const m = state.stats?.model;
  return m ? `${m.backend}:${m.model_name}` : "?";
}

// ---------------------------------------------------------------- sign in / session
async function start() {
  takeKeyFromLink();
  const saved = localStorage.getItem(LANG_STORE);
  await setLanguage(saved && saved in LANGUAGES ? saved : preferredLanguage());
  buildLanguagePicker();
  buildAddForm();
  wireEvents();
  await enter();
}

// A sign-in link (made by `artefact keys create --qr`) carries the code after "#key=". Browsers
// never send the fragment to a server, and the page takes it out of the address (and so out of
// the history) before it signs in or shows anything. The code is kept for this tab only.
function takeKeyFromLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("key")) return;
  const key = (params.get("key") || "").trim();
  history.replaceState(history.state, "", location.pathname + location.search);
  if (key) setKey(key, false);
}

function buildLanguagePicker() {
  const select = $("lang-select");
  fill(select, availableLanguages().map((code) => el("option", { value: code, lang: code, text: LANGUAGES[code].name })));
  select.value = currentLanguage();
}

async function enter() {
  clearMessages();
  try {
    state.who = await api("/v1/whoami");
  } catch (err) {
    state.who = null;
    if (err instanceof ApiError && err.status === 401) {
      const hadKey = Boolean(currentKey());
      forgetKey(); // a refused code is never kept, remembered or not
      if (hadKey) showError(err);
      return showSignIn();
    }
    showError(err);
    return showSignIn();
  }
  try {
    await loadStats();
  } catch (err) {
    showError(err);
    return showSignIn();
  }
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
  showKey(false);
  $("remember-input").checked = false;
  // Paste needs the asynchronous clipboard (secure pages only); otherwise a long press does it.
  $("key-paste").hidden = !navigator.clipboard?.readText;
  $("key-input").focus();
}

function showKey(shown) {
  $("key-input").type = shown ? "text" : "password";
  $("key-show").setAttribute("aria-pressed", String(shown));
  $("key-show").dataset.i18n = shown ? "key_hide" : "key_show";
  $("key-show").textContent = t($("key-show").dataset.i18n);
}

async function pasteKey() {
  try {
    const text = (await navigator.clipboard.readText()).trim();
    if (text) $("key-input").value = text;
    $("key-input").focus();
  } catch {
    showError(plainError(t("paste_failed")));
  }
}

async function signIn(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return $("key-input").focus();
  setKey(key, $("remember-input").checked);
  $("key-input").value = "";
  showKey(false);
  notify(t("signin_checking"));
  await enter();
}

function showApp() {
  notify("");
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  const open = state.who.name === "anonymous" && !currentKey();
  $("who").textContent = open ? t("open_mode") : t("signed_in_as", { name: state.who.name, role: roleWord(state.who.role) });
  $("signout").hidden = open;
  const s = state.stats;
  $("db-summary").textContent = t("database_summary", { objects: s.objects, images: s.images });
  showFreshness(s.freshness);
  // Search by description only where the model reads text; the reason sits with the technical details.
  const hasText = Boolean(s.model && s.model.has_text);
  $("text-section").hidden = !hasText;
  $("text-unavailable").hidden = hasText;
  $("text-unavailable").textContent = t("text_unavailable", { model: modelLabel() });
  $("words-section").hidden = !FEATURES.has("keyword_search");
  $("curator-section").hidden = !["curator", "admin"].includes(state.who.role);
  $("service-model").textContent = t("service_model", { model: modelLabel() });
  $("service-threshold").textContent = typeof s.threshold === "number" ? t("service_threshold", { threshold: s.threshold.toFixed(2) }) : "";
  const cal = s.calibration || {};
  const calibrated = Object.values(cal).some((c) => c && Object.keys(c).length > 0);
  $("service-calibration").textContent = t(calibrated ? "service_calibrated" : "service_uncalibrated");
}

/** Where the catalogue came from and how old it is (a post's imported bundle), with a warning once too old. */
function showFreshness(fresh) {
  const line = $("freshness");
  const warning = $("freshness-warning");
  line.hidden = !fresh;
  warning.hidden = !fresh?.stale;
  if (!fresh) return;
  fill(line, withData("catalogue_as_of", { date: String(fresh.as_of).slice(0, 10), bundle: fresh.bundle_id }));
  if (fresh.stale) {
    fill(warning, withData("catalogue_stale", { days: Math.floor(fresh.age_days), max: fresh.max_age_days }));
  }
}

function signOut(clearMessage = true) {
  if (state.search) state.search.controller.abort();
  forgetKey();
  state.who = null;
  for (const p of state.blobUrls.values()) p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  state.blobUrls.clear();
  voidAnswer();
  if (clearMessage) clearMessages();
  showSignIn();
}

// ---------------------------------------------------------------- photos
// A format the browser cannot draw (HEIC in Chromium) is shown from a JPEG the service makes,
// where the service offers it; otherwise it is sent as it is and the service reads it.
async function serverPreview(file) {
  const form = new FormData();
  form.append("photo", file, file.name || "photo");
  form.append("max_side", String(SEND_SIDE));
  try {
    return await api("/v1/preview", { method: "POST", body: form, raw: true });
  } catch {
    return null; // no preview: the search itself will say if the file is unreadable
  }
}

function addPhotos(files) {
  for (const file of files) {
    const photo = { id: nextPhotoId++, name: file.name || "photo.jpg", original: file, source: file, pending: true,
      previewable: false, reduced: null, crop: null, cropped: null, url: null };
    photo.ready = examinePhoto(file, FEATURES.has("preview") ? serverPreview : null).then((found) => {
      Object.assign(photo, found, { pending: false });
      setPhotoUrl(photo, photo.reduced?.blob || (photo.previewable ? photo.original : null));
      if (state.photos.includes(photo)) renderPhotos();
      else setPhotoUrl(photo, null); // removed while it was being looked at
    });
    state.photos.push(photo);
  }
  renderPhotos();
}

function setPhotoUrl(photo, blob) {
  if (photo.url) URL.revokeObjectURL(photo.url);
  photo.url = blob ? URL.createObjectURL(blob) : null;
}

/** Size of what will be sent when it differs from the officer's file (reduced or cropped), else null. */
function sentSize(photo) {
  if ($("full-size-input").checked) return null;
  return photo.cropped || photo.reduced;
}

function renderPhotos() {
  fill($("photo-list"), state.photos.map((p, i) => {
    const label = t("photo_n", { n: i + 1 }) + (p.crop ? ` (${t("photo_cropped")})` : "");
    const figure = p.pending ? el("div", { class: "photo-pending", text: t("preview_loading") })
      : p.url ? el("img", { src: p.url, alt: label })
      : el("div", { class: "no-preview", text: t("preview_unavailable") });
    const size = sentSize(p);
    return el("li", { class: "photo-item" },
      figure,
      el("span", { class: "photo-name", text: `${label} · ${p.name}` }),
      size ? el("span", { class: "photo-name", text: t("photo_sent_size", { width: size.width, height: size.height }) }) : null,
      el("div", { class: "row" },
        p.previewable ? el("button", { type: "button", class: "secondary", text: t("crop_button"), "data-crop": p.id,
          "aria-label": `${t("crop_button")}: ${label}`, onclick: () => openCrop(p, () => document.querySelector(`[data-crop="${p.id}"]`)) }) : null,
        el("button", { type: "button", class: "secondary", text: t("remove_button"),
          "aria-label": `${t("remove_button")}: ${label}`, onclick: () => removePhoto(p) })));
  }));
  $("no-photos").hidden = state.photos.length > 0;
}

function removePhoto(photo) {
  setPhotoUrl(photo, null);
  state.photos = state.photos.filter((p) => p !== photo);
  renderPhotos();
}

async function applyCrop(photo, sel, bitmap) {
  photo.crop = sel;
  photo.cropped = await toJpeg(bitmap, SEND_SIDE, cropRegion(bitmap, sel));
  setPhotoUrl(photo, photo.cropped.blob);
  renderPhotos();
}

function resetCrop(photo) {
  photo.crop = null;
  photo.cropped = null;
  setPhotoUrl(photo, photo.reduced?.blob || photo.original);
  renderPhotos();
}

/** What is sent for `photo`: reduced (or a reduced crop) by default; with "full size", the
 * officer's own file, or the crop taken from it at up to MAX_CROP_SIDE. */
async function sentFile(photo, fullSize) {
  if (photo.crop && !fullSize) return { blob: photo.cropped.blob, name: sentName(photo.name, { cropped: true }) };
  if (photo.crop) {
    const bitmap = (await decodeUpright(photo.original)) || (await decodeUpright(photo.source));
    const out = await toJpeg(bitmap, MAX_CROP_SIDE, cropRegion(bitmap, photo.crop));
    bitmap.close();
    return { blob: out.blob, name: sentName(photo.name, { cropped: true }) };
  }
  if (!fullSize && photo.reduced) return { blob: photo.reduced.blob, name: sentName(photo.name, { reencoded: true }) };
  return { blob: photo.original, name: photo.name };
}

// ---------------------------------------------------------------- search
function resultsCount() {
  return Math.min(Math.max(Number($("k-input").value) || 5, 1), 50);
}

/** Take the previous answer off the screen: nothing of it may pass for the answer to a new search. */
function voidAnswer() {
  for (const p of state.lastQuery?.photos || []) if (p.url) URL.revokeObjectURL(p.url);
  state.lastResponse = null;
  state.lastQuery = null;
  $("results").hidden = true;
  $("verdict").className = "verdict";
  fill($("verdict"));
  fill($("match-list"));
  fill($("nearest-list"));
  $("nearest").hidden = true;
  fill($("search-ref"));
  $("sheet-pdf").hidden = true;
  fill($("print-view"));
}

/** The progress bar and Cancel button sit beside the button of the search that runs. */
function setBusy(form, on) {
  if (on) form.querySelector(".search-actions").append($("cancel-button"), $("busy"));
  $("cancel-button").hidden = !on;
  $("busy").hidden = !on;
  for (const b of document.querySelectorAll("#search-button, #text-button")) b.disabled = on;
}

function showProgress({ phase, percent = 0 }) {
  const bar = $("busy-bar");
  if (phase === "upload") bar.value = percent;
  else bar.removeAttribute("value"); // indeterminate: nothing to count
  $("busy-text").textContent = phase === "upload" ? t("sending", { percent }) : t(phase);
}

/** Run `call(signal)` for a JSON answer, cancelled with `signal` or after the search timeout. */
function withTimeout(signal, call) {
  const inner = new AbortController();
  const seconds = searchTimeoutS();
  const timer = setTimeout(() => inner.abort(new Stopped("timeout", seconds)), seconds * 1000);
  const onAbort = () => inner.abort(new Stopped("cancelled"));
  signal.addEventListener("abort", onAbort);
  return call(inner.signal).finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  });
}

async function searchPhotos(event) {
  event.preventDefault();
  if (state.search) return;
  clearMessages();
  voidAnswer();
  if (!state.photos.length) return showError(plainError(t("need_photo")), $("results"));
  const photos = [...state.photos];
  const fullSize = $("full-size-input").checked;
  await runSearch($("photo-form"), async (signal) => {
    showProgress({ phase: "preparing" });
    await Promise.all(photos.map((p) => p.ready));
    const form = new FormData();
    for (const p of photos) {
      const file = await sentFile(p, fullSize);
      form.append("photos", file.blob, file.name);
    }
    form.append("k", String(resultsCount()));
    form.append("include_recovered", $("recovered-input").checked ? "true" : "false");
    if (signal.aborted) throw new Stopped("cancelled");
    return upload("/v1/search/photo", form, { onProgress: showProgress, signal, timeoutS: searchTimeoutS() });
  }, () => ({ kind: "photo", photos: photos.map((p) => {
    const shown = p.cropped?.blob || p.reduced?.blob || (p.previewable ? p.original : null);
    return { url: shown ? URL.createObjectURL(shown) : null, name: p.name };
  }) }));
}

async function searchText(event) {
  event.preventDefault();
  if (state.search) return;
  clearMessages();
  const text = $("text-input").value.trim();
  if (!text) return;
  voidAnswer();
  const json = { text, k: resultsCount(), include_recovered: $("recovered-input").checked };
  await runSearch($("text-form"), (signal) => {
    showProgress({ phase: "searching" });
    return withTimeout(signal, (s) => api("/v1/search/text", { method: "POST", json, signal: s }));
  }, () => ({ kind: "text", text }));
}

async function runSearch(form, call, describeQuery) {
  const controller = new AbortController();
  state.search = { controller };
  setBusy(form, true);
  try {
    const response = await call(controller.signal);
    state.lastQuery = describeQuery();
    state.lastResponse = response;
    renderResults(response, state.lastQuery);
    // The verdict at the top of the screen: the first thing read, with its next step inside.
    $("verdict").focus({ preventScroll: true });
    reveal($("verdict"));
  } catch (err) {
    showError(err, $("results"));
  } finally {
    state.search = null;
    setBusy(form, false);
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
    photo.url ? el("img", { src: photo.url, alt: caption }) : el("div", { class: "no-preview", text: photo.name }),
    el("figcaption", { text: caption }));
}

/** `key`'s text with each value of `vars` (a number, an address, a reference) kept whole and
 * isolated from the direction of the words around it (<bdi>): no mid-word breaks, and no
 * reordering of "SAMPLE-2026-0101" inside Arabic text. */
function withData(key, vars) {
  const names = Object.keys(vars);
  const marks = Object.fromEntries(names.map((name, i) => [name, `\u0000${i}\u0000`]));
  return t(key, marks).split("\u0000").map((part, i) =>
    (i % 2 ? el("bdi", { class: "nobreak", text: String(vars[names[Number(part)]]) }) : part)).filter((p) => p !== "");
}

/** A field's value on the page: references, ids and contacts break only between words. */
function fieldContent(name, value) {
  if (!["id", "case_reference", "contact"].includes(name)) return fieldValue(name, value);
  return String(value).split(/(\s+)/).map((word) => (/^\s*$/.test(word) ? word : el("bdi", { class: "nobreak", text: word })));
}

function matchCard(match, response, query) {
  const strength = matchStrength(match, response.threshold);
  const f = match.object.fields;
  const title = f.title || t("untitled");
  const hit = match.hits[0];
  const image = hit ? hit.image : match.object.images[0];
  const others = match.object.images.filter((im) => !image || im.image_id !== image.image_id);
  const headingId = `match-${match.rank}-h`;
  const percent = strength === "weak" ? null : likelihoodPercent(match);
  return el("li", { class: `match strength-${strength}`, "aria-labelledby": headingId, "data-object": match.object.id },
    el("div", { class: "match-head" },
      el("span", { class: `badge badge-${strength}`, text: t(`strength_${strength}`) }),
      el("h3", { id: headingId }, el("span", { class: "visually-hidden", text: `${t("rank_n", { n: match.rank })}: ` }), title),
      percent !== null ? el("span", { class: "likely", text: t("likely_same", { percent }) }) : null),
    el("div", { class: "compare" },
      queryFigure(query, hit),
      el("figure", { class: "compare-side" },
        image ? catalogueImg(image, `${t("catalogue_photo")}: ${title}`) : el("div", { class: "no-preview" }),
        el("figcaption", { text: t("catalogue_photo") }))),
    others.length ? el("div", { class: "thumbs" }, others.map((im) => catalogueImg(im, `${t("catalogue_photo")}: ${title}`))) : null,
    match.evidence_url ? evidenceFigure(match, title) : null,
    el("dl", { class: "fields" },
      el("div", {}, el("dt", { text: fieldLabel("id") }), el("dd", {}, fieldContent("id", match.object.id))),
      SHOWN_FIELDS.filter((name) => f[name]).map((name) =>
        el("div", { class: `field-${name}` }, el("dt", { text: fieldLabel(name) }), el("dd", {}, fieldContent(name, f[name]))))),
    techDetails(match, response),
    el("button", { type: "button", class: "secondary open-record", text: t("open_record"),
      "aria-label": `${t("open_record")}: ${title}`, onclick: () => openRecord(match.object.id) }));
}

// The verified correspondences drawn between the two photos: what an officer shows an expert.
// The picture is fetched only when the section is opened.
function evidenceFigure(match, title) {
  const figure = el("figure", {}, el("figcaption", { text: t("evidence_caption") }));
  const details = el("details", { class: "evidence" },
    el("summary", { text: t("evidence_summary", { n: match.inliers || 0 }) }), figure);
  details.addEventListener("toggle", () => {
    if (!details.open || figure.querySelector("img")) return;
    const img = el("img", { alt: t("evidence_alt", { title, n: match.inliers || 0 }), decoding: "async", class: "loading evidence-img" });
    figure.prepend(img);
    loadInto(img, match.evidence_url);
  });
  return details;
}

/** Numbers for experts, folded away: similarity, threshold, calibrated probability, details, model. */
function techDetails(match, response) {
  const parts = [t("similarity", { score: match.score.toFixed(2), threshold: response.threshold.toFixed(2) })];
  if (typeof match.probability === "number") parts.push(t("probability", { percent: (match.probability * 100).toFixed(1) }));
  if (typeof match.inliers === "number") parts.push(t("inliers", { n: match.inliers }));
  parts.push(t("model_is", { model: modelLabel() }));
  return el("details", { class: "tech" },
    el("summary", { text: t("tech_details") }),
    el("p", { class: "score", text: parts.join(" · ") }));
}

function verdictPhrase(verdict) {
  return t(`verdict_${verdict}`);
}

/** Inside the verdict: the best match's status, case reference and contact as actions. */
function caseBlock(match, verdict, response) {
  const f = match.object.fields;
  const title = f.title || t("untitled");
  const { emails, phones } = parseContact(f.contact);
  const reference = response.short_id ? `${response.short_id} (${response.search_id})` : response.search_id;
  const mail = {
    case: f.case_reference || match.object.id, verdict: verdictPhrase(verdict), title,
    object: match.object.id, status: statusWord(f.status), reference,
    time: `${response.at_utc.replace("T", " ").slice(0, 19)}`, officer: state.who?.name || "",
  };
  const actions = [
    ...phones.map((p) => el("a", { class: "action action-call", href: `tel:${p.tel}` }, withData("call_action", { phone: p.shown }))),
    ...emails.map((address) => el("a", { class: "action action-mail",
      href: mailtoHref(address, t("mail_subject", mail), t("mail_body", mail)) }, withData("email_action", { address }))),
    f.case_reference ? el("button", { type: "button", class: "action action-copy", "data-copy": f.case_reference,
      onclick: () => copyCaseReference(f.case_reference) }, t("copy_case_action")) : null,
  ];
  return el("div", { class: "verdict-case" },
    el("p", { class: "verdict-object" }, el("strong", { text: title }), " · ", el("bdi", { class: "nobreak", text: match.object.id })),
    f.status ? el("p", { class: `verdict-status status-${f.status}` }, `${fieldLabel("status")}: `, el("strong", { text: statusWord(f.status) })) : null,
    f.case_reference ? el("p", { class: "verdict-ref" }, withData("case_reference_is", { ref: f.case_reference })) : null,
    f.contact && !phones.length && !emails.length ? el("p", {}, `${fieldLabel("contact")}: `, f.contact) : null,
    el("div", { class: "case-actions" }, actions),
    el("p", { class: "copy-note", role: "status" }));
}

async function copyCaseReference(ref) {
  const note = $("verdict").querySelector(".copy-note");
  try {
    await navigator.clipboard.writeText(ref);
    note.textContent = t("copied", { ref });
  } catch {
    // No clipboard here: select the reference so a long press or Ctrl+C copies it.
    const span = $("verdict").querySelector(".verdict-ref .nobreak");
    if (span) getSelection().selectAllChildren(span);
    note.textContent = t("copy_failed");
  }
}

function renderVerdict(response, verdict, shown) {
  const box = $("verdict");
  box.className = `verdict verdict-${verdict}`;
  const top = verdict === "none" ? null : shown[0];
  const percent = top ? likelihoodPercent(top) : null;
  fill(box,
    el("p", { class: "verdict-words", text: verdictPhrase(verdict) }),
    percent !== null ? el("p", { class: "verdict-figure", text: t("likely_same", { percent }) }) : null,
    el("p", { class: "verdict-help", text: t(`verdict_${verdict}_help`) }),
    top ? caseBlock(top, verdict, response) : null);
}

function renderResults(response, query) {
  const verdict = searchVerdict(response);
  // Only strong and possible matches are shown open; the rest stay folded so nobody mistakes them for hits.
  const shown = verdict === "none" ? [] : response.matches.filter((m) => matchStrength(m, response.threshold) !== "weak");
  const hiddenOnes = response.matches.filter((m) => !shown.includes(m));
  renderVerdict(response, verdict, shown);
  const time = response.at_utc.replace("T", " ").slice(0, 19);
  fill($("search-ref"),
    response.short_id ? [el("strong", { class: "short-ref" }, withData("short_reference", { short: response.short_id })), " · "] : null,
    withData("search_reference", { id: response.search_id, time }), `. ${t("record_saved")}`);
  $("sheet-pdf").hidden = !response.sheet_pdf_url;
  fill($("match-list"), shown.map((m) => matchCard(m, response, query)));
  $("nearest").hidden = hiddenOnes.length === 0;
  $("nearest").open = false;
  $("nearest-summary").textContent = t(verdict === "none" ? "nearest_anyway" : "other_results", { n: hiddenOnes.length });
  fill($("nearest-list"), hiddenOnes.map((m) => matchCard(m, response, query)));
  $("results").hidden = false;
}

// ---------------------------------------------------------------- search record: download, print, sheet
async function fetchRecord() {
  return api(`/v1/searches/${encodeURIComponent(state.lastResponse.search_id)}`);
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function downloadRecord() {
  clearMessages();
  try {
    const record = await fetchRecord();
    const blob = new Blob([JSON.stringify(record, null, 2)], { type: "application/json" });
    saveBlob(blob, `search-record-${record.at_utc.replace(/[:.]/g, "-")}-${record.search_id}.json`);
  } catch (err) {
    showError(err);
  }
}

/** The service's one-page search sheet as PDF, in the officer's language (when the service makes one). */
async function downloadSheet() {
  clearMessages();
  const response = state.lastResponse;
  const url = new URL(response.sheet_pdf_url, location.href);
  url.searchParams.set("lang", currentLanguage());
  try {
    const blob = await api(url.pathname + url.search, { raw: true });
    saveBlob(blob, `search-sheet-${response.short_id || response.search_id}.pdf`);
  } catch (err) {
    showError(err, $("match-list"));
  }
}

function printedImage(src, alt) {
  const img = el("img", { alt, src });
  return img.decode().catch(() => {}).then(() => img); // print only once every photo is drawn
}

async function printRecord() {
  clearMessages();
  let record;
  try {
    record = await fetchRecord();
  } catch (err) {
    return showError(err);
  }
  const response = state.lastResponse;
  const query = state.lastQuery;
  const verdict = searchVerdict(response);
  const top = verdict === "none" ? null : response.matches.find((m) => matchStrength(m, response.threshold) !== "weak");
  const percent = top ? likelihoodPercent(top) : null;
  const row = (label, value) => el("tr", {}, el("th", { scope: "row", text: label }), el("td", {}, value));
  const f = top ? top.object.fields : {};
  const photos = [];
  if (query.kind === "photo") {
    for (const [i, p] of query.photos.entries()) if (p.url) photos.push(printedImage(p.url, t("photo_n", { n: i + 1 })));
  }
  const topImage = top && (top.hits[0]?.image || top.object.images[0]);
  const matchPhoto = topImage ? imageUrl(topImage.url).then((u) => printedImage(u, t("print_match_photo"))).catch(() => null) : null;
  const evidence = top?.evidence_url ? imageUrl(top.evidence_url).then((u) => printedImage(u, t("print_evidence"))).catch(() => null) : null;
  const [queryImgs, matchImg, evidenceImg] = await Promise.all([Promise.all(photos), matchPhoto, evidence]);
  const titles = new Map(response.matches.map((m) => [m.object.id, m.object.fields.title || ""]));
  const queryText = record.kind === "text" ? record.query.text
    : (record.query.filenames || []).map((n, i) => `${n || t("photo_n", { n: i + 1 })} (sha256 ${record.query.photos_sha256[i]})`).join("; ");
  const figure = (img, caption) => (img ? el("figure", {}, img, el("figcaption", { text: caption })) : null);
  fill($("print-view"),
    el("h1", { text: `${t("app_title")}: ${t("print_heading")}` }),
    el("table", { class: "print-table" }, el("tbody", {},
      row(t("print_verdict"), `${verdictPhrase(verdict)}${percent !== null ? ` — ${t("likely_same", { percent })}` : ""}`),
      top ? row(t("print_object"), `${f.title || t("untitled")} (${top.object.id})`) : null,
      f.status ? row(fieldLabel("status"), statusWord(f.status)) : null,
      f.case_reference ? row(fieldLabel("case_reference"), f.case_reference) : null,
      f.contact ? row(fieldLabel("contact"), f.contact) : null,
      row(t("print_time"), record.at_utc),
      response.short_id ? row(t("print_short_id"), response.short_id) : null,
      row(t("print_search_id"), record.search_id),
      row(t("print_user"), record.key_name),
      row(t("print_post"), "")),
    ),
    el("div", { class: "print-photos" },
      queryImgs.map((img, i) => figure(img, `${t("print_query_photos")}: ${t("photo_n", { n: i + 1 })}`)),
      query.kind === "text" ? el("blockquote", { text: query.text }) : null,
      figure(matchImg, t("print_match_photo"))),
    figure(evidenceImg, t("print_evidence")),
    el("p", { class: "print-signature" }, `${t("print_signature")}: `, el("span", { class: "signature-line" })),
    el("section", { class: "print-page" },
      el("h2", { text: t("print_technical") }),
      el("table", { class: "print-table" }, el("tbody", {},
        row(t("print_model"), record.model),
        row(t("print_threshold"), String(record.threshold)),
        row(t("print_query"), queryText))),
      el("table", { class: "print-table" },
        el("thead", {}, el("tr", {}, ["#", t("print_object"), fieldLabel("title"), t("print_score")].map((h) => el("th", { text: h })))),
        el("tbody", {}, record.results.map((r, i) => el("tr", {},
          el("td", { text: String(i + 1) }), el("td", { text: r.object_id }), el("td", { text: titles.get(r.object_id) || "" }),
          el("td", { text: r.score.toFixed(4) })))))));
  $("print-view").dataset.searchId = record.search_id;
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
  fill($("record-body"),
    el("h3", { class: "record-title", text: title }),
    el("h4", { text: t("record_photos") }),
    el("div", { class: "record-photos" }, obj.images.map((im, i) =>
      el("figure", {}, catalogueImg(im, `${title}: ${t("photo_n", { n: i + 1 })}`, { full: true }),
        el("figcaption", { text: `${t("photo_n", { n: i + 1 })} (${im.width} × ${im.height})` })))),
    el("dl", { class: "fields record-fields" },
      el("div", {}, el("dt", { text: fieldLabel("id") }), el("dd", {}, fieldContent("id", obj.id))),
      RECORD_FIELDS.filter((name) => f[name]).map((name) =>
        el("div", { class: `field-${name}` }, el("dt", { text: fieldLabel(name) }), el("dd", {}, fieldContent(name, f[name])))),
      Object.entries(obj.extra || {}).map(([k, v]) =>
        el("div", {}, el("dt", { text: k.replace(/_/g, " ") }), el("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })))),
    canEdit ? statusForm(obj) : null);
  $("record-body").dataset.object = obj.id;
}

// "Recovered" takes the object out of every officer's search, so it is asked for twice; any
// change can be undone from the confirmation.
function statusForm(obj) {
  const select = el("select", { id: "status-select" },
    STATUSES.map((s) => el("option", { value: s, text: statusWord(s), selected: s === obj.fields.status })));
  const confirmBox = el("div", { class: "confirm", id: "status-confirm", role: "alert", hidden: true },
    el("p", { text: t("confirm_recovered") }),
    el("div", { class: "row" },
      el("button", { type: "button", id: "status-confirm-yes", class: "danger",
        onclick: () => changeStatus(obj, "recovered") }, t("confirm_yes")),
      el("button", { type: "button", id: "status-confirm-no", class: "secondary",
        onclick: () => { confirmBox.hidden = true; select.value = obj.fields.status; select.focus(); } }, t("confirm_no"))));
  const form = el("form", { class: "status-form", novalidate: true },
    el("div", { class: "row" },
      el("label", { for: "status-select", text: t("change_status") }), select,
      el("button", { type: "submit", class: "primary", text: t("change_status") })),
    confirmBox);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const to = select.value;
    if (to === obj.fields.status) return;
    if (to === "recovered") {
      confirmBox.hidden = false;
      $("status-confirm-yes").focus();
      return;
    }
    changeStatus(obj, to);
  });
  return form;
}

async function changeStatus(obj, to, { undoing = false } = {}) {
  const from = obj.fields.status;
  clearMessages();
  let updated;
  try {
    updated = await api(`/v1/objects/${encodeURIComponent(obj.id)}/status`, { method: "PUT", json: { status: to } });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showError(err);
    $("record-body").prepend(el("p", { class: "message", role: "alert", text: errorText(err).main + (err.detail ? ` ${err.detail}` : "") }));
    return;
  }
  renderRecord(updated);
  refreshResults(updated);
  const text = t(undoing ? "status_undone" : "status_saved", { status: statusWord(updated.fields.status) });
  notify(text);
  const undo = undoing || !from ? null : el("button", { type: "button", id: "status-undo", class: "secondary",
    onclick: () => changeStatus(updated, from, { undoing: true }) }, t("undo_button"));
  $("record-body").prepend(el("div", { class: "notice-inline", role: "status" }, el("span", { text }), undo));
  (undo || $("record-close")).focus();
}

/** A record changed by a curator: the result cards show it at once, not the status of before. */
function refreshResults(obj) {
  const response = state.lastResponse;
  if (!response) return;
  let changed = false;
  for (const m of response.matches) {
    if (m.object.id === obj.id) {
      m.object = { ...m.object, fields: obj.fields, extra: obj.extra };
      changed = true;
    }
  }
  if (changed) renderResults(response, state.lastQuery);
}

// ---------------------------------------------------------------- search by words
async function searchWords(event) {
  event.preventDefault();
  clearMessages();
  const q = $("words-input").value.trim();
  if (!q) return $("words-input").focus();
  const params = new URLSearchParams({ q, limit: "20" });
  if (!$("recovered-input").checked) params.set("status", STATUSES.filter((s) => s !== "recovered").join(","));
  $("words-count").textContent = t("searching");
  fill($("words-list"));
  try {
    state.wordHits = await api(`/v1/objects?${params}`);
    renderWords();
  } catch (err) {
    $("words-count").textContent = "";
    showError(err, $("words-list"));
  }
}

function renderWords() {
  const hits = state.wordHits;
  if (!hits) return;
  $("words-count").textContent = hits.length ? t("words_found", { n: hits.length }) : t("words_none");
  fill($("words-list"), hits.map((o) => {
    const title = o.fields.title || t("untitled");
    return el("li", { class: "word-hit", "data-object": o.id },
      o.images[0] ? catalogueImg(o.images[0], `${t("catalogue_photo")}: ${title}`) : null,
      el("div", {},
        el("strong", { text: title }), " · ", el("bdi", { class: "nobreak", text: o.id }),
        el("br"),
        o.fields.status ? el("span", { class: "word-status", text: statusWord(o.fields.status) }) : null,
        o.fields.case_reference ? [" · ", withData("case_reference_is", { ref: o.fields.case_reference })] : null),
      el("button", { type: "button", class: "secondary", text: t("open_record"),
        "aria-label": `${t("open_record")}: ${title}`, onclick: () => openRecord(o.id) }));
  }));
}

// ---------------------------------------------------------------- curators: add an object
function buildAddForm() {
  const kept = new Map([...$("add-fields").querySelectorAll("input, select, textarea")].map((i) => [i.name, i.value]));
  const fields = ["id", ...RECORD_FIELDS];
  fill($("add-fields"), fields.map((name) => {
    const id = `add-${name}`;
    let input;
    if (name === "status") {
      // No default: a new object is never "stolen" because nobody chose otherwise.
      input = el("select", { id, name, required: true },
        el("option", { value: "", text: t("status_choose"), selected: true, disabled: true }),
        STATUSES.map((s) => el("option", { value: s, "data-status": s, text: statusWord(s) })));
    } else if (name === "description") {
      input = el("textarea", { id, name, rows: 3 });
    } else {
      input = el("input", { id, name, type: name === "date_reported" ? "date" : "text", required: name === "id" });
    }
    if (kept.get(name)) input.value = kept.get(name);
    return el("div", { class: `field field-${name}` }, el("label", { for: id, "data-field": name, text: fieldLabel(name) }), input);
  }));
}

/** The outcome of "Add object", shown under the form and scrolled into view. */
function addResult(text, isError) {
  const box = $("add-result");
  box.className = isError ? "add-result message" : "add-result notice-inline";
  box.setAttribute("role", isError ? "alert" : "status");
  box.textContent = text;
  box.hidden = false;
  reveal(box, "center");
  box.focus({ preventScroll: true });
}

async function addObject(event) {
  event.preventDefault();
  clearMessages();
  $("add-result").hidden = true;
  const form = event.target;
  const record = {};
  for (const name of ["id", ...RECORD_FIELDS]) {
    const value = form.elements[name].value.trim();
    if (value) record[name] = value;
  }
  const files = $("add-photos").files;
  const missing = !record.id ? ["add_need_id", form.elements.id] : !record.status ? ["add_need_status", form.elements.status]
    : !files.length ? ["add_need_photos", $("add-photos")] : null;
  if (missing) {
    addResult(t(missing[0]), true);
    return missing[1].focus();
  }
  const body = new FormData();
  body.append("record", JSON.stringify(record));
  for (const file of files) body.append("photos", file, file.name);
  addResult(t("add_saving"), false);
  try {
    const obj = await api("/v1/objects", { method: "POST", body });
    form.reset();
    state.stats = await api("/v1/stats");
    $("db-summary").textContent = t("database_summary", { objects: state.stats.objects, images: state.stats.images });
    notify(t("add_done", { id: obj.id, n: obj.images.length }));
    addResult(t("add_done", { id: obj.id, n: obj.images.length }), false);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showError(err);
    const { main, detail } = errorText(err);
    addResult(detail ? `${main} ${t("error_details", { detail })}` : main, true);
  }
}

// ---------------------------------------------------------------- events
async function changeLanguage(code) {
  localStorage.setItem(LANG_STORE, code);
  await setLanguage(code);
  buildAddForm();
  if (state.who) showApp();
  showKey($("key-input").type === "text");
  renderPhotos();
  if (state.lastResponse && !$("results").hidden) renderResults(state.lastResponse, state.lastQuery);
  renderWords();
  const open = $("record-dialog").open && $("record-body").dataset.object;
  if (open) openRecord(open);
}

function wireEvents() {
  $("signin-form").addEventListener("submit", async (e) => {
    await signIn(e);
    if (!state.who) forgetKey();
  });
  $("key-show").addEventListener("click", () => showKey($("key-input").type === "password"));
  $("key-paste").addEventListener("click", pasteKey);
  $("signout").addEventListener("click", () => signOut());
  $("lang-select").addEventListener("change", (e) => changeLanguage(e.target.value));
  const onFiles = (e) => { addPhotos([...e.target.files]); e.target.value = ""; };
  $("camera-input").addEventListener("change", onFiles);
  $("files-input").addEventListener("change", onFiles);
  $("full-size-input").addEventListener("change", renderPhotos);
  $("photo-form").addEventListener("submit", searchPhotos);
  $("cancel-button").addEventListener("click", () => state.search?.controller.abort());
  $("text-form").addEventListener("submit", searchText);
  $("words-form").addEventListener("submit", searchWords);
  $("download-record").addEventListener("click", downloadRecord);
  $("print-record").addEventListener("click", printRecord);
  $("sheet-pdf").addEventListener("click", downloadSheet);
  $("record-close").addEventListener("click", () => $("record-dialog").close());
  $("add-form").addEventListener("submit", addObject);
  wireCrop({ onApply: applyCrop, onReset: resetCrop });
}

translatePage(document);
start();
