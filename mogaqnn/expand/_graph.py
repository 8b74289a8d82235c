"""Find the expansion groups of a CNN by tracing it with torch.fx.

Every tensor in the traced graph carries a *channel layout*: the list of segments that
make up its channel (or feature) dimension, each segment naming the group its channels
belong to and a multiplier (``H*W`` once a conv map is flattened in front of a Linear).
Layers that create channels (Conv2d, Linear) start a group; BatchNorm, depthwise convs
and elementwise ops pass the layout through; residual adds merge groups; concatenation
joins segment lists. A group that reaches the model input or output, or meets an op this
analysis does not know, is *fixed*: its width cannot change, and the reason is recorded.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError

__all__ = ["Segment", "Consumer", "ExpansionGroup", "ModelGraph", "analyze_model"]


@dataclass(frozen=True)
class Segment:
    group: int
    channels: int
    multiplier: int = 1


@dataclass(frozen=True)
class Consumer:
    """A Conv2d (groups=1) or Linear whose input dimension is laid out as ``segments``."""

    module: str
    segments: tuple[Segment, ...]


@dataclass
class ExpansionGroup:
    """Channels that must keep one width: one expansion ratio in the genome."""

    name: str
    width: int
    producers: list[str]  # Conv2d / Linear whose output channels are the group
    passthrough: list[str]  # BatchNorm and depthwise convs that carry one value per channel
    consumers: list[Consumer]  # layers that read the group (possibly among other segments)


@dataclass
class ModelGraph:
    """What the analysis found: the widenable groups, BatchNorms that fold, and the rest."""

    groups: list[ExpansionGroup]
    bn_fold: dict[str, str]  # BatchNorm name -> the Conv/Linear it follows and folds into
    not_widened: list[str] = field(default_factory=list)  # human-readable reasons

    def group(self, name: str) -> ExpansionGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)


_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_PASS_FUNCTIONS = {
    torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6, torch.sigmoid,
    torch.tanh, torch.nn.functional.hardtanh, torch.nn.functional.gelu,
    torch.nn.functional.silu, torch.nn.functional.hardswish, torch.nn.functional.dropout,
    torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool2d,
    torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.adaptive_max_pool2d,
    torch.nn.functional.leaky_relu,
}  # fmt: skip
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "detach"}
_MERGE_FUNCTIONS = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub,
                    torch.add, torch.mul, torch.sub}  # fmt: skip
_MERGE_METHODS = {"add", "add_", "mul", "mul_", "sub"}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_SHAPE_METHODS = {"size", "dim"}  # give ints, not tensors


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


def _shape(node: torch.fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def analyze_model(model: nn.Module, example_input: torch.Tensor) -> ModelGraph:
    """Trace ``model`` and return its expansion groups; raise ModelError if it cannot be
    traced (the caller decides whether to go on without expansion)."""
    try:
        gm = torch.fx.symbolic_trace(model)
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


class _Analysis:
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.g = _Groups()
        self.layout: dict[torch.fx.Node, Layout | None] = {}
        self.producers: dict[int, list[str]] = {}  # group id at creation -> producer names
        self.passthrough: list[tuple[int, str]] = []
        self.consumers: list[tuple[str, Layout]] = []
        self.bn_fold: dict[str, str] = {}
        self.reasons: list[str] = []

    # -- helpers -----------------------------------------------------------------
    def _fix_all(self, layout: Layout | None, reason: str) -> None:
        if layout:
            for seg in layout:
                if not self.g.is_fixed(seg.group):
                    self.reasons.append(reason)
                self.g.fix(seg.group, reason)

    def _fresh(self, node: torch.fx.Node, reason: str) -> Layout | None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        return (Segment(self.g.new(shape[1], fixed=reason), shape[1]),)

    def _tensor_args(self, node: torch.fx.Node) -> list[torch.fx.Node]:
        out = []
        for a in node.all_input_nodes:
            if self.layout.get(a) is not None:
                out.append(a)
        return out

    def _unsupported(self, node: torch.fx.Node, what: str) -> Layout | None:
        reason = f"{what} is not supported by channel expansion"
        for a in self._tensor_args(node):
            self._fix_all(self.layout[a], reason)
        return self._fresh(node, reason)

    # -- node kinds --------------------------------------------------------------
    def run(self) -> ModelGraph:
        for node in self.gm.graph.nodes:
            self.layout[node] = self._visit(node)
        return self._result()

    def _visit(self, node: torch.fx.Node) -> Layout | None:
        if node.op == "placeholder":
            return self._fresh(node, "the model input keeps its channels")
        if node.op == "output":
            for a in node.all_input_nodes:  # expected, so not reported as a limitation
                for seg in self.layout.get(a) or ():
                    self.g.fix(seg.group, "the model output keeps its width")
            return None
        if node.op == "call_module":
            return self._visit_module(node, self.modules[str(node.target)])
        if node.op == "call_function":
            return self._visit_function(node)
        if node.op == "call_method":
            return self._visit_method(node)
        if node.op == "get_attr":
            return None
        return self._unsupported(node, f"node {node.name}")

    def _input_layout(self, node: torch.fx.Node) -> Layout | None:
        first = node.args[0] if node.args else None
        return self.layout.get(first) if isinstance(first, torch.fx.Node) else None

    def _visit_module(self, node: torch.fx.Node, mod: nn.Module) -> Layout | None:
        name = str(node.target)
        lin = self._input_layout(node)
        if isinstance(mod, nn.Conv2d):
            if lin is None:
                return self._unsupported(node, f"module {name} on an untracked input")
            depthwise = mod.groups == mod.in_channels == mod.out_channels and mod.groups > 1
            if depthwise and len(lin) == 1 and lin[0].multiplier == 1:
                self.passthrough.append((lin[0].group, name))
                return lin
            if mod.groups != 1:
                reason = f"module {name} is a grouped convolution ({mod.groups} groups)"
                self._fix_all(lin, reason)
                return self._fresh(node, reason)
            return self._produce(node, name, lin, mod.out_channels, in_dim=2)
        if isinstance(mod, nn.Linear):
            shape_in = _shape(node.args[0]) if isinstance(node.args[0], torch.fx.Node) else None
            if lin is None or shape_in is None or len(shape_in) != 2:
                return self._unsupported(node, f"module {name} (Linear on a non-2-D input)")
            return self._produce(node, name, lin, mod.out_features, in_dim=2)
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            if lin is None or len(lin) != 1 or lin[0].multiplier != 1:
                return self._unsupported(node, f"module {name} (BatchNorm over mixed segments)")
            self.passthrough.append((lin[0].group, name))
            src = node.args[0]
            if (
                isinstance(src, torch.fx.Node)
                and src.op == "call_module"
                and isinstance(self.modules[str(src.target)], (nn.Conv2d, nn.Linear))
                and len(src.users) == 1
            ):
                self.bn_fold[name] = str(src.target)
            return lin
        if isinstance(mod, nn.Flatten):
            return self._flatten(node, lin)
        if isinstance(mod, _PASS_MODULES):
            if isinstance(mod, nn.PReLU) and mod.num_parameters != 1:
                return self._unsupported(node, f"module {name} (PReLU with per-channel slopes)")
            return lin
        return self._unsupported(node, f"module {name} ({type(mod).__name__})")

    def _produce(
        self, node: torch.fx.Node, name: str, lin: Layout, out_width: int, in_dim: int
    ) -> Layout:
        shape_in = _shape(node.args[0])  # type: ignore[arg-type]
        in_width = shape_in[1] if shape_in else None
        if in_width is not None and sum(s.channels * s.multiplier for s in lin) != in_width:
            self._fix_all(lin, f"module {name} reads an input whose layout is not understood")
        self.consumers.append((name, lin))
        gid = self.g.new(out_width)
        self.producers.setdefault(gid, []).append(name)
        return (Segment(gid, out_width),)

    def _flatten(self, node: torch.fx.Node, lin: Layout | None) -> Layout | None:
        """Flattening [N, C, H, W] to [N, C*H*W] keeps channel-major order: multiply."""
        if lin is None:
            return None
        shape_in = _shape(node.all_input_nodes[0])
        shape_out = _shape(node)
        if shape_in is None or shape_out is None:
            return self._unsupported(node, f"node {node.name}")
        if shape_in == shape_out:
            return lin
        if len(shape_out) == 2 and len(shape_in) >= 2 and shape_out[0] == shape_in[0]:
            spatial = 1
            for s in shape_in[2:]:
                spatial *= s
            return tuple(Segment(s.group, s.channels, s.multiplier * spatial) for s in lin)
        return self._unsupported(node, f"reshape {node.name} to {shape_out}")

    def _merge(self, node: torch.fx.Node) -> Layout | None:
        tensors = self._tensor_args(node)
        if not tensors:
            return None
        layouts = [self.layout[t] for t in tensors]
        first = layouts[0]
        assert first is not None
        for other in layouts[1:]:
            assert other is not None
            if len(other) != len(first) or any(
                a.channels != b.channels or a.multiplier != b.multiplier
                for a, b in zip(first, other)
            ):
                # Broadcasting over a channel dimension of 1, or mismatched layouts.
                shapes = [_shape(t) for t in tensors]
                if any(s is not None and len(s) > 1 and s[1] == 1 for s in shapes):
                    continue
                return self._unsupported(node, f"elementwise op {node.name} on mixed layouts")
            for a, b in zip(first, other):
                self.g.union(a.group, b.group)
        return first

    def _visit_function(self, node: torch.fx.Node) -> Layout | None:
        fn = node.target
        if fn in _MERGE_FUNCTIONS:
            return self._merge(node)
        if fn in _PASS_FUNCTIONS:
            return self._input_layout(node)
        if fn is torch.flatten:
            return self._flatten(node, self._input_layout(node))
        if fn in (torch.cat, torch.concat):
            return self._cat(node)
        if fn is operator.getitem or fn is getattr:
            src = node.args[0]
            if isinstance(src, torch.fx.Node) and self.layout.get(src) is None:
                return None  # indexing into a shape or a tuple of ints
        if _shape(node) is None:
            return None
        return self._unsupported(node, f"function {getattr(fn, '__name__', fn)} ({node.name})")

    def _visit_method(self, node: torch.fx.Node) -> Layout | None:
        method = str(node.target)
        if method in _SHAPE_METHODS:
            return None
        lin = self._input_layout(node)
        if method in _MERGE_METHODS:
            return self._merge(node)
        if method in _PASS_METHODS:
            return lin
        if method in _FLATTEN_METHODS:
            return self._flatten(node, lin)
        if method == "mean":
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
            if lin is not None and all(isinstance(d, int) and d >= 2 for d in dims):
                return lin
        return self._unsupported(node, f"method .{method}() ({node.name})")

    def _cat(self, node: torch.fx.Node) -> Layout | None:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if not isinstance(tensors, (list, tuple)) or dim != 1:
            return self._unsupported(node, f"concatenation {node.name} along dim {dim}")
        layouts = [self.layout.get(t) if isinstance(t, torch.fx.Node) else None for t in tensors]
        if any(lay is None for lay in layouts):
            return self._unsupported(node, f"concatenation {node.name} of untracked inputs")
        return tuple(seg for lay in layouts for seg in lay)  # type: ignore[union-attr]

    # -- result ------------------------------------------------------------------
    def _result(self) -> ModelGraph:
        find = self.g.find
        producers: dict[int, list[str]] = {}
        for gid, names in self.producers.items():
            producers.setdefault(find(gid), []).extend(names)
        passthrough: dict[int, list[str]] = {}
        for gid, name in self.passthrough:
            passthrough.setdefault(find(gid), []).append(name)
        order = {n: i for i, n in enumerate(self.modules)}
        roots = sorted(
            (r for r in producers if r not in self.g.fixed),
            key=lambda r: order.get(producers[r][0], 0),
        )
        # Segments outside this class name a group by its index in ModelGraph.groups, or -1
        # for channels whose width is fixed.
        index = {root: i for i, root in enumerate(roots)}
        groups = [
            ExpansionGroup(
                name=producers[r][0],
                width=self.g.width[r],
                producers=producers[r],
                passthrough=passthrough.get(r, []),
                consumers=[],
            )
            for r in roots
        ]
        for name, lay in self.consumers:
            segs = tuple(
                Segment(index.get(find(s.group), -1), s.channels, s.multiplier) for s in lay
            )
            consumer = Consumer(name, segs)
            for i in sorted({s.group for s in segs if s.group >= 0}):
                groups[i].consumers.append(consumer)
        return ModelGraph(groups=groups, bn_fold=self.bn_fold,
                          not_widened=list(dict.fromkeys(self.reasons)))  # fmt: skip
