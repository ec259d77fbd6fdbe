"""Readers for every data source. Each returns RawData (arrays as stored) or raises DataError
naming the file and what to do. None of them imports TensorFlow."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import guard, images
from dlrun.data.features import parse_column, read_csv_rows, table_cells
from dlrun.data.named import KERAS_KEYS, RawData, load_h5, load_npz_file, require
from dlrun.data.synthetic import synthetic_digits
from dlrun.errors import DataError
from dlrun.store.files import atomic_path

KERAS_URLS = {
    "mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    "fashion_mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
}
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def keras_cache_dir() -> Path:
    """Where keras.datasets keeps downloads: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def load_keras_dataset(cfg: DataConfig) -> RawData:
    """mnist / fashion_mnist from data.path, else the keras cache; never downloads unless data.download."""
    if cfg.path:
        path = require(Path(cfg.path), f"{cfg.source} file or folder", "any")
        return load_idx_folder(path) if path.is_dir() else load_npz_file(path, cfg, split_ok=False, keys=KERAS_KEYS)
    cache = keras_cache_dir()
    if cfg.source == "mnist":
        target = cache / "mnist.npz"
        if not target.exists():
            _fetch_or_explain(cfg, target, [KERAS_URLS["mnist"]])
        return load_npz_file(target, cfg, split_ok=False, keys=KERAS_KEYS)
    folder = cache / "fashion-mnist"
    missing = [name for name in FASHION_FILES if not (folder / name).exists()]
    if missing:
        _fetch_or_explain(cfg, folder, [KERAS_URLS["fashion_mnist"] + name for name in missing])
    return load_idx_folder(folder)


def missing_keras_files(cfg: DataConfig) -> list[str]:
    """The files of mnist / fashion_mnist (no data.path) missing from the keras cache, when
    data.download will fetch them; DataError saying where to put them otherwise. Only stat."""
    cache = keras_cache_dir()
    target = cache / ("mnist.npz" if cfg.source == "mnist" else "fashion-mnist")
    wanted = ("",) if cfg.source == "mnist" else FASHION_FILES
    missing = [name for name in wanted if not (target / name if name else target).exists()]
    if missing and not cfg.download:
        base = KERAS_URLS[cfg.source]
        _fetch_or_explain(cfg, target, [base + name for name in missing])
    return missing


def _fetch_or_explain(cfg: DataConfig, target: Path, urls: list[str]) -> None:
    if cfg.download:
        for url in urls:
            download(url, target if target.suffix else target / url.rsplit("/", 1)[1])
        return
    listing = "\n  ".join(urls)
    raise DataError(
        f"{cfg.source} is not on this machine and dlrun does not download by default.\n"
        f"Put the file(s) at {target}{'' if target.suffix else '/'} (from:\n  {listing}\n), "
        f"or set data.path to a local {'mnist.npz-style file' if cfg.source == 'mnist' else 'idx folder'}, "
        "or allow a download with --set data.download=true.")


def download(url: str, target: Path) -> None:
    """Fetch `url` into `target` (written atomically); only when the user set data.download."""
    import urllib.error
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh:
            while chunk := response.read(1 << 20):
                fh.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: download failed ({exc}); put the file at {target} by hand") from None


def load_npy(cfg: DataConfig) -> RawData:
    """X.npy / Y.npy in data.path (the sign-language digits layout)."""
    folder = Path(cfg.path or ".")
    x_path, y_path = folder / cfg.x, folder / cfg.y
    # both headers first: a pair that cannot match is refused before either array is read
    x_shape, y_shape = guard.check_npy(x_path), guard.check_npy(y_path)
    if x_shape[:1] != y_shape[:1]:
        n_x, n_y = (shape[0] if shape else 1 for shape in (x_shape, y_shape))
        raise DataError(f"{folder}: X has {n_x} examples but Y has {n_y} labels; they must match")
    return RawData(load_array(x_path), load_array(y_path))


