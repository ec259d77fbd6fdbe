"""A SavedModel folder is a TensorFlow program: its graph is scanned before TensorFlow loads it.

Every node of every meta graph and of its function library is read from saved_model.pb with
TensorFlow's own protobuf classes (nothing is loaded or run). Ops that reach outside the model
(files, the network, Python, summaries and debug dumps) are on DENIED: TensorFlow's own deny-list of
`saved_model_cli scan` (WriteFile, ReadFile, PrintV2) extended to the file, network and process ops.
A base holding one is refused with the ops named unless --unsafe is given. An op TensorFlow does not
have is always refused: the graph cannot load. The checkpoint ops of the SavedModel's own saver
(the functions its saver_def names, which read the variables/ folder beside the graph) are allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.errors import WeightsError
from dlrun.limits import format_bytes, memory_budget

TF_DENIED = frozenset({"WriteFile", "ReadFile", "PrintV2"})  # tensorflow/python/tools/saved_model_cli.py
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename"})
DENIED = TF_DENIED | CHECKPOINT_OPS | frozenset({
    # files
    "Print", "MatchingFiles", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "WholeFileReader",
    "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2",
    "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader", "IdentityReaderV2", "RecordInput",
    "ImmutableConst", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "FileSystemSetConfiguration",
    "Save", "SaveSlices", "Restore", "RestoreSlice", "ShardedFilespec", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "SaveDataset", "SaveDatasetV2", "DistributedSave", "LoadDataset",
    "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader",
    "SnapshotChunkDataset", "ListSnapshotChunksDataset", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
    "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
    # summaries and debug dumps (they write files or send to a URL)
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "SummaryWriter", "WriteSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
    "FlushSummaryWriter", "CloseSummaryWriter", "ImportEvent", "StatsAggregatorSetSummaryWriter", "DebugIdentity",
    "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2",
    # Python and other processes or machines
    "PyFunc", "PyFuncStateless", "EagerPyFunc", "RemoteCall", "Send", "Recv", "_Send", "_Recv", "_HostSend",
    "_HostRecv", "CollectiveGather", "CollectiveGatherV2", "CollectiveReduce", "CollectiveReduceV2",
    "CollectiveReduceV3", "CollectiveBcastSend", "CollectiveBcastRecv", "CollectiveBcastSendV2",
    "CollectiveBcastRecvV2", "CollectiveAllToAllV2", "CollectiveAllToAllV3", "CollectiveReduceScatterV2",
    "CollectiveInitializeCommunicator", "CollectivePermute", "ConfigureDistributedTPU", "ShutdownDistributedTPU",
})
SAVED_MODEL_PB = "saved_model.pb"


def _calls(node: Any) -> list[str]:
    """The library functions a node calls (attrs holding a function or a list of functions)."""
    names = [a.func.name for a in node.attr.values() if a.HasField("func")]
    return names + [f.name for a in node.attr.values() if a.HasField("list") for f in a.list.func]


def graph_ops(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(op -> where it is used, the saver's functions) of the SavedModel in folder `path`. WeightsError
    for a saved_model.pb that cannot be parsed or would not fit the memory budget."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / SAVED_MODEL_PB
    size = pb.stat().st_size
    if size > memory_budget():
        raise WeightsError(f"{pb}: {format_bytes(size)} is more than the memory budget "
                           f"({format_bytes(memory_budget())})")
    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString(pb.read_bytes())
    except (DecodeError, OSError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"{pb}: not a readable SavedModel graph ({exc}); save it again with "
                           "model.export()") from None
    used: dict[str, set[str]] = {}
    saver: set[str] = set()
    for meta in model.meta_graphs:
        library = {f.signature.name: f for f in meta.graph_def.library.function}
        saver_nodes = {meta.saver_def.save_tensor_name.split(":")[0], meta.saver_def.restore_op_name} - {""}
        pending = [name for n in meta.graph_def.node if n.name in saver_nodes for name in _calls(n)]
        while pending:  # the saver's functions and everything they call
            name = pending.pop()
            if name in library and name not in saver:
                saver.add(name)
                pending += [c for n in library[name].node_def for c in _calls(n)]
        for node in meta.graph_def.node:
            used.setdefault(node.op, set()).add("the graph")
        for name, function in library.items():
            for node in function.node_def:
                used.setdefault(node.op, set()).add(name)
        for name in library:
            used.pop(name, None)  # a node may call a library function by its name
    return used, saver


def check_saved_model(path: Path, unsafe: bool) -> None:
    """Refuse a SavedModel base whose graph holds an op TensorFlow does not have, or (unless `unsafe`)
    an op on DENIED outside its saver's checkpoint functions. Raises WeightsError naming the ops."""
    from tensorflow.python.framework import op_def_registry

    used, saver = graph_ops(path)
    unknown = sorted(op for op in used if op_def_registry.get(op) is None)
    if unknown:
        raise WeightsError(f"{path}: the SavedModel uses op(s) this TensorFlow does not have: {', '.join(unknown)}; "
                           "it was saved by another TensorFlow or with custom ops, and cannot be loaded")
    denied = sorted(op for op, where in used.items() if op in DENIED
                    and not (op in CHECKPOINT_OPS and where <= saver))
    if denied and not unsafe:
        shown = "; ".join(f"{op} (in {', '.join(sorted(used[op])[:2])})" for op in denied[:8])
        raise WeightsError(f"{path}: the SavedModel's graph holds ops that reach files, the network or Python: "
                           f"{shown}. A SavedModel is a TensorFlow program and these would run; give --unsafe "
                           "(dlrun transfer) only for a model you trust")
