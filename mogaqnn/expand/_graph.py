"""Find the expansion groups of a CNN by tracing it with torch.fx.

Every tensor in the traced graph carries a *channel layout*: the list of segments that
make up its channel (or feature) dimension, each segment naming the group its channels
belong to and a multiplier (``H*W`` once a conv map is flattened in front of a Linear).
Layers that create channels (Conv2d, Linear) start a group; BatchNorm, depthwise convs
and per-element ops pass the layout through; residual adds merge groups; concatenation
joins segment lists and a split along channels cuts them at segment boundaries.

The invariant: a node that reads a tracked layout either maps its channels exactly (so
that widening a group by copies and slicing it to its first channels both follow) or
*fixes* every group it reads, with a reason that names the node. A group that reaches the
model input or output, or meets something this analysis does not understand, keeps its
width; no layout is ever dropped silently.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError

__all__ = [
    "Segment", "Consumer", "ExpansionGroup", "FixedGroup", "ModelGraph", "analyze_model",
]  # fmt: skip


@dataclass(frozen=True)
class Segment:
    group: int
    channels: int
    multiplier: int = 1


@dataclass(frozen=True)
class Consumer:
    """A Conv2d or Linear whose input dimension is laid out as ``segments``; a grouped
    convolution (``groups`` > 1) reads one segment, split into ``groups`` blocks."""

    module: str
    segments: tuple[Segment, ...]
    groups: int = 1


@dataclass
class ExpansionGroup:
    """Channels that must keep one width: one expansion ratio in the genome."""

    name: str
    width: int
    producers: list[str]  # Conv2d / Linear whose output channels are the group
    passthrough: list[str]  # BatchNorm and depthwise convs that carry one value per channel
    consumers: list[Consumer]  # layers that read the group (possibly among other segments)
    blocks: int = 1  # grouped convs read it in this many equal blocks: copies stay inside


@dataclass(frozen=True)
class FixedGroup:
    """Output channels of ``producers`` that keep their width, and why."""

    producers: tuple[str, ...]
    width: int
    reason: str


# Reasons that describe what every classifier has, not a limitation of the analysis.
EXPECTED_REASONS = ("the model input keeps its channels", "the model output keeps its width")


@dataclass
class ModelGraph:
    """What the analysis found: the widenable groups, BatchNorms that fold, and the rest."""

    groups: list[ExpansionGroup]
    bn_fold: dict[str, str]  # BatchNorm name -> the Conv/Linear it follows and folds into
    not_widened: list[str] = field(default_factory=list)  # human-readable reasons
    fixed: list[FixedGroup] = field(default_factory=list)  # producer groups that keep width
    # BatchNorms and depthwise convs over a concatenation: one value per channel, segment
    # by segment (DenseNet's pre-activation BatchNorm).
    per_channel: list[Consumer] = field(default_factory=list)

    def group(self, name: str) -> ExpansionGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def widenable_modules(self) -> set[str]:
        """Modules with a parameter dimension that some expansion ratio changes."""
        names: set[str] = set()
        for g in self.groups:
            names.update(g.producers, g.passthrough, (c.module for c in g.consumers))
        names.update(c.module for c in self.per_channel)
        return names


_F = torch.nn.functional
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout,
)  # fmt: skip
_SPATIAL_MODULES = (
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample,
    nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d,
    nn.ReflectionPad2d, nn.ReplicationPad2d,
)  # fmt: skip
_PASS_MODULES = _ELEMENTWISE_MODULES + _SPATIAL_MODULES
_PASS_FUNCTIONS = {
    torch.relu, torch.relu_, _F.relu, _F.relu6, torch.sigmoid, _F.sigmoid, torch.tanh, _F.tanh,
    _F.hardtanh, _F.gelu, _F.silu, _F.hardswish, _F.hardsigmoid, _F.mish, _F.elu, _F.selu,
    _F.leaky_relu, _F.softplus, torch.clamp, torch.clip, torch.abs, torch.exp, torch.neg,
    _F.dropout, _F.dropout2d, _F.alpha_dropout, _F.max_pool2d, _F.avg_pool2d,
    _F.adaptive_avg_pool2d, _F.adaptive_max_pool2d, _F.interpolate, _F.pad,
    operator.neg, operator.pos,
}  # fmt: skip
# Functions wrapped for fx by optional packages, known by their qualified name.
_PASS_FUNCTION_NAMES = {"torchvision.ops.stochastic_depth.stochastic_depth"}
_PASS_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clip",
    "clamp_min", "clamp_max", "abs", "exp", "neg", "contiguous", "clone", "float", "detach",
    "to", "type_as", "mul_scalar",
}  # fmt: skip
_MERGE_FUNCTIONS = {
    operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.isub,
    operator.truediv, operator.itruediv, torch.add, torch.mul, torch.sub, torch.div,
    torch.maximum, torch.minimum,
}  # fmt: skip
_MERGE_METHODS = {"add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_"}
_RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze"}
_METADATA = {"size", "dim", "shape", "ndim", "dtype", "device", "numel"}  # read no values
_POOLING_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min"}


class _Groups:
    """Union-find over group ids, with per-root facts merged on union."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.fixed: dict[int, str] = {}
        self.width: list[int] = []

    def new(self, width: int, fixed: str | None = None) -> int:
        gid = len(self.parent)
        self.parent.append(gid)
        self.width.append(width)
        if fixed:
            self.fixed[gid] = fixed
        return gid

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        if rb in self.fixed and ra not in self.fixed:
            self.fixed[ra] = self.fixed[rb]

    def fix(self, g: int, reason: str) -> None:
        self.fixed.setdefault(self.find(g), reason)

    def is_fixed(self, g: int) -> bool:
        return self.find(g) in self.fixed


