"""Run dlrun's benchmarks side by side with plain Keras and write the results table.

    python benchmarks/run.py [--data MNIST_IDX_FOLDER] [--repeats N] [--quick] [--only 1,2,4] [--out FILE] [--kt DIR]
        [--tune-python PY]

Every comparison runs the dlrun command and the equivalent hand-written script as subprocesses,
alternately, `--repeats` times after one untimed warm-up each, and reports medians and the ratio
dlrun / plain: of whole processes (1, 2), and of the steady-state epoch inside them (7, 8, with the
arithmetic limit beside). Benchmarks 3 and 6 (sweeps) come from bench_sweep.py when that module is present;
9, 10, 11 (sweeps that search and prune, on real MNIST) from bench_search.py; 12-16 (Ray, train.distribute,
Ray Tune beside dlrun on Ray, worker actor memory) from bench_ray.py.
The table goes to benchmarks/RESULTS.md (not in --quick mode unless --out is given). Exit status 1
when a measured target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmark modules
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's dlrun

from bench_cli import cli_rows  # noqa: E402
from bench_data import data_rows  # noqa: E402
from bench_epoch import epoch_rows  # noqa: E402
from bench_ray import ray_rows  # noqa: E402
from bench_train import prepare_arrays, train_rows, write_config  # noqa: E402
from common import ROOT, BenchError, Row, machine, markdown  # noqa: E402

SWEEP_NAMES = {"3": "sweep: 8-trial zip grid (MLP 256-256-10, batch 1000, 10 epochs) vs a plain loop",
               "6": "sweep: peak RSS of a 24-trial vs a 4-trial sweep"}


def _pick(result: dict[str, Any], *keys: str) -> Any:
    return next((result[k] for k in keys if k in result), None)


def sweep_row(number: str, result: dict[str, Any] | None, error: str = "") -> Row:
    """A row from one of bench_sweep's result dicts (medians, ratio, target, whether it is met)."""
    name = SWEEP_NAMES[number]
    if result is None:
        return Row(number, name, "—", "—", "—", "—", None, error or "not available in this build")
    if number == "3":
        dlrun, plain = _pick(result, "dlrun_median", "dlrun_s"), _pick(result, "plain_median", "plain_s")
        cells = [f"{dlrun:.2f} s" if dlrun is not None else "—", f"{plain:.2f} s" if plain is not None else "—"]
    else:
        big, small = _pick(result, "peak_rss_mib_24_trials"), _pick(result, "peak_rss_mib_4_trials")
        cells = [f"24 trials: {big} MiB" if big is not None else "—", f"4 trials: {small} MiB" if small else "—"]
    ratio, target, met = _pick(result, "ratio"), _pick(result, "target"), _pick(result, "meets_target", "met")
    shown = {"benchmark", "dlrun_median", "plain_median", "ratio", "target", "meets_target", "met",
             "peak_rss_mib_24_trials", "peak_rss_mib_4_trials"}
    note = "; ".join(f"{k} {v}" for k, v in result.items()
                     if k not in shown and isinstance(v, int | float | str) and len(str(v)) <= 40)
    return Row(number, name, *cells, "—" if ratio is None else f"{ratio:.3f}",
               "—" if target is None else f"≤ {target}", None if met is None else bool(met), note)


def sweep_rows(wanted: set[str], repeats: int, data: Path | None) -> list[Row]:
    """Benchmarks 3 and 6 through bench_sweep.py, or rows saying they are not available."""
    try:
        import bench_sweep  # type: ignore[import-not-found]
    except ImportError:
        return [sweep_row(n, None) for n in ("3", "6") if n in wanted]
    rows = []
    calls = {"3": lambda: bench_sweep.sweep_vs_loop(repeats, data_path=None if data is None else str(data)),
             "6": bench_sweep.sweep_memory}
    for number in ("3", "6"):
        if number in wanted:
            try:
                rows.append(sweep_row(number, calls[number]()))
            except Exception as exc:  # a failed benchmark is a row that says so, not a lost table
                rows.append(Row(number, SWEEP_NAMES[number], "—", "—", "—", "—", False, f"failed: {exc}"))
    return rows


