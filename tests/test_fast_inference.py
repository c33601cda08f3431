"""Tests of ConvSC's inference fast path (``ConvSC.infer``) and its use by ``Encoder.embed``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_xrdphase import models  # noqa: E402
from napari_xrdphase.encoder import Encoder  # noqa: E402
from napari_xrdphase.models import ConvSC  # noqa: E402
from napari_xrdphase.preprocess import prepare_curves  # noqa: E402

TOLERANCE = 1e-4
LENGTHS = (300, 1024, 1500)


def _curves(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, length, generator=torch.Generator().manual_seed(seed))


def _max_difference(model: ConvSC, x: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(x) - model.infer(x)).abs().max())


@pytest.fixture(scope="module")
def builtin_model() -> ConvSC:
    return Encoder.builtin().model.eval()


@pytest.fixture
def exercised_model() -> ConvSC:
    """A random-init ConvSC whose batch norms have real statistics and whose γ is not zero."""
    model = ConvSC(seed=5).train()
    with torch.no_grad():
        for seed in range(3):
            model(_curves(16, 400, seed=seed))
        model.channel_attention.gamma.fill_(0.7)
        model.reduce_bn.weight.fill_(3.0)  # features of order 1, so 1e-4 is a tight tolerance
    return model.eval()


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("batch", [1, 37])
def test_fast_path_equals_the_eager_forward_of_the_builtin_encoder(
    builtin_model, one_torch_thread, length, batch
):
    assert _max_difference(builtin_model, _curves(batch, length, seed=length)) <= TOLERANCE


@pytest.mark.parametrize("length", (60, *LENGTHS))
@pytest.mark.parametrize("batch", [1, 37])
def test_fast_path_equals_the_eager_forward_of_a_random_init_encoder(
    exercised_model, one_torch_thread, length, batch
):
    x = _curves(batch, length, seed=batch)
    with torch.inference_mode():
        eager = exercised_model(x)
    assert float(eager.abs().max()) > 0.1  # the comparison says something
    assert _max_difference(exercised_model, x) <= TOLERANCE


def test_fast_path_sub_batches_and_input_shapes_give_the_same_features(
    exercised_model, one_torch_thread
):
    x = _curves(37, 500, seed=9)
    with torch.inference_mode():
        reference = exercised_model.infer(x)
        for sub_batch in (1, 5, 37, 100):
            assert torch.allclose(exercised_model.infer(x, sub_batch), reference, atol=1e-6)
        assert torch.allclose(exercised_model.infer(x.unsqueeze(1)), reference, atol=1e-6)
    with torch.no_grad():  # no inference mode: the cache built above is still usable
        assert torch.allclose(exercised_model.infer(x), reference, atol=1e-6)


def test_fast_path_rejects_what_the_eager_forward_rejects(exercised_model):
    with torch.inference_mode():
        with pytest.raises(ValueError, match="too short"):
            exercised_model.infer(_curves(2, 59))
        with pytest.raises(ValueError, match="expects"):
            exercised_model.infer(torch.rand(2, 3, 100))
        with pytest.raises(ValueError, match="sub_batch"):
            exercised_model.infer(_curves(2, 100), sub_batch=0)


def test_adaptive_pool_matrix_equals_adaptive_average_pooling():
    for n_in, n_out in [(125, 236), (236, 236), (497, 236), (5, 7), (7, 3)]:
        x = torch.rand(3, n_in, dtype=torch.float64)
        pooled = torch.nn.functional.adaptive_avg_pool1d(x[:, None], n_out)[:, 0]
        matrix = models._adaptive_avg_pool_matrix(n_in, n_out)
        assert torch.allclose(x @ matrix.t(), pooled, atol=1e-12)


def test_fold_cache_is_rebuilt_after_load_state_dict(exercised_model, one_torch_thread):
    x = _curves(4, 700)
    with torch.inference_mode():
        before = exercised_model.infer(x)
        folded = exercised_model._inference_cache.folded
        exercised_model.infer(x)
        assert exercised_model._inference_cache.folded is folded  # unchanged weights: reused
    other = ConvSC(seed=11)
    with torch.no_grad():
        other.reduce_bn.weight.abs_()
    exercised_model.load_state_dict(other.state_dict())
    assert _max_difference(exercised_model, x) <= TOLERANCE
    with torch.inference_mode():
        assert exercised_model._inference_cache.folded is not folded
        assert not torch.allclose(exercised_model.infer(x), before)


def test_fold_cache_is_rebuilt_after_an_optimiser_step(exercised_model, one_torch_thread):
    x = _curves(8, 600)
    with torch.inference_mode():
        before = exercised_model.infer(x)
    optimiser = torch.optim.SGD(exercised_model.parameters(), lr=0.01)
    exercised_model.train()
    exercised_model(_curves(8, 600, seed=1)).square().mean().backward()
    optimiser.step()
    exercised_model.eval()
    with torch.inference_mode():
        after = exercised_model.infer(x)
    assert not torch.allclose(after, before)
    assert _max_difference(exercised_model, x) <= TOLERANCE


def test_fold_cache_is_rebuilt_after_an_in_place_change_through_data(exercised_model):
    x = _curves(3, 800)
    with torch.inference_mode():
        exercised_model.infer(x)
    exercised_model.embedding[0].weight.data.mul_(1.5)  # bumps no version counter
    exercised_model.bn2.running_var.data.mul_(2.0)
    assert _max_difference(exercised_model, x) <= TOLERANCE


def test_training_mode_and_autograd_use_the_eager_forward(exercised_model):
    x = _curves(6, 300)
    exercised_model.train()
    assert "training" in exercised_model.fast_inference_blocker(x)
    tracked = int(exercised_model.bn1.num_batches_tracked)
    features = exercised_model.infer(x)
    assert int(exercised_model.bn1.num_batches_tracked) == tracked + 1  # batch statistics used
    assert features.requires_grad
    assert exercised_model._inference_cache is None  # nothing was folded

    exercised_model.eval()
    assert "autograd" in exercised_model.fast_inference_blocker(x)
    features = exercised_model.infer(x)
    assert features.grad_fn is not None
    assert torch.allclose(features, exercised_model(x))
    with torch.no_grad():
        assert exercised_model.fast_inference_blocker(x) is None
        assert exercised_model.fast_inference_blocker(x.double()) is not None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert exercised_model.fast_inference_blocker(x) is not None


def test_fast_path_leaves_the_state_dict_alone(exercised_model):
    names = list(exercised_model.state_dict())
    with torch.inference_mode():
        exercised_model.infer(_curves(2, 400))
    assert list(exercised_model.state_dict()) == names


def test_embed_uses_the_fast_path_and_matches_the_eager_embeddings(monkeypatch, one_torch_thread):
    encoder = Encoder.builtin()
    curves = np.random.default_rng(0).random((45, 1300))
    calls = []
    infer = ConvSC.infer

    def counting_infer(self, x, *args, **kwargs):
        calls.append(x.shape[0])
        return infer(self, x, *args, **kwargs)

    monkeypatch.setattr(ConvSC, "infer", counting_infer)
    fast = encoder.embed(curves, batch_size=20)
    assert calls == [20, 20, 5]
    encoder.fast_inference = False
    eager = encoder.embed(curves, batch_size=20)
    assert len(calls) == 3
    assert fast.dtype == np.float32 and fast.shape == (45, 128)
    assert np.abs(fast - eager).max() <= TOLERANCE


def test_prepare_curves_still_gives_the_reference_resampling_bit_for_bit():
    rng = np.random.default_rng(3)
    curves = rng.random((7, 900)).astype(np.float32) * 50 + 3
    curves[2] = 4.0  # a constant curve becomes zeros
    axis = np.linspace(5.0, 25.0, 900)
    # the computation as written before the in-place scaling
    target = np.linspace(axis.min(), axis.max(), 300)
    right = np.clip(np.searchsorted(axis, target, side="right"), 1, axis.size - 1)
    left = right - 1
    weight = np.clip((target - axis[left]) / (axis[right] - axis[left]), 0.0, 1.0)
    resampled = curves[:, left]
    resampled += (curves[:, right] - resampled) * weight.astype(np.float32)
    expected = np.array(resampled, dtype=np.float32, copy=True)
    lo = expected.min(axis=1, keepdims=True)
    span = expected.max(axis=1, keepdims=True) - lo
    expected -= lo
    expected *= np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    got = prepare_curves(curves, axis, 300)
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)
    assert not got[2].any()
