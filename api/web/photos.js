// The officer's photos before they are sent: decoded upright, reduced, cropped, previewed.

// Long side photos are reduced to before upload (unless "full size" is ticked). The service
// never looks at more: it decodes a query so its shorter side is max(2 x model input, 480) px
// (embed/preprocess.py decode_side: 480 for 224 px models, 768 for 384 px ones) and finds local
// features on a 640 px long side (index/verification.py). 1600 px keeps the shorter side at
// 1200 px for a 4:3 photo and 900 px for 16:9, above the largest of those, while a 12 MP photo
// shrinks from about 4 MB to about 0.4 MB. A crop is taken from the full-size photo first.
export const SEND_SIDE = 1600;
export const MAX_CROP_SIDE = 3000; // a full-size crop is re-encoded; more adds bytes, not accuracy
const JPEG_QUALITY = 0.9;

/** The photo decoded upright (EXIF orientation applied), or null if the browser cannot read it. */
export async function decodeUpright(blob) {
  try {
    return await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch {
    return null;
  }
}

function fitted(width, height, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** A JPEG of the region {sx, sy, sw, sh} of `bitmap` (default: all of it), long side <= maxSide. */
export async function toJpeg(bitmap, maxSide, region = null) {
  const { sx, sy, sw, sh } = region || { sx: 0, sy: 0, sw: bitmap.width, sh: bitmap.height };
  const size = fitted(sw, sh, maxSide);
  let source = bitmap;
  let from = { sx, sy, sw, sh };
  if (size.width < sw) {
    // A high-quality resample first: drawImage alone would alias a large reduction.
    source = await createImageBitmap(bitmap, sx, sy, sw, sh,
      { resizeWidth: size.width, resizeHeight: size.height, resizeQuality: "high" });
    from = { sx: 0, sy: 0, sw: size.width, sh: size.height };
  }
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // transparent PNGs: white, as the service itself does
  ctx.fillRect(0, 0, size.width, size.height);
  ctx.drawImage(source, from.sx, from.sy, from.sw, from.sh, 0, 0, size.width, size.height);
  if (source !== bitmap) source.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  return { blob, ...size };
}

/** Pixels of a crop selection given as fractions of the photo. */
export function cropRegion(bitmap, sel) {
  const sx = Math.round(sel.x * bitmap.width);
  const sy = Math.round(sel.y * bitmap.height);
  return { sx, sy, sw: Math.max(1, Math.round(sel.w * bitmap.width)), sh: Math.max(1, Math.round(sel.h * bitmap.height)) };
}

/**
 * Look at a newly chosen photo once: can the browser show it, how large is it, and what would be
 * sent by default. `serverPreview(file)` (or null) returns a JPEG the service made of a format the
 * browser cannot read (HEIC in Chromium); that JPEG is then shown, cropped and sent.
 */
export async function examinePhoto(file, serverPreview) {
  const photo = { original: file, source: file, previewable: false, width: 0, height: 0, reduced: null, previewFailed: false };
  let bitmap = await decodeUpright(file);
  if (!bitmap && serverPreview) {
    const preview = await serverPreview(file);
    if (preview) {
      bitmap = await decodeUpright(preview);
      if (bitmap) {
        photo.source = preview;
        photo.reduced = { blob: preview, width: bitmap.width, height: bitmap.height };
      }
    }
  }
  if (!bitmap) return photo;
  photo.previewable = true;
  photo.width = bitmap.width;
  photo.height = bitmap.height;
  if (!photo.reduced && Math.max(bitmap.width, bitmap.height) > SEND_SIDE) {
    photo.reduced = await toJpeg(bitmap, SEND_SIDE);
  }
  bitmap.close();
  return photo;
}

/** The file name a sent photo carries: the officer's own, marked when the page re-encoded it. */
export function sentName(name, { cropped = false, reencoded = false } = {}) {
  const stem = name.replace(/\.[^.]*$/, "") || "photo";
  if (cropped) return `${stem}-crop.jpg`;
  return reencoded ? `${stem}.jpg` : name;
}
