"""The synthetic UAV vehicle renderer: one detection crop of a 3-D vehicle seen from a UAV.

It draws the difficulties the paper names (Sect. 3.2):

- 3-D vehicles seen from a UAV: each vehicle is a few convex polyhedra (lower body, cabin, cargo
  box, roof box) with decals on their faces (glass, lights, wheels, marks), seen by a pinhole
  camera at 15-60 m altitude and 40-80 deg pitch from any heading. The view label (front, rear,
  left, right) is the quadrant of that heading, as in the paper's Fig. 5.
- Look-alike identities: colours follow real car-colour shares (white, black, grey, silver make
  ~70 %), seven body types, and identities differ often only in small marks that live on one
  face of the car, so they show from some viewpoints only.
- Scene and camera effects: asphalt or concrete with lane, parking or crossing markings, grass,
  shadows cast by the sun, illumination and colour temperature, neighbouring cars, tree canopies
  over the vehicle, detection-box jitter, blur and sensor noise.

`render(job, settings, seed)` draws one `ImageJob`; its details come from a generator seeded by
(seed, job.index) alone, so an image is the same whichever process draws it, in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..types import VIEW_NAMES


@dataclass(frozen=True)
class SynthSettings:
    """A data set's size and its camera and image settings; presets in `write.SYNTH_PRESETS`."""

    num_ids: int  # identities in train + val + test, split in UAV-VeID's proportions
    images_per_id: float  # mean boxes per identity (UAV-VeID: 41,917 / 4,601 = 9.1)
    num_distractors: int  # distractor crops (UAV-VeID: ~300K)
    min_images: int = 2  # UAV-VeID: every vehicle has at least two boxes
    altitude_m: tuple[float, float] = (15.0, 60.0)  # UAV flying height (paper Sect. 3.2.1)
    pitch_deg: tuple[float, float] = (40.0, 80.0)  # camera angle below the horizon
    focal_px: float = 640.0  # a sedan is ~180 px long seen from 15 m and ~25 px from 60 m
    max_side: int = 256  # crops larger than this are stored downscaled (a lower-resolution video)
    supersample: int = 2  # render at 2x and box-filter down: anti-aliased edges
    num_sequences: int = 80  # videos (place + light) shared by many vehicles; UAV-VeID: 80


# ---------------------------------------------------------------------------------------------
# Vehicles: body types, colours and marks


@dataclass(frozen=True)
class BodyType:
    length: float  # metres
    width: float
    deck: float  # top of the lower body
    clearance: float  # bottom of the lower body
    cabin: tuple[float, float, float, float, float]  # x rear, x front at the deck; roof x rear,
    #                                                   x front; roof z (x = 0 is the centre)
    tumble: float  # cabin side inset at the roof
    windows: str  # side-window style: car, van, bus or cab
    wheel_x: tuple[float, ...]  # axles, as fractions of half the length
    wheel_r: float
    share: float  # how common it is on the road
    cargo: tuple[float, float, float] | None = None  # box truck: x rear, x front, top z
    bed: tuple[float, float] | None = None  # pickup: open bed, x rear and x front


BODY_TYPES: dict[str, BodyType] = {
    "sedan": BodyType(4.6, 1.8, 0.80, 0.22, (-1.25, 0.95, -0.80, 0.30, 1.45), 0.13, "car",
                      (0.64, -0.62), 0.32, 0.30),
    "hatchback": BodyType(4.0, 1.75, 0.82, 0.20, (-1.95, 0.75, -1.75, 0.15, 1.48), 0.13, "car",
                          (0.62, -0.66), 0.31, 0.15),
    "suv": BodyType(4.7, 1.9, 1.00, 0.30, (-2.30, 0.80, -2.15, 0.30, 1.78), 0.10, "car",
                    (0.64, -0.64), 0.38, 0.22),
    "van": BodyType(5.0, 1.95, 1.00, 0.25, (-2.48, 1.55, -2.45, 0.95, 2.15), 0.06, "van",
                    (0.62, -0.66), 0.35, 0.10),
    "pickup": BodyType(5.3, 1.9, 1.05, 0.35, (-0.45, 1.00, -0.35, 0.55, 1.85), 0.10, "cab",
                       (0.66, -0.62), 0.40, 0.08, bed=(-2.55, -0.50)),
    "bus": BodyType(11.0, 2.5, 1.20, 0.30, (-5.48, 5.48, -5.45, 5.35, 3.10), 0.02, "bus",
                    (0.62, -0.50), 0.50, 0.07),
    "truck": BodyType(7.5, 2.3, 1.20, 0.35, (1.90, 3.70, 2.00, 3.30, 2.70), 0.04, "cab",
                      (0.74, -0.50), 0.48, 0.08, cargo=(-3.70, 1.80, 3.30)),
}

