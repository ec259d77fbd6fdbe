"""Plots (matplotlib, Agg backend), written atomically. No TensorFlow here."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.store.files import atomic_path

_later: _Plotter | _Kept | None = None  # set while history plots are drawn off the critical path, or kept


class _Plotter:
    """A helper process that draws history plots in order, from their rows (one JSON line each on its stdin).
    A process, not a thread: matplotlib holds the GIL while it renders (~0.1 s a plot), which would stall
    the trial's own Python as long; in its own process a plot takes the core a small trial leaves idle.
    Started as `python -c` (not multiprocessing's spawn, which would run the caller's main script again);
    it ends when its stdin closes, so it never outlives the process that sent the plots. Started with the
    first plot (a sweep whose trials all diverge in their first epoch draws none)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.process: Any = None  # subprocess.Popen

    def _start(self) -> Any:
        import subprocess
        import sys

        env = dict(os.environ)
        home = str(Path(__file__).resolve().parents[2])  # the same dlrun, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [home, env.get("PYTHONPATH")]))
        return subprocess.Popen([sys.executable, "-c", "from dlrun.ui.plots import serve_plots; serve_plots()"],
                                stdin=subprocess.PIPE, env=env)

    def draw(self, job: tuple[Any, ...]) -> None:
        self.process = self.process or self._start()
        try:
            self.process.stdin.write(json.dumps([job[0], str(job[1]), *job[2:]], default=float).encode() + b"\n")
            self.process.stdin.flush()
            self.sent.append(job)
        except OSError:  # it died (killed): draw here rather than lose the plot
            _history_plot(*job)

    def close(self) -> None:
        """Wait until every plot is written; any the process could not write (it died) are drawn here."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if self.process.wait() != 0:
            for job in self.sent:
                if not Path(job[1]).exists():
                    with contextlib.suppress(Exception):
                        _history_plot(*job)


class _Kept:
    """History plots kept to be drawn elsewhere (`kept_plots`)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, ...]] = []

    def draw(self, job: tuple[Any, ...]) -> None:
        self.jobs.append(job)


@contextlib.contextmanager
def kept_plots() -> Iterator[list[tuple[Any, ...]]]:
    """While open, history plots are not drawn but kept in the list it yields, each as the arguments of
    `history_plot` (rows, path, title, boundaries): a Ray trial's, drawn by the sweep process instead, in
    its own `drawn_in_background`, so that neither the trial nor the sweep waits for matplotlib."""
    global _later
    outer, kept = _later, _Kept()
    _later = kept
    try:
        yield kept.jobs
    finally:
        _later = outer


