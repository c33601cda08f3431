"""Tests of the ConvSC encoder, split batch norm and the heads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from napari_xrdphase.models import (  # noqa: E402
    ConvSC,
    ExternalVariableHead,
    InterRelationHead,
    IntraRelationHead,
    ProjectionHead,
    SplitBatchNorm1d,
    count_parameters,
)

# conv1 384 + BN 128 + conv2 5136 + BN 32 + Linear(236,128) 30336 + LayerNorm 256
# + attention 1088 + γ 1 + LayerNorm 256 + 1×1 conv 17 + BN 2
CONVSC_PARAMETERS = 37_636


def _curves(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, length, generator=torch.Generator().manual_seed(seed))


def test_convsc_has_the_published_parameter_count():
    assert count_parameters(ConvSC()) == CONVSC_PARAMETERS


@pytest.mark.parametrize("length", [60, 257, 1024, 4020])
def test_convsc_gives_128_non_negative_features_for_any_length(length):
    model = ConvSC().eval()
    with torch.inference_mode():
        features = model(_curves(3, length))
    assert features.shape == (3, 128)
    assert features.dtype == torch.float32
    assert bool((features >= 0).all())
    assert bool(torch.isfinite(features).all())


def test_convsc_accepts_channel_dimension_and_rejects_short_curves():
    model = ConvSC().eval()
    x = _curves(2, 300)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.unsqueeze(1)))
    with pytest.raises(ValueError, match="too short"):
        model(_curves(2, 40))


def test_convsc_trains_with_gradients_to_every_parameter():
    model = ConvSC(bn_splits=2).train()
    # γ of the channel attention starts at 0; move it so its input path is exercised too
    with torch.no_grad():
        model.channel_attention.gamma.fill_(0.5)
    model(_curves(8, 256)).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_same_seed_gives_identical_weights_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    first, second, other = ConvSC(seed=3), ConvSC(seed=3), ConvSC(seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(first.embedding[0].weight, other.embedding[0].weight)


def test_reference_initialisation_draws_weights_from_normal_005():
    model = ConvSC(seed=0).requires_grad_(False)
    weights = model.embedding[0].weight
    assert abs(float(weights.std()) - 0.05) < 0.003
    assert abs(float(model.bn1.weight.std()) - 0.05) < 0.03
    assert float(model.channel_attention.gamma) == 0.0


def test_split_batch_norm_normalises_each_interleaved_group_separately():
    bn = SplitBatchNorm1d(3, num_splits=2, affine=False).train()
    x = torch.randn(8, 3, 5, generator=torch.Generator().manual_seed(1))
    x[1::2] = x[1::2] * 4 + 10  # the second group has other statistics
    out = bn(x)
    for group in (out[0::2], out[1::2]):
        assert torch.allclose(group.mean(dim=(0, 2)), torch.zeros(3), atol=1e-5)
        assert torch.allclose(group.var(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-3)
    reference = torch.nn.BatchNorm1d(3, affine=False).train()
    reference(x[0::2])
    mean_first = reference.running_mean.clone()
    reference.reset_running_stats()
    reference(x[1::2])
    assert torch.allclose(bn.running_mean, (mean_first + reference.running_mean) / 2, atol=1e-6)


@pytest.mark.parametrize("batch", [7, 13, 3])
def test_split_batch_norm_handles_batches_not_divisible_by_the_splits(batch):
    bn = SplitBatchNorm1d(4, num_splits=8, affine=False).train()
    x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(batch)) * 3 + 1
    out = bn(x)
    assert out.shape == x.shape
    assert bool(torch.isfinite(out).all())
    groups = min(8, batch // 2)
    for s in range(groups):
        assert torch.allclose(out[s::groups].mean(dim=0), torch.zeros(4), atol=1e-5)
    assert not torch.equal(bn.running_mean, torch.zeros(4))


def test_split_batch_norm_uses_running_statistics_in_eval():
    bn = SplitBatchNorm1d(2, num_splits=4).eval()
    plain = torch.nn.BatchNorm1d(2).eval()
    plain.load_state_dict(bn.state_dict())
    x = torch.randn(5, 2, 6)
    assert torch.equal(bn(x), plain(x))


def test_convsc_with_split_batch_norm_trains_on_odd_batches():
    model = ConvSC(bn_splits=8).train()
    assert model(_curves(13, 128)).shape == (13, 128)


def test_projection_head_returns_unit_vectors():
    head = ProjectionHead()
    out = head(torch.rand(6, 128))
    assert out.shape == (6, 128)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-5)


def test_relation_heads_have_the_published_shapes():
    pairs = torch.rand(10, 256)
    assert InterRelationHead().train()(pairs).shape == (10, 1)
    assert IntraRelationHead(n_classes=5).train()(pairs).shape == (10, 5)
    assert ExternalVariableHead(n_bins=5)(torch.rand(10, 128)).shape == (10, 5)
    assert InterRelationHead(bn_splits=4).train()(torch.rand(9, 256)).shape == (9, 1)


def test_eval_forward_with_folded_batch_norm_matches_the_layer_by_layer_network():
    model = ConvSC(seed=2).train()
    model(_curves(16, 300))  # non-trivial running statistics
    model.eval()
    x = _curves(5, 300, seed=1)
    with torch.inference_mode():
        h = torch.relu(model.bn1(model.conv1(x.unsqueeze(1))))
        h = torch.max_pool1d(h, 2)
        h = torch.max_pool1d(torch.relu(model.bn2(model.conv2(h))), 2)
        h = model.embedding(model.pool(h))
        tokens = h.transpose(1, 2)
        spatial, _ = model.spatial_attention(tokens, tokens, tokens)
        fused = model.fuse_norm(h + spatial.transpose(1, 2) + model.channel_attention(h))
        expected = torch.relu(model.reduce_bn(model.reduce_conv(fused))).flatten(1)
        assert torch.allclose(model(x), expected, atol=1e-5)