# Shares of new cars by colour (white, black, grey and silver dominate worldwide).
COLOURS: dict[str, tuple[tuple[int, int, int], float]] = {
    "white": ((232, 232, 228), 0.25),
    "black": ((26, 26, 30), 0.19),
    "grey": ((105, 108, 112), 0.17),
    "silver": ((172, 175, 180), 0.12),
    "blue": ((30, 62, 132), 0.09),
    "red": ((150, 24, 24), 0.09),
    "brown": ((105, 78, 55), 0.04),
    "green": ((38, 86, 52), 0.02),
    "yellow": ((214, 172, 32), 0.02),
    "orange": ((210, 100, 25), 0.01),
}
PAINT_SHADES = (0.88, 1.0, 1.1)  # light and dark variants of each colour
MARK_COLOURS = [(230, 30, 30), (250, 200, 20), (30, 90, 220), (30, 160, 60), (245, 120, 20),
                (240, 240, 240), (20, 20, 20), (200, 40, 180), (40, 200, 210)]
MARK_KINDS = ("roof_rack", "roof_box", "sunroof", "two_tone_roof", "hood_stripes",
              "side_stripe", "rear_sticker", "window_item", "dent", "door_logo", "hood_logo")


@dataclass(frozen=True)
class Decal:
    """A flat polygon on one face of a part, in the face's (s, t) coordinates in [0, 1]^2."""

    part: str  # body, cabin, cargo or roofbox
    face: str  # top, front, rear, left or right
    st: tuple[tuple[float, float], ...]
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    vid: int
    body: str
    colour: str
    rgb: tuple[int, int, int]
    scale: tuple[float, float, float]  # length, width, height factors of this exact model
    roof_rgb: tuple[int, int, int]  # differs from rgb for a two-tone roof
    rim_rgb: tuple[int, int, int]
    glass_rgb: tuple[int, int, int]
    marks: tuple[str, ...]  # names, for the metadata
    decals: tuple[Decal, ...] = ()
    roof_box: tuple[float, float, tuple[int, int, int]] | None = None  # s range on roof, colour


def _rect(s0: float, s1: float, t0: float, t1: float) -> tuple[tuple[float, float], ...]:
    return ((s0, t0), (s1, t0), (s1, t1), (s0, t1))


def _blob(rng: np.random.Generator, s: float, t: float, rs: float, rt: float, n: int = 7):
    """An irregular patch (dent, dirt, item behind glass)."""
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.55, 1.0, n)
    return tuple((float(s + rs * r[i] * np.cos(a[i])), float(t + rt * r[i] * np.sin(a[i])))
                 for i in range(n))


def _jitter_rgb(rng: np.random.Generator, rgb, amount: float) -> tuple[int, int, int]:
    v = np.asarray(rgb, float) * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, 6, 3)
    return tuple(int(c) for c in np.clip(v, 0, 255))


def _mark_colour(rng: np.random.Generator, body_rgb) -> tuple[int, int, int]:
    """A mark colour that stands out from the paint (marks are what tells look-alikes apart)."""
    for _ in range(10):
        c = MARK_COLOURS[rng.integers(len(MARK_COLOURS))]
        if np.abs(np.subtract(c, body_rgb)).sum() > 150:
            break
    return _jitter_rgb(rng, c, 0.08)


