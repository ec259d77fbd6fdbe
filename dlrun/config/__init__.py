"""The config: the schema (with field descriptions), layer types and their Keras names, loading
with `--set` overrides, where each value came from, and the cross-field checks. No TensorFlow."""

from dlrun.config.loader import config_sha256, dump_config, ensure_loaded, load_config
from dlrun.config.schema import ExperimentConfig
from dlrun.config.sourcemap import LoadedConfig, SourceMap

__all__ = ["ExperimentConfig", "LoadedConfig", "SourceMap", "config_sha256", "dump_config", "ensure_loaded",
           "load_config"]
