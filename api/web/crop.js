// The crop dialog: select the object on the photo by pointer, keyboard or typed percentages.
import { $ } from "./dom.js";
import { decodeUpright } from "./photos.js";

const crop = { photo: null, bitmap: null, sel: null, drag: null, onApply: null, onReset: null, opener: null };

/** Open the dialog on `photo` (its upright source); the result goes to the callbacks given to wireCrop.
 * `opener`: the element (or a function finding it) that gets the focus back. */
export async function openCrop(photo, opener = null) {
  const bitmap = await decodeUpright(photo.source);
  if (!bitmap) return;
  crop.photo = photo;
  crop.bitmap = bitmap;
  crop.opener = opener;
  crop.sel = photo.crop ? { ...photo.crop } : { x: 0.1, y: 0.1, w: 0.8, h: 0.8 };
  $("crop-dialog").showModal();
  sizeCanvas();
  draw();
  $("crop-canvas").focus();
}

function sizeCanvas() {
  const canvas = $("crop-canvas");
  const maxW = Math.min(canvas.parentElement.clientWidth || 320, 900);
  const maxH = Math.max(200, window.innerHeight * 0.55);
  const scale = Math.min(maxW / crop.bitmap.width, maxH / crop.bitmap.height, 1);
  canvas.width = Math.round(crop.bitmap.width * scale);
  canvas.height = Math.round(crop.bitmap.height * scale);
}

function clampSel(s) {
  const w = Math.min(Math.max(s.w, 0.01), 1);
  const h = Math.min(Math.max(s.h, 0.01), 1);
  return { x: Math.min(Math.max(s.x, 0), 1 - w), y: Math.min(Math.max(s.y, 0), 1 - h), w, h };
}

function draw() {
  const canvas = $("crop-canvas");
  const ctx = canvas.getContext("2d");
  const { width: W, height: H } = canvas;
  ctx.drawImage(crop.bitmap, 0, 0, W, H);
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

function close() {
  $("crop-dialog").close();
  if (crop.bitmap) crop.bitmap.close();
  crop.bitmap = null;
  const back = typeof crop.opener === "function" ? crop.opener() : crop.opener; // the list may have been redrawn
  if (back?.isConnected) back.focus();
}

/** Wire the dialog's controls once; onApply(photo, selection, bitmap) and onReset(photo) do the work. */
export function wireCrop({ onApply, onReset }) {
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
    draw();
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
    draw();
  });
  for (const id of ["crop-x", "crop-y", "crop-w", "crop-h-input"]) {
    $(id).addEventListener("change", () => {
      const v = (i) => (Number($(i).value) || 0) / 100;
      crop.sel = clampSel({ x: v("crop-x"), y: v("crop-y"), w: v("crop-w"), h: v("crop-h-input") });
      draw();
    });
  }
  $("crop-apply").addEventListener("click", async () => {
    const { photo, sel, bitmap } = crop;
    await onApply(photo, { ...sel }, bitmap);
    close();
  });
  $("crop-reset").addEventListener("click", async () => {
    await onReset(crop.photo);
    close();
  });
  $("crop-cancel").addEventListener("click", close);
  $("crop-dialog").addEventListener("cancel", () => { if (crop.bitmap) crop.bitmap.close(); crop.bitmap = null; });
  window.addEventListener("resize", () => { if ($("crop-dialog").open && crop.bitmap) { sizeCanvas(); draw(); } });
}
