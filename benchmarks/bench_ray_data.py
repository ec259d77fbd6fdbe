"""How a Ray node gets a sweep's data (issue 29), measured on a 2-node `ray.cluster_utils.Cluster` on this machine.

The sweep process puts each data set in its node's object store once (raycluster.py: `ray.put` of the
`Dataset`, its memory-mapped arrays as plain arrays: shipping.for_object_store); a trial worker actor reads
it with `ray.get` the first time a trial needs it (raytasks.py). This script does the same with a data set
of `--mib` MiB of uint8 images: it times the put, then the first read by an actor on the other node (the
transfer to that node and the unpickling) and a second read by another actor on that node, and reports
which nodes hold the object after each (Ray's object directory), the object's size (the bytes a node
receives), and each actor's private memory after the read and after building its training stream
(engine/pipeline.py), so a copy per actor would show.

Run: `PYTHONPATH=. python benchmarks/bench_ray_data.py [--mib 50] [--budget 1G]`
(`--budget 8M` puts a memory-mapped cache entry, as a sweep over a data set larger than memory does).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import write_npy_images

SIDE = 64


def private_mib() -> dict[str, float]:
    """This process' resident and private (not shared with another process) memory, in MiB."""
    fields: dict[str, float] = {}
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if parts and parts[0].rstrip(":") in ("Rss", "Private_Clean", "Private_Dirty"):
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {"rss": fields["Rss"], "private": fields["Private_Clean"] + fields["Private_Dirty"]}


def reader(ray: Any) -> Any:
    """The actor class: reads the data set as TrialWorker does, then builds a training stream from it."""

    @ray.remote(num_cpus=1)
    class Reader:
        def read(self, refs: list[Any]) -> dict[str, Any]:
            from dlrun.engine import backend
            from dlrun.engine.pipeline import train_stream

            backend.setup(0, 1)
            before = private_mib()
            start = time.perf_counter()
            data = ray.get(refs[0])
            seconds = time.perf_counter() - start
            after = private_mib()
            stream, _ = train_stream(data.x_train, data.y_train, 64, 0, 0, 1)
            next(iter(stream))
            streamed = private_mib()
            return {"node": ray.get_runtime_context().get_node_id(), "seconds": seconds,
                    "type": type(data.x_train).__name__, "writeable": bool(data.x_train.flags.writeable),
                    "private after read": after["private"] - before["private"],
                    "private after stream": streamed["private"] - before["private"]}

    return Reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=50, help="MiB of uint8 pixels")
    parser.add_argument("--budget", default="1G", help="DLRUN_MEMORY_BUDGET of the sweep process")
    args = parser.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dlrun.config.schema import DataConfig
    from dlrun.data import load_dataset
    from dlrun.sweeps.executors.shipping import for_object_store

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n = write_npy_images(work, args.mib, SIDE)
        os.environ["DLRUN_CACHE"] = str(work / "cache")
        cfg = DataConfig(source="npy", path=str(work), color="rgb", test_split=0.1, validation=0.1)
        load_dataset(cfg)  # written to the cache
        os.environ["DLRUN_MEMORY_BUDGET"] = args.budget
        data = load_dataset(cfg)
        store = 4 * args.mib * 2**20 + 100 * 2**20
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                                "object_store_memory": store})
        other = cluster.add_node(num_cpus=2, object_store_memory=store)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        try:
            start = time.perf_counter()
            ref = ray.put(for_object_store(data))
            put = time.perf_counter() - start
            on_other = NodeAffinitySchedulingStrategy(other.node_id, soft=False)
            actors = [reader(ray).options(scheduling_strategy=on_other).remote() for _ in range(2)]
            reads, holders = [], []
            for actor in actors:  # one after the other: the first brings the object to the node
                reads.append(ray.get(actor.read.remote([ref])))
                holders.append(len(ray.experimental.get_object_locations([ref])[ref]["node_ids"]))
            size = ray.experimental.get_object_locations([ref])[ref]["object_size"]
        finally:
            ray.shutdown()
            cluster.shutdown()
    examples = sum(a.nbytes for a in (data.x_train, data.x_val, data.x_test) if a is not None)
    print(f"{n} images {SIDE}x{SIDE}x3 uint8, examples {examples / 2**20:.1f} MiB "
          f"({type(data.x_train).__name__} in the sweep process, DLRUN_MEMORY_BUDGET={args.budget}); "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  ray.put in the sweep process: {put:.2f} s; object size {size / 2**20:.1f} MiB")
    for i, (read, held) in enumerate(zip(reads, holders, strict=True), 1):
        print(f"  actor {i} on the other node: ray.get {read['seconds']:.3f} s, x_train {read['type']} "
              f"(writeable {read['writeable']}), private memory +{read['private after read']:.1f} MiB after the "
              f"read, +{read['private after stream']:.1f} MiB after its training stream; nodes holding the "
              f"object: {held}")


if __name__ == "__main__":
    sys.exit(main())
