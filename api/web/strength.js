// How strong a match is, in words a non-expert reads correctly. The rule lives here only.
//
// Until the API sends calibrated verdicts, strength is derived from the raw score and the
// service's threshold: "strong" at threshold + STRONG_MARGIN or above, "possible" at the
// threshold, otherwise "weak" (not a match). If a match carries its own `verdict` (or
// `strength`) field, that wins, so switching to API-provided verdicts needs no change here.

export const STRONG_MARGIN = 0.1;

const API_WORDS = {
  strong: "strong", "strong match": "strong", "close match": "strong",
  possible: "possible", "possible match": "possible",
  weak: "weak", none: "weak", "no match": "weak", "no close match": "weak",
};

/** "strong" | "possible" | "weak" for one match of a search response. */
export function matchStrength(match, threshold) {
  const given = match.verdict ?? match.strength;
  if (typeof given === "string" && given.toLowerCase() in API_WORDS) return API_WORDS[given.toLowerCase()];
  const close = match.close ?? match.score >= threshold;
  if (!close) return "weak";
  return match.score >= threshold + STRONG_MARGIN ? "strong" : "possible";
}

/** "strong" | "possible" | "none" for a whole search response (its strongest match decides). */
export function searchVerdict(response) {
  if (response.verdict === "no close match" || !response.matches.length) return "none";
  const levels = response.matches.map((m) => matchStrength(m, response.threshold));
  if (levels.includes("strong")) return "strong";
  return levels.includes("possible") ? "possible" : "none";
}

/** The calibrated chance that `match` is the same object, as a whole percent kept within 1..99
 * (a calibration fitted on a finite test set never justifies "0%" or "100%"); null when the
 * index is not calibrated, so the page then shows words only and never a raw similarity. */
export function likelihoodPercent(match) {
  if (typeof match?.probability !== "number" || !Number.isFinite(match.probability)) return null;
  return Math.min(99, Math.max(1, Math.round(match.probability * 100)));
}