Layout = tuple[Segment, ...]


def _shape(node: object) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _tuple_shapes(node: torch.fx.Node) -> list[tuple[int, ...] | None] | None:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, (tuple, list)) and not hasattr(meta, "shape"):
        return [tuple(m.shape) if hasattr(m, "shape") else None for m in meta]
    return None


def _width(layout: Layout) -> int:
    return sum(s.channels * s.multiplier for s in layout)


def _leaf_batchnorm(mod: nn.Module) -> bool:
    """A BatchNorm subclass with an activation inside (timm's BatchNormAct2d): one value
    per channel in, one out, so it widens like BatchNorm when its parts are per-element."""
    if type(mod).__name__ != "BatchNormAct2d" or not isinstance(mod, nn.BatchNorm2d):
        return False
    parts = [getattr(mod, "act", nn.Identity()), getattr(mod, "drop", nn.Identity())]
    return all(isinstance(p, _ELEMENTWISE_MODULES) for p in parts)


# Subclasses whose forward computes exactly what their torch base class computes.
_SAME_AS_BASE = {"timm.layers.linear.Linear"}


def _same_as_base(mod: nn.Module) -> bool:
    return f"{type(mod).__module__}.{type(mod).__qualname__}" in _SAME_AS_BASE


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            _leaf_batchnorm(m)
            or _same_as_base(m)
            or super().is_leaf_module(m, module_qualified_name)
        )