def search_bench_rows(wanted: set[str], data: Path | None, quick: bool, kt: Path | None) -> list[Row]:
    """Benchmarks 9, 10, 11 (bench_search.py): pruned grid, tpe, Keras Tuner's Hyperband."""
    numbers = [n for n in ("9", "10", "11") if n in wanted]
    if not numbers:
        return []
    import bench_search

    found = data or bench_search.DEFAULT_DATA
    if not found.is_dir():
        return [Row(n, bench_search.NAMES[n], "—", "—", "—", "—", None, f"needs MNIST idx files ({found})")
                for n in numbers]
    out = []
    for r in bench_search.search_rows(found, quick, kt, tuple(numbers)):
        if "skipped" in r:
            out.append(Row(r["number"], r["name"], "—", "—", "—", "—", None, r["skipped"]))
            continue
        other = "Hyperband" if r["number"] == "11" else "grid"
        best = f"best val_accuracy {r['best']} vs {other} {r.get('grid_best', r.get('other_best'))}"
        out.append(Row(r["number"], r["name"], f"{r['dlrun_s']:.1f} s", f"{r['other_s']:.1f} s", f"{r['ratio']:.3f}",
                       "—" if r["target"] is None else f"≤ {r['target']}, best within 0.01", r["met"], best))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="an MNIST idx folder (default: built-in synthetic digits)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2,000 train images: a smoke run")
    parser.add_argument("--only", default=",".join(str(n) for n in range(1, 17)),
                        help="comma-separated benchmark numbers")
    parser.add_argument("--kt", type=Path, help="a folder with keras-tuner installed (pip install --target DIR "
                        "keras-tuner kt-legacy): benchmark 11 against its Hyperband")
    parser.add_argument("--tune-python", help="the Python of an environment with Ray Tune: benchmark 15 (how to "
                        "build it: bench_ray.py)")
    parser.add_argument("--out", type=Path, help="where to write the table (default benchmarks/RESULTS.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print the table, write it; 1 when a target is missed."""
    args = parse_args(argv)
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    repeats = 1 if args.quick else max(1, args.repeats)
    if args.data is not None and not args.data.is_dir():
        print(f"error: --data {args.data}: not a folder (expected an MNIST idx folder)", file=sys.stderr)
        return 2
    started = time.time()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="dlrun-bench-") as tmp:
        work = Path(tmp)
        arrays, source = prepare_arrays(args.data, work, limit=2000 if args.quick else None)
        try:
            rows += train_rows([n for n in ("1", "2") if n in wanted], arrays, work, repeats, source)
            rows += epoch_rows([n for n in ("7", "8") if n in wanted], arrays, work, repeats, source)
            rows += sweep_rows(wanted, repeats, args.data)
            rows += search_bench_rows(wanted, args.data, args.quick, args.kt)
            if "4" in wanted:
                rows += cli_rows(write_config("1", arrays, work, 1), work, repeats)
            if "5" in wanted:
                rows += data_rows(work, repeats, 2000)
            rows += ray_rows(wanted, repeats, args.quick, args.tune_python)  # 12-16 (bench_ray.py)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    rows.sort(key=lambda r: int(r.number))
    table = markdown(rows)
    header = (f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}.\n"
              f"`python benchmarks/run.py {' '.join(sys.argv[1:] if argv is None else argv)}`, "
              f"{repeats} timed run(s) per side after a warm-up, {time.time() - started:.0f} s in all.\n")
    print(header + "\n" + table)
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "RESULTS.md")
    if out is not None:
        kept = out.read_text() if out.exists() else ""
        more = kept[kept.index(MORE):] if MORE in kept else ""  # the other benchmarks' sections stay
        out.write_text(RESULTS_INTRO + header + "\n" + table + "\n" + RESULTS_NOTES + ("\n" + more if more else ""))
        print(f"\nwritten to {out}")
    return 1 if any(r.met is False for r in rows) else 0


MORE = "<!-- more benchmarks:"  # below it in RESULTS.md: the sections other benchmark scripts fill
RESULTS_INTRO = """# dlrun benchmarks

Ratios are dlrun / plain Keras, medians of alternating runs measured in the same invocation
(`make bench`); absolute seconds are context for this machine only.

"""
RESULTS_NOTES = """
How each side is measured:
- 1, 2: `python -m dlrun train CONFIG` vs `python benchmarks/plain_train.py` (model.fit on the same NumPy
  arrays with validation_data, verbose=2, evaluate, model.save): same model, batch size, epochs, seed and
  threads; wall time of the whole process, start to exit. dlrun does more: a checkpoint and metrics.csv
  every epoch, the weights file, model.txt, summary.json and history.png. Why it still comes out ahead:
  it leaves the process without TensorFlow's ~1 s interpreter teardown once its files are written and
  closed; its input streams do not autotune (tf.data's tuning thread made iterator teardown at the end of
  fit stall for seconds at random, in plain Keras too); it does not run the test split a second time when
  validation already measured it with the final weights; and it reads the prepared arrays from its data
  cache (worth a few milliseconds here).
- 7, 8: the same two sides (dlrun with its defaults, plain_train.py with a timing callback), but only the
  epochs: the median of epochs 2..N of each run (metrics.csv `seconds`; the callback's on_epoch_begin to
  on_epoch_end: training and validation, 8,000 and 2,000 images), then the median over the runs. dlrun's
  per-epoch checkpoint and metrics.csv write come after that span. The arithmetic limit is the epoch's
  floating-point work (the kernels' multiply-adds: training on the train images, inference on the
  validation images) divided by the best rate of a 1024x1024 float32 matmul on this machine
  (arith_probe.py). One more dlrun run with `steps_per_execution: 1` must give the same metrics.csv (all
  but seconds) and the same weights as the default `auto`, or the row fails.
- 3, 6: from bench_sweep.py (the sweep's own benchmark).
- 12-16: from bench_ray.py: whole `dlrun sweep` processes with --backend ray and --backend local --jobs 2
  (alternating; the results.csv of both must match), Ray's start-up in a fresh process, the median
  epoch of `dlrun train` mirrored on 2 logical CPU devices vs one device (DLRUN_CPU_DEVICES=2 for both),
  `dlrun sweep --backend ray` against the same trials in Ray Tune on one running head (alternating), and
  each worker actor's resident memory over a 64-trial Ray sweep.
- 4: median wall time of the command; a probe runs the same command in-process and counts imported
  tensorflow/keras modules (must be 0).
- 5: `load_dataset` in a fresh process per load (data_probe.py); memory from tracemalloc (NumPy buffers)
  and the growth of peak RSS (VmHWM reset before the load), both against the bytes of the arrays loaded.
- GPU rows: not measured (no GPU on this machine).
"""


if __name__ == "__main__":
    sys.exit(main())
