import pytest
import torch
from torch import nn

from mogaqnn.errors import ModelError
from mogaqnn.quant import (
    QuantConv2d,
    QuantLinear,
    best_clip_ratio,
    calibrate,
    fake_quant_per_channel,
    fake_quant_per_tensor,
    int_range,
    lsq_per_tensor,
    quantizable_layers,
    quantize_model,
    set_range_mode,
    weight_scale_for,
)


def _scale(w, bits):
    return weight_scale_for(w, bits, best_clip_ratio(w, bits))


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 8])
def test_weights_take_at_most_2_pow_b_values_per_output_channel(bits):
    w = torch.randn(16, 8, 3, 3, requires_grad=True)
    q = fake_quant_per_channel(w, _scale(w, bits), bits)
    for c in range(w.shape[0]):
        assert q[c].unique().numel() <= 2**bits
    # The coarser widths really are coarse: no tensor keeps its float values.
    if bits <= 4:
        assert q[0].unique().numel() < w[0].numel()


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_gradients_reach_float_weights(bits):
    w = torch.randn(4, 10, requires_grad=True)
    fake_quant_per_channel(w, _scale(w, bits), bits).pow(2).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_clip_ratio_beats_the_plain_maximum_at_low_bits():
    w = torch.randn(8, 256)
    w[:, 0] = 12.0  # one outlier per channel
    clip = best_clip_ratio(w, 3)
    assert (clip < 1.0).all()
    err = (fake_quant_per_channel(w, weight_scale_for(w, 3, clip), 3) - w).pow(2).sum()
    err_max = (fake_quant_per_channel(w, weight_scale_for(w, 3, torch.ones(8)), 3) - w).pow(2).sum()
    assert err < err_max


def test_unsigned_activation_codes_span_zero_to_2_pow_b_minus_1():
    x = torch.linspace(-1, 5, 1000, requires_grad=True)
    scale = torch.tensor([0.25])
    q = fake_quant_per_tensor(x, scale, bits=3, signed=False)
    codes = (q / 0.25).round().unique()
    assert codes.min() == 0 and codes.max() == 7 and codes.numel() == 8
    q.sum().backward()
    # STE: gradient 1 inside the clipping range, 0 outside.
    assert x.grad[(x > 0.1) & (x < 1.6)].eq(1).all()
    assert x.grad[x > 2.0].eq(0).all()


def test_int_range_is_symmetric_for_signed_codes():
    assert int_range(8, True) == (-127, 127)
    assert int_range(8, False) == (0, 255)


def test_quantize_model_swaps_layers_keeps_weights_and_trains():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    w0 = model[0].weight.detach().clone()
    quantize_model(model, {"0": (4, 8), "3": (2, 3)})
    assert isinstance(model[0], QuantConv2d) and isinstance(model[3], QuantLinear)
    assert torch.equal(model[0].weight.detach(), w0)
    x = torch.randn(16, 3, 8, 8)
    calibrate(model, x)
    assert model[0].act_signed and not model[3].act_signed  # raw input vs after ReLU
    model(x).sum().backward()
    assert model[0].weight.grad.abs().sum() > 0
    assert model[3].act_scale.item() > 0


def test_quantized_state_dict_round_trips_calibration():
    model = nn.Sequential(nn.Linear(4, 3))
    quantize_model(model, {"0": (4, 4)})
    calibrate(model, torch.randn(8, 4))
    clone = nn.Sequential(nn.Linear(4, 3))
    quantize_model(clone, {"0": (4, 4)})
    clone.load_state_dict(model.state_dict())
    x = torch.randn(5, 4)
    assert clone[0].act_signed
    assert torch.equal(clone(x), model(x))


def test_one_bit_activation_on_a_signed_input_is_refused_in_one_sentence():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    quantize_model(model, {"0": (4, 1), "2": (4, 1)})
    with pytest.raises(ModelError, match="cannot quantize a signed input"):
        calibrate(model, torch.randn(8, 4))
    # after a ReLU the input is unsigned: one bit has the two codes 0 and 1
    unsigned = nn.Sequential(nn.ReLU(), nn.Linear(4, 3))
    quantize_model(unsigned, {"1": (4, 1)})
    assert torch.isfinite(unsigned(torch.randn(8, 4))).all()


def _trained(mode: str, steps: int = 20, gain: float = 1.0):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    quantize_model(model, {"0": (4, 4), "2": (3, 4)})
    calibrate(model, torch.randn(64, 16))
    set_range_mode(model, mode)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = gain * torch.randn(64, 16)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_moving_average_activation_ranges_follow_the_inputs():
    fixed, ema = _trained("fixed", gain=10.0), _trained("ema", gain=10.0)
    start = _trained("fixed", steps=0)[0].act_scale.item()
    assert fixed[0].act_scale.item() == pytest.approx(start)
    assert ema[0].act_scale.item() > 5 * start  # inputs ten times larger: the range follows
    ema.eval()
    before = ema[0].act_scale.clone()
    ema(torch.randn(8, 16))  # evaluation does not move the range
    assert torch.equal(ema[0].act_scale, before)


def test_moving_average_weight_scale_is_rechosen_from_the_current_weights():
    model = _trained("ema", steps=0)
    layer = model[0]
    with torch.no_grad():
        layer.weight.mul_(3.0)
    layer.train()
    layer.quantized_weight()
    torch.testing.assert_close(layer.weight_clip, best_clip_ratio(layer.weight, 4))
    torch.testing.assert_close(layer.weight_scale(), _scale(layer.weight, 4))


