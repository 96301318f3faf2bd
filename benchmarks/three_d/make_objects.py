"""Render the turned-3D-object development benchmark with POV-Ray: catalogue views, turned query views, distractors.

Procedural objects (lathe vessels, blob figures, CSG figurines, superellipsoid carvings),
half with textures from POV-Ray's own include files (stones.inc, woods.inc, textures.inc:
CC-BY-SA-3.0, referenced at render time, never copied) and half in plain matte single
colours, rendered cheaply (no radiosity, light anti-aliasing) in a process pool into a
cache folder outside the repository (default /tmp/artefact-3d). It writes:

    images/<id>/c000.png, c090.png, c180.png, c270.png   catalogue views (turntable, plain backdrop)
    images/<id>/q<az>.png                                turned query views (another light, backdrop, height)
    catalogue-1view.csv / catalogue-2views.csv / catalogue-4views.csv
    queries.csv            one photo per query (true objects + distractors not in the catalogue)
    queries-2photos.csv    two query photos per object (the officer photographs two sides)

Usage: .venv/bin/python benchmarks/three_d/make_objects.py [--out /tmp/artefact-3d] [--objects 30] [--workers 2]
Then index a catalogue and run `artefact eval` (see benchmarks/README.md, "Turned 3D objects").
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

POVRAY = "/usr/bin/povray"
INCLUDE = "/usr/share/povray-3.7/include"
CATALOGUE_VIEWS = (0, 180, 90, 270)  # first n of these make the 1-, 2- and 4-view catalogues
QUERY_VIEWS = (40, 80, 320, 290)  # 40-80 degrees from the main catalogue view, 40-50 degrees apart
DISTRACTOR_VIEWS = (40, 290)
STONES = [f"T_Stone{i}" for i in range(1, 45)]
WOODS = [f"T_Wood{i}" for i in range(1, 36)]
MINERALS = ["Jade", "Red_Marble", "White_Marble", "Blood_Marble", "Blue_Agate", "Sapphire_Agate", "Brown_Agate",
            "Pink_Granite", "PinkAlabaster"]  # in textures.inc: pigments, but for MINERAL_TEXTURES
MINERAL_TEXTURES = {"PinkAlabaster"}
# Plain materials of "one kind": terracotta, bronze-brown, bone, slate, black, ochre, celadon, chalk.
PLAIN = [(0.62, 0.30, 0.18), (0.36, 0.24, 0.13), (0.86, 0.82, 0.72), (0.35, 0.38, 0.42), (0.08, 0.08, 0.09),
         (0.72, 0.55, 0.25), (0.55, 0.68, 0.58), (0.93, 0.93, 0.90)]
KINDS = ("vessel", "blob figure", "figurine", "carving")


@dataclass(frozen=True)
class Obj:
    object_id: str
    kind: str
    textured: bool
    seed: int
    in_catalogue: bool


def _v(a: np.ndarray | list[float]) -> str:
    return "<" + ", ".join(f"{float(x):.4f}" for x in a) + ">"


def _material(obj: Obj, rng: np.random.Generator) -> str:
    if obj.textured:
        pick = rng.integers(3)
        turn = _v(rng.uniform(0, 360, 3))
        if pick == 0:
            return f"texture {{ {rng.choice(STONES)} scale {rng.uniform(0.4, 1.0):.3f} rotate {turn} }}"
        if pick == 1:
            return f"texture {{ {rng.choice(WOODS)} scale {rng.uniform(0.15, 0.35):.3f} rotate {turn} }}"
        mineral, scale = rng.choice(MINERALS), rng.uniform(0.3, 0.8)
        if mineral in MINERAL_TEXTURES:
            return f"texture {{ {mineral} scale {scale:.3f} rotate {turn} }}"
        return f"texture {{ pigment {{ {mineral} scale {scale:.3f} rotate {turn} }} finish {{ diffuse 0.75 specular 0.15 }} }}"
    colour = np.clip(np.asarray(PLAIN[int(rng.integers(len(PLAIN)))]) + rng.normal(0, 0.03, 3), 0, 1)
    return f"texture {{ pigment {{ rgb {_v(colour)} }} finish {{ diffuse 0.8 specular {rng.uniform(0, 0.2):.2f} roughness 0.05 }} }}"


def _vessel(rng: np.random.Generator) -> str:
    h = rng.uniform(1.2, 2.0)
    base, belly, neck, lip = rng.uniform(0.25, 0.45), rng.uniform(0.45, 0.75), rng.uniform(0.12, 0.3), rng.uniform(0.2, 0.45)
    ys = [0.0, 0.02, h * rng.uniform(0.3, 0.5), h * rng.uniform(0.7, 0.8), h * 0.97, h]
    rs = [0.0, base, belly, neck, lip, lip * 0.95]
    pts = [(rs[0], -0.05)] + list(zip(rs, ys)) + [(lip * 0.95, h + 0.05)]
    body = f"sor {{ {len(pts)}, " + ", ".join(f"<{r:.4f}, {y:.4f}>" for r, y in pts) + " }"
    parts = [body]
    # Handles and spouts make the vessel look different from each side, as real ones do.
    for _ in range(int(rng.integers(1, 3))):
        side = rng.uniform(0, 360)
        y = h * rng.uniform(0.45, 0.75)
        parts.append(f"torus {{ {rng.uniform(0.18, 0.3):.3f}, 0.04 rotate x*90 translate <{belly * 0.95:.3f}, {y:.3f}, 0> "
                     f"rotate y*{side:.1f} }}")
    if rng.random() < 0.5:
        parts.append(f"cone {{ <0, {h * 0.5:.3f}, 0>, 0.08, <{belly + 0.35:.3f}, {h * 0.7:.3f}, 0>, 0.03 "
                     f"rotate y*{rng.uniform(0, 360):.1f} }}")
    return "union { " + " ".join(parts) + " }"


def _blob(rng: np.random.Generator) -> str:
    # A chain of overlapping lumps rising from the ground, so the figure is one piece.
    comps = []
    c = np.array([0.0, 0.3, 0.0])
    for _ in range(int(rng.integers(5, 8))):
        comps.append(f"sphere {{ {_v(c)}, {rng.uniform(0.45, 0.65):.3f}, 1 }}")
        c = c + np.array([rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.3), rng.uniform(-0.15, 0.15)])
        c[:2] = np.clip(c[:2], [-0.35, 0.3], [0.35, 1.5])
    return "blob { threshold 0.5 " + " ".join(comps) + " }"


def _figurine(rng: np.random.Generator) -> str:
    h = rng.uniform(0.9, 1.4)
    w = rng.uniform(0.25, 0.4)
    parts = [
        f"box {{ <-0.45, 0, -0.35>, <0.45, {rng.uniform(0.08, 0.2):.3f}, 0.35> }}",
        f"cone {{ <0, 0.1, 0>, {w + 0.1:.3f}, <0, {h:.3f}, 0>, {w * 0.6:.3f} }}",
        f"sphere {{ <{rng.uniform(-0.05, 0.05):.3f}, {h + 0.22:.3f}, 0>, {rng.uniform(0.18, 0.26):.3f} }}",
    ]
    for side in (-1, 1):
        a = rng.uniform(-70, 70)
        parts.append(f"cylinder {{ <0, 0, 0>, <0, -{rng.uniform(0.4, 0.7):.3f}, 0>, 0.06 rotate z*{side * rng.uniform(10, 60):.1f} "
                     f"rotate x*{a:.1f} translate <{side * w * 0.8:.3f}, {h * 0.9:.3f}, 0> }}")
    if rng.random() < 0.6:  # something held or worn on one side
        parts.append(f"box {{ <-0.08, -0.15, -0.02>, <0.08, 0.15, 0.02> rotate y*{rng.uniform(0, 90):.1f} "
                     f"translate <{w + 0.1:.3f}, {h * 0.5:.3f}, {rng.uniform(-0.2, 0.2):.3f}> }}")
    if rng.random() < 0.5:
        parts.append(f"cone {{ <0, {h + 0.4:.3f}, 0>, 0.15, <0, {h + 0.65:.3f}, 0>, 0 }}")
    return "union { " + " ".join(parts) + " }"


def _carving(rng: np.random.Generator) -> str:
    parts = []
    y = 0.0
    for _ in range(int(rng.integers(2, 4))):
        s = np.array([rng.uniform(0.25, 0.55), rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.45)])
        e = np.array([rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0)])
        y += s[1]
        parts.append(f"superellipsoid {{ {_v(e)} scale {_v(s)} rotate y*{rng.uniform(0, 90):.1f} translate <{rng.uniform(-0.15, 0.15):.3f}, {y:.3f}, 0> }}")
        y += s[1] * 0.85
    return "union { " + " ".join(parts) + " }"


SHAPES = {"vessel": _vessel, "blob figure": _blob, "figurine": _figurine, "carving": _carving}


def _backdrop(rng: np.random.Generator, cluttered: bool, catalogue: bool) -> str:
    if catalogue:  # museum turntable shot: seamless light grey
        return ("background { rgb <0.85, 0.85, 0.85> } plane { y, 0 pigment { rgb <0.82, 0.82, 0.82> } "
                "finish { diffuse 0.8 ambient 0.1 } }")
    tone = rng.uniform(0.3, 0.95)
    tint = np.clip(tone + rng.normal(0, 0.05, 3), 0, 1)
    out = f"background {{ rgb {_v(tint * 0.9)} }} "
    if not cluttered:
        return out + f"plane {{ y, 0 pigment {{ rgb {_v(tint)} }} finish {{ diffuse 0.8 ambient 0.08 }} }}"
    floor = rng.choice([
        "pigment { checker rgb <0.7,0.7,0.65>, rgb <0.5,0.5,0.48> scale 0.5 }",
        "texture { T_Wood10 scale 0.6 rotate y*90 }",
        "pigment { granite color_map { [0 rgb 0.55] [1 rgb 0.75] } scale 0.8 }",
    ])
    out += f"plane {{ y, 0 {floor} finish {{ diffuse 0.75 ambient 0.08 }} }} "
    for _ in range(int(rng.integers(2, 4))):  # a few things on the table behind the object
        p = np.array([rng.uniform(-2.2, 2.2), 0, rng.uniform(1.8, 3.5)])
        c = rng.uniform(0.2, 0.9, 3)
        if rng.random() < 0.5:
            size = rng.uniform(0.2, 0.5)
            out += f"box {{ <-{size:.2f}, 0, -{size:.2f}>, <{size:.2f}, {size * 1.5:.2f}, {size:.2f}> rotate y*{rng.uniform(0, 90):.0f} translate {_v(p)} pigment {{ rgb {_v(c)} }} }} "
        else:
            out += f"cylinder {{ <0,0,0>, <0,{rng.uniform(0.3, 1.0):.2f},0>, {rng.uniform(0.1, 0.3):.2f} translate {_v(p)} pigment {{ rgb {_v(c)} }} }} "
    return out


def scene(obj: Obj, az: float, query: bool) -> str:
    """The POV-Ray scene of one object seen from azimuth `az` (degrees; the object turns, the camera stays)."""
    shape_rng = np.random.default_rng(obj.seed)
    shape = SHAPES[obj.kind](shape_rng)
    material = _material(obj, shape_rng)
    view = np.random.default_rng([obj.seed, int(az), int(query)])
    if query:
        elev, dist = view.uniform(8, 35), view.uniform(4.2, 5.4)
        lights = (f"light_source {{ {_v([view.uniform(-6, 6), view.uniform(4, 8), -view.uniform(3, 7)])} color rgb {_v(view.uniform(0.8, 1.1, 3))} }} "
                  f"light_source {{ {_v([view.uniform(-6, 6), 3, -4])} color rgb 0.35 shadowless }}")
        backdrop = _backdrop(view, cluttered=bool(view.random() < 0.5), catalogue=False)
        roll = view.uniform(-6, 6)
    else:
        elev, dist = 20.0, 4.8
        lights = "light_source { <-4, 7, -5> color rgb 1 } light_source { <5, 4, -4> color rgb 0.5 shadowless }"
        backdrop = _backdrop(view, cluttered=False, catalogue=True)
        roll = 0.0
    e = np.radians(elev)
    cam = np.array([0, 0.8 + dist * np.sin(e), -dist * np.cos(e)])
    return f"""#version 3.7;
