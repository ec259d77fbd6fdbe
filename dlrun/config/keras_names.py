"""Keras' own names that people bring to a dlrun config, and dlrun's name for each: an unknown key or
value spelled the Keras way gets a did-you-mean that says what dlrun calls it."""

from __future__ import annotations

CROSSENTROPY_LABELS = ("dlrun's crossentropy takes class labels 0..K-1 (one-hot label files are turned into them "
                       "when read) with a K-unit softmax output, or labels 0/1 with one sigmoid unit, and picks "
                       "Keras' sparse or binary form itself")

# a key as Keras spells it -> (dlrun's key, a sentence on it)
KEYS: dict[str, tuple[str, str]] = {
    "learning_rate": ("lr", "optimizer.lr is the learning rate"),
    "kernel_regularizer": ("l2", "dlrun's L2 penalty is model.l2 (lambda), on the layers model.l2_layers names"),
    "kernel_regularization": ("l2", "dlrun's L2 penalty is model.l2 (lambda), on the layers model.l2_layers names"),
    "regularizer": ("l2", "dlrun's L2 penalty is model.l2 (lambda), on the layers model.l2_layers names"),
    "input_shape": ("", "dlrun reads the input shape from the data; leave it out"),
    "batch": ("batch_size", "train.batch_size is the batch size"),
    "nb_epoch": ("epochs", "train.epochs is the number of epochs"),
}

# a value as Keras spells it -> (dlrun's value, a sentence on it), by the key it is given to
VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "loss": {
        "categorical_crossentropy": ("crossentropy", CROSSENTROPY_LABELS),
        "sparse_categorical_crossentropy": ("crossentropy", CROSSENTROPY_LABELS),
        "binary_crossentropy": ("crossentropy", CROSSENTROPY_LABELS),
        "mean_squared_error": ("mse", "mse is the mean squared error (task: regression)"),
        "sum_squared_error": ("sse", "sse is the sum of squared errors (task: regression)"),
    },
}


def key_hint(key: str, options: list[str]) -> str:
    """`; did you mean 'lr'? ...` for a Keras spelling of a key among `options` (the keys allowed where it
    was written; when dlrun's name belongs elsewhere, they are listed too), else ""."""
    found = KEYS.get(key)
    if found is None:
        return ""
    name, sentence = found
    hint = f"; did you mean '{name}'? {sentence}" if name in options else f"; {sentence}"
    return hint + ("" if name in options or not options else f"; allowed: {', '.join(options)}")


def value_hint(key: str, value: object) -> str:
    """`; did you mean 'crossentropy'? ...` for a Keras spelling of `key`'s value, else ""."""
    found = VALUES.get(key, {}).get(str(value).lower()) if isinstance(value, str) else None
    return f"; did you mean '{found[0]}'? {found[1]}" if found else ""