def serve_plots() -> None:
    """The plotter process (see _Plotter): draw each history plot read from stdin until it closes."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the sweep; this ends when its input does
    figure = None  # one figure for every plot: its axes and ticks are made once (half of a plot's time)
    for line in sys.stdin.buffer:
        try:
            rows, path, title, boundaries = json.loads(line)
            figure = figure or _history_figure()
            _draw_history(*figure, rows, title, boundaries)
            _save(figure[0], Path(path), keep=True)
        except Exception:  # a plot that cannot be drawn must not stop the others; the next gets a new figure
            figure = None


@contextlib.contextmanager
def drawn_in_background() -> Iterator[None]:
    """While open, history plots are drawn by a helper process, in order, so the next sweep trial
    starts at once and does not share its core with matplotlib; closing waits until every plot is
    written. The numbers of a trial never depend on it: a plot is drawn from its rows."""
    global _later
    if _later is not None:  # already open (nested): the outer one draws
        yield
        return
    plotter = _Plotter()
    _later = plotter
    try:
        yield
    finally:
        _later = None
        plotter.close()


def import_soon() -> None:
    """Import matplotlib in a background thread (~0.7 s), for a process that draws plots later and waits
    meanwhile: a sweep whose trials run in other processes, while those import TensorFlow."""
    threading.Thread(target=_import_quietly, name="dlrun-import-matplotlib", daemon=True).start()


def _import_quietly() -> None:
    with contextlib.suppress(Exception):  # a failing import fails again, and is reported, where a plot is drawn
        _pyplot()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def history_plot(rows: list[dict[str, Any]], path: Path, title: str,
                 boundaries: list[tuple[int, str]] | None = None) -> None:
    """Loss and accuracy (or mae) per epoch, train and validation; optional stage boundaries. Drawn
    later, by the plotter process, inside `drawn_in_background`."""
    if _later is not None:
        _later.draw(([dict(r) for r in rows], Path(path), title, boundaries))
        return
    _history_plot(rows, path, title, boundaries)


def _history_plot(rows: list[dict[str, Any]], path: Path, title: str,
                  boundaries: list[tuple[int, str]] | None = None) -> None:
    fig, axes = _history_figure()
    _draw_history(fig, axes, rows, title, boundaries)
    _save(fig, path)


def _history_figure() -> tuple[Any, Any]:
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 4))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.88, wspace=0.22)  # tight_layout: +40% time
    return fig, axes


def _draw_history(fig: Any, axes: Any, rows: list[dict[str, Any]], title: str,
                  boundaries: list[tuple[int, str]] | None) -> None:
    """Draw a history plot on `fig`, fresh from _history_figure or holding an earlier plot (which goes)."""
    from matplotlib.ticker import MaxNLocator

    metric = "accuracy" if any(_num(r.get("accuracy")) is not None for r in rows) else "mae"
    x = list(range(1, len(rows) + 1))
    for ax, key in zip(axes, ("loss", metric), strict=True):
        for artist in [*ax.lines, *ax.texts, *filter(None, [ax.get_legend()])]:
            artist.remove()
        ax.relim()
        ax.set_prop_cycle(None)  # the first line blue again
        for prefix, style in (("", "-o"), ("val_", "--s")):
            ys = [_num(r.get(prefix + key)) for r in rows]
            if any(v is not None for v in ys):
                ax.plot(x, [float("nan") if v is None else v for v in ys], style, ms=3,
                        label="validation" if prefix else "train")
        for epoch, label in boundaries or []:
            ax.axvline(epoch + 0.5, color="grey", lw=1, ls=":")
            ax.text(epoch + 0.6, ax.get_ylim()[1], label, fontsize=7, va="top", color="grey")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5, 2.5
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)


def confusion_plot(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """A confusion matrix heat map with counts, coloured by each row's share (so a class's errors show
    however many examples it has)."""
    fig, _ = confusion_figure(matrix, labels, title)
    _save(fig, path)


def confusion_figure(matrix: list[list[int]], labels: list[str], title: str) -> tuple[Any, Any]:
    """(figure, axes) of confusion_plot, drawn but not saved: cell (true i, predicted j) at (j, i),
    its colour the share of row i, its text the count."""
    import numpy as np

    plt = _pyplot()
    n = len(labels)
    counts = np.asarray(matrix, dtype=float).reshape(n, n)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig, ax = plt.subplots(figsize=(1.6 + 0.5 * n, 1 + 0.5 * n))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class", fraction=0.046, pad=0.04)
    long = any(len(str(label)) > 3 for label in labels)  # class names, not digits: slanted so they do not collide
    ax.set_xticks(range(n), labels, rotation=45 if long else 0, ha="right" if long else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig, ax


def top_confusions_plot(confusions: list[dict[str, Any]], path: Path, title: str) -> None:
    """The most frequent mistakes as bars, `true -> predicted` (a matrix of hundreds of classes is unreadable)."""
    plt = _pyplot()
    shown = confusions[:30]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.3 * max(len(shown), 1)))
    ax.barh(range(len(shown)), [c["count"] for c in shown], color="tab:blue")
    ax.set_yticks(range(len(shown)), [f"{c['true']} -> {c['predicted']}" for c in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("examples")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def prediction_grid(images: Any, titles: list[str], path: Path, title: str) -> None:
    """Up to 5 x 5 images (N x H x W x C, as the model saw them) each titled with its prediction: the
    notebooks' `plt.imshow(x)` + `plt.title(class_names[y_pred.argmax()])`."""
    import numpy as np

    plt = _pyplot()
    n = min(len(images), 25)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = np.asarray(images[i], np.float32)
            grey = img.shape[-1] == 1
            low, high = float(img.min()), float(img.max())
            shown = (img - low) / (high - low) if high > low else np.zeros_like(img)  # any scale, shown 0-1
            ax.imshow(shown[..., 0] if grey else shown, cmap="gray" if grey else None, vmin=0, vmax=1)
            ax.set_title(titles[i], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path, keep: bool = False) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", pil_kwargs={"compress_level": 3})  # 6: +15% time, -13% size
    if not keep:
        _pyplot().close(fig)
