"""Importing torchvision, for the models by name (timm imports it too) and the downloads."""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

__all__ = ["import_torchvision"]

_KEEP: list[object] = []  # a torch.library.Library unregisters its ops when collected


def import_torchvision(module: str = "torchvision") -> ModuleType:
    """Import ``module`` (torchvision or one of its submodules), also where torchvision's
    compiled detection ops cannot load beside this torch (PyPI's CUDA build of torchvision
    next to a CPU torch): its import then stops at registering shapes for
    ``torchvision::nms``. Nothing here calls those ops, so their schemas are declared
    (without kernels) and the import goes on. ImportError when it is not installed."""
    try:
        importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)
        importlib.import_module("torchvision")
    return importlib.import_module(module)
