"""Draw trayproxy's icons with Pillow: ``python assets/make_icons.py``.

Writes, next to this script: ``trayproxy.png`` (128 px, the source), ``trayproxy-error.png``
(the error state), ``trayproxy.ico`` (16-256 px) and ``trayproxy.icns`` (macOS).
The glyph is a route: one line coming in from the left and forking to two arrow heads, on
a rounded square. It is drawn at 8x and scaled down, so edges stay smooth at 16 px.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SCALE = 8
SIZE = 128

TOP = (34, 122, 214)  # blue
BOTTOM = (20, 70, 160)
ERROR_TOP = (118, 118, 126)  # grey: not serving
ERROR_BOTTOM = (78, 78, 86)
BADGE = (222, 44, 44)
WHITE = (255, 255, 255, 255)


def _gradient(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGBA", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):
        t = y / (size - 1)
        color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (size, y)], fill=(*color, 255))
    return img


def _arrow(
    draw: ImageDraw.ImageDraw, tip: tuple[float, float], direction: tuple[float, float], size: float
) -> None:
    dx, dy = direction
    norm = (dx * dx + dy * dy) ** 0.5
    dx, dy = dx / norm, dy / norm
    px, py = -dy, dx
    x, y = tip
    base = (x - dx * size, y - dy * size)
    draw.polygon(
        [
            tip,
            (base[0] + px * size * 0.62, base[1] + py * size * 0.62),
            (base[0] - px * size * 0.62, base[1] - py * size * 0.62),
        ],
        fill=WHITE,
    )


def draw_icon(error: bool = False) -> Image.Image:
    s = SIZE * SCALE
    u = s / 128  # one unit of the 128 px design grid
    top, bottom = (ERROR_TOP, ERROR_BOTTOM) if error else (TOP, BOTTOM)
    background = _gradient(s, top, bottom)
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).rounded_rectangle([4 * u, 4 * u, 124 * u, 124 * u], 28 * u, fill=255)
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    img.paste(background, (0, 0), mask)
    draw = ImageDraw.Draw(img)
    width = round(13 * u)
    # the incoming line and the fork
    draw.line([(20 * u, 64 * u), (56 * u, 64 * u)], fill=WHITE, width=width)
    draw.line([(54 * u, 64 * u), (84 * u, 36 * u)], fill=WHITE, width=width, joint="curve")
    draw.line([(54 * u, 64 * u), (84 * u, 92 * u)], fill=WHITE, width=width, joint="curve")
    r = width / 2
    for cx, cy in ((20 * u, 64 * u), (56 * u, 64 * u)):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=WHITE)
    _arrow(draw, (106 * u, 36 * u), (1, 0), 26 * u)
    _arrow(draw, (106 * u, 92 * u), (1, 0), 26 * u)
    draw.line([(80 * u, 36 * u), (86 * u, 36 * u)], fill=WHITE, width=width)
    draw.line([(80 * u, 92 * u), (86 * u, 92 * u)], fill=WHITE, width=width)
    if error:
        cx, cy, rad = 96 * u, 96 * u, 30 * u
        draw.ellipse(
            [cx - rad - 5 * u, cy - rad - 5 * u, cx + rad + 5 * u, cy + rad + 5 * u],
            fill=(255, 255, 255, 255),
        )
        draw.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=(*BADGE, 255))
        draw.rounded_rectangle([cx - 5 * u, cy - 19 * u, cx + 5 * u, cy + 6 * u], 4 * u, fill=WHITE)
        draw.ellipse([cx - 5.5 * u, cy + 11 * u, cx + 5.5 * u, cy + 22 * u], fill=WHITE)
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    normal = draw_icon()
    error = draw_icon(error=True)
    normal.save(HERE / "trayproxy.png")
    error.save(HERE / "trayproxy-error.png")
    big = draw_icon().resize((256, 256), Image.Resampling.LANCZOS)
    big.save(
        HERE / "trayproxy.ico",
        sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)],
    )
    big.resize((512, 512), Image.Resampling.LANCZOS).save(HERE / "trayproxy.icns")
    print(f"wrote icons to {HERE}")


if __name__ == "__main__":
    main()
