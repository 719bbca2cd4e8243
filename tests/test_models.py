import pytest
import torch

from fts_edge.nets.models import MODELS, count_macs, count_parameters, create_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("in_channels", [3, 2])
def test_every_builder_runs_a_tiny_clip(name, in_channels):
    m = create_model(name, num_classes=7, in_channels=in_channels, width=0.125).eval()
    x = torch.randn(2, in_channels, 4, 32, 32)
    f = m.forward_features(x)
    assert f.shape == (2, m.num_features)
    logits = m.forward_head(f)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(m(x), logits)


def test_r3d_18_is_the_torchvision_layout():
    m = create_model("r3d_18", 51)
    assert count_parameters(m) == 33_192_435
    assert m.num_features == 512
    macs = count_macs(m, (1, 3, 25, 112, 112))
    assert round(macs / 1e9, 1) == 66.2


def test_resnext_uses_grouped_convolutions():
    m = create_model("resnext3d_18", 51)
    groups = {c.groups for c in m.modules() if isinstance(c, torch.nn.Conv3d)}
    assert 32 in groups
    assert count_parameters(m) < count_parameters(create_model("r3d_18", 51))


def test_width_scales_channels():
    half = create_model("r3d_18", 10, width=0.5)
    assert half.num_features == 256
    assert count_parameters(half) < count_parameters(create_model("r3d_18", 10)) / 3


def test_wrong_input_is_refused_clearly():
    m = create_model("r3d_18", 5, width=0.125)
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        m(torch.randn(1, 2, 4, 32, 32))
    with pytest.raises(ValueError, match="unknown model"):
        create_model("r2plus1d", 5)


def test_none_kwargs_do_not_override_defaults():
    m = create_model("resnext3d_18", 5, width=0.25, cardinality=None)
    assert any(c.groups > 1 for c in m.modules() if isinstance(c, torch.nn.Conv3d))
