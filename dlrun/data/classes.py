"""Class names: what a run calls its classes, in label order, and the record of how its inputs were
prepared (saved in the run directory for `dlrun predict`)."""

from __future__ import annotations

from typing import Any

from dlrun.config.schema import DataConfig
from dlrun.data.dataset import Dataset
from dlrun.errors import DataError

FASHION_MNIST = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]
DIGITS = [str(d) for d in range(10)]
BUILT_IN = {"fashion_mnist": FASHION_MNIST, "mnist": DIGITS, "synthetic_digits": DIGITS}


def class_names(cfg: DataConfig, found: list[str] | None, num_classes: int) -> list[str]:
    """The names of `num_classes` classes: `data.class_names`, else what the source found (folder names),
    else the source's own (Fashion-MNIST, digits), else the label numbers. DataError when
    `data.class_names` does not name every class exactly once."""
    if cfg.class_names is not None:
        given = cfg.class_names
        if len(given) != num_classes:
            raise DataError(f"data.class_names lists {len(given)} names but {cfg.path or cfg.source} has "
                            f"{num_classes} classes (labels 0-{num_classes - 1}); list one name per class, in "
                            "label order")
        if len(set(given)) != len(given):
            twice = sorted({n for n in given if given.count(n) > 1})
            raise DataError(f"data.class_names names {', '.join(twice)} more than once; each class needs its "
                            "own name")
        return list(given)
    known = found or BUILT_IN.get(cfg.source)
    if known is not None and len(known) == num_classes:
        return list(known)
    return [str(k) for k in range(num_classes)]


def name_classes(data: Dataset, cfg: DataConfig) -> Dataset:
    """`data` with its class names settled (a classification data set; regression keeps None)."""
    if data.num_classes is not None:
        data.class_names = class_names(cfg, data.class_names, data.num_classes)
    return data


def inputs_record(cfg: DataConfig, task: str, data: Dataset) -> dict[str, Any]:
    """What `dlrun predict` needs to prepare new inputs as this run's training data was prepared:
    the kind (images or table), the prepared shape of one example, the data settings, the feature columns
    of a table (as its training split was encoded: features.json) and the class names (also in classes.json)."""
    tabular = cfg.source in ("csv", "table")
    return {"kind": "table" if tabular else "images", "task": task, "input_shape": list(data.input_shape),
            "source": cfg.source, "color": cfg.color, "image_size": cfg.image_size and list(cfg.image_size),
            "normalize": cfg.normalize,
            "features": data.feature_stats["columns"] if tabular and data.feature_stats else None,
            "class_names": data.class_names}