def _mark(rng: np.random.Generator, kind: str, ident: dict) -> list[Decal]:
    """Decals of one mark. Each lives on specific faces, so it shows from some views only."""
    col = _mark_colour(rng, ident["rgb"])
    side = ("left", "right")[rng.integers(2)]
    if kind == "roof_rack":
        dark = _jitter_rgb(rng, (40, 40, 42) if rng.random() < 0.7 else (170, 172, 176), 0.1)
        return [Decal("cabin", "top", _rect(c - 0.04, c + 0.04, 0.04, 0.96), dark)
                for c in (0.25, 0.72)]
    if kind == "sunroof":
        return [Decal("cabin", "top", _rect(0.50, 0.84, 0.22, 0.78), (18, 20, 26))]
    if kind == "hood_stripes":
        w = rng.uniform(0.05, 0.09)
        return [Decal(p, "top", _rect(0, 1, c - w / 2, c + w / 2), col)
                for p in ("body", "cabin") for c in (0.5 - w, 0.5 + w)]
    if kind == "side_stripe":
        t = rng.uniform(0.35, 0.7)
        return [Decal("body", side, _rect(0.04, 0.96, t, t + rng.uniform(0.08, 0.16)), col)]
    if kind == "rear_sticker":
        s, t = rng.uniform(0.15, 0.75), rng.uniform(0.45, 0.75)
        return [Decal("body", "rear", _rect(s, s + rng.uniform(0.12, 0.22), t, t + 0.2), col)]
    if kind == "window_item":
        face = ("rear", "front")[rng.integers(2)]
        return [Decal("cabin", face, _blob(rng, rng.uniform(0.25, 0.75), 0.22, 0.12, 0.14), col)]
    if kind == "dent":  # dent or dirt: a dull patch on one side or the back
        face = (side, "rear")[int(rng.random() < 0.3)]
        dull = _jitter_rgb(rng, np.asarray(ident["rgb"]) * 0.55 + np.array([40, 30, 15]), 0.1)
        return [Decal("body", face, _blob(rng, rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.6),
                                          rng.uniform(0.07, 0.14), rng.uniform(0.15, 0.3)), dull)]
    if kind == "door_logo":  # company logo on both doors
        s = rng.uniform(0.3, 0.55)
        return [Decal("body", f, _rect(s, s + 0.22, 0.3, 0.85), col) for f in ("left", "right")]
    if kind == "hood_logo":
        return [Decal("body", "top", _blob(rng, 0.9, 0.5, 0.05, 0.16, 9), col)]
    raise ValueError(f"unknown mark {kind}")


def random_identity(rng: np.random.Generator, vid: int) -> Identity:
    """One vehicle: body type, colour by real shares, and 0-3 marks."""
    names = list(BODY_TYPES)
    shares = np.array([BODY_TYPES[n].share for n in names])
    body = names[rng.choice(len(names), p=shares / shares.sum())]
    cnames = list(COLOURS)
    cshares = np.array([COLOURS[c][1] for c in cnames])
    colour = cnames[rng.choice(len(cnames), p=cshares / cshares.sum())]
    # Factory paint: a few shades per colour, shared by many cars (look-alikes, not fingerprints)
    rgb = _tint(COLOURS[colour][0], PAINT_SHADES[rng.integers(len(PAINT_SHADES))])
    ident = dict(rgb=rgb)
    marks = list(rng.choice(MARK_KINDS, size=rng.choice(4, p=[0.15, 0.35, 0.3, 0.2]),
                            replace=False))
    if body in ("bus", "truck"):  # roof-mounted items and sunroofs are car things
        marks = [m for m in marks if m not in ("roof_rack", "roof_box", "sunroof")]
    decals: list[Decal] = []
    roof_rgb, roof_box = rgb, None
    for kind in marks:
        if kind == "two_tone_roof":
            roof_rgb = (24, 24, 26) if sum(rgb) > 300 else (236, 236, 232)
        elif kind == "roof_box":
            shade = ((25, 25, 28), (210, 210, 212), (90, 92, 96))[rng.integers(3)]
            roof_box = (0.15, rng.uniform(0.6, 0.85), shade)
        else:
            decals += _mark(rng, kind, ident)
    return Identity(
        vid=vid, body=body, colour=colour, rgb=rgb,
        scale=tuple(float(x) for x in rng.uniform([0.95, 0.96, 0.95], [1.05, 1.04, 1.05])),
        roof_rgb=roof_rgb,
        rim_rgb=((30, 30, 32), (120, 122, 126), (180, 182, 186))[rng.integers(3)],
        glass_rgb=((30, 36, 44), (40, 48, 58), (26, 30, 32))[rng.integers(3)],
        marks=tuple(sorted(marks)), decals=tuple(decals), roof_box=roof_box,
    )


# ---------------------------------------------------------------------------------------------
# Geometry: parts as convex frusta, a pinhole camera, painter's order with back-face culling

# Quad corners (p00, p10, p11, p01) of each face, indices into a frustum's 8 vertices: bottom
# 0 rear-right, 1 front-right, 2 front-left, 3 rear-left, then top 4..7 likewise. On the sides s
# runs rear -> front and t bottom -> top; on the top s runs rear -> front and t right -> left.
FACES = {
    "left": (3, 2, 6, 7), "right": (0, 1, 5, 4), "front": (1, 2, 6, 5), "rear": (0, 3, 7, 4),
    "top": (4, 5, 6, 7),
}


