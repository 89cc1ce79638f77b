"""engine/data/preprocess.py: drawings and uploads → MNIST-style 28×28 images.

The references: mnist-5k itself (where its digits' centre of mass and ink box are), real digits
redrawn large on a canvas (they must come back as themselves), scipy's percentile and a brute-force
nearest-neighbour search.
"""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.data.preprocess import (BOX, CENTRE, SIZE, EmptyImageError, PreprocessError, centre_of_mass, from_canvas,
                                    from_image_bytes, mnist_style)

CANVAS = 280


@pytest.fixture(scope="module")
def mnist():
    from engine.data import load_dataset

    return load_dataset("mnist-5k")


def ink_box(image: np.ndarray, level: float = 0.0) -> tuple[int, int]:
    """(height, width) of the pixels brighter than `level`."""
    rows, cols = np.flatnonzero((image > level).any(1)), np.flatnonzero((image > level).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def rgba(gray: np.ndarray) -> np.ndarray:
    """A grey canvas (H, W) in [0, 1] → opaque RGBA uint8, as the drawing canvas returns it."""
    g = (np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def redraw(digit: np.ndarray, scale: int, top: int, left: int, bilevel: bool = False) -> np.ndarray:
    """A 28×28 digit upscaled by `scale` and placed at (top, left) on a black 280×280 canvas.

    Smooth (bicubic) grey levels, or bilevel like a pen stroke (and like the NIST scans MNIST was made from).
    """
    big = np.clip(np.asarray(Image.fromarray(digit.astype(np.float32)).resize((28 * scale, 28 * scale),
                                                                               Image.Resampling.BICUBIC)), 0, 1)
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    canvas[top:top + 28 * scale, left:left + 28 * scale] = (big > 0.5) if bilevel else big
    return canvas


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def best_shift_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation after the best whole-pixel shift of ±1: MNIST's own rounding of the centre is ±0.5 px."""
    return max(correlation(np.roll(a, (dy, dx), (0, 1)), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


# -- the MNIST procedure ---------------------------------------------------------------------------


def test_centre_is_where_mnist_puts_it(mnist):
    """mnist-5k's digits: every ink box is 20 px on its longer side, the centre of mass sits at CENTRE ± rounding."""
    x = mnist.x_test[:, 0].numpy()
    com = np.array([centre_of_mass(img) for img in x])  # (N, 2)
    assert np.allclose(com.mean(0), CENTRE, atol=0.05), com.mean(0)
    assert np.allclose(com.std(0), 1 / math.sqrt(12), atol=0.03)  # a uniform ±0.5 px rounding error
    assert all(max(ink_box(img)) == BOX for img in x[:200])


@pytest.mark.parametrize("shape", [
    ("ellipse", (10, 10, 90, 200)),  # tall, in the top left corner
    ("ellipse", (150, 160, 275, 270)),  # small-ish, bottom right
    ("rectangle", (100, 20, 260, 60)),  # wide bar: aspect 160:40
    ("line", (30, 250, 250, 30)),  # a diagonal stroke
])
def test_a_blob_anywhere_is_boxed_and_centred(shape):
    kind, box = shape
    img = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(img)
    if kind == "line":
        draw.line(box, fill=255, width=20)
    else:
        getattr(draw, kind)(box, fill=255)
    x = from_canvas(rgba(np.asarray(img) / 255.0))
    assert x.shape == (SIZE, SIZE) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == pytest.approx(1.0)
    cy, cx = centre_of_mass(x)
    assert abs(cy - CENTRE) <= 0.5 and abs(cx - CENTRE) <= 0.5, (cy, cx)
    h, w = ink_box(x)
    assert max(h, w) == BOX  # MNIST's 20×20 box, filled on the longer side, nothing outside it
    src_h, src_w = ink_box(np.asarray(img) / 255.0, 0.1)
    assert min(h, w) == pytest.approx(BOX * min(src_h, src_w) / max(src_h, src_w), abs=1.0)  # aspect kept
    assert (h > w) == (src_h > src_w)


@pytest.mark.parametrize("bilevel, worst, mean", [(False, 0.85, 0.93), (True, 0.9, 0.95)])
def test_mnist_digits_redrawn_large_come_back(mnist, bilevel, worst, mean):
    """Real test digits, upscaled 6–9× and moved around a 280×280 canvas, come back as themselves.

    Per digit, after the best ±1 px shift (MNIST's own centring rounds to ±0.5 px, so a digit whose
    centre of mass sits near a half pixel may land one pixel over); on average, as they are.
    """
    rng = np.random.default_rng(0)
    digits = mnist.x_test[:30, 0].numpy()
    ours, naive = [], []
    for digit in digits:
        scale = int(rng.integers(6, 10))
        top, left = (int(v) for v in rng.integers(0, CANVAS - 28 * scale + 1, size=2))
        canvas = redraw(digit, scale, top, left, bilevel)
        x = from_canvas(rgba(canvas))
        ours.append(correlation(x, digit))
        assert best_shift_correlation(x, digit) > worst
        # the baseline without the procedure: shrink the whole canvas to 28×28
        plain = np.asarray(Image.fromarray(canvas).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
        naive.append(correlation(plain, digit))
    assert np.mean(ours) > mean, np.mean(ours)
    assert np.mean(ours) > np.mean(naive) + 0.3  # cropping, scaling and centring is what makes it MNIST-like


def test_dark_on_light_and_transparent_canvases_give_the_same_digit(mnist):
    digit = mnist.x_test[7, 0].numpy()
    canvas = redraw(digit, 8, 30, 50)
    white_on_black = from_canvas(rgba(canvas))
    np.testing.assert_allclose(from_canvas(rgba(1.0 - canvas)), white_on_black, atol=0.02)
    strokes = np.zeros((CANVAS, CANVAS, 4), np.uint8)  # white strokes on a transparent canvas
    strokes[..., :3] = 255
    strokes[..., 3] = (canvas * 255 + 0.5).astype(np.uint8)
    np.testing.assert_allclose(from_canvas(strokes), white_on_black, atol=0.02)


@pytest.mark.parametrize("pixels", [np.zeros((CANVAS, CANVAS, 4), np.uint8),  # transparent
                                    rgba(np.zeros((CANVAS, CANVAS))),  # black
                                    rgba(np.ones((CANVAS, CANVAS))),  # white (inverted: empty)
                                    rgba(np.full((CANVAS, CANVAS), 0.05))])  # a faint grey smudge
def test_an_empty_canvas_is_an_empty_image_error(pixels):
    with pytest.raises(EmptyImageError, match="draw a digit"):
        from_canvas(pixels)


def test_bad_shapes_are_errors():
    with pytest.raises(PreprocessError, match=r"\(H, W, 4\)"):
        from_canvas(np.zeros((28, 28), np.uint8))
    with pytest.raises(PreprocessError, match=r"\(H, W\)"):
        mnist_style(np.zeros((2, 3, 4)))


# -- uploads ---------------------------------------------------------------------------------------


def paper_photo(digit: np.ndarray, rng, size=(300, 400), paper=0.85, ink=0.15, noise=0.03) -> np.ndarray:
    """A digit written dark on light paper, with sensor noise: (H, W) uint8."""
    h, w = size
    canvas = np.zeros((h, w), np.float32)
    canvas[40:40 + 224, 90:90 + 224] = np.clip(np.asarray(
        Image.fromarray(digit.astype(np.float32)).resize((224, 224), Image.Resampling.BICUBIC)), 0, 1)
    photo = paper + (ink - paper) * canvas + rng.normal(0, noise, size)
    return (np.clip(photo, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_uploads_in_every_layout_give_the_digit(mnist):
    digit = mnist.x_test[11, 0].numpy()
    rng = np.random.default_rng(1)
    photo = paper_photo(digit, rng)
    expected = from_canvas(rgba(redraw(digit, 8, 20, 20)))
    transparent = np.zeros(photo.shape + (4,), np.uint8)  # black ink on a transparent background
    transparent[..., 3] = 255 - paper_photo(digit, rng, paper=1.0, ink=0.0, noise=0.0)
    uploads = {
        "grey PNG": png(photo),
        "RGB JPEG": png(np.dstack([photo] * 3), fmt="JPEG", quality=85),
        "palette PNG": png(np.dstack([photo] * 3), mode="P"),
        "transparent PNG": png(transparent),
        "16-bit PNG": png(photo.astype(np.uint16) * 257, mode="I;16"),
        "white on black PNG": png(255 - photo),
    }
    for name, data in uploads.items():
        x = from_image_bytes(data)
        assert x.shape == (SIZE, SIZE) and x.dtype == np.float32, name
        assert best_shift_correlation(x, digit) > 0.9, name
        assert correlation(x, expected) > 0.9, name


def test_a_big_photo_is_shrunk_first(mnist):
    digit = mnist.x_test[2, 0].numpy()
    photo = np.asarray(Image.fromarray(paper_photo(digit, np.random.default_rng(2))).resize((3000, 2250)))
    x = from_image_bytes(png(photo, fmt="JPEG", quality=90))
    assert best_shift_correlation(x, digit) > 0.9


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width × height pixels with one tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bad_uploads_say_what_to_do():
    good = png(np.zeros((50, 50), np.uint8) + 200)
    cases = {
        b"": "file is empty",
        b"%PDF-1.4 not an image at all": "not an image",
        png(np.zeros((60, 60), np.uint8))[:60]: "damaged or truncated",
        png_header_only(10_000, 5_000): "50 megapixels",  # over our limit: refused from the header
        png_header_only(100_000, 100_000): "decompression bomb",  # 10 gigapixels: Pillow's own check refuses it
        png(np.zeros((40, 40), np.uint8), fmt="GIF"): "upload a PNG or a JPEG",
    }
    for data, message in cases.items():
        with pytest.raises(PreprocessError, match=message):
            from_image_bytes(data)
    with pytest.raises(PreprocessError, match=r"over the limit of .*crop it"):
        from_image_bytes(good, max_bytes=len(good) - 1)
    with pytest.raises(PreprocessError, match="shrink or crop"):
        from_image_bytes(good, max_pixels=49 * 50)
    with pytest.raises(EmptyImageError, match="no digit found"):
        from_image_bytes(good)  # one flat grey
