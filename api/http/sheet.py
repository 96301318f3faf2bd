"""The search sheet an officer hands over: one page with the verdict in words, the matched object's case and both photos,
technical details on a second; as a printable HTML page and as a PDF (fpdf2), in the officer's language.

fpdf2 makes the PDF: pure Python (no system libraries, unlike WeasyPrint's Pango/Cairo), maintained,
and it embeds TrueType fonts as subsets, falls back to a second font for glyphs the first lacks
(Chinese in a Latin sheet) and shapes Arabic right to left with HarfBuzz (uharfbuzz).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fpdf import FPDF

from artefact.api.http.engine import Engine
from artefact.api.http.errors import FontMissing
from artefact.api.http.lang import Strings
from artefact.embed.errors import ArtefactError
from artefact.index.errors import ObjectNotFoundError
from artefact.index.records import ObjectRecord

log = logging.getLogger(__name__)

SHEET_PHOTO_SIDE = 640  # catalogue photo on the sheet: sharp in print at ~8 cm, small to send
# Fields of the matched object's record card, in order (status, case reference and contact: the next step).
CARD_FIELDS = ("status", "case_reference", "contact", "object_type", "materials", "date_period", "country", "source")
_STRENGTH = {"strong match": "strong", "close match": "strong", "possible match": "possible"}
_STRONG_MARGIN = 0.1  # as api/web/strength.js, for records without a verdict word


@dataclass
class Sheet:
    """Everything a sheet shows, gathered once for both forms."""

    record: dict[str, Any]
    verdict: str  # strong | possible | none
    top: dict[str, Any] | None  # the result the verdict is about
    obj: ObjectRecord | None
    query_photos: list[Path] = field(default_factory=list)
    match_photo: Path | None = None
    evidence: Path | None = None

    @property
    def percent(self) -> int | None:
        p = self.top.get("probability") if self.top else None
        return None if not isinstance(p, (int, float)) else min(99, max(1, round(p * 100)))

    @property
    def time(self) -> str:
        return str(self.record["at_utc"]).replace("T", " ")[:19]


def _strength(result: dict[str, Any], threshold: float) -> str:
    word = str(result.get("verdict") or "").lower()
    if word in _STRENGTH:
        return _STRENGTH[word]
    if word or not result.get("close", result.get("score", 0) >= threshold):
        return "weak"
    return "strong" if result.get("score", 0) >= threshold + _STRONG_MARGIN else "possible"


def collect(record: dict[str, Any], eng: Engine) -> Sheet:
    """The sheet of one search record: the verdict as the page shows it, the object as the catalogue holds it now."""
    results = record.get("results") or []
    levels = [_strength(r, float(record["threshold"])) for r in results]
    verdict = "none"
    if record.get("verdict") != "no close match":
        verdict = "strong" if "strong" in levels else "possible" if "possible" in levels else "none"
    top = None if verdict == "none" else next(r for r, s in zip(results, levels) if s != "weak")
    sheet = Sheet(record, verdict, top, None, query_photos=eng.query_photo_paths(record["search_id"]))
    if top is None:
        return sheet
    try:
        view = eng.object_view(str(top["object_id"]))
    except ObjectNotFoundError:
        return sheet  # removed since: the sheet names the id it matched
    sheet.obj = view.record
    ids = [i.image_id for i in view.images]
    image_id = top.get("image_id") if top.get("image_id") in ids else (ids[0] if ids else None)
    if image_id is not None:
        try:
            sheet.match_photo = eng.thumbnail(int(image_id), SHEET_PHOTO_SIDE)
        except (ArtefactError, OSError) as exc:
            log.warning("search sheet %s: no catalogue photo (%s)", record["search_id"], exc)
    evidence = eng.evidence_path(record["search_id"], results.index(top) + 1)
    sheet.evidence = evidence if evidence.is_file() else None
    return sheet


def _rows(sheet: Sheet, t: Strings) -> list[tuple[str, str]]:
    """The first page's table: label and value, in reading order."""
    r = sheet.record
    verdict = t(f"verdict_{sheet.verdict}")
    if sheet.percent is not None:
        verdict += f" — {t('likely_same', percent=sheet.percent)}"
    rows = [(t("print_verdict"), verdict)]
    if sheet.top is not None:
        fields = sheet.obj.fields if sheet.obj else {}
        rows.append((t("print_object"), f"{fields.get('title') or t('untitled')} ({sheet.top['object_id']})"))
        for name in CARD_FIELDS:
            value = fields.get(name) or ""
            if value:
                rows.append((t(f"field_{name}"), t(f"status_{value}") if name == "status" else value))
    rows += [(t("print_time"), sheet.time)]
    if r.get("short_id"):
        rows.append((t("print_short_id"), str(r["short_id"])))
    rows += [(t("print_search_id"), str(r["search_id"])), (t("print_user"), str(r["key_name"])), (t("print_post"), "")]
    return rows


