// Every string the page shows, in one place. To add a language, fill its table:
// keys missing from a table fall back to English. `dir` drives the page layout
// (the CSS uses logical properties only, so "rtl" mirrors it without other changes).

export const LANGUAGES = {
  en: { name: "English", dir: "ltr" },
  ar: { name: "العربية", dir: "rtl" },
  fr: { name: "Français", dir: "ltr" },
  es: { name: "Español", dir: "ltr" },
};

const en = {
  app_title: "Artefact search",
  app_tagline: "Check an object against the database of stolen and looted cultural property",
  language: "Language",
  skip_to_main: "Skip to main content",

  // sign in
  signin_title: "Sign in",
  signin_help: "Enter the API key you were given. It is kept only for this browser tab and forgotten when the tab closes.",
  signin_key_label: "API key",
  signin_button: "Sign in",
  signin_checking: "Checking the key…",
  signout_button: "Sign out",
  signed_in_as: "Signed in as {name} ({role})",
  open_mode: "Open mode: this service has no API keys configured",
  service_loading: "The service is still loading its model and index. Trying again in a few seconds…",
  database_summary: "{objects} objects, {images} photos in the database",

  // photo search
  search_title: "Search by photo",
  search_help: "Photograph the object (several photos of the same object are allowed). Crop to the object to remove clutter.",
  take_photo: "Take photo",
  choose_files: "Choose photos",
  no_photos: "No photo yet.",
  photo_n: "Photo {n}",
  photo_cropped: "cropped",
  crop_button: "Crop",
  remove_button: "Remove",
  preview_unavailable: "No preview for this format; it is sent as it is.",
  search_button: "Search",
  searching: "Searching…",
  results_count_label: "Results to show",
  include_recovered_label: "Include recovered objects",
  need_photo: "Add at least one photo first.",

  // crop
  crop_title: "Crop to the object",
  crop_help: "Drag on the photo to select the object. With the keyboard: arrow keys move the selection, Shift + arrow keys resize it, or type the values below.",
  crop_canvas_label: "Photo with the crop selection. Arrow keys move, Shift + arrow keys resize.",
  crop_left: "Left (%)",
  crop_top: "Top (%)",
  crop_width: "Width (%)",
  crop_height: "Height (%)",
  crop_apply: "Use this crop",
  crop_reset: "Whole photo",
  crop_cancel: "Cancel",

  // text search
  text_title: "Search by description",
  text_help: "Describe the object in words (for example: \"bronze statue of a standing man\").",
  text_label: "Description",
  text_button: "Search text",
  text_unavailable: "Text search needs a CLIP model; this database was built with {model}, which reads photos only.",

  // results
  results_title: "Results",
  your_photo: "Your photo",
  your_text: "Your description",
  catalogue_photo: "Database photo",
  verdict_strong: "Strong match",
  verdict_possible: "Possible match",
  verdict_none: "No close match in the database",
  verdict_strong_help: "The top result very likely shows the same object. Check the details below and contact the case officer.",
  verdict_possible_help: "The top result may be the same object. Compare the photos and details carefully before acting.",
  verdict_none_help: "Nothing in the database is close to this photo. This does not prove the object is legitimate: if in doubt, ask an expert.",
  strength_strong: "Strong match",
  strength_possible: "Possible match",
  strength_weak: "Not a match",
  similarity: "similarity {score} (match threshold {threshold})",
  probability: "estimated chance it is the same object: {percent}%",
  inliers: "{n} matching details found",
  evidence_summary: "Why: {n} matching details, shown on both photos",
  evidence_alt: "Your photo and the database photo of {title} side by side, with {n} matching details joined by lines",
  evidence_caption: "Each line joins the same detail in your photo (left) and the database photo (right). Only details whose positions agree with one consistent view of the object are drawn.",
  nearest_anyway: "Show the nearest objects anyway ({n}) — none of them is a match",
  other_results: "Other, weaker results ({n}) — not matches",
  open_record: "Open full record",
  download_record: "Download search record",
  print_record: "Print search record",
  search_reference: "Search {id}, {time} UTC",
  record_saved: "This search was saved with a timestamp as proof of due diligence.",
  rank_n: "Result {n}",

  // record fields
  field_id: "Object ID",
  field_object_type: "Type of object",
  field_title: "Title",
  field_materials: "Materials",
  field_techniques: "Techniques",
  field_measurements: "Measurements",
  field_inscriptions: "Inscriptions and markings",
  field_distinguishing_features: "Distinguishing features",
  field_subject: "Subject",
  field_date_period: "Date or period",
  field_maker: "Maker",
  field_description: "Description",
  field_status: "Status",
  field_source: "Source",
  field_country: "Country",
  field_date_reported: "Date reported",
  field_case_reference: "Case reference",
  field_contact: "Contact",
  status_stolen: "Stolen",
  status_looted: "Looted",
  status_missing: "Missing",
  status_recovered: "Recovered",
  untitled: "(untitled)",

  // record view
  record_title: "Object record",
  record_photos: "Photos",
  close_button: "Close",
  change_status: "Change status",
  status_saved: "Status changed to {status}.",

  // print
  print_heading: "Search record",
  print_time: "Time (UTC)",
  print_search_id: "Search ID",
  print_user: "Key",
  print_model: "Model",
  print_verdict: "Verdict",
  print_threshold: "Threshold",
  print_query: "Query",
  print_object: "Object",
  print_score: "Score",
  print_close: "Close",
  yes: "yes",
  no: "no",

  // curator
  add_title: "Add an object (curator)",
  add_help: "Create a record with its photos. The Object ID must be new.",
  add_photos_label: "Photos of the object",
  add_button: "Add object",
  add_saving: "Saving…",
  add_done: "Object {id} added with {n} photo(s).",

  // errors
  error_title: "Problem",
  error_401: "The API key was not accepted (wrong, expired or revoked key). Sign in again with a valid key.",
  error_403: "Your key is not allowed to do this.",
  error_404: "Not found.",
  error_409: "This conflicts with the database (for example, the Object ID already exists).",
  error_413: "The photo is too large for the service. Take it again at a lower resolution or crop it.",
  error_415: "This file is not an image the service can read. Use a photo (JPEG, PNG, HEIC, WebP…).",
  error_422: "The request could not be processed. Check the photo and the values entered.",
  error_503: "The service is not ready yet. Try again in a few seconds.",
  error_network: "The service could not be reached. Check the connection to the server.",
  error_other: "Something went wrong (error {status}).",
  error_details: "Details from the service: {detail}",
};

// Tables for the other languages: fill in to translate (missing keys show in English).
const STRINGS = { en, ar: {}, fr: {}, es: {} };

let current = "en";

/** Look up `key` in the current language, replacing {name} placeholders from `vars`. */
export function t(key, vars = {}) {
  const table = STRINGS[current] || {};
  const text = table[key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Add or override strings for a language (translations, or a stub table in tests). */
export function addStrings(lang, table) {
  STRINGS[lang] = { ...(STRINGS[lang] || {}), ...table };
}

/** Languages with at least one translated string (English always). */
export function availableLanguages() {
  return Object.keys(LANGUAGES).filter((code) => code === "en" || Object.keys(STRINGS[code] || {}).length > 0);
}

export function currentLanguage() {
  return current;
}

/** Switch language: sets <html lang dir> and fills every [data-i18n] element. */
export function setLanguage(lang) {
  current = lang in LANGUAGES ? lang : "en";
  const root = document.documentElement;
  root.lang = current;
  root.dir = LANGUAGES[current].dir;
  translatePage(document);
}

/** Fill elements marked data-i18n (text), data-i18n-label (aria-label), data-i18n-placeholder. */
export function translatePage(scope) {
  for (const el of scope.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of scope.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of scope.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app_title");
}
