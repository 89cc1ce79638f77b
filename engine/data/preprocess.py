"""A drawing or an uploaded picture → a 28×28 image made the way MNIST digits were made.

MNIST (LeCun et al. 1998): "the images were size normalized to fit in a 20×20 pixel box while
preserving their aspect ratio … [then] centered in a 28×28 image by computing the center of mass of
the pixels, and translating the image so as to position this point at the center of the 28×28
field." `mnist_style` does exactly that:

1. crop to the ink's bounding box (pixels brighter than `INK_LEVEL`);
2. resize so the longer side is `BOX` = 20 px, keeping the aspect ratio, with an antialiasing
   filter (Pillow's resize widens its kernel when it shrinks, so thin strokes turn grey, not gone);
3. paste into 28×28 at the integer offset that puts the centre of mass nearest (`CENTRE`, `CENTRE`).

The shift is rounded to whole pixels, as MNIST's was: in mnist-5k every digit's ink box is exactly
20 px (a sub-pixel shift would smear it over 21), and its centre of mass sits at pixel index
14.0 ± 0.29 on both axes — 0.29 = 1/√12 is the spread of a uniform rounding error, centred on 14,
not on the field's geometric centre 13.5. A model trained on MNIST has only ever seen digits placed
that way, so a drawing placed the same way is what it reconstructs best.

Everything is white ink on black in [0, 1], like the datasets. `from_canvas` reads the drawing
canvas's RGBA pixels; `from_image_bytes` reads an uploaded PNG/JPEG, refusing damaged files,
oversized files and decompression bombs, and inverting dark-on-light pictures.
"""

from __future__ import annotations

import io
import math
import warnings
from struct import error as StructError  # Pillow's decoders raise it on some malformed headers

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = 28  # the output is SIZE × SIZE
BOX = 20  # the ink's longer side after resizing (MNIST's 20×20 box)
CENTRE = 14.0  # where the centre of mass goes, in pixel indices (row, col); see the module docstring
INK_LEVEL = 0.1  # a pixel brighter than this (of [0, 1]) counts as ink when cropping
# Antialiased when shrinking (Pillow widens the kernel) and without ringing; redrawing mnist-5k digits
# large and back, it matched the originals best of Pillow's filters (box, Hamming, Lanczos: within 0.005
# in correlation).
RESAMPLE = Image.Resampling.BILINEAR

MAX_UPLOAD_BYTES = 10 * 2**20  # 10 MiB: a phone photo fits, a raw scan does not
MAX_UPLOAD_PIXELS = 40_000_000  # e.g. 8000 × 5000; checked from the header, before any decoding
# A PNG has no cheap reduced decode (a JPEG's draft decodes at 1/2, 1/4 or 1/8 of its size), and reading
# one costs about 8.5 bytes a pixel here (the decoded image, its grey copy, float32 arrays): a 39 KB
# 6300 × 6300 PNG cost 340 MB and 3 s. 2²³ pixels (a 4K screenshot, 3840 × 2160, fits) is at most ~70 MB.
MAX_PNG_PIXELS = 2**23
WORK_SIDE = 1024  # big uploads are shrunk to this longer side first: a digit needs no more detail
UPLOAD_FORMATS = ("PNG", "JPEG")


class PreprocessError(ValueError):
    """The input cannot be turned into a digit image; the message says what to do instead."""


class EmptyImageError(PreprocessError):
    """No ink: an empty canvas or a blank picture (the Draw page shows a hint, not an error)."""


# ---------------------------------------------------------------------------------------------
# the MNIST procedure


def mnist_style(gray: np.ndarray, ink_level: float = INK_LEVEL) -> np.ndarray:
    """A grey image (H, W) in [0, 1], white ink on black → (28, 28) float32 in [0, 1], MNIST-style.

    Crop to the ink, resize the longer side to 20 px (aspect kept, antialiased), rescale so the
    brightest pixel is 1 (every MNIST digit peaks at 255), then shift by whole pixels so the
    centre of mass lands nearest (14, 14). Raises EmptyImageError when no pixel exceeds ink_level.
    """
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or gray.size == 0:
        raise PreprocessError(f"expected a grey image (H, W), got shape {gray.shape}")
    gray = np.nan_to_num(np.clip(gray, 0.0, 1.0))
    ink = gray > ink_level
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        raise EmptyImageError("there is no ink in the image: draw a digit (light strokes on the dark canvas)")
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # (h, w), the ink's bounding box
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))  # longer side = BOX exactly
    small = Image.fromarray(crop).resize((new_w, new_h), RESAMPLE)
    small = np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)  # (new_h, new_w)
    peak = float(small.max())
    if peak <= 0.0:
        raise EmptyImageError("the ink vanished when shrunk to 20 px: draw bigger or bolder strokes")
    small /= peak
    # centre of mass in pixel indices: c = Σ i·m_i / Σ m_i over rows (cy) and columns (cx)
    mass = float(small.sum())
    cy = float((small.sum(1) * np.arange(new_h)).sum()) / mass
    cx = float((small.sum(0) * np.arange(new_w)).sum()) / mass
    # whole-pixel offsets (round half up), kept inside the field: the 20 px box always fits in 28
    top = min(max(math.floor(CENTRE - cy + 0.5), 0), SIZE - new_h)
    left = min(max(math.floor(CENTRE - cx + 0.5), 0), SIZE - new_w)
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + new_h, left:left + new_w] = small
    return out


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass of a grey image in pixel indices; (nan, nan) for an all-black one."""
    image = np.asarray(image, dtype=np.float64)
    mass = image.sum()
    if mass <= 0:
        return math.nan, math.nan
    return (float((image.sum(1) * np.arange(image.shape[0])).sum() / mass),
            float((image.sum(0) * np.arange(image.shape[1])).sum() / mass))


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make a grey image white-on-black: invert it when its background (the border's median) is light."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if float(np.median(border)) > 0.5 else gray


# ---------------------------------------------------------------------------------------------
# the drawing canvas


def from_canvas(rgba: np.ndarray) -> np.ndarray:
    """The canvas's pixels (H, W, 4) uint8 RGBA (or RGB) → (28, 28) float32, MNIST-style.

    The drawing is composited over black (grey = luminance · alpha), so white strokes on a black
    or a transparent canvas are ink; a light canvas with dark strokes is inverted. Raises
    EmptyImageError for an empty canvas.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or min(rgba.shape[:2]) == 0:
        raise PreprocessError(f"expected canvas pixels (H, W, 4), got shape {rgba.shape}")
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    # ITU-R BT.601 luma, the weights Pillow's convert("L") uses
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # (H, W)
    alpha = rgba[..., 3].astype(np.float32) / 255.0 if rgba.shape[2] == 4 else 1.0
    return mnist_style(_ink_on_black(luma * alpha))


