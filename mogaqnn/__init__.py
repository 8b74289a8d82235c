"""mogaqnn: MOGAQNN — NSGA-II over per-layer mixed-precision quantization and channel expansion."""

from .errors import ConfigError, DatasetError, ExportError, ModelError, MogaqnnError, RunDirError

__all__ = ["ConfigError", "DatasetError", "ExportError", "ModelError", "MogaqnnError", "RunDirError"]
__version__ = "0.1.0"
