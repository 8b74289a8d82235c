"""Channel expansion on real torchvision and timm architectures (random weights)."""

import pytest

from mogaqnn.corpus import CORPUS, check_architecture


def test_corpus_is_broad():
    specs = {spec for spec, _ in CORPUS}
    assert len(specs) >= 15
    for name in ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1",
                 "densenet121", "efficientnet_b0", "regnet_x_400mf", "googlenet"):  # fmt: skip
        assert f"torchvision:{name}" in specs
    assert any(s.startswith("torchvision:shufflenet_v2") for s in specs)
    assert any(s.startswith("torchvision:mnasnet") for s in specs)
    assert {"timm:seresnet18", "timm:ghostnet_050", "timm:cs3darknet_focus_s"} <= specs


@pytest.mark.parametrize("spec,side", CORPUS, ids=[spec for spec, _ in CORPUS])
def test_architecture_widens_exactly_and_trains_quantized(spec, side):
    row = check_architecture(spec, side)  # runs forward and backward of the quantized model
    assert row.groups > 0
    assert row.max_rel_diff < 1e-4
    assert row.widenable_fraction > 0.5
    assert all(row.reasons), row.reasons