# ---------------------------------------------------------------------------------------------
# an uploaded picture


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open and decode an upload, checking its format and its size from the header before decoding."""
    try:
        with warnings.catch_warnings():
            # Pillow warns on large images and raises on enormous ones; we check our own (lower) limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in UPLOAD_FORMATS:
                raise PreprocessError(f"this is a {img.format} image; upload a PNG or a JPEG")
            w, h = img.size
            if img.format == "PNG":
                max_pixels = min(max_pixels, MAX_PNG_PIXELS)
            if w * h > max_pixels:
                raise PreprocessError(f"the image is {w:,}×{h:,} pixels ({w * h / 1e6:.0f} megapixels), over the "
                                      f"limit of {max_pixels / 1e6:.1f} for a {img.format}: shrink or crop it to the "
                                      "digit and upload it again")
            if img.format == "JPEG":
                img.draft("L", (WORK_SIDE, WORK_SIDE))  # let the JPEG decoder shrink by 2/4/8 cheaply
            img.load()
            return ImageOps.exif_transpose(img)  # phone photos are stored sideways with a rotation tag
    except PreprocessError:
        raise
    except UnidentifiedImageError:
        raise PreprocessError("this file is not an image Pillow can read; upload a PNG or a JPEG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError("the image is far too large (it looks like a decompression bomb); upload a "
                              "smaller picture of the digit") from None
    except (OSError, ValueError, SyntaxError, EOFError, StructError) as e:
        raise PreprocessError(f"the image file is damaged or truncated ({e}); save it again as PNG or JPEG "
                              "and upload that") from None


def _to_gray(img: Image.Image) -> np.ndarray:
    """A decoded picture → grey (H, W) float32 in [0, 1] with ink bright.

    With transparency, the ink is what is opaque (grey = alpha), whatever its colour; otherwise it is
    the luminance, inverted when the background is light (a digit written on paper).
    """
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float greyscale PNG
        gray = np.asarray(img, dtype=np.float32)
        top = float(gray.max())
        return _ink_on_black(gray / top if top > 0 else gray)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        alpha = np.asarray(img.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
        if float(alpha.min()) < 0.5:  # a real transparent background: opacity is the ink
            return alpha
    return _ink_on_black(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)


def _clean(gray: np.ndarray) -> np.ndarray:
    """A photo's grey levels → ink in [0, 1] on a 0 background, without its sensor noise.

    A 3×3 median filter removes isolated noisy pixels (they would stretch the ink's bounding box to
    the whole picture) and keeps strokes; then the background level b (the median: most of the
    picture is paper) plus a noise margin m = 5 · 1.4826 · MAD (5 σ of Gaussian noise) maps to 0 and
    the brightest ink to 1: grey = clip((g − b − m) / (max − b − m)).
    """
    from scipy.ndimage import median_filter

    gray = median_filter(gray, size=3, mode="nearest")
    background, top = float(np.median(gray)), float(gray.max())
    if top - background < 0.1:
        raise EmptyImageError("no digit found: the picture is (nearly) one flat colour; upload a picture "
                              "of a digit with clear contrast to its background")
    floor = background + min(5 * 1.4826 * float(np.median(np.abs(gray - background))), (top - background) / 2)
    return np.clip((gray - floor) / (top - floor), 0.0, 1.0)


def from_image_bytes(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES,
                     max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """An uploaded PNG or JPEG (bytes) → (28, 28) float32 in [0, 1], MNIST-style.

    Greyscale, RGB, palette and transparent pictures all work; dark ink on light paper is inverted.
    Raises PreprocessError (with what to do) for a non-image, a damaged file, a file over max_bytes
    or an image over max_pixels (checked from its header, so a decompression bomb is never decoded).
    """
    if not data:
        raise PreprocessError("the file is empty; upload a PNG or a JPEG of a digit")
    if len(data) > max_bytes:
        raise PreprocessError(f"the file is {_megabytes(len(data))}, over the limit of {_megabytes(max_bytes)}: "
                              "crop it to the digit or save it smaller and upload it again")
    gray = _to_gray(_open_checked(bytes(data), max_pixels))  # (H, W)
    h, w = gray.shape
    if max(h, w) > WORK_SIDE:  # a digit needs no more detail; shrinking first keeps the rest fast
        scale = WORK_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))
    return mnist_style(_clean(gray))
