"""Channel expansion: expansion groups found by tracing, function-preserving widening, and
the same architectures freshly initialised or sliced from a wider network."""

from ._graph import Consumer, ExpansionGroup, FixedGroup, ModelGraph, Segment, analyze_model
from ._slim import channel_masks, fresh_at_width, group_widths, scaled_graph, slice_model
from ._widen import widen_model, widened_width

__all__ = [
    "Consumer",
    "ExpansionGroup",
    "FixedGroup",
    "ModelGraph",
    "Segment",
    "analyze_model",
    "channel_masks",
    "fresh_at_width",
    "group_widths",
    "scaled_graph",
    "slice_model",
    "widen_model",
    "widened_width",
]