#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
global_settings {{ assumed_gamma 1.0 max_trace_level 5 ambient_light rgb 0.6 }}
camera {{ location {_v(cam)} look_at <0, 0.85, 0> angle 34 rotate z*{roll:.2f} }}
{lights}
{backdrop}
object {{ {shape} {material} rotate y*{-az:.1f} }}
"""


def render(args: tuple[str, Path, int, int]) -> tuple[Path, float, bool]:
    """Render one scene unless the cached PNG was made from the very same scene text."""
    text, png, w, h = args
    stamp = png.with_suffix(".sha")
    digest = hashlib.sha256(f"{text}{w}x{h}".encode()).hexdigest()
    if png.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return png, 0.0, False
    png.parent.mkdir(parents=True, exist_ok=True)
    pov = png.with_suffix(".pov")
    pov.write_text(text)
    t0 = time.perf_counter()
    tmp = png.with_suffix(".tmp.png")
    subprocess.run([POVRAY, f"+I{pov}", f"+O{tmp}", f"+W{w}", f"+H{h}", "+FN", "-D", "+A0.3", "+R2", "-GA",
                    f"+L{INCLUDE}", "+WT1"], check=True, capture_output=True)
    tmp.replace(png)
    stamp.write_text(digest)
    return png, time.perf_counter() - t0, True


def objects(n_per_group: int, n_distractors: int, prefix: str = "R3D", seed_offset: int = 0) -> list[Obj]:
    """The benchmark's objects; another prefix and seed offset make a disjoint set (e.g. to fit a calibration on)."""
    out = []
    for textured, tag in ((True, "T"), (False, "P")):
        for i in range(n_per_group):
            out.append(Obj(f"{prefix}-{tag}{i + 1:03d}", KINDS[i % len(KINDS)], textured,
                           seed_offset + 1000 * (1 + textured) + i, True))
        for i in range(n_distractors // 2):
            out.append(Obj(f"{prefix}-X{tag}{i + 1:03d}", KINDS[(i + 1) % len(KINDS)], textured,
                           seed_offset + 5000 * (1 + textured) + i, False))
    return out


def jobs(objs: list[Obj], images: Path) -> list[tuple[str, Path, int, int]]:
    out = []
    for o in objs:
        if o.in_catalogue:
            out += [(scene(o, az, False), images / o.object_id / f"c{az:03d}.png", 400, 400) for az in CATALOGUE_VIEWS]
        views = QUERY_VIEWS if o.in_catalogue else DISTRACTOR_VIEWS
        for n, az in enumerate(views):
            w, h = (360, 480) if n % 2 else (480, 360)
            out.append((scene(o, az, True), images / o.object_id / f"q{az:03d}.png", w, h))
    return out


def _offset(az: int) -> int:
    return min(az % 360, 360 - az % 360)


def write_lists(out: Path, objs: list[Obj]) -> None:
    for n_views, name in ((1, "catalogue-1view.csv"), (2, "catalogue-2views.csv"), (4, "catalogue-4views.csv")):
        with (out / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "images", "object_type", "title", "materials", "status", "source"])
            for o in objs:
                if o.in_catalogue:
                    imgs = ";".join(f"{o.object_id}/c{az:03d}.png" for az in CATALOGUE_VIEWS[:n_views])
                    w.writerow([o.object_id, imgs, o.kind, f"Rendered {o.kind} {o.object_id}",
                                "textured" if o.textured else "plain matte", "stolen",
                                "RENDERED TEST OBJECT (benchmarks/three_d/make_objects.py, POV-Ray)"])
    with (out / "queries.csv").open("w", newline="") as f, (out / "queries-2photos.csv").open("w", newline="") as f2:
        w, w2 = csv.writer(f), csv.writer(f2)
        for writer in (w, w2):
            writer.writerow(["query", "expected_id", "condition", "severity"])
        for o in objs:
            cond = "turned-" + ("textured" if o.textured else "plain")
            views = QUERY_VIEWS if o.in_catalogue else DISTRACTOR_VIEWS
            for az in views:
                w.writerow([f"images/{o.object_id}/q{az:03d}.png", o.object_id if o.in_catalogue else "",
                            cond, _offset(az) // 10])
            pair = [f"images/{o.object_id}/q{az:03d}.png" for az in views[:: max(1, len(views) // 2)][:2]]
            w2.writerow([";".join(pair), o.object_id if o.in_catalogue else "", cond, 0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/artefact-3d"))
    p.add_argument("--objects", type=int, default=30, help="catalogue objects per group (textured, plain)")
    p.add_argument("--distractors", type=int, default=20, help="objects not in the catalogue (both groups)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prefix", default="R3D", help="object id prefix (another one for a disjoint set)")
    p.add_argument("--seed-offset", type=int, default=0,
                   help="added to every object's seed: 20000 makes objects none of the benchmark's (seeds 1000-10999)")
    a = p.parse_args(argv)
    objs = objects(a.objects, a.distractors, a.prefix, a.seed_offset)
    todo = jobs(objs, a.out / "images")
    t0 = time.perf_counter()
    done = rendered = 0
    with ProcessPoolExecutor(a.workers) as pool:
        for fut in as_completed([pool.submit(render, j) for j in todo]):
            _, _, fresh = fut.result()
            done += 1
            rendered += fresh
            if done % 25 == 0 or done == len(todo):
                print(f"{done}/{len(todo)} views ({rendered} rendered, {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    write_lists(a.out, objs)
    print(f"{sum(o.in_catalogue for o in objs)} catalogue objects, {sum(not o.in_catalogue for o in objs)} distractors, "
          f"{len(todo)} views in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