def _technical(sheet: Sheet, t: Strings) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    r = sheet.record
    q = r.get("query") or {}
    if r.get("kind") == "text":
        query = str(q.get("text", ""))
    else:
        names = q.get("filenames") or []
        query = "; ".join(f"{names[i] if i < len(names) and names[i] else t('photo_n', n=i + 1)} (sha256 {sha})"
                          for i, sha in enumerate(q.get("photos_sha256") or []))
    info = [(t("print_model"), str(r.get("model", ""))), (t("print_threshold"), str(r.get("threshold", ""))),
            (t("print_query"), query)]
    results = [(str(i), str(x.get("object_id", "")), f"{float(x.get('score', 0)):.4f}")
               for i, x in enumerate(r.get("results") or [], start=1)]
    return info, results


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body { font: 11pt/1.4 "DejaVu Sans", "Noto Sans", "WenQuanYi Micro Hei", sans-serif; margin: 1.5cm; color: #000; }
h1 { font-size: 16pt; margin: 0 0 .6em; } h2 { font-size: 13pt; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
th, td { border: 1px solid #888; padding: .25em .5em; text-align: start; vertical-align: top; }
th { width: 35%; background: #eee; }
.verdict td { font-weight: bold; font-size: 13pt; }
.photos { display: flex; gap: 1em; flex-wrap: wrap; }
figure { margin: 0; flex: 1 1 40%; } figure img { max-width: 100%; max-height: 8cm; border: 1px solid #888; }
figcaption { font-size: 9pt; }
.signature { margin-top: 2em; } .line { display: inline-block; width: 60%; border-bottom: 1px solid #000; }
.tech { break-before: page; page-break-before: always; }
bdi { white-space: nowrap; }
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" alt="{html.escape(alt)}">'


def _figure(path: Path | None, caption: str) -> str:
    if path is None:
        return ""
    return f"<figure>{_img(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def render_html(sheet: Sheet, t: Strings) -> str:
    """A self-contained page (photos inline) that prints as the sheet: no request leaves it, no script runs."""
    e = html.escape
    rows = "".join(f'<tr{" class=verdict" if i == 0 else ""}><th scope="row">{e(k)}</th><td><bdi>{e(v)}</bdi></td></tr>'
                   for i, (k, v) in enumerate(_rows(sheet, t)))
    photos = "".join(_figure(p, f"{t('print_query_photos')}: {t('photo_n', n=i + 1)}")
                     for i, p in enumerate(sheet.query_photos))
    if sheet.record.get("kind") == "text":
        photos += f"<blockquote>{e(str((sheet.record.get('query') or {}).get('text', '')))}</blockquote>"
    photos += _figure(sheet.match_photo, t("print_match_photo"))
    info, results = _technical(sheet, t)
    tech_rows = "".join(f'<tr><th scope="row">{e(k)}</th><td><bdi>{e(v)}</bdi></td></tr>' for k, v in info)
    result_rows = "".join(f"<tr><td>{e(n)}</td><td><bdi>{e(o)}</bdi></td><td>{e(s)}</td></tr>" for n, o, s in results)
    direction = "rtl" if t.rtl else "ltr"
    return f"""<!doctype html>
<html lang="{e(t.lang)}" dir="{direction}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(t('app_title'))}: {e(t('print_heading'))} {e(str(sheet.record.get('short_id') or sheet.record['search_id']))}</title>
<style>{_CSS}</style></head>
<body>
<h1>{e(t('app_title'))}: {e(t('print_heading'))}</h1>
<table><tbody>{rows}</tbody></table>
<div class="photos">{photos}</div>
{_figure(sheet.evidence, t('print_evidence'))}
<p class="signature">{e(t('print_signature'))}: <span class="line"></span></p>
<section class="tech"><h2>{e(t('print_technical'))}</h2>
<table><tbody>{tech_rows}</tbody></table>
<table><thead><tr><th>#</th><th>{e(t('print_object'))}</th><th>{e(t('print_score'))}</th></tr></thead>
<tbody>{result_rows}</tbody></table></section>
</body></html>"""


# The page's inline style sheet, and photos as data: URLs only (the sheet loads nothing else).
HTML_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


# -- PDF -----------------------------------------------------------------------------------------

_DEJAVU = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf")
_CJK = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc")


def _first(paths: Sequence[str]) -> Path | None:
    return next((Path(p) for p in paths if Path(p).is_file()), None)


def _dejavu() -> Path:
    """DejaVu Sans (Latin, Greek, Cyrillic, Arabic): Debian's fonts-dejavu-core, else the copy matplotlib ships."""
    found = _first(_DEJAVU)
    if found:
        return found
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():
            return bundled
    raise FontMissing("no DejaVu Sans font for the search sheet: install Debian's fonts-dejavu-core")


def render_pdf(sheet: Sheet, t: Strings) -> bytes:
    """The sheet as an A4 PDF: photos embedded, text in the officer's language (Chinese with WenQuanYi,
    the rest with DejaVu Sans, Arabic shaped right to left).

    Raises:
        FontMissing: the fonts are not installed (a Chinese sheet needs fonts-wqy-microhei).
    """
    pdf = FPDF(format="A4")
    pdf.set_title(f"{t('print_heading')} {sheet.record.get('short_id') or sheet.record['search_id']}")
    pdf.set_creator("artefact-search")
    pdf.add_font("main", fname=str(_dejavu()))
    rows, (info, results) = _rows(sheet, t), _technical(sheet, t)
    if t.lang == "zh" or _needs_cjk([*(f"{k} {v}" for k, v in rows + info), *(r[1] for r in results)]):
        # Only when a glyph needs it: loading the CJK font costs seconds per PDF (measured: 2 s -> 6-10 s).
        cjk = _first(_CJK)
        if cjk is None:
            raise FontMissing("no Chinese font for the search sheet: install Debian's fonts-wqy-microhei")
        pdf.add_font("cjk", fname=str(cjk))
        pdf.set_fallback_fonts(["cjk"])
    pdf.set_text_shaping(True, direction="rtl" if t.rtl else "ltr")
    align = "R" if t.rtl else "L"
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()

    def line(text: str, size: float = 10, height: float = 6) -> None:
        pdf.set_font("main", size=size)
        pdf.multi_cell(0, height, text, align=align, new_x="LMARGIN", new_y="NEXT")

    line(f"{t('app_title')}: {t('print_heading')}", 16, 9)
    for i, (label, value) in enumerate(rows):
        line(f"{label}: {value}", 13 if i == 0 else 10, 8 if i == 0 else 6)
    pdf.ln(3)
    figures = [(p, f"{t('print_query_photos')}: {t('photo_n', n=i + 1)}") for i, p in enumerate(sheet.query_photos)]
    if sheet.match_photo is not None:
        figures.append((sheet.match_photo, t("print_match_photo")))
    _photo_row(pdf, figures, rtl=t.rtl)
    if sheet.record.get("kind") == "text":
        line(f"{t('print_query')}: {(sheet.record.get('query') or {}).get('text', '')}")
    if sheet.evidence is not None:
        _photo_row(pdf, [(sheet.evidence, t("print_evidence"))], width=pdf.epw)
    pdf.ln(8)
    line(f"{t('print_signature')}: ______________________________")

    pdf.add_page()
    line(t("print_technical"), 13, 8)
    for label, value in info:
        line(f"{label}: {value}", 9, 5)
    pdf.ln(2)
    line(f"# · {t('print_object')} · {t('print_score')}", 9, 5)
    for n, oid, score in results:
        line(f"{n} · {oid} · {score}", 9, 5)
    return bytes(pdf.output())


def _needs_cjk(texts: Sequence[str]) -> bool:
    """Whether any text holds Chinese, Japanese or Korean characters (DejaVu Sans has none)."""
    return any(0x2E80 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF or 0xF900 <= ord(c) <= 0xFAFF
               or 0xFF00 <= ord(c) <= 0xFFEF or ord(c) >= 0x20000 for text in texts for c in text)


def _photo_row(pdf: FPDF, figures: list[tuple[Path, str]], width: float | None = None, rtl: bool = False) -> None:
    """Photos side by side (two to a row, the first on the reading side), each captioned, kept on one page."""
    if not figures:
        return
    per_row = 1 if width else 2
    w = width or (pdf.epw - 6) / 2
    for start in range(0, len(figures), per_row):
        row = figures[start:start + per_row]
        h = 60.0 if width is None else 55.0  # sized so the table, photos, evidence and signature fit one A4 page
        if pdf.get_y() + h + 10 > pdf.h - pdf.b_margin:
            pdf.add_page()
        y = pdf.get_y()
        for i, (path, caption) in enumerate(row):
            x = pdf.l_margin + ((per_row - 1 - i) if rtl else i) * (w + 6)
            pdf.image(str(path), x=x, y=y, w=w, h=h, keep_aspect_ratio=True)
            pdf.set_xy(x, y + h + 1)
            pdf.set_font("main", size=8)
            pdf.multi_cell(w, 4, caption, align="C")
        pdf.set_xy(pdf.l_margin, y + h + 10)