def test_learned_step_sizes_train_and_round_trip_through_a_state_dict():
    start = _trained("lsq", steps=0)
    model = _trained("lsq")
    assert {n for n, _ in model.named_parameters()} >= {
        "0.act_scale", "0.learned_weight_scale", "2.act_scale", "2.learned_weight_scale"
    }  # fmt: skip
    assert not torch.equal(model[0].learned_weight_scale, start[0].learned_weight_scale)
    assert not torch.equal(model[2].act_scale, start[2].act_scale)
    # the network's input has a fixed distribution: its calibrated scale stays
    assert torch.equal(model[0].act_scale, start[0].act_scale)
    clone = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    quantize_model(clone, {"0": (4, 4), "2": (3, 4)})  # built as before calibration
    clone.load_state_dict(model.state_dict())
    x = torch.randn(5, 16)
    model.eval(), clone.eval()
    assert clone[0].range_mode == "lsq"
    assert torch.equal(clone(x), model(x))


@pytest.mark.parametrize("signed", [True, False])
def test_learned_activation_step_has_the_gradients_of_torchs_learnable_op(signed):
    torch.manual_seed(1)
    x = (2 * torch.randn(4096)).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    s, s_ref = torch.tensor([0.3], requires_grad=True), torch.tensor([0.3], requires_grad=True)
    g = torch.randn(4096)
    qmin, qmax = int_range(4, signed)
    (lsq_per_tensor(x, s, 4, signed) * g).sum().backward()
    factor = 1.0 / (1 * qmax) ** 0.5  # one feature per sample
    ref = torch._fake_quantize_learnable_per_tensor_affine(
        x_ref, s_ref, torch.zeros(1), qmin, qmax, factor
    )
    (ref * g).sum().backward()
    assert torch.equal(lsq_per_tensor(x, s, 4, signed), ref)
    assert torch.equal(x.grad, x_ref.grad)
    torch.testing.assert_close(s.grad, s_ref.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("scale", [0.3, 0.1, 0.0372])
def test_learned_activation_step_rounds_ties_and_clips_as_torchs_fused_op(signed, scale):
    # Half-way codes (round half to even), both clipping edges and beyond: values and the
    # in-range mask (seen through x's gradient) equal torch's fused op bit for bit.
    qmin, qmax = int_range(3, signed)
    codes = torch.arange(2 * qmin - 3, 2 * qmax + 4) / 2  # ..., -0.5, 0, 0.5, ...
    x = torch.cat([codes * scale, codes * scale + 1e-7, torch.randn(997)]).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    s = torch.tensor([scale], requires_grad=True)
    y = lsq_per_tensor(x, s, 3, signed)
    ref = torch.fake_quantize_per_tensor_affine(x_ref, scale, 0, qmin, qmax)
    assert torch.equal(y, ref)
    y.sum().backward()
    ref.sum().backward()
    assert torch.equal(x.grad, x_ref.grad)


def test_timm_layers_that_compute_as_torch_ones_are_quantized_and_others_stay_float():
    from mogaqnn.models._external import external_model

    def build(name: str) -> nn.Module:
        return external_model(f"timm:{name}", in_channels=1, num_classes=10, note=print)

    head = build("mobilenetv3_small_050")  # its classifier is timm's Linear
    assert type(head.classifier).__module__.startswith("timm")
    assert "classifier" in quantizable_layers(head)
    x = torch.randn(2, 1, 32, 32)
    float_out = head.eval()(x)
    quantize_model(head, {"classifier": (8, 8)})
    assert isinstance(head.classifier, QuantLinear)
    assert torch.allclose(head(x), float_out, atol=0.05 * float_out.abs().max().item())

    same = build("tf_efficientnet_b0")  # Conv2dSame pads at run time: not a plain Conv2d
    names = set(quantizable_layers(same))
    padded = [n for n, m in same.named_modules() if type(m).__name__ == "Conv2dSame"]
    assert padded and not names & set(padded)


@pytest.mark.parametrize("bits", [12, 16])
def test_wide_quantizers_keep_their_calibrated_range_under_lsq(bits):
    # Learned 12/16-bit scales are ~1e-4 to 1e-6: one Adam step drove them below zero and
    # the network to chance. They keep the calibrated range; 8 bits and fewer still learn.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    quantize_model(model, {"0": (bits, bits), "2": (4, bits)})
    calibrate(model, torch.randn(64, 16))
    set_range_mode(model, "lsq")
    learned = {n for n, _ in model.named_parameters() if n.endswith("_scale")}
    assert learned == {"2.learned_weight_scale"}  # only the 4-bit weights learn their scale
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)  # qat_lr's default
    target = torch.randn(4, 16)
    for _ in range(20):
        x = torch.randn(64, 16)
        loss = (model(x) - x @ target.T).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(256, 16).clamp(-2.5, 2.5)  # inside the calibrated input range
    with torch.no_grad():
        as_float = nn.functional.linear(x, model[0].weight, model[0].bias)
        err = (model[0].eval()(x) - as_float).abs().max() / as_float.abs().max()
    assert err < 1e-3  # 12/16 bits: as float (a collapsed scale: the output is the bias)
