"""Run the documentation's dlrun commands one after another in this one process, through the command
line itself (`dlrun.cli.app`, as `dlrun` runs it), so TensorFlow and Keras start once for all of them
instead of once per command. Used by tests/test_docs_examples.py:

    python tests/docs_runner.py COMMANDS.json RESULTS.json      (run in the scratch folder)

COMMANDS.json is a list of argv lists, each starting with `dlrun` or `python` (an examples/ script, run
as its own process); a run directory named with a timestamp stands for the newest run of that name made
so far (docs_examples.resolve). RESULTS.json receives, per command, the argv run, its exit code, seconds
and what it wrote to stderr. Exit codes are the ones `dlrun` gives: SystemExit's code, 1 for an
unexpected exception (as dlrun.cli.main does).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from docs_examples import resolve


def run_app(argv: list[str]) -> tuple[int, str, str]:
    """One command through the Typer app in this process: its exit code (SystemExit's, as `dlrun` gives it),
    stdout and stderr. An unexpected exception propagates."""
    from dlrun.cli import _exit_code, app

    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            app(args=argv, prog_name="dlrun")
            code = 0
        except SystemExit as stop:
            code = _exit_code(stop.code)
    return code, out.getvalue(), err.getvalue()


def run(argv: list[str]) -> tuple[int, str]:
    """One command through the Typer app; its exit code and stderr (an unexpected exception: exit 1, as
    dlrun.cli.main reports a bug)."""
    try:
        code, _, err = run_app(argv)
    except Exception as exc:
        return 1, f"error: unexpected {type(exc).__name__}: {exc}\n"
    return code, err


def main() -> None:
    commands = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for argv in commands:
        started = time.perf_counter()
        try:
            argv = resolve(argv, Path.cwd())
        except LookupError as e:
            results.append({"argv": argv, "exit": None, "seconds": 0.0, "stderr": str(e)})
            continue
        if argv[0] == "dlrun":
            code, err = run(argv[1:])
        else:
            proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True)
            code, err = proc.returncode, proc.stderr
        results.append({"argv": argv, "exit": code, "seconds": time.perf_counter() - started, "stderr": err})
        print(f"{results[-1]['seconds']:6.1f} s  exit {code}  {' '.join(argv)}", file=sys.__stderr__, flush=True)
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