def load_array(path: Path) -> np.ndarray:
    """A .npy file's array (no pickles); DataError when it is not one. Check its header first (guard.check_npy)."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc}); save it with numpy.save") from None


IDX_NAME = re.compile(r"^(?P<split>train|t10k)-(?P<kind>images|labels)[.-]idx(?P<dim>[13])-ubyte(?P<gz>\.gz)?$")


read_idx = guard.read_idx  # the header checked first, gzip inflated only as far as it says


def load_idx_folder(folder: Path) -> RawData:
    """A folder of `train-*` and/or `t10k-*` idx image/label pairs."""
    require(folder, "idx folder", "dir")
    found: dict[tuple[str, str], Path] = {}
    for entry in sorted(folder.iterdir()):
        match = IDX_NAME.match(entry.name)
        if match:
            found.setdefault((match["split"], match["kind"]), entry)
    pairs = {}
    for split in ("train", "t10k"):
        images, labels = found.get((split, "images")), found.get((split, "labels"))
        if images and not labels:
            raise DataError(f"{folder}: found {images.name} but no {split}-labels-idx1-ubyte[.gz] beside it")
        if images and labels:
            pairs[split] = (read_idx(images), read_idx(labels))
    if not pairs:
        raise DataError(f"{folder}: no idx files (expected train-images-idx3-ubyte[.gz] and "
                        "train-labels-idx1-ubyte[.gz], or the t10k-* pair)")
    if len(pairs) == 1:
        (x, y), = pairs.values()
        return RawData(x, y)
    return RawData(*pairs["train"], *pairs["t10k"])


def folder_files(cfg: DataConfig) -> tuple[Path, list[str], list[tuple[int, Path]], Counter[str]]:
    """(root, class names, (label, file) of every file to decode, what was skipped and why) of an
    image folder; DataError when it has no class sub-folders."""
    root = require(Path(cfg.path or ""), "image folder", "dir")
    skipped: Counter[str] = Counter()
    classes = images.class_folders(root, skipped)
    if not classes:
        raise DataError(f"{root}: no class sub-folders; expected one folder per class, e.g. {root}/0/img.png")
    files = []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            reason = images.why_skip(file)
            if reason:
                skipped[reason] += 1
            else:
                files.append((label, file))
    return root, classes, files, skipped


def load_folder(cfg: DataConfig, progress: Callable[[str, int, int], None] | None = None) -> RawData:
    """One sub-folder per class of image files, decoded with OpenCV (in worker processes for a large
    folder, images.decode_all) chunk by chunk into one preallocated uint8 array (pixel values 0-255,
    resized to data.image_size): no list of images and no stack, so peak memory is the final array
    plus the few chunks in flight. What cannot be decoded safely (not an
    image, a decompression bomb, a FIFO or device, a link loop) is skipped and counted.
    `progress` hears (what, done, total)."""
    root, classes, files, skipped = folder_files(cfg)
    height, width = cfg.image_size or (0, 0)
    rgb = cfg.color != "grayscale"
    guard.check_prepared(str(root), len(files), (height, width, 3 if rgb else 1), 1 if cfg.normalize is True else 4)
    pixels = np.empty((len(files), height, width, 3 if rgb else 1), np.uint8)
    labels = np.empty(len(files), np.int64)
    count = done = 0
    for chunk, decoded in images.decode_all([file for _, file in files], (height, width), rgb):
        kept = np.flatnonzero(decoded)
        pixels[count:count + len(kept)] = chunk[kept]
        labels[count:count + len(kept)] = [files[done + i][0] for i in kept]
        if len(kept) < len(decoded):
            skipped["not an image or unreadable"] += len(decoded) - len(kept)
        count, done = count + len(kept), done + len(decoded)
        if progress is not None:
            progress(f"decoding {root}", done, len(files))
    if not count:
        raise DataError(f"{root}: no readable images in {len(classes)} class folder(s) "
                        f"({images.describe_skipped(skipped, root).split(': ', 1)[-1] or 'no files'})")
    notes = [images.describe_skipped(skipped, root)] if skipped else []
    return RawData(pixels[:count], labels[:count], class_names=classes, notes=notes)


def load_table(cfg: DataConfig) -> RawData:
    """An inline table (data.table) or a CSV file with a header; data.target names the label column.
    The features keep their column names (RawData.columns) for data/features.py; a cell that is not a
    number is refused naming its line, column and value, unless its column is in data.categorical."""
    if cfg.source == "table":
        assert cfg.table is not None  # guaranteed by checks.check_tabular_source
        columns, rows, first = list(cfg.table.columns), cfg.table.rows, 0
        origin, what = "data.table", "data.table.rows"
    else:
        path = require(Path(cfg.path or ""), "csv file")
        columns, rows = read_csv_rows(path)
        origin, first, what = str(path), 2, "line"  # line 1 is the header
    if cfg.target not in columns:
        raise DataError(f"{origin}: no column '{cfg.target}' (columns: {', '.join(columns)}); set data.target")
    t = columns.index(cfg.target)
    y = parse_column([row[t] for row in rows], cfg.target, origin, first, what).astype(np.float32)
    names = [c for k, c in enumerate(columns) if k != t]
    x = table_cells(names, [[v for k, v in enumerate(row) if k != t] for row in rows], cfg.categorical, origin,
                    first, what)
    return RawData(x, y, columns=names)


def load_synthetic(cfg: DataConfig) -> RawData:
    """The built-in synthetic digits, train and test drawn from disjoint seeds."""
    size = cfg.image_size[0] if cfg.image_size else 28
    x_train, y_train = synthetic_digits(cfg.n_train, cfg.style, cfg.seed, size, offset=0)
    x_test, y_test = synthetic_digits(cfg.n_test, cfg.style, cfg.seed, size, offset=10_000_000)
    return RawData(x_train, y_train, x_test, y_test, class_names=[str(d) for d in range(10)])


def load_raw(cfg: DataConfig, progress: Callable[[str, int, int], None] | None = None) -> RawData:
    """Dispatch to the reader of `cfg.source` (`progress` hears how decoding an image folder goes)."""
    if cfg.source in ("mnist", "fashion_mnist"):
        return load_keras_dataset(cfg)
    if cfg.source == "npz":
        return load_npz_file(Path(cfg.path or ""), cfg)
    if cfg.source == "idx":
        return load_idx_folder(Path(cfg.path or ""))
    if cfg.source == "folder":
        return load_folder(cfg, progress)
    readers = {"synthetic_digits": load_synthetic, "npy": load_npy, "h5": load_h5, "folder": load_folder,
               "csv": load_table, "table": load_table}
    return readers[cfg.source](cfg)
