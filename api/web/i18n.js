// Every string the page shows comes from one table per language, in ./lang/<code>.js.
// English is loaded with the page (it is also the fallback); the chosen language is loaded
// when picked. `dir` drives the layout: the CSS uses logical properties only, so "rtl"
// mirrors the page without other changes.
import en from "./lang/en.js";

export const LANGUAGES = {
  en: { name: "English", dir: "ltr" },
  ar: { name: "العربية", dir: "rtl" },
  de: { name: "Deutsch", dir: "ltr" },
  el: { name: "Ελληνικά", dir: "ltr" },
  es: { name: "Español", dir: "ltr" },
  fr: { name: "Français", dir: "ltr" },
  it: { name: "Italiano", dir: "ltr" },
  pt: { name: "Português", dir: "ltr" },
  ru: { name: "Русский", dir: "ltr" },
  tr: { name: "Türkçe", dir: "ltr" },
  zh: { name: "中文（简体）", dir: "ltr" },
};

const loaded = { en }; // tables fetched from ./lang
const overrides = {}; // addStrings(): a translator's or a test's additions, which win over the files
let current = "en";

/** Look up `key` in the current language, replacing {name} placeholders from `vars`. */
export function t(key, vars = {}) {
  const text = overrides[current]?.[key] ?? loaded[current]?.[key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Add or override strings for a language (a translation being written, or a stub in tests). */
export function addStrings(lang, table) {
  overrides[lang] = { ...(overrides[lang] || {}), ...table };
}

/** Every language the page offers, English first. */
export function availableLanguages() {
  return Object.keys(LANGUAGES);
}

export function currentLanguage() {
  return current;
}

/** The first of the browser's preferred languages the page speaks ("pt-BR" -> "pt"), else English. */
export function preferredLanguage(wanted = navigator.languages || [navigator.language]) {
  for (const tag of wanted) {
    const code = String(tag || "").toLowerCase().split("-")[0];
    if (code in LANGUAGES) return code;
  }
  return "en";
}

/** The table of `lang` as shipped (loads it if needed); tests compare these with English. */
export async function loadTable(lang) {
  if (!(lang in loaded)) loaded[lang] = (await import(`./lang/${lang}.js`)).default;
  return loaded[lang];
}

/** Switch language: loads its table, sets <html lang dir> and fills every [data-i18n] element.
 * When the table is already loaded this takes effect before the returned promise settles. */
export async function setLanguage(lang) {
  const code = lang in LANGUAGES ? lang : "en";
  if (!(code in loaded)) {
    try {
      await loadTable(code);
    } catch {
      return setLanguage("en"); // a missing table must never leave the page blank
    }
  }
  current = code;
  const root = document.documentElement;
  root.lang = code === "zh" ? "zh-Hans" : code;
  root.dir = LANGUAGES[code].dir;
  translatePage(document);
}

/** Fill elements marked data-i18n (text), data-i18n-label (aria-label), data-i18n-placeholder. */
export function translatePage(scope) {
  for (const el of scope.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of scope.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of scope.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app_title");
}
