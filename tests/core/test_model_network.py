"""G2 network shapes, batch-norm fusion and the test-time flip of heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2ld_core import schema
from s2ld_core.heatmaps import decode_heatmaps, encode_heatmaps
from s2ld_core.inference import flip_heatmaps
from s2ld_core.model import G2, NORM_LAYERS, G2Config, count_parameters, fuse_batchnorm


@pytest.mark.parametrize(
    ("config", "batch"),
    [
        (G2Config(), 2),
        (G2Config(widths=(8, 8, 16, 16), input_size=16), 3),
        (G2Config(n_landmarks=19, widths=(16, 32, 64, 128), input_size=128), 1),
        (G2Config(background=False, norm="group"), 2),
        (G2Config(norm="instance", input_size=48), 2),
    ],
)
def test_output_shape(config, batch):
    torch.manual_seed(0)
    model = G2(config).eval()
    x = torch.randn(batch, 3, config.input_size, config.input_size)
    with torch.no_grad():
        out = model(x)
    expected_channels = config.n_landmarks + (1 if config.background else 0)
    assert out.shape == (batch, expected_channels, config.input_size, config.input_size)
    assert torch.isfinite(out).all()


def test_hr_ld_config_has_twenty_channels():
    config = G2Config(n_landmarks=19, input_size=128)
    assert config.out_channels == 20


def test_norm_layer_factory_is_used():
    model = G2(G2Config(widths=(8, 8, 8, 8)), norm_layer=lambda c: torch.nn.GroupNorm(2, c))
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.GroupNorm in kinds
    assert torch.nn.BatchNorm2d not in kinds


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="divisible by 8"):
        G2Config(input_size=30)
    with pytest.raises(ValueError, match="unknown norm"):
        G2Config(norm="layer")
    with pytest.raises(ValueError, match="4 layer widths"):
        G2Config(widths=(8, 8, 8))
    assert "batch" in NORM_LAYERS


def test_config_dict_round_trip():
    config = G2Config(n_landmarks=19, widths=(16, 32, 64, 128), input_size=128)
    assert G2Config.from_dict(config.to_dict()) == config


def test_fused_batchnorm_same_output():
    torch.manual_seed(1)
    model = G2(G2Config())
    model.train()
    with torch.no_grad():
        # A few training-mode passes give the batch norms non-trivial running statistics.
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32) * 2 + 0.5)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        n_params = count_parameters(model)
        fuse_batchnorm(model)
        after = model(x)
    assert count_parameters(model) < n_params
    assert torch.allclose(before, after, atol=1e-4)


def test_flip_heatmaps_swaps_left_right():
    uv = np.array([[10.3, 12.0], [21.6, 12.4], [16.0, 18.2], [12.5, 24.0], [20.1, 24.3]])
    maps = encode_heatmaps(uv, np.ones(5, bool), 32)[None]
    flipped = flip_heatmaps(maps, 5)
    decoded, _ = decode_heatmaps(flipped, 5)
    expected = schema.flip_points(uv, 32)
    assert np.allclose(decoded[0], expected, atol=1e-3)
    # The left eye of the flipped face is the mirrored right eye.
    assert decoded[0, 0, 0] == pytest.approx(31 - 21.6, abs=1e-3)
    assert decoded[0, 0, 0] < decoded[0, 1, 0]


def test_flip_heatmaps_keeps_background_last():
    uv = np.array([[10.0, 12.0], [21.0, 12.0], [16.0, 18.0], [12.0, 24.0], [20.0, 24.0]])
    maps = encode_heatmaps(uv, np.ones(5, bool), 32)[None]
    flipped = flip_heatmaps(maps, 5)
    assert np.allclose(flipped[0, 5], maps[0, 5, :, ::-1])


def test_predict_module_imports_without_torch():
    import subprocess
    import sys

    from tests.conftest import REPO

    code = "import sys, s2ld_core.predict, s2ld_core.metrics, s2ld_core.heatmaps; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parse_widths_accepts_four_integers():
    assert G2Config.parse_widths("16,32,64,96") == (16, 32, 64, 96)


@pytest.mark.parametrize("text", ["16,32,64", "16,32,64,x", "16,32,0,96", ""])
def test_parse_widths_rejects_bad_text(text):
    with pytest.raises(ValueError, match="expected four positive integers"):
        G2Config.parse_widths(text)
