"""Write a small data set of your own, in every layout dlrun reads from files, to try it on.

    python examples/make_my_data.py my_data

writes, under my_data/ (three classes of 32x32 grey shapes: circle, square, triangle):

    images/circle/000.png ...   an image folder: one sub-folder per class (data.source: folder)
    X.npy, Y.npy                the same images as an .npy pair (data.source: npy)
    idx/train-*, idx/t10k-*     MNIST-style idx files (data.source: idx)
    shapes.csv                  a table: measurements of each shape, label 0-2 (data.source: csv)
    new/*.png                   a few images no model has seen, for dlrun predict

Only NumPy and OpenCV are needed (both come with dlrun). The same seed writes the same files.
"""

from __future__ import annotations

import argparse
import csv
import struct
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("circle", "square", "triangle")
SIZE = 32


def draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One grey 32x32 image of a shape of `kind`, at a random place, size and brightness."""
    img = rng.normal(20, 8, (SIZE, SIZE)).clip(0, 255).astype(np.uint8)
    r = int(rng.integers(6, 11))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, 2))
    shade = int(rng.integers(150, 256))
    if kind == "circle":
        cv2.circle(img, (cx, cy), r, shade, -1)
    elif kind == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), shade, -1)
    else:
        points = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [points], shade)
    return img


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as MNIST's: magic (unsigned bytes, the number of dimensions), sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("my_data"), help="folder to write (my_data)")
    parser.add_argument("--per-class", type=int, default=60, help="training images per class (60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.per_class
    labels = np.repeat(np.arange(len(CLASSES)), n + n // 3)
    rng.shuffle(labels)
    pictures = np.stack([draw(CLASSES[k], rng) for k in labels])
    for k, name in enumerate(CLASSES):
        (args.out / "images" / name).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(pictures[labels == k]):
            cv2.imwrite(str(args.out / "images" / name / f"{i:03d}.png"), img)
    np.save(args.out / "X.npy", pictures.astype(np.float32) / 255.0)
    np.save(args.out / "Y.npy", labels)
    (args.out / "idx").mkdir(exist_ok=True)
    cut = len(labels) * 3 // 4
    for split, part in (("train", slice(0, cut)), ("t10k", slice(cut, None))):
        write_idx(args.out / "idx" / f"{split}-images-idx3-ubyte", pictures[part])
        write_idx(args.out / "idx" / f"{split}-labels-idx1-ubyte", labels[part])
    with open(args.out / "shapes.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["area", "brightness", "filled", "label"])
        for img, k in zip(pictures, labels, strict=True):
            mask = img > 100
            rows.writerow([int(mask.sum()), round(float(img[mask].mean()) if mask.any() else 0.0, 1),
                           round(float(mask.sum()) / max(1, _box(mask)), 3), int(k)])
    (args.out / "new").mkdir(exist_ok=True)
    for i, kind in enumerate(CLASSES):
        cv2.imwrite(str(args.out / "new" / f"{kind}.png"), draw(kind, np.random.default_rng(10_000 + i)))
    print(f"wrote {args.out}/: images/ ({len(labels)} images, {len(CLASSES)} classes), X.npy + Y.npy, idx/, "
          "shapes.csv, new/")


def _box(mask: np.ndarray) -> int:
    """The area of the bounding box of the pixels in `mask`."""
    rows, cols = np.nonzero(mask)
    return int((np.ptp(rows) + 1) * (np.ptp(cols) + 1)) if rows.size else 0


if __name__ == "__main__":
    main()
