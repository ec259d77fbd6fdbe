"""The hostile half of the bad-input corpus: inputs that try to exhaust the machine or escape their
folder, generated in the test (sparse files, crafted headers: nothing big is ever committed).

Each case is one generator: it writes its files into an empty work folder and returns the CLI
arguments; `expect` are fragments stderr must hold. test_bad_inputs.py runs each under a 1 GiB
address-space limit and checks exit 2, one stderr line, the fragments, no new files, and the peak
RSS. `python tests/hostile_inputs.py` prints the table of cases with their peak RSS and time.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import cli_env  # noqa: E402

ADDRESS_SPACE = 1 << 30  # the subprocess's RLIMIT_AS; dlrun's memory budget then is 70% of it
MLP = {"model": {"layers": [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]},
       "train": {"epochs": 1, "batch_size": 8}}
SYNTH = {"source": "synthetic_digits", "image_size": [8, 8], "n_train": 20, "n_test": 20}


@dataclass(frozen=True)
class Hostile:
    """One generated case: `make(work)` writes its files and returns the CLI arguments."""

    id: str
    make: Callable[[Path], tuple[str, ...]]
    expect: tuple[str, ...]
    lines: int = 1
    exit: int = 2  # 0: the honest outcome is a correct result (then `expect` is what stdout holds)
    address_space: int = ADDRESS_SPACE  # a case that trains needs TensorFlow's reservation: TRAINS
    holds: tuple[tuple[str, str], ...] = ()  # (file it writes, text that file must hold), for an exit-0 case


TRAINS = 4 << 30  # the address space TensorFlow maps at import (its RSS stays far below)
CASES: list[Hostile] = []


def case(case_id: str, *expect: str, lines: int = 1, exit: int = 2, address_space: int = ADDRESS_SPACE,
         holds: tuple[tuple[str, str], ...] = ()) -> Callable[[Callable[[Path], tuple[str, ...]]], Any]:
    def register(make: Callable[[Path], tuple[str, ...]]) -> Callable[[Path], tuple[str, ...]]:
        CASES.append(Hostile(case_id, make, expect, lines, exit, address_space, holds))
        return make
    return register


def config(work: Path, data: dict[str, Any] | None = None, **changes: Any) -> str:
    """Write c.yaml (the tiny MLP on `data`, synthetic digits by default) and return its name."""
    body = {"name": "hostile", "data": data or SYNTH, **MLP, **changes}
    (work / "c.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return "c.yaml"


def npy_bytes(shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"") -> bytes:
    """A .npy file whose header says `shape` and which holds `data`."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def png_header(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def forge_sizes(path: Path, member: str, claimed: int) -> None:
    """Rewrite a zip's local and central headers so `member` claims `claimed` bytes uncompressed."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        while at >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + len(name)] == name:
                data[at + offset:at + offset + 4] = struct.pack("<I", claimed)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def keras_archive(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, body in members.items():
            info = zipfile.ZipInfo(name)
            archive.writestr(info, body)


# --- exhaustion: configs -------------------------------------------------------------------------

@case("yaml_alias_bomb", "c.yaml:", "expands to more than 100,000 values")
def _(work: Path) -> tuple[str, ...]:
    lines = ["name: bomb", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (work / "c.yaml").write_text("\n".join(lines) + "\nmodel: {layers: [{dense: {units: 10}}]}\n")
    return ("train", "c.yaml")


@case("yaml_nested_10000_deep", "c.yaml:2:", "nested more than 50 levels deep")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text("name: deep\nmodel: " + "[" * 10_000 + "]" * 10_000 + "\n")
    return ("train", "c.yaml")


@case("yaml_recursive_alias", "c.yaml:2:", "refers to a value that contains it")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text("name: loop\nmodel: &m {layers: [*m]}\n")
    return ("validate", "c.yaml")


@case("set_alias_bomb", "--set sweep=", "expands to more than 100,000 values")
def _(work: Path) -> tuple[str, ...]:
    laughs = "&l0 [" + ", ".join(["lol"] * 10) + "]"
    for level in range(1, 6):  # 10^6 values once expanded
        laughs = f"&l{level} [{laughs}, " + ", ".join([f"*l{level - 1}"] * 9) + "]"
    return ("validate", config(work), "--set", f"sweep={laughs}")


@case("config_of_2_mib", "c.yaml:", "far too big for a config")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text("# padding\n" * 210_000)
    return ("train", "c.yaml")


@case("epochs_a_billion", "c.yaml:", "train.epochs:", "would never end")
def _(work: Path) -> tuple[str, ...]:
    return ("validate", config(work, train={"epochs": 10**9, "batch_size": 8}))


@case("n_train_ten_billion", "c.yaml:", "data.n_train:", "synthetic digits", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work, {**SYNTH, "n_train": 10**10}))


@case("image_size_a_million_squared", "c.yaml:", "data.image_size:", "one image", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work, {**SYNTH, "image_size": [10**6, 10**6]}))


@case("dense_units_a_trillion", "c.yaml:", "model.layers.1.dense.units:", "parameters", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    layers = [{"flatten": {}}, {"dense": {"units": 10**12}}, {"dense": {"units": 10, "activation": "softmax"}}]
    return ("train", config(work, model={"layers": layers}))


@case("dense_units_a_trillion_validate", "c.yaml:", "model.layers.1.dense.units:", "parameters", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    layers = [{"flatten": {}}, {"dense": {"units": 10**12}}, {"dense": {"units": 10, "activation": "softmax"}}]
    return ("validate", config(work, model={"layers": layers}))


@case("conv_filters_a_billion", "c.yaml:", "model.layers.0.conv2d.filters:", "parameters", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    layers = [{"conv2d": {"filters": 10**9, "kernel_size": 3}}, {"global_avg_pool2d": {}},
              {"dense": {"units": 10, "activation": "softmax"}}]
    return ("train", config(work, model={"layers": layers}))


@case("batch_of_wide_feature_maps", "c.yaml:", "model.layers.0.conv2d.filters:", "outputs (28, 28, 4096) per example",
      "memory budget")
def _(work: Path) -> tuple[str, ...]:
    layers = [{"conv2d": {"filters": 4096, "kernel_size": 1}}, {"global_avg_pool2d": {}},
              {"dense": {"units": 10, "activation": "softmax"}}]
    return ("train", config(work, {**SYNTH, "image_size": [28, 28], "n_train": 600, "n_test": 100},
                            model={"layers": layers}, train={"epochs": 1, "batch_size": 500}))


# --- exhaustion: data files ----------------------------------------------------------------------

def npy_case(work: Path, x: bytes, y: bytes | None = None) -> tuple[str, ...]:
    (work / "d").mkdir()
    (work / "d" / "X.npy").write_bytes(x)
    (work / "d" / "Y.npy").write_bytes(y or npy_bytes((4,), "<i8", bytes(32)))
    return ("train", config(work, {"source": "npy", "path": "d"}))


@case("npy_header_claims_a_terabyte", "d/X.npy", "the header claims", "truncated or forged")
def _(work: Path) -> tuple[str, ...]:
    return npy_case(work, npy_bytes((10**9, 28, 28)))


@case("npy_sparse_file_beyond_the_budget", "d/X.npy", "needs 1.0 GiB", "memory budget")
def _(work: Path) -> tuple[str, ...]:
    args = npy_case(work, npy_bytes((1 << 20, 32, 32), "|u1"))
    with open(work / "d" / "X.npy", "r+b") as fh:  # sparse: claims and holds 1 GiB, takes no disk
        fh.truncate(fh.seek(0, 2) + (1 << 30))
    return args


@case("npy_object_array", "d/X.npy", "Python objects (a pickle)")
def _(work: Path) -> tuple[str, ...]:
    return npy_case(work, npy_bytes((4,), "|O", b"\x80\x04N."))


@case("npz_member_header_claims_more", "member X_train.npy", "the header claims", "truncated or forged")
def _(work: Path) -> tuple[str, ...]:
    with zipfile.ZipFile(work / "d.npz", "w") as archive:
        archive.writestr("X_train.npy", npy_bytes((10**6, 28, 28), "|u1", bytes(100)))
        archive.writestr("y_train.npy", npy_bytes((10**6,), "<i8", bytes(100)))
    return ("train", config(work, {"source": "npz", "path": "d.npz"}))


@case("npz_zip_bomb_member", "d.npz", "decompress to 3.8 GiB", "before decompressing anything")
def _(work: Path) -> tuple[str, ...]:
    with zipfile.ZipFile(work / "d.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X_train.npy", npy_bytes((1000, 28, 28), "|u1", bytes(784_000)))
        archive.writestr("y_train.npy", npy_bytes((1000,), "<i8", bytes(8000)))
    forge_sizes(work / "d.npz", "X_train.npy", 0xF0000000)
    return ("train", config(work, {"source": "npz", "path": "d.npz"}))


@case("h5_dataset_claims_more_than_the_file", "d.h5", "dataset /X_train claims", "truncated or forged")
def _(work: Path) -> tuple[str, ...]:
    with h5py.File(work / "d.h5", "w") as f:
        f.create_dataset("X_train", shape=(10**6, 28, 28), dtype="u1")  # never written: nothing stored
        f.create_dataset("y_train", data=np.zeros(10, np.int64))
    return ("train", config(work, {"source": "h5", "path": "d.h5"}))


@case("idx_header_claims_more", "train-images-idx3-ubyte", "truncated or padded idx file")
def _(work: Path) -> tuple[str, ...]:
    (work / "idx").mkdir()
    (work / "idx" / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 10**6, 28, 28))
    (work / "idx" / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 10**6))
    return ("train", config(work, {"source": "idx", "path": "idx"}))


@case("idx_gzip_bomb", "train-images-idx3-ubyte.gz", "truncated or padded idx file", "more than the header")
def _(work: Path) -> tuple[str, ...]:
    (work / "idx").mkdir()
    with gzip.open(work / "idx" / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as fh:
        fh.write(b"\0\0\x08\x03" + struct.pack(">III", 10, 28, 28))
        for _ in range(64):  # 64 MiB of zeros in ~64 KiB: the header claims 7,840 bytes
            fh.write(bytes(1 << 20))
    (work / "idx" / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 10) + bytes(10))
    return ("train", config(work, {"source": "idx", "path": "idx"}))


@case("image_folder_of_decompression_bombs", "no readable images", "a decompression bomb (40000x40000")
def _(work: Path) -> tuple[str, ...]:
    for label in ("a", "b"):
        (work / "imgs" / label).mkdir(parents=True)
        (work / "imgs" / label / "bomb.png").write_bytes(png_header(40_000, 40_000))
    return ("train", config(work, {"source": "folder", "path": "imgs", "image_size": [8, 8]}))


@case("keras_base_member_decompresses_to_gigabytes", "base.keras", "decompress to", "before decompressing")
def _(work: Path) -> tuple[str, ...]:
    keras_archive(work / "base.keras", {"config.json": b"{}", "metadata.json": b"{}",
                                        "model.weights.h5": bytes(1000)})
    forge_sizes(work / "base.keras", "model.weights.h5", 0xF0000000)
    return ("train", config(work, model={"base": {"from": "base.keras"}, **MLP["model"]}))


# --- escapes -------------------------------------------------------------------------------------

@case("keras_base_member_escapes_the_archive", "base.keras", "'../../evil.txt' points outside the archive",
      "nothing was extracted")
def _(work: Path) -> tuple[str, ...]:
    keras_archive(work / "base.keras", {"config.json": b"{}", "metadata.json": b"{}",
                                        "model.weights.h5": b"", "assets/a": b"", "../../evil.txt": b"x"})
    return ("train", config(work, model={"base": {"from": "base.keras"}, **MLP["model"]}))


@case("transfer_from_keras_with_absolute_member", "src.keras", "'/tmp/evil' points outside the archive")
def _(work: Path) -> tuple[str, ...]:
    keras_archive(work / "src.keras", {"config.json": b"{}", "model.weights.h5": b"", "/tmp/evil": b"x"})
    return ("transfer", config(work), "--from", "src.keras")


@case("h5_external_storage", "d.h5", "takes its data from other files")
def _(work: Path) -> tuple[str, ...]:
    with h5py.File(work / "d.h5", "w") as f:
        f.create_dataset("X_train", shape=(10, 8, 8), dtype="u1", external=[("/dev/zero", 0, 640)])
        f.create_dataset("y_train", data=np.zeros(10, np.int64))
    return ("train", config(work, {"source": "h5", "path": "d.h5"}))


@case("data_file_is_a_fifo", "d/X.npy", "a FIFO (named pipe); expected a file")
def _(work: Path) -> tuple[str, ...]:
    args = npy_case(work, b"")
    (work / "d" / "X.npy").unlink()
    os.mkfifo(work / "d" / "X.npy")
    return args


@case("data_file_is_a_device", "/dev/zero", "a device; expected a file")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work, {"source": "npy", "path": ".", "x": "/dev/zero", "y": "/dev/zero"}))


@case("csv_path_is_a_directory", "csvdir", "is a directory; expected a file")
def _(work: Path) -> tuple[str, ...]:
    (work / "csvdir").mkdir()
    return ("train", config(work, {"source": "csv", "path": "csvdir", "target": "y"}))


@case("config_is_a_fifo", "c.yaml", "a FIFO (named pipe), not a file")
def _(work: Path) -> tuple[str, ...]:
    os.mkfifo(work / "c.yaml")
    return ("train", "c.yaml")


@case("image_folder_of_links_that_cannot_be_images", "no readable images",
      "2 not a regular file (a FIFO, a device or a folder)", "1 a symlink loop or a dangling symlink",
      "1 a folder reached twice")
def _(work: Path) -> tuple[str, ...]:
    outside = Path(tempfile.mkdtemp(dir=work.parent))
    os.mkfifo(outside / "pipe.png")
    for label in ("a", "b"):
        (work / "imgs" / label).mkdir(parents=True)
    (work / "imgs" / "a" / "x.png").symlink_to(outside / "pipe.png")  # never opened: the run would hang
    (work / "imgs" / "b" / "x.png").symlink_to("/dev/zero")  # never read: it has no end
    (work / "imgs" / "a" / "loop.png").symlink_to(work / "imgs" / "a" / "loop.png")
    (work / "imgs" / "c").symlink_to(work / "imgs")  # the folder itself: not a class
    return ("train", config(work, {"source": "folder", "path": "imgs", "image_size": [8, 8]}))


@case("run_dir_climbs_out", "--run-dir 'runs/../../elsewhere'", "goes into a folder and back out")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work), "--run-dir", "runs/../../elsewhere")


@case("run_dir_with_control_characters", "--run-dir", "the control character '\\x1b'")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work), "--run-dir", "runs/\x1b[2Jx")


@case("sweep_dir_climbs_out", "--sweep-dir 'sw/../../elsewhere'", "goes into a folder and back out")
def _(work: Path) -> tuple[str, ...]:
    return ("sweep", config(work), "--lr", "0.1,0.2", "--sweep-dir", "sw/../../elsewhere")


@case("runs_root_not_utf8", "--runs", "bytes that are not UTF-8")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work), "--runs", os.fsdecode(b"runs-\xff"))


@case("stage_name_climbs_out", "transfer.stages.0.name:", "String should match pattern")
def _(work: Path) -> tuple[str, ...]:
    return ("validate", config(work, transfer={"stages": [{"name": "../../x"}]}))


@case("config_not_utf8", "c.yaml:3:", "not UTF-8 text (byte 0xff)")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_bytes(b"name: x\nmodel:\n  layers: [{dense: {units: 10, name: \"a\xff\"}}]\n")
    return ("validate", "c.yaml")


@case("config_value_lone_surrogate", "c.yaml:2: data.path:", "not UTF-8 text")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text('name: x\ndata: {path: "a\\ud800"}\nmodel: {layers: [{dense: {units: 10}}]}\n')
    return ("validate", "c.yaml")


@case("set_value_not_utf8", "data.path:", "not UTF-8 text")
def _(work: Path) -> tuple[str, ...]:
    return ("validate", config(work), "--set", os.fsdecode(b"data.path=x\xff"))


@case("config_value_with_escape_sequences", "c.yaml:2: data.path:", "the control character '\\x1b'")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text('name: x\ndata: {path: "\\e[2J"}\nmodel: {layers: [{dense: {units: 10}}]}\n')
    return ("validate", "c.yaml")


# --- damaged records met by --resume -------------------------------------------------------------

def interrupted_run(work: Path, summary: bytes | None = None) -> Path:
    run = work / "run"
    (run / "checkpoint").mkdir(parents=True)
    config(work)
    (run / "config.yaml").write_text((work / "c.yaml").read_text())
    (run / "summary.json").write_bytes(summary or json.dumps({"status": "interrupted"}).encode())
    return run


@case("resume_truncated_checkpoint", "run/checkpoint/state.npz", "damaged checkpoint", "Delete it")
def _(work: Path) -> tuple[str, ...]:
    run = interrupted_run(work)
    np.savez(run / "checkpoint" / "state.npz", m0=np.zeros(1000), __meta__=np.array('{"epoch": 1, "rows": []}'))
    data = (run / "checkpoint" / "state.npz").read_bytes()
    (run / "checkpoint" / "state.npz").write_bytes(data[: len(data) // 2])
    return ("train", "--resume", "run")


@case("resume_forged_checkpoint_header", "run/checkpoint/state.npz", "damaged checkpoint", "the header claims")
def _(work: Path) -> tuple[str, ...]:
    run = interrupted_run(work)
    with zipfile.ZipFile(run / "checkpoint" / "state.npz", "w") as archive:
        archive.writestr("m0.npy", npy_bytes((10**9,), "<f4", bytes(16)))
        archive.writestr("__meta__.npy", npy_bytes((), "<U1", "{".encode("utf-32-le")))
    return ("train", "--resume", "run")


@case("resume_damaged_summary", "run/summary.json", "unreadable JSON", "Delete it to resume")
def _(work: Path) -> tuple[str, ...]:
    interrupted_run(work, b'{"status": "interrupt')
    return ("train", "--resume", "run")


@case("resume_summary_nested_100000_deep", "run/summary.json", "unreadable JSON", "Delete it to resume")
def _(work: Path) -> tuple[str, ...]:
    interrupted_run(work, b"[" * 100_000 + b"]" * 100_000)
    return ("train", "--resume", "run")


@case("sweep_resume_damaged_spec", "sw/sweep.yaml", "damaged or was edited", lines=2)
def _(work: Path) -> tuple[str, ...]:
    (work / "sw" / "trials").mkdir(parents=True)
    (work / "sw" / "sweep.yaml").write_text("name: s\nmodel: {layers: [{dense: {units: 10}}]}\nsweep: {params: {optimi")
    return ("sweep", "--resume", "sw")


def run_case(hostile: Hostile, work: Path, limit: int | None = None, timeout: float = 120) -> dict[str, Any]:
    """Generate the case in `work`, run the CLI under RLIMIT_AS=`limit` (the case's own by default); exit
    code, stdout, stderr, peak RSS (MiB, from wait4: that process alone), seconds, and the files the run added."""
    args = hostile.make(work)
    limit = limit or hostile.address_space
    before = {str(p.relative_to(work)) for p in work.rglob("*")}

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "dlrun", *args], cwd=work, env=cli_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=limited)
        code, rss = -9, None
        if _exited(proc, timeout):
            _, status, usage = os.wait4(proc.pid, 0)
            code, rss = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
        else:
            proc.kill()
        proc.wait()  # reaped already (ECHILD is fine) or killed just now
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    after = {str(p.relative_to(work)) for p in work.rglob("*")}
    return {"exit": code, "stdout": stdout, "stderr": stderr, "seconds": seconds, "rss_mib": rss,
            "new": sorted(after - before)}


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once the child has exited, left unreaped so wait4 gets its resource usage; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.02)
    return False


if __name__ == "__main__":  # the table of cases for the README / the closing note
    import hostile_inputs2  # noqa: F401  (registers the second corpus, issue 30)
    print("| case | exit | peak RSS | seconds | message |\n|---|---|---|---|---|")
    for hostile in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            result = run_case(hostile, work)
        first = result["stderr"].strip().splitlines()[:1]
        print(f"| {hostile.id} | {result['exit']} | {result['rss_mib']:.0f} MiB | {result['seconds']:.1f} | "
              f"{first[0][:110] if first else ''} |")
