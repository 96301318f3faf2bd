// Talking to the service: the access code, JSON calls, and uploads with progress, cancel and timeout.

const KEY_STORE = "artefact.key"; // sessionStorage (this tab) or, when remembered, localStorage

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status; // 0: the service could not be reached
    this.detail = detail;
  }
}

/** A request the officer cancelled, or one the service did not answer in time. */
export class Stopped extends Error {
  constructor(reason, seconds = 0) {
    super(reason);
    this.reason = reason; // "cancelled" | "timeout"
    this.seconds = seconds;
  }
}

let key = sessionStorage.getItem(KEY_STORE) || localStorage.getItem(KEY_STORE) || "";

export function currentKey() {
  return key;
}

/** Hold the access code for this tab, or (remember) on this device until sign-out. */
export function setKey(value, remember = false) {
  key = value;
  sessionStorage.setItem(KEY_STORE, value);
  if (remember) localStorage.setItem(KEY_STORE, value);
  else localStorage.removeItem(KEY_STORE);
}

/** Forget the access code everywhere this page kept it. */
export function forgetKey() {
  key = "";
  sessionStorage.removeItem(KEY_STORE);
  localStorage.removeItem(KEY_STORE);
}

function authHeaders() {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function errorDetail(data) {
  if (typeof data?.detail === "string") return data.detail;
  if (Array.isArray(data?.detail)) return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(data?.detail ?? data);
}

/** A JSON (or, with raw, Blob) call. `signal` aborts it. */
export async function api(path, { method = "GET", body, json, raw = false, signal } = {}) {
  const headers = authHeaders();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, cache: "no-store", signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason instanceof Stopped ? signal.reason : new Stopped("cancelled");
    throw new ApiError(0, String(err));
  }
  if (!response.ok) {
    let detail = "";
    try {
      detail = errorDetail(await response.json());
    } catch { /* not JSON: keep the status alone */ }
    throw new ApiError(response.status, detail);
  }
  return raw ? response.blob() : response.json();
}

/**
 * POST a form with upload progress, cancel and a timeout; resolves to the JSON answer.
 *
 * The timeout counts silence, not total time: it restarts whenever upload bytes move, and once
 * everything is sent it is the time the service may take to answer. A slow but moving upload is
 * never cut off; a dead link or a hung service is.
 */
export function upload(path, form, { onProgress = () => {}, signal, timeoutS = 30 } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let timer = 0;
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      fn(value);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { xhr.abort(); finish(reject, new Stopped("timeout", timeoutS)); }, timeoutS * 1000);
    };
    const onAbort = () => { xhr.abort(); finish(reject, new Stopped("cancelled")); };
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => {
      arm();
      if (e.lengthComputable) onProgress({ phase: "upload", percent: Math.floor((100 * e.loaded) / e.total) });
    });
    xhr.upload.addEventListener("load", () => { arm(); onProgress({ phase: "waiting", percent: 100 }); });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300 && data) finish(resolve, data);
      else finish(reject, new ApiError(xhr.status, data ? errorDetail(data) : ""));
    });
    xhr.addEventListener("error", () => finish(reject, new ApiError(0, "network error")));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort);
    arm();
    xhr.send(form);
  });
}