@dataclass
class Part:
    name: str
    level: int  # 0 stands on the ground, 1 on the body, 2 on the cabin: drawn in that order
    verts: np.ndarray  # (8, 3) frustum corners in the vehicle frame (x forward, y left, z up)
    rgb: dict[str, tuple[int, int, int]]  # colour per face
    decals: dict[str, list] = field(default_factory=dict)  # face -> [(st or xyz points, rgb)]


def _frustum(x0, x1, z0, z1, half_w, top_x0, top_x1, inset) -> np.ndarray:
    wb, wt = half_w, half_w - inset
    return np.array([[x0, -wb, z0], [x1, -wb, z0], [x1, wb, z0], [x0, wb, z0],
                     [top_x0, -wt, z1], [top_x1, -wt, z1], [top_x1, wt, z1], [top_x0, wt, z1]])


def _glass(bt: BodyType) -> dict[str, list[tuple]]:
    """Window rectangles (s, t) on the cabin faces, by window style."""
    screen = [_rect(0.07, 0.93, 0.06, 0.9)]
    sides = {
        "car": [_rect(0.07, 0.47, 0.08, 0.86), _rect(0.52, 0.92, 0.08, 0.86)],
        "van": [_rect(0.06, 0.30, 0.35, 0.85), _rect(0.36, 0.62, 0.35, 0.85),
                _rect(0.70, 0.93, 0.15, 0.85)],
        "bus": [_rect(0.02 + i * 0.107, 0.11 + i * 0.107, 0.3, 0.88) for i in range(9)],
        "cab": [_rect(0.35, 0.9, 0.1, 0.86)],
    }[bt.windows]
    rear = [] if bt.cargo else [_rect(0.1, 0.9, 0.12, 0.85)]
    return {"front": screen, "rear": rear, "left": sides, "right": sides}


def vehicle_parts(ident: Identity) -> list[Part]:
    bt = BODY_TYPES[ident.body]
    sl, sw, sh = ident.scale
    hl, hw = bt.length / 2 * sl, bt.width / 2 * sw
    deck, clear = bt.deck * sh, bt.clearance * sh
    rgb = ident.rgb
    # Lower body, its top rounded off a little at both ends.
    body = Part("body", 0, _frustum(-hl, hl, clear, deck, hw, -hl + 0.12, hl - 0.18, 0.04),
                {f: rgb for f in FACES})
    lamp = (235, 235, 220)
    tail = (165, 18, 18)
    grille = tuple(int(c * 0.35) for c in rgb)
    body.decals["front"] = [(_rect(0.06, 0.22, 0.55, 0.85), lamp), (_rect(0.78, 0.94, 0.55, 0.85),
                            lamp), (_rect(0.32, 0.68, 0.45, 0.8), grille)]
    body.decals["rear"] = [(_rect(0.05, 0.2, 0.6, 0.88), tail), (_rect(0.8, 0.95, 0.6, 0.88), tail),
                           (_rect(0.4, 0.6, 0.35, 0.6), (215, 215, 205))]
    if bt.bed is not None:  # pickup: the open bed seen from above, its floor darker
        s0, s1 = (bt.bed[0] * sl + hl) / (2 * hl), (bt.bed[1] * sl + hl) / (2 * hl)
        body.decals["top"] = [(_rect(s0 + 0.01, s1, 0.08, 0.92), tuple(int(c * 0.45) for c in rgb))]
    # Wheels: octagons just outside the sides; the sides are culled, so are the wheels.
    ang = np.linspace(0, 2 * np.pi, 9)[:-1]
    r = bt.wheel_r * sh
    for face, y in (("left", hw + 0.02), ("right", -hw - 0.02)):
        wheels = []
        for fx in bt.wheel_x:
            cx = fx * hl
            for rad, col in ((r, (22, 22, 24)), (0.6 * r, ident.rim_rgb)):
                pts = np.stack([cx + rad * np.cos(ang), np.full(8, y), r + rad * np.sin(ang)], 1)
                wheels.append((pts, col))
        body.decals[face] = wheels
    parts = [body]
    # Cabin (greenhouse): glass on its faces, paint on the roof.
    cx0, cx1, rx0, rx1, top = bt.cabin
    cab = Part("cabin", 1, _frustum(cx0 * sl, cx1 * sl, deck, top * sh, hw - 0.03,
                                    rx0 * sl, rx1 * sl, bt.tumble), {f: rgb for f in FACES})
    cab.rgb["top"] = ident.roof_rgb
    for face, rects in _glass(bt).items():
        cab.decals[face] = [(st, ident.glass_rgb) for st in rects]
    parts.append(cab)
    if bt.cargo is not None:
        x0, x1, ztop = bt.cargo
        white = (228, 228, 224) if ident.colour != "white" else (200, 60, 40)
        parts.append(Part("cargo", 1, _frustum(x0 * sl, x1 * sl, deck, ztop * sh, hw + 0.02,
                                               x0 * sl, x1 * sl, 0.0), {f: white for f in FACES}))
    if ident.roof_box is not None:
        s0, s1, col = ident.roof_box
        rx0, rx1 = rx0 * sl, rx1 * sl
        bx0, bx1 = rx0 + s0 * (rx1 - rx0), rx0 + s1 * (rx1 - rx0)
        w = hw - bt.tumble - 0.25
        parts.append(Part("roofbox", 2, _frustum(bx0, bx1, top * sh, top * sh + 0.38, w,
                                                 bx0 + 0.12, bx1 - 0.08, 0.08),
                          {f: col for f in FACES}))
    for d in ident.decals:
        for p in parts:
            if p.name == d.part:
                p.decals.setdefault(d.face, []).append((d.st, d.rgb))
    return parts


