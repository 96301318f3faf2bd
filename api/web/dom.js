// Small DOM helpers shared by the page's modules.

export const $ = (id) => document.getElementById(id);

/** The children worth adding: nested arrays flattened; null, undefined and false dropped
 * (replaceChildren(null) would write the word "null" on the page). */
export function kids(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
}

/** Create an element: el("a", {href, class, text, onclick}, ...children). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...kids(children));
  return node;
}

/** Replace an element's children, skipping empty ones. */
export function fill(node, ...children) {
  node.replaceChildren(...kids(children));
  return node;
}

/** Bring `node` to the top of the screen (or just into view), without smooth scrolling. */
export function reveal(node, block = "start") {
  node.scrollIntoView({ block, inline: "nearest", behavior: "instant" });
}
