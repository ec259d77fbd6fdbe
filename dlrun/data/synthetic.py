"""Built-in synthetic digits 0-9 drawn with OpenCV: offline, deterministic, MNIST- or SVHN-like.

`clean`: a white digit on black (MNIST-like). `street`: house-number-like, a digit on a textured
grey background with neighbouring digits cut by the edges, blur and contrast changes.
Each image comes from its own seeded generator, so a data set is the same on every machine.
"""

from __future__ import annotations

import numpy as np

from dlrun.data.images import cv2 as _opencv

cv2 = _opencv()  # through dlrun.data.images: the image size limit is set before OpenCV loads

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
SCALE = 2  # draw at twice the size, then shrink with INTER_AREA for anti-aliasing


def _draw_digit(canvas: np.ndarray, digit: int, rng: np.random.Generator, center: tuple[float, float],
                height: float, color: int) -> None:
    font = FONTS[rng.integers(len(FONTS))] | (cv2.FONT_ITALIC if rng.random() < 0.2 else 0)
    thickness = int(rng.integers(2, 6))
    (w, h), _ = cv2.getTextSize(str(digit), font, 1.0, thickness)
    scale = height / max(h, 1)
    (w, h), _ = cv2.getTextSize(str(digit), font, scale, thickness)
    org = (int(center[0] - w / 2), int(center[1] + h / 2))
    cv2.putText(canvas, str(digit), org, font, scale, color, thickness, cv2.LINE_AA)


def _transform(img: np.ndarray, rng: np.random.Generator, max_angle: float, max_shift: float,
               border: int) -> np.ndarray:
    size = img.shape[0]
    angle = rng.uniform(-max_angle, max_angle)
    zoom = rng.uniform(0.85, 1.1)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    matrix[:, 2] += rng.uniform(-max_shift, max_shift, size=2) * size
    return cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=border)


def _clean(digit: int, rng: np.random.Generator, size: int) -> np.ndarray:
    big = size * SCALE
    canvas = np.zeros((big, big), np.uint8)
    _draw_digit(canvas, digit, rng, (big / 2, big / 2), big * rng.uniform(0.55, 0.75), 255)
    canvas = _transform(canvas, rng, 15, 0.08, 0)
    img = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img += rng.normal(0, rng.uniform(0, 12), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _street(digit: int, rng: np.random.Generator, size: int) -> np.ndarray:
    big = size * SCALE
    base = rng.uniform(60, 200)
    coarse = rng.normal(0, rng.uniform(5, 30), (4, 4)).astype(np.float32)
    texture = cv2.resize(coarse, (big, big), interpolation=cv2.INTER_CUBIC)
    gradient = np.linspace(-1, 1, big, dtype=np.float32)[None, :] * rng.uniform(-25, 25)
    background = np.clip(base + texture + gradient, 0, 255)
    contrast = rng.uniform(45, 110) * (1 if base < 128 else -1) * (1 if rng.random() < 0.85 else -1)
    ink = int(np.clip(base + contrast, 0, 255))
    layer = np.zeros((big, big), np.uint8)
    height = big * rng.uniform(0.5, 0.75)
    _draw_digit(layer, digit, rng, (big / 2, big / 2), height, 255)
    for side in (-1, 1):  # neighbouring house-number digits, cut by the edges
        if rng.random() < 0.7:
            offset = side * height * rng.uniform(0.75, 0.95)
            _draw_digit(layer, int(rng.integers(10)), rng, (big / 2 + offset, big / 2), height, 255)
    layer = _transform(layer, rng, 8, 0.05, 0)
    alpha = layer.astype(np.float32) / 255.0
    img = background * (1 - alpha) + ink * alpha
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 2.0))
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    img = (img - img.mean()) * rng.uniform(0.6, 1.2) + img.mean() + rng.uniform(-20, 20)
    img += rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_digits(n: int, style: str = "clean", seed: int = 0, size: int = 28,
                     offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` grey digit images (uint8, n x size x size) and their labels 0-9, balanced and shuffled.

    Image i depends only on (seed, style, offset + i), so train and test sets drawn with different
    offsets never share an image.
    """
    draw = _clean if style == "clean" else _street
    style_id = 0 if style == "clean" else 1
    labels = np.arange(n) % 10
    np.random.default_rng([seed, style_id, offset, n]).shuffle(labels)
    images = np.empty((n, size, size), np.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, style_id, offset + i])
        images[i] = draw(int(labels[i]), rng, size)
    return images, labels.astype(np.int64)