def analyze_model(model: nn.Module, example_input: torch.Tensor) -> ModelGraph:
    """Trace ``model`` and return its expansion groups; raise ModelError if it cannot be
    traced (the caller decides whether to go on without expansion)."""
    try:
        graph = _Tracer().trace(model)
        gm = torch.fx.GraphModule(model, graph, type(model).__name__)
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{type(model).__name__} cannot be traced by torch.fx ({first_line}); "
            "channel expansion needs a forward pass without data-dependent control flow"
        ) from exc
    was_training = model.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as exc:
        raise ModelError(
            f"{type(model).__name__} failed on an example input of shape "
            f"{tuple(example_input.shape)}: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    return _Analysis(gm).run()


def _describe(node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return f"module {node.target}"
    if node.op == "call_method":
        return f"method .{node.target}() ({node.name})"
    target = node.target
    name = getattr(target, "__name__", str(target))
    return f"function {name} ({node.name})"


def _dim_arg(node: torch.fx.Node, position: int, default: object = None) -> object:
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get("dim", default)


class _Analysis:
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.g = _Groups()
        self.layout: dict[torch.fx.Node, Layout | None] = {}
        self.tuples: dict[torch.fx.Node, list[Layout | None]] = {}  # chunk/split outputs
        self.producers: dict[int, list[str]] = {}  # group id at creation -> producer names
        self.passthrough: list[tuple[int, str]] = []
        self.per_channel: list[tuple[str, Layout]] = []  # over several segments
        self.blocks: list[tuple[int, int]] = []  # (group id, blocks) from grouped convs
        self.consumers: list[tuple[str, Layout, int]] = []
        self.bn_fold: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------------
    def _fix(self, layout: Layout | None, reason: str) -> None:
        for seg in layout or ():
            self.g.fix(seg.group, reason)

    def _fresh(self, node: torch.fx.Node, reason: str) -> Layout | None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        return (Segment(self.g.new(shape[1], fixed=reason), shape[1]),)

    def _tracked_inputs(self, node: torch.fx.Node) -> list[torch.fx.Node]:
        return [a for a in node.all_input_nodes if self.layout.get(a) or a in self.tuples]

    def _unsupported(self, node: torch.fx.Node, why: str = "is not understood") -> Layout | None:
        """Fix every group the node reads; its output is a fixed layout of its own."""
        reason = f"{_describe(node)} {why}"
        for a in node.all_input_nodes:
            self._fix(self.layout.get(a), reason)
            for lay in self.tuples.get(a, ()):
                self._fix(lay, reason)
        return self._fresh(node, reason)

    # -- the invariant -----------------------------------------------------------
    def run(self) -> ModelGraph:
        for node in self.gm.graph.nodes:
            self.layout[node] = self._checked(node)
        return self._result()

    def _checked(self, node: torch.fx.Node) -> Layout | None:
        """Visit ``node``; a layout read and not passed on, or passed on with the wrong
        width, fixes the groups read."""
        result = self._visit(node)
        if node in self.tuples or node.op in ("output", "placeholder"):
            return result
        shape = _shape(node)
        if result is None:
            if self._reads_values(node) and self._tracked_inputs(node):
                return self._unsupported(node)
            if shape is not None and len(shape) >= 2:  # untracked tensor: channels fixed
                return self._fresh(node, f"{_describe(node)} makes a tensor of fixed channels")
            return None
        if shape is None or len(shape) < 2 or _width(result) != shape[1]:
            return self._unsupported(node, "changes the channel layout in a way not understood")
        return result

    def _reads_values(self, node: torch.fx.Node) -> bool:
        if node.op == "call_method":
            return str(node.target) not in _METADATA
        if node.op == "call_function" and node.target is getattr:
            return str(node.args[1]) not in _METADATA
        return node.op in ("call_function", "call_module")

    def _visit(self, node: torch.fx.Node) -> Layout | None:
        if node.op == "placeholder":
            return self._fresh(node, EXPECTED_REASONS[0])
        if node.op == "output":
            for a in node.all_input_nodes:
                self._fix(self.layout.get(a), EXPECTED_REASONS[1])
                for lay in self.tuples.get(a, ()):
                    self._fix(lay, EXPECTED_REASONS[1])
            return None
        if node.op == "call_module":
            return self._visit_module(node, self.modules[str(node.target)])
        if node.op == "call_function":
            return self._visit_function(node)
        if node.op == "call_method":
            return self._visit_method(node)
        if node.op == "get_attr":
            return self._fresh(node, f"parameter or buffer {node.target} has fixed channels")
        return self._unsupported(node)

    def _input_layout(self, node: torch.fx.Node) -> Layout | None:
        first = node.args[0] if node.args else None
        return self.layout.get(first) if isinstance(first, torch.fx.Node) else None

    # -- modules -----------------------------------------------------------------
    def _visit_module(self, node: torch.fx.Node, mod: nn.Module) -> Layout | None:
        name = str(node.target)
        lin = self._input_layout(node)
        if lin is None:
            return None  # untracked input: the invariant check gives a fixed layout
        if isinstance(mod, nn.Conv2d) and type(mod).forward is nn.Conv2d.forward:
            return self._conv(node, name, mod, lin)
        if isinstance(mod, nn.Linear) and (
            type(mod).forward is nn.Linear.forward or _same_as_base(mod)
        ):
            shape_in = _shape(node.args[0])
            if shape_in is None or len(shape_in) != 2:
                return self._unsupported(node, "is a Linear on a tensor that is not [N, features]")
            return self._produce(node, name, lin, mod.out_features)
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)) and (
            type(mod) in (nn.BatchNorm2d, nn.BatchNorm1d) or _leaf_batchnorm(mod)
        ):
            return self._batchnorm(node, name, mod, lin)
        if isinstance(mod, nn.Flatten):
            return self._reshape(node, lin)
        if isinstance(mod, nn.LayerNorm):
            return self._layernorm(node, mod.normalized_shape, lin)
        if isinstance(mod, nn.GroupNorm):
            return self._unsupported(node, "normalises over groups of channels")
        if isinstance(mod, _PASS_MODULES):
            return lin
        if isinstance(mod, nn.PReLU):
            if mod.num_parameters == 1:
                return lin
            return self._unsupported(node, "has one slope per channel (PReLU)")
        if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
            return self._softmax(node, mod.dim, lin)
        return self._unsupported(node, f"({type(mod).__name__}) is not understood")

    def _conv(self, node: torch.fx.Node, name: str, mod: nn.Conv2d, lin: Layout) -> Layout | None:
        depthwise = mod.groups == mod.in_channels == mod.out_channels and mod.groups > 1
        if depthwise and len(lin) == 1 and lin[0].multiplier == 1:
            self.passthrough.append((lin[0].group, name))
            return lin
        if depthwise and all(s.multiplier == 1 for s in lin):
            self.per_channel.append((name, lin))
            return lin
        if mod.groups != 1:
            if len(lin) != 1 or lin[0].multiplier != 1:  # its output can still grow
                self._fix(lin, f"{_describe(node)} is a grouped convolution over mixed groups")
            else:
                self.blocks.append((lin[0].group, mod.groups))
            out = self._produce(node, name, lin, mod.out_channels, groups=mod.groups)
            self.blocks.append((out[0].group, mod.groups))
            return out
        return self._produce(node, name, lin, mod.out_channels)

    def _batchnorm(
        self, node: torch.fx.Node, name: str, mod: nn.Module, lin: Layout
    ) -> Layout | None:
        if any(s.multiplier != 1 for s in lin):
            return self._unsupported(node, "normalises features of a flattened map")
        if len(lin) > 1:  # a concatenation: per channel, so segment by segment
            self.per_channel.append((name, lin))
            return lin
        self.passthrough.append((lin[0].group, name))
        src = node.args[0]
        if (
            type(mod) in (nn.BatchNorm2d, nn.BatchNorm1d)
            and isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(self.modules[str(src.target)], (nn.Conv2d, nn.Linear))
            and len(src.users) == 1
        ):
            self.bn_fold[name] = str(src.target)
        return lin

    def _layernorm(self, node: torch.fx.Node, normalized: object, lin: Layout) -> Layout | None:
        shape = _shape(node)
        n = len(normalized) if isinstance(normalized, (tuple, list, torch.Size)) else 1
        if shape is not None and len(shape) - n > 1:  # normalises spatial dims only
            return lin
        return self._unsupported(
            node, "normalises across channels: copied channels would change its statistics"
        )

    def _softmax(self, node: torch.fx.Node, dim: object, lin: Layout) -> Layout | None:
        shape = _shape(node)
        if isinstance(dim, int) and shape is not None and dim % len(shape) >= 2:
            return lin
        return self._unsupported(node, "is a softmax across channels")

    def _produce(
        self, node: torch.fx.Node, name: str, lin: Layout, out_width: int, groups: int = 1
    ) -> Layout:
        shape_in = _shape(node.args[0])
        if shape_in is not None and _width(lin) != shape_in[1]:
            self._fix(lin, f"module {name} reads an input whose layout is not understood")
        self.consumers.append((name, lin, groups))
        gid = self.g.new(out_width)
        self.producers.setdefault(gid, []).append(name)
        return (Segment(gid, out_width),)

    # -- shapes ------------------------------------------------------------------
    def _reshape(self, node: torch.fx.Node, lin: Layout) -> Layout | None:
        """A reshape that keeps the batch dimension keeps channel-major order: each
        channel's values stay contiguous, so a segment's multiplier scales by the ratio of
        the per-index sizes before and after. Sizes written as constants in the target
        shape would not follow a widening, so they fix the layout."""
        shape_in = _shape(node.args[0])
        shape_out = _shape(node)
        if shape_in is None or shape_out is None or len(shape_out) < 2:
            return self._unsupported(node, "reshapes away the channel dimension")
        if shape_in[0] != shape_out[0]:
            return self._unsupported(node, "reshapes across the batch dimension")
        if node.op == "call_method" and str(node.target) in ("view", "reshape"):
            sizes = node.args[1:]
            if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
                sizes = tuple(sizes[0])
            if len(sizes) < 2 or (isinstance(sizes[1], int) and sizes[1] != -1):
                return self._unsupported(node, "reshapes the channel dimension")
        if node.op == "call_method" and str(node.target) in ("squeeze", "unsqueeze"):
            dim = _dim_arg(node, 1)
            if not isinstance(dim, int) or dim in (0, 1, -len(shape_in) if dim < 0 else 0):
                if shape_in[1] != shape_out[1]:
                    return self._unsupported(node, "squeezes the channel dimension")
        per_in = math.prod(shape_in[2:])
        per_out = math.prod(shape_out[2:])
        out: list[Segment] = []
        for s in lin:
            size = s.multiplier * per_in
            if size % per_out:
                return self._unsupported(node, "reshapes so one index spans several channels")
            out.append(Segment(s.group, s.channels, size // per_out))
        return tuple(out)

    def _permute(self, node: torch.fx.Node, lin: Layout) -> Layout | None:
        method = str(node.target)
        dims = [d for d in node.args[1:] if not isinstance(d, torch.fx.Node)]
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])
        shape_in = _shape(node.args[0])
        if shape_in is None:
            return self._unsupported(node)
        dims = [d % len(shape_in) for d in dims if isinstance(d, int)]
        if method == "permute" and dims[:2] == [0, 1]:
            return lin
        if method == "transpose" and len(dims) == 2 and min(dims) >= 2:
            return lin
        return self._unsupported(node, "moves the channel dimension")

    def _index(self, node: torch.fx.Node, lin: Layout) -> Layout | None:
        """``x[...]``: slicing below the channel dimension passes; any channel index with
        constant bounds would not follow a widening."""
        idx = node.args[1]
        idx = idx if isinstance(idx, tuple) else (idx,)
        if any(isinstance(i, torch.fx.Node) or i is None for i in idx):
            return self._unsupported(node, "indexes with tensors or inserts dimensions")
        if not idx or idx[0] is Ellipsis:
            shape_in = _shape(node.args[0])
            tail = len(idx) - 1
            if shape_in is not None and tail <= len(shape_in) - 2:
                return lin
            return self._unsupported(node, "indexes the channel dimension")
        if idx[0] != slice(None):
            return self._unsupported(node, "indexes the batch dimension")
        if len(idx) == 1 or idx[1] == slice(None) or idx[1] is Ellipsis:
            return lin
        return self._unsupported(node, "slices channels at fixed positions")

    def _split(self, node: torch.fx.Node, lin: Layout, method: str) -> None:
        """``chunk`` and ``split`` along channels: equal pieces that fall on segment
        boundaries map exactly, and their groups must then widen alike."""
        shapes = _tuple_shapes(node)
        shape_in = _shape(node.args[0])
        dim = _dim_arg(node, 2, 0)
        if shapes is None or shape_in is None or not isinstance(dim, int):
            self._unsupported(node)
            return
        dim %= len(shape_in)
        if dim != 1:
            self.tuples[node] = [lin if s is not None and len(s) >= 2 else None for s in shapes]
            if dim == 0:
                self._fix(lin, f"{_describe(node)} splits the batch dimension")
            return
        sizes = [s[1] if s is not None else 0 for s in shapes]
        pieces: list[Layout] = []
        rest = list(lin)
        for size in sizes:
            piece: list[Segment] = []
            while rest and size > 0 and rest[0].channels * rest[0].multiplier <= size:
                size -= rest[0].channels * rest[0].multiplier
                piece.append(rest.pop(0))
            if size != 0:
                self._split_fixed(node, shapes, "splits a group's channels")
                return
            pieces.append(tuple(piece))
        equal = method == "chunk" and all(
            len(p) == len(pieces[0])
            and all(
                a.channels == b.channels and a.multiplier == b.multiplier
                for a, b in zip(p, pieces[0])
            )  # fmt: skip
            for p in pieces
        )
        if not equal:  # split sizes are constants, so every piece keeps its width
            self._split_fixed(node, shapes, "splits channels at constant sizes")
            return
        for p in pieces[1:]:
            for a, b in zip(pieces[0], p):
                self.g.union(a.group, b.group)
        self.tuples[node] = list(pieces)

    def _split_fixed(
        self, node: torch.fx.Node, shapes: list[tuple[int, ...] | None], why: str
    ) -> None:
        """Fix what the split reads; each piece is a tensor of fixed channels, for that reason."""
        self._unsupported(node, why)
        reason = f"{_describe(node)} {why}"
        self.tuples[node] = [
            (Segment(self.g.new(s[1], fixed=reason), s[1]),) if s and len(s) >= 2 else None
            for s in shapes
        ]

    def _reduce(self, node: torch.fx.Node, lin: Layout, what: str) -> Layout | None:
        dims = _dim_arg(node, 1)
        shape_in = _shape(node.args[0])
        if dims is None or shape_in is None:
            return self._unsupported(node, f"reduces over all dimensions ({what})")
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        if not all(isinstance(d, int) for d in dims):
            return self._unsupported(node)
        dims = tuple(d % len(shape_in) for d in dims)
        if 0 in dims:
            return self._unsupported(node, "reduces over the batch dimension")
        if 1 not in dims:
            return lin
        # A channel's copies do not change a max, but a supernet's slice (expand/_slim.py)
        # would see fewer channels than the wide network it is trained in.
        return self._unsupported(node, f"reduces over channels ({what})")

    # -- elementwise -------------------------------------------------------------
    def _merge(self, node: torch.fx.Node, operands: list[object]) -> Layout | None:
        """Elementwise op with broadcasting: operands whose channel dimension lines up with
        the output's join one layout; one broadcast over channels keeps its own width."""
        out = _shape(node)
        if out is None or len(out) < 2:
            return self._unsupported(node, "is an elementwise op whose output has no channels")
        joined: list[Layout] = []
        pinned = False  # an untracked operand fixes the output's channels
        for a in operands:
            shape = _shape(a)
            if shape is None:
                continue  # a Python number or an int from .size()
            lay = self.layout.get(a)  # type: ignore[arg-type]
            d = len(shape) - len(out) + 1  # the operand dim that lines up with channels
            if (d < 0 or shape[d] == 1) and out[1] != 1:
                self._fix(lay, f"{_describe(node)} broadcasts it over channels")
            elif d == 1 and lay is not None and _width(lay) == out[1]:
                joined.append(lay)
            else:
                pinned = True
                self._fix(lay, f"{_describe(node)} combines it with a tensor of fixed channels")
        if not joined:
            return None
        first = joined[0]
        for other in joined[1:]:
            if len(other) != len(first) or any(
                a.channels != b.channels or a.multiplier != b.multiplier
                for a, b in zip(first, other)
            ):
                return self._unsupported(node, "combines tensors with different channel layouts")
        for other in joined[1:]:
            for a, b in zip(first, other):
                self.g.union(a.group, b.group)
        if pinned:
            self._fix(first, f"{_describe(node)} combines it with a tensor of fixed channels")
        return first

    def _cat(self, node: torch.fx.Node) -> Layout | None:
        tensors = node.args[0]
        dim = _dim_arg(node, 1, 0)
        out = _shape(node)
        if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int) or out is None:
            return self._unsupported(node)
        dim %= len(out)
        if dim != 1:  # concatenation along batch or space: every input has the same layout
            return self._merge(node, list(tensors)) if dim >= 2 else self._unsupported(node)
        layouts = [self.layout.get(t) if isinstance(t, torch.fx.Node) else None for t in tensors]
        if any(lay is None for lay in layouts):
            return self._unsupported(node, "concatenates an untracked tensor")
        return tuple(seg for lay in layouts for seg in lay)  # type: ignore[union-attr]

    # -- functions and methods ---------------------------------------------------
    def _visit_function(self, node: torch.fx.Node) -> Layout | None:
        fn = node.target
        if fn is operator.getitem:
            src = node.args[0]
            if isinstance(src, torch.fx.Node) and src in self.tuples:
                i = node.args[1]
                return self.tuples[src][i] if isinstance(i, int) else self._unsupported(node)
            lin = self.layout.get(src) if isinstance(src, torch.fx.Node) else None
            return self._index(node, lin) if lin is not None else None
        if fn is getattr:
            return None
        if fn in _MERGE_FUNCTIONS:
            return self._merge(node, list(node.args[:2]))
        if fn in (torch.cat, torch.concat):
            return self._cat(node)
        lin = self._input_layout(node)
        if lin is None:
            return None
        qualname = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__name__', '')}"
        if fn in _PASS_FUNCTIONS or qualname in _PASS_FUNCTION_NAMES:
            return lin
        if fn is torch.flatten:
            return self._reshape(node, lin)
        if fn in (torch.chunk, torch.split):
            self._split(node, lin, fn.__name__)
            return None
        if fn in (torch.permute, torch.transpose):
            return self._permute(node, lin)
        if fn in (_F.softmax, torch.softmax, _F.log_softmax):
            return self._softmax(node, _dim_arg(node, 1), lin)
        if fn is _F.layer_norm:
            return self._layernorm(node, node.args[1], lin)
        name = getattr(fn, "__name__", "")
        if fn in (torch.mean, torch.sum, torch.amax, torch.amin) or name in ("max", "min"):
            if fn in (torch.max, torch.min) and _tuple_shapes(node) is not None:
                return self._unsupported(node, "returns values and indices")
            return self._reduce(node, lin, name)
        return self._unsupported(node)

    def _visit_method(self, node: torch.fx.Node) -> Layout | None:
        method = str(node.target)
        if method in _METADATA:
            return None
        lin = self._input_layout(node)
        if method in _MERGE_METHODS:
            return self._merge(node, list(node.args[:2]))
        if lin is None:
            return None
        if method in _PASS_METHODS:
            return lin
        if method in _RESHAPE_METHODS:
            return self._reshape(node, lin)
        if method in ("chunk", "split"):
            self._split(node, lin, method)
            return None
        if method in ("permute", "transpose"):
            return self._permute(node, lin)
        if method in _POOLING_REDUCTIONS:
            if _tuple_shapes(node) is not None:
                return self._unsupported(node, "returns values and indices")
            return self._reduce(node, lin, method)
        if method in ("softmax", "log_softmax"):
            return self._softmax(node, _dim_arg(node, 1), lin)
        if method == "expand_as":
            return self._merge(node, list(node.args[:2]))
        return self._unsupported(node)

    # -- result ------------------------------------------------------------------
    def _result(self) -> ModelGraph:
        find = self.g.find
        producers: dict[int, list[str]] = {}
        for gid, names in self.producers.items():
            producers.setdefault(find(gid), []).extend(names)
        passthrough: dict[int, list[str]] = {}
        for gid, name in self.passthrough:
            passthrough.setdefault(find(gid), []).append(name)
        blocks: dict[int, int] = {}
        for gid, n in self.blocks:
            root = find(gid)
            blocks[root] = math.lcm(blocks.get(root, 1), n)
            if self.g.width[root] % blocks[root]:
                why = f"{self.g.width[root]} channels do not split into {blocks[root]} blocks"
                self.g.fix(root, f"{why} for its grouped convolutions")
        order = {n: i for i, n in enumerate(self.modules)}
        roots = sorted(producers, key=lambda r: order.get(producers[r][0], 0))
        free = [r for r in roots if r not in self.g.fixed]
        fixed = [
            FixedGroup(tuple(producers[r]), self.g.width[r], self.g.fixed[r])
            for r in roots
            if r in self.g.fixed
        ]
        # Segments outside this class name a group by its index in ModelGraph.groups, or -1
        # for channels whose width is fixed.
        index = {root: i for i, root in enumerate(free)}
        groups = [
            ExpansionGroup(
                name=producers[r][0],
                width=self.g.width[r],
                producers=producers[r],
                passthrough=passthrough.get(r, []),
                consumers=[],
                blocks=blocks.get(r, 1),
            )
            for r in free
        ]

        def indexed(name: str, lay: Layout, groups: int = 1) -> Consumer:
            return Consumer(name, tuple(
                Segment(index.get(find(s.group), -1), s.channels, s.multiplier) for s in lay
            ), groups)  # fmt: skip

        for name, lay, n in self.consumers:
            consumer = indexed(name, lay, n)
            for i in sorted({s.group for s in consumer.segments if s.group >= 0}):
                groups[i].consumers.append(consumer)
        per_channel = [indexed(name, lay) for name, lay in self.per_channel]
        per_channel = [c for c in per_channel if any(s.group >= 0 for s in c.segments)]
        reasons = [f.reason for f in fixed if f.reason not in EXPECTED_REASONS]
        return ModelGraph(groups=groups, bn_fold=self.bn_fold,
                          not_widened=list(dict.fromkeys(reasons)), fixed=fixed,
                          per_channel=per_channel)  # fmt: skip
