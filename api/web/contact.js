// Turning a record's free-text contact into actions an officer can tap: call and e-mail.

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
// A phone number: optional +, then digits with spaces, dots, dashes or brackets; 7 to 15 digits.
// Not inside a word: "SAMPLE-2026-0101" holds digits but is a case reference.
const PHONE = /(?<![\w-])\+?\(?\d[\d\s().-]{5,}\d(?![\w-])/g;

/** The e-mail addresses and phone numbers written in a contact field, in order, no repeats. */
export function parseContact(text) {
  const value = String(text || "");
  const emails = [...new Set(value.match(EMAIL) || [])];
  const withoutEmails = value.replace(EMAIL, " ");
  const phones = [];
  for (const raw of withoutEmails.match(PHONE) || []) {
    const shown = raw.trim();
    const digits = shown.replace(/\D/g, "");
    if (digits.length < 7 || digits.length > 15) continue; // dates, years and case numbers are not phones
    if (/^\d{4}-\d{2}-\d{2}$/.test(shown)) continue;
    const tel = (shown.startsWith("+") ? "+" : "") + digits;
    if (!phones.some((p) => p.tel === tel)) phones.push({ shown, tel });
  }
  return { emails, phones };
}

/** A mailto: link with the subject and body filled in (RFC 6068: percent-encoded, CRLF lines). */
export function mailtoHref(address, subject, body) {
  const enc = (s) => encodeURIComponent(s);
  return `mailto:${address}?subject=${enc(subject)}&body=${enc(body.replace(/\r?\n/g, "\r\n"))}`;
}
