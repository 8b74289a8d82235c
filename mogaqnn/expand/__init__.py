"""Channel expansion: expansion groups found by tracing, and function-preserving widening."""

from ._graph import Consumer, ExpansionGroup, FixedGroup, ModelGraph, Segment, analyze_model
from ._widen import widen_model, widened_width

__all__ = [
    "Consumer",
    "ExpansionGroup",
    "FixedGroup",
    "ModelGraph",
    "Segment",
    "analyze_model",
    "widen_model",
    "widened_width",
]
