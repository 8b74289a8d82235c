"""Packed and ONNX exports of a trained run reproduce its model; the packed file's size is
the size formula's."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import mogaqnn
from mogaqnn.errors import ExportError
from mogaqnn.expand import analyze_model
from mogaqnn.export import (
    container_info,
    export_onnx,
    export_packed,
    load_packed,
    load_run_data,
    load_run_model,
    onnx_predict,
    write_onnx,
    write_packed,
)
from mogaqnn.genome import Genome, SearchSpace, build_individual
from mogaqnn.quant import calibrate, quantizable_layers
from mogaqnn.size import model_size

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mogaqnn", *args], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def chosen(tiny_run_dir):
    run_model = load_run_model(tiny_run_dir)
    data = load_run_data(run_model.run)
    with torch.no_grad():
        logits = run_model.model(data.test.x)
    return run_model, data, logits


def test_packed_file_size_is_the_size_formula(chosen, tmp_path):
    run_model, _, _ = chosen
    exported = export_packed(run_model, tmp_path / "m.mogaqnn")
    result = json.loads((run_model.run.root / "result.json").read_text())
    size_bits = result["chosen"]["size_bits"]
    assert size_bits == model_size(run_model.model, run_model.run.graph.bn_fold).total_bits
    info = container_info(exported.path)
    file_nbytes = os.path.getsize(exported.path)
    assert file_nbytes == exported.file_nbytes == info.overhead_nbytes + info.payload_nbytes
    # The tensors are the formula's bits exactly; only each tensor's last byte is padded.
    assert exported.payload_bits == exported.size_bits == size_bits
    assert 0 <= info.payload_nbytes * 8 - size_bits <= 7 * len(info.tensors)
    assert info.payload_nbytes == sum(t.nbytes for t in info.tensors)
    codes = {t.name: t for t in info.tensors if t.kind == "codes"}
    for layer in result["chosen"]["layers"]:
        assert codes[f"{layer['layer']}.codes"].bits == layer["weight_bits"]
        # the input's scale (float32) and signedness (one bit) are payload, counted by size
        assert codes[f"{layer['layer']}.act_signed"].bits == 1
        assert f"{layer['layer']}.act_scale" in {t.name for t in info.tensors}
    meta = info.meta
    assert meta["model"] == "lenet5" and meta["num_classes"] == 10
    assert meta["genome"]["weight_bits"] == [la["weight_bits"] for la in result["chosen"]["layers"]]


def test_packed_model_predicts_as_the_trained_model(chosen, tmp_path):
    run_model, data, logits = chosen
    path = export_packed(run_model, tmp_path / "m.mogaqnn").path
    loaded = load_packed(path)
    with torch.no_grad():
        packed_logits = loaded(data.test.x)
    assert torch.equal(packed_logits.argmax(1), logits.argmax(1))  # the whole test split
    torch.testing.assert_close(packed_logits, logits, atol=1e-4, rtol=0)
    assert isinstance(mogaqnn.load_packed(path), nn.Module)


def test_onnx_export_runs_in_onnxruntime_at_the_torch_accuracy(chosen, tmp_path):
    run_model, data, logits = chosen
    path = export_onnx(run_model, tmp_path / "m.onnx").path
    y = data.test.y.numpy()
    torch_acc = float((logits.argmax(1).numpy() == y).mean())
    ort_acc = float((onnx_predict(path, data.test.x).argmax(1) == y).mean())
    assert abs(ort_acc - torch_acc) <= 0.001 + 1e-9  # 0.1 percentage point
    # Run as written (no onnxruntime fusions), the graph computes the torch model: ONNX
    # divides by the scale where torch multiplies by its inverse, so a value on a rounding
    # boundary may take the next code now and then; every other sample agrees to 1e-4.
    exact = onnx_predict(path, data.test.x, optimize=False)
    close = np.all(np.abs(exact - logits.numpy()) <= 1e-4, axis=1)
    assert close.mean() >= 0.99
    # Weights are int8 initializers inside their bit width's range, read by DequantizeLinear.
    proto = onnx.load(str(path))
    int8 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8
            and i.name.endswith(".weight_codes")]  # fmt: skip
    assert len(int8) == len(run_model.run.space.layers)
    bits = dict(zip(run_model.run.space.layers, run_model.genome.weight_bits))
    for init in int8:
        codes = onnx.numpy_helper.to_array(init)
        qmax = max(2 ** (bits[init.name.removesuffix(".weight_codes")] - 1) - 1, 1)
        assert np.abs(codes).max() <= qmax
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Clip"} <= ops


class _ConvBN(nn.Module):
    """BatchNorms that fold (after each conv) and one that does not (after flatten)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.bn3 = nn.BatchNorm1d(24)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(self.bn3(torch.flatten(x, 1)))