def _bilinear(quad: np.ndarray, st) -> np.ndarray:
    """Points (s, t) of a quad face in 3-D. quad: (4, 3) as (p00, p10, p11, p01)."""
    st = np.asarray(st, float)
    s, t = st[:, :1], st[:, 1:]
    return ((1 - s) * (1 - t) * quad[0] + s * (1 - t) * quad[1] + s * t * quad[2]
            + (1 - s) * t * quad[3])


@dataclass
class Camera:
    pos: np.ndarray  # (3,) in the vehicle's frame
    rot: np.ndarray  # (3, 3) rows: image right, image down, forward
    focal: float  # pixels
    cx: float = 0.0  # image position of the optical axis
    cy: float = 0.0

    def project(self, pts: np.ndarray) -> np.ndarray:
        p = (pts - self.pos) @ self.rot.T  # (N, 3) in camera coordinates
        return self.focal * p[:, :2] / p[:, 2:3] + np.array([self.cx, self.cy])

    def sees(self, point: np.ndarray, normal: np.ndarray) -> bool:
        return float(np.dot(normal, self.pos - point)) > 0


def make_camera(altitude: float, pitch_deg: float, heading_deg: float, roll_deg: float,
                focal: float, target_z: float = 0.6) -> Camera:
    """Camera `altitude` m up, looking down at `pitch_deg` at the vehicle (nose along +x), from
    the azimuth `heading_deg` in the vehicle frame (0 = ahead of it, 90 = on its left)."""
    a, p = math.radians(heading_deg), math.radians(pitch_deg)
    dist = altitude / math.tan(p)
    pos = np.array([dist * math.cos(a), dist * math.sin(a), altitude])
    fwd = np.array([0.0, 0.0, target_z]) - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    right, down = c * right + s * down, -s * right + c * down
    return Camera(pos, np.stack([right, down, fwd]), focal)


def view_of_heading(heading_deg: float) -> int:
    """4-class view label from the camera's azimuth in the vehicle frame (0 = ahead of the nose,
    90 = on the vehicle's left): front [-45, 45), left [45, 135), rear [135, 225), right."""
    quadrant = int(((heading_deg + 45.0) % 360.0) // 90.0)  # 0 front, 1 left, 2 rear, 3 right
    return VIEW_NAMES[4].index(("front", "left", "rear", "right")[quadrant])


def _normal(quad: np.ndarray, centre: np.ndarray) -> np.ndarray:
    n = np.cross(quad[1] - quad[0], quad[3] - quad[0])
    n /= np.linalg.norm(n) + 1e-12
    return n if np.dot(n, quad.mean(0) - centre) > 0 else -n


@dataclass
class Light:
    sun: np.ndarray  # (3,) unit vector towards the sun
    ambient: float
    diffuse: float
    shadow: float  # how much a shadow darkens the ground

    def shade(self, n: np.ndarray) -> float:
        return self.ambient + self.diffuse * max(0.0, float(n @ self.sun)) + 0.08 * n[2]


def _tint(rgb, k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * k))) for c in rgb)


def draw_vehicle(draw: ImageDraw.ImageDraw, cam: Camera, parts: list[Part], pose: np.ndarray,
                 light: Light) -> set[str]:
    """Painter's algorithm: parts by level then far to near; in a convex part the visible faces
    never overlap, so back-face culling alone orders them; decals follow their face.
    pose: (3, 4) vehicle -> camera-frame placement (rotation about z and offset). Returns the
    visible faces as 'part.face'."""
    rot, off = pose[:, :3], pose[:, 3]
    placed = [(p, p.verts @ rot.T + off) for p in parts]
    placed.sort(key=lambda pv: (pv[0].level, -np.linalg.norm(pv[1].mean(0) - cam.pos)))
    visible = set()
    for part, verts in placed:
        centre = verts.mean(0)
        for face, idx in FACES.items():
            quad = verts[list(idx)]
            n = _normal(quad, centre)
            if not cam.sees(quad.mean(0), n):
                continue
            visible.add(f"{part.name}.{face}")
            k = light.shade(n)
            uv = cam.project(quad)
            # a darker outline gives the panels the crease lines real bodywork has
            draw.polygon([tuple(q) for q in uv], fill=_tint(part.rgb[face], k),
                         outline=_tint(part.rgb[face], 0.6 * k))
            for pts, rgb in part.decals.get(face, []):
                pts = np.asarray(pts, float)
                xyz = pts @ rot.T + off if pts.shape[1] == 3 else _bilinear(quad, pts)
                if part.name == "cabin" and rgb is not None and face != "top":
                    # glass mirrors the sky more the more it faces up
                    k_g = 0.1 + 0.3 * max(0.0, n[2])
                    rgb = tuple(int(c * (1 - k_g) + 150 * k_g) for c in rgb)
                draw.polygon([tuple(q) for q in cam.project(xyz)], fill=_tint(rgb, k))
    return visible