def _random_bn(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()  # some negative: their channels' codes flip sign
                m.bias.normal_()


def test_bn_folding_and_one_bit_weights_round_trip(tmp_path):
    base = _ConvBN()
    _random_bn(base)
    x = torch.randn(64, 1, 8, 8)
    graph = analyze_model(base.eval(), x[:2])
    assert graph.bn_fold == {"bn1": "conv1", "bn2": "conv2"}
    layers = tuple(quantizable_layers(base))
    space = SearchSpace(layers, tuple(g.name for g in graph.groups),
                        tuple(g.width for g in graph.groups), (1, 3), (3, 8), (1.5,))  # fmt: skip
    genome = Genome((1, 3, 2), (8, 4, 3), (1.5,) * len(graph.groups))
    model = build_individual(base, graph, space, genome, noise_std=0.01, seed=1)
    calibrate(model, x)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    exported = write_packed(model, tmp_path / "bn.mogaqnn", bn_fold=graph.bn_fold)
    assert exported.payload_bits == model_size(model, graph.bn_fold).total_bits
    loaded = load_packed(exported.path, model=_ConvBN())
    assert not any(isinstance(m, (nn.BatchNorm2d,)) for m in loaded.modules())  # folded
    with torch.no_grad():
        got = loaded(x)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    onnx_path = write_onnx(model, tmp_path / "bn.onnx", skeleton=_ConvBN(),
                           input_shape=(1, 8, 8), bn_fold=graph.bn_fold).path  # fmt: skip
    np.testing.assert_allclose(onnx_predict(onnx_path, x, optimize=False), expected.numpy(),
                               atol=1e-4, rtol=0)  # fmt: skip


def _searched_only(run_dir: Path) -> dict:
    """A completed trial of the run that was not final-trained (export trains it again)."""
    finals = {c["trial"] for c in json.loads((run_dir / "result.json").read_text())[
        "final_candidates"]}  # fmt: skip
    with open(run_dir / "pareto.csv", newline="") as f:
        return next(r for r in csv.DictReader(f)
                    if r["state"] == "COMPLETE" and int(r["trial"]) not in finals)  # fmt: skip


def test_individual_is_rebuilt_as_the_search_evaluated_it(tiny_run_dir):
    row = _searched_only(tiny_run_dir)
    run_model = load_run_model(tiny_run_dir, int(row["trial"]))
    assert run_model.val_accuracy == pytest.approx(float(row["val_accuracy"]))
    size = model_size(run_model.model, run_model.run.graph.bn_fold).total_bits
    assert size == int(row["size_bits"])


def test_corrupt_or_truncated_packed_file_fails_with_one_sentence(chosen, tmp_path):
    run_model, _, _ = chosen
    path = export_packed(run_model, tmp_path / "m.mogaqnn").path
    data = bytearray(path.read_bytes())
    corrupt = tmp_path / "corrupt.mogaqnn"
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.mogaqnn"
    truncated.write_bytes(path.read_bytes()[: len(data) // 2])
    for bad, word in ((corrupt, "corrupt"), (truncated, "truncated")):
        with pytest.raises(ExportError) as err:
            load_packed(bad)
        assert word in str(err.value) and "\n" not in str(err.value)


def test_onnx_without_onnx_package_says_how_to_install(chosen, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ExportError, match=r"pip install 'mogaqnn\[onnx\]'"):
        export_onnx(chosen[0], tmp_path / "m.onnx")


def test_cli_export_writes_both_formats(tiny_run_dir, tmp_path):
    packed = tmp_path / "cli.mogaqnn"
    proc = run_cli("export", str(tiny_run_dir), "--output", str(packed))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {packed}" in proc.stdout and packed.is_file()
    proc = run_cli("export", str(tiny_run_dir), "--format", "onnx", "--individual", "chosen")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tiny_run_dir / 'model.onnx'}" in proc.stdout


@pytest.mark.parametrize("args", [["export", "NOWHERE"], ["export", ".", "--format", "x"],
                                  ["export", "RUN", "--individual", "best"]])  # fmt: skip
def test_cli_export_bad_input_is_one_line(args, tiny_run_dir, tmp_path, capsys):
    from mogaqnn.cli import main

    args = [str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    args = [str(tiny_run_dir) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mogaqnn: error: ") and err.count("\n") == 1