def _pose(yaw: float, dx: float, dy: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0, dx], [s, c, 0, dy], [0, 0, 1, 0.0]])


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull of 2-D points (monotone chain)."""
    pts = sorted(map(tuple, pts))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


# ---------------------------------------------------------------------------------------------
# Scenes and images


@dataclass(frozen=True)
class Scene:
    """Place and light of one video sequence; many vehicles appear in each."""

    kind: str  # road, parking or crossing
    ground_rgb: tuple[int, int, int]
    line_rgb: tuple[int, int, int]
    grass: bool
    sun_az: float  # degrees, vehicle frame
    sun_el: float
    ambient: float
    diffuse: float
    temperature: tuple[float, float, float]  # RGB gains
    exposure: float


def random_scene(rng: np.random.Generator) -> Scene:
    kind = ("road", "parking", "crossing")[rng.choice(3, p=[0.45, 0.4, 0.15])]
    concrete = kind == "parking" and rng.random() < 0.3
    g = rng.uniform(150, 175) if concrete else rng.uniform(55, 105)
    ground = _jitter_rgb(rng, (g, g * 0.99, g * 0.97), 0.03)
    line = (235, 235, 230) if rng.random() < 0.8 else (225, 185, 40)
    overcast = rng.random() < 0.35
    warm = rng.uniform(-1, 1)  # colour temperature: warm evening light to cool shade
    return Scene(
        kind=kind, ground_rgb=ground, line_rgb=line, grass=bool(rng.random() < 0.35),
        sun_az=float(rng.uniform(0, 360)), sun_el=float(rng.uniform(25, 70)),
        ambient=float(rng.uniform(0.75, 0.9) if overcast else rng.uniform(0.45, 0.6)),
        diffuse=float(rng.uniform(0.1, 0.2) if overcast else rng.uniform(0.45, 0.65)),
        temperature=(1 + 0.08 * warm, 1.0, 1 - 0.1 * warm),
        exposure=float(rng.uniform(0.75, 1.2)),
    )


@dataclass(frozen=True)
class ImageJob:
    """Everything that decides one image; details (noise, shapes) come from rng(seed, index)."""

    index: int
    path: str  # relative to the tree root
    split: str  # train, query_val, gallery_val, query_test, gallery_test or distractor
    kind: str  # vehicle; for distractors also background or partial (false detections)
    identity: Identity
    heading: float  # degrees, camera azimuth in the vehicle frame
    altitude: float
    pitch: float
    roll: float
    scene: Scene
    neighbours: int
    occluder: bool  # a tree canopy over part of the box
    blur: float  # Gaussian blur radius in pixels, 0 for none
    jpeg_quality: int
    margins: tuple[float, float, float, float]  # box jitter: left, top, right, bottom, x size


def _ground(draw, cam: Camera, scene: Scene, rng: np.random.Generator, bt_len: float) -> None:
    """Markings and grass, drawn as ground polygons through the camera (exact perspective)."""

    def poly(pts_xy, rgb):
        pts = np.column_stack([np.asarray(pts_xy, float), np.zeros(len(pts_xy))])
        draw.polygon([tuple(q) for q in cam.project(pts)], fill=rgb)

    def box(x0, x1, y0, y1, rgb):
        poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], rgb)

    line = _tint(scene.line_rgb, rng.uniform(0.8, 1.0))  # worn paint
    off = rng.uniform(-0.4, 0.4)  # the vehicle is never quite centred in its lane or stall
    if scene.grass:
        edge = (1 if rng.random() < 0.5 else -1) * rng.uniform(3.5, 7.0)
        far = edge + np.sign(edge) * 40
        box(-40, 40, edge, far, _jitter_rgb(rng, (72, 108, 48), 0.15))
        box(-40, 40, edge - 0.1, edge + 0.1, (170, 170, 165))  # kerb
    if scene.kind in ("road", "crossing"):
        phase = rng.uniform(0, 9)
        for k in range(-2, 2):
            y = off + 1.75 + 3.5 * k
            if k == -2:
                box(-40, 40, y - 0.08, y + 0.08, line)  # solid edge line
                continue
            for x in np.arange(-40 + phase, 40, 9.0):
                box(x, x + 3.0, y - 0.07, y + 0.07, line)
        if scene.kind == "crossing":
            x0 = (1 if rng.random() < 0.5 else -1) * (bt_len / 2 + rng.uniform(1, 3))
            for y in np.arange(-9, 9, 1.0):
                box(x0, x0 + 3.0, y, y + 0.5, line)
    else:
        stall = rng.uniform(2.4, 2.8)
        nose = 1 if rng.random() < 0.5 else -1
        end = nose * (bt_len / 2 + rng.uniform(0.2, 0.6))
        for k in range(-4, 5):
            y = off + stall / 2 + k * stall
            box(min(end, end - nose * 5.4), max(end, end - nose * 5.4), y - 0.06, y + 0.06, line)
            box(min(end, end + nose * 5.4), max(end, end + nose * 5.4), y - 0.06, y + 0.06, line)
        box(end - 0.06, end + 0.06, -12, 12, line)


def _noise(rng: np.random.Generator, size: tuple[int, int], cells: int, amp: float) -> np.ndarray:
    """Smooth multiplicative noise (H, W): random cells upsampled bicubically."""
    small = Image.fromarray(rng.normal(0, amp, (cells, cells)).astype(np.float32), mode="F")
    return np.asarray(small.resize(size, Image.BICUBIC))


def render(job: ImageJob, settings: SynthSettings, seed: int) -> tuple[Image.Image, set[str]]:
    """Render one crop at its natural size. Returns the image and the target's visible faces."""
    rng = np.random.default_rng([seed, job.index])
    ident, scene, ss = job.identity, job.scene, settings.supersample
    bt = BODY_TYPES[ident.body]
    parts = vehicle_parts(ident)
    cam = make_camera(job.altitude, job.pitch, job.heading, job.roll, settings.focal_px,
                      target_z=bt.deck * 0.8)
    pose = _pose(0.0, 0.0, 0.0)

    # 1. The detection box: tight box of the vehicle's corners (and footprint), jittered.
    corners = np.concatenate([p.verts for p in parts])
    corners = np.concatenate([corners, corners * [1, 1, 0]])
    uv = cam.project(corners)
    (u0, v0), (u1, v1) = uv.min(0), uv.max(0)
    w, h = u1 - u0, v1 - v0
    ml, mt, mr, mb = job.margins
    u0, u1, v0, v1 = u0 - ml * w, u1 + mr * w, v0 - mt * h, v1 + mb * h
    if job.kind == "partial":  # a false detection that cuts a vehicle: shift the box off it
        du, dv = rng.uniform(0.4, 0.7) * (u1 - u0), rng.uniform(-0.3, 0.3) * (v1 - v0)
        du *= 1 if rng.random() < 0.5 else -1
        u0, u1, v0, v1 = u0 + du, u1 + du, v0 + dv, v1 + dv
    scale = min(1.0, settings.max_side / max(u1 - u0, v1 - v0))
    out_w, out_h = max(8, round((u1 - u0) * scale)), max(8, round((v1 - v0) * scale))
    cam.focal *= scale * ss
    cam.cx, cam.cy = -u0 * scale * ss, -v0 * scale * ss
    size = (out_w * ss, out_h * ss)

    # 2. Ground: paint and markings, smooth stains, and the shadows of the vehicles.
    img = Image.new("RGB", size, scene.ground_rgb)
    draw = ImageDraw.Draw(img)
    _ground(draw, cam, scene, rng, bt.length)
    el, az = math.radians(scene.sun_el), math.radians(scene.sun_az)
    sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    light = Light(sun, scene.ambient, scene.diffuse, shadow=0.3 + 0.5 * scene.diffuse)
    vehicles = [] if job.kind == "background" else [(parts, pose)]
    for i in range(job.neighbours):
        other = random_identity(rng, -1)
        if other.body in ("bus", "truck"):
            other = random_identity(rng, -1)
        side = 1 if i % 2 == 0 else -1
        if scene.kind == "parking":  # the next stall, roughly parallel
            dy = side * (BODY_TYPES[other.body].width + rng.uniform(0.6, 1.1))
            vehicles.append((vehicle_parts(other),
                             _pose(rng.normal(0, 0.05) + (math.pi if rng.random() < 0.2 else 0),
                                   rng.normal(0, 0.3), dy)))
        else:  # the car ahead or behind, or in the next lane
            ahead = rng.random() < 0.5
            gap = (bt.length + BODY_TYPES[other.body].length) / 2 + rng.uniform(1.0, 4.0)
            vehicles.append((vehicle_parts(other), _pose(rng.normal(0, 0.03),
                                                         side * gap if ahead else rng.normal(0, 2),
                                                         0 if ahead else side * 3.5)))
    mask = Image.new("L", size, 0)
    mdraw = ImageDraw.Draw(mask)
    for vparts, vpose in vehicles:
        pts = np.concatenate([p.verts for p in vparts]) @ vpose[:, :3].T + vpose[:, 3]
        ground = pts[:, :2] - pts[:, 2:3] / sun[2] * sun[:2]  # along the sun ray onto z = 0
        hull = _hull(ground)
        mdraw.polygon([tuple(q) for q in cam.project(np.column_stack([hull, 0 * hull[:, 0]]))],
                      fill=255)
    arr = np.asarray(img, np.float32)
    stain = 1 + _noise(rng, size, 5, 0.08) + _noise(rng, size, 24, 0.05)
    shadow = 1 - light.shadow * np.asarray(mask.filter(ImageFilter.BoxBlur(ss)), np.float32) / 255
    img = Image.fromarray(np.clip(arr * (stain * shadow)[..., None], 0, 255).astype(np.uint8))

    # 3. Vehicles, far to near, then a tree canopy over part of the box.
    draw = ImageDraw.Draw(img)
    vehicles.sort(key=lambda pv: -np.linalg.norm(pv[1][:, 3] - cam.pos))
    visible = set()
    for vparts, vpose in vehicles:
        faces = draw_vehicle(draw, cam, vparts, vpose, light)
        if vparts is parts:
            visible = faces
    if job.occluder:
        # a canopy reaching in from one edge: it hides part of the vehicle, rarely all of it
        a = rng.uniform(0, 2 * np.pi)
        cx, cy = (0.5 + rng.uniform(0.45, 0.65) * np.array([np.cos(a), np.sin(a)])) * size
        rad = rng.uniform(0.2, 0.45) * min(size)
        leaf = _jitter_rgb(rng, (44, 72, 34), 0.25)
        for _ in range(rng.integers(5, 10)):  # clumps of leaves, each lit on one side
            x, y = cx + rng.normal(0, rad * 0.5), cy + rng.normal(0, rad * 0.5)
            r = rad * rng.uniform(0.4, 0.8)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_tint(leaf, 0.7))
            r2 = 0.7 * r
            x2, y2 = x - 0.2 * r * sun[0], y - 0.2 * r * sun[1]
            draw.ellipse([x2 - r2, y2 - r2, x2 + r2, y2 + r2], fill=_tint(leaf, 1.15))

    # 4. Camera: down to the stored size, exposure and colour temperature, noise, blur.
    img = img.reduce(ss) if ss > 1 else img
    if img.size != (out_w, out_h):
        img = img.resize((out_w, out_h), Image.BILINEAR)
    gain = np.asarray(scene.temperature, np.float32) * scene.exposure
    grain = rng.normal(0, rng.uniform(1.5, 5.0), (out_h, out_w, 1))  # sensor noise, grey
    arr = np.asarray(img, np.float32) * gain + grain
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if job.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(job.blur))
    return img, visible
