"""Tests of the batched, seeded augmentations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy.signal import find_peaks  # noqa: E402

from napari_xrdphase import augment  # noqa: E402
from napari_xrdphase.augment import (  # noqa: E402
    AUGMENTATIONS,
    PAPER_PIPELINE,
    angle_warp_positions,
    make_augmentation,
    minmax,
    resample,
    smooth_random_curves,
)

LENGTH = 512
N_PEAKS = 5
RANDOM_AUGMENTATIONS = [name for name in AUGMENTATIONS if name != "minmax"]
PEAK_PRESERVING = ["magnitude_warp", "angle_warp", "d_stretch", "axis_shift", "intensity_texture"]


def _multi_peak_curve() -> np.ndarray:
    grid = np.arange(LENGTH)
    centers = np.array([0.15, 0.3, 0.45, 0.62, 0.8]) * LENGTH
    widths = [3.0, 5.0, 4.0, 6.0, 3.5]
    heights = [1.0, 0.5, 0.8, 0.6, 0.4]
    return sum(
        h * np.exp(-0.5 * ((grid - c) / w) ** 2)
        for h, c, w in zip(heights, centers, widths, strict=True)
    )


def _batch(n: int = 64) -> torch.Tensor:
    return torch.tensor(np.tile(_multi_peak_curve(), (n, 1)), dtype=torch.float32)


def _peak_counts(curves: torch.Tensor) -> np.ndarray:
    rows = np.asarray(curves, dtype=np.float64)
    return np.array([len(find_peaks(r, prominence=0.01 * r.max())[0]) for r in rows])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_synthetic_curve_has_the_expected_peaks():
    assert _peak_counts(_batch(1)).tolist() == [N_PEAKS]


@pytest.mark.parametrize("name", RANDOM_AUGMENTATIONS)
def test_augmentation_keeps_shape_dtype_and_is_reproducible(name):
    function = AUGMENTATIONS[name]
    x = _batch(8) + 0.05
    first = function(x, generator=_gen(7))
    again = function(x, generator=_gen(7))
    other = function(x, generator=_gen(8))
    assert first.shape == x.shape
    assert first.dtype == x.dtype
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, x)
    assert bool(torch.isfinite(first).all())


@pytest.mark.parametrize("name", RANDOM_AUGMENTATIONS)
def test_augmentation_keeps_half_precision_and_leading_dimensions(name):
    x = (_batch(6) + 0.05).reshape(2, 3, LENGTH).to(torch.bfloat16)
    out = AUGMENTATIONS[name](x, generator=_gen(0))
    assert out.shape == x.shape
    assert out.dtype == torch.bfloat16


def test_augmentations_draw_independently_per_curve():
    x = _batch(4)
    out = augment.angle_warp(x, generator=_gen(0))
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("name", PEAK_PRESERVING)
def test_augmentation_keeps_the_number_of_peaks(name):
    x = _batch(64)
    for seed in range(4):
        counts = _peak_counts(AUGMENTATIONS[name](x, generator=_gen(seed)))
        assert (counts == N_PEAKS).all(), (seed, np.unique(counts, return_counts=True))


def test_paper_pipeline_keeps_the_number_of_peaks():
    augmenter = make_augmentation(PAPER_PIPELINE, _gen(3))
    counts = _peak_counts(augmenter(_batch(128)))
    assert (counts == N_PEAKS).all()


def test_angle_warp_mapping_is_strictly_increasing_from_first_to_last_point():
    positions = angle_warp_positions(200, LENGTH, sigma=0.2, knots=8, generator=_gen(1))
    assert positions.shape == (200, LENGTH)
    assert bool((positions.diff(dim=1) > 0).all())
    assert torch.allclose(positions[:, 0], torch.zeros(200))
    assert torch.allclose(positions[:, -1], torch.full((200,), LENGTH - 1.0))
    # a large σ would make raw spline speeds negative; the floor keeps the mapping monotonic
    wild = angle_warp_positions(200, LENGTH, sigma=2.0, knots=8, generator=_gen(1))
    assert bool((wild.diff(dim=1) > 0).all())


def test_smooth_curves_pass_through_the_knot_values():
    values = torch.randn(3, 6, generator=_gen(0), dtype=torch.float64)
    curves = smooth_random_curves(values, 51)  # knots fall on every 10th point
    assert torch.allclose(curves[:, ::10], values, atol=1e-12)


def test_resample_interpolates_linearly_and_pads_edges():
    x = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    positions = torch.tensor([[-1.0, 0.5, 2.25, 5.0]])
    assert torch.allclose(resample(x, positions), torch.tensor([[0.0, 5.0, 22.5, 30.0]]))


def test_axis_shift_moves_a_peak_without_changing_its_height():
    x = _batch(16)
    out = augment.axis_shift(x, max_fraction=0.05, generator=_gen(2))
    shifts = out.argmax(dim=1) - x.argmax(dim=1)
    assert int(shifts.abs().max()) <= round(0.05 * LENGTH) + 1
    assert int(shifts.abs().max()) > 0


def test_d_stretch_scales_peak_distances_by_at_most_the_strain():
    x = _batch(32)
    out = augment.d_stretch(x, max_strain=0.03, generator=_gen(5))
    distance = 0.65 * LENGTH  # first to last peak
    first = out[:, : LENGTH // 4].argmax(dim=1).float()
    last = out[:, 3 * LENGTH // 4 :].argmax(dim=1).float() + 3 * LENGTH // 4
    ratio = (last - first) / distance
    assert bool(((ratio - 1).abs() <= 0.03 + 2 / distance).all())
    assert float((ratio - 1).abs().max()) > 0.005


def test_window_slice_stretches_a_window_back_to_full_length():
    x = torch.linspace(0, 1, 101).repeat(4, 1)
    out = augment.window_slice(x, ratio=0.8, generator=_gen(0))
    # a linear ramp stays a linear ramp spanning 80 % of the points
    spans = out[:, -1] - out[:, 0]
    assert torch.allclose(spans, torch.full((4,), (0.8 * 101 - 1) / 100), atol=1e-5)
    assert torch.allclose(out.diff(dim=1), (spans / 100).unsqueeze(1).expand(4, 100), atol=1e-5)
    assert not torch.equal(out[0], out[1])


def test_scaling_multiplies_each_curve_by_one_factor():
    x = _batch(4) + 0.1
    ratio = augment.scaling(x, sigma=0.1, generator=_gen(0)) / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)


def test_jitter_adds_noise_of_the_given_size():
    x = torch.zeros(64, LENGTH)
    noise = augment.jitter(x, sigma=0.1, generator=_gen(0))
    assert abs(float(noise.std()) - 0.1) < 0.005


def test_add_sparse_peaks_adds_narrow_lines_smaller_than_the_curve():
    x = _batch(64)
    out = augment.add_sparse_peaks(x, max_peaks=3, max_amplitude=0.1, generator=_gen(0))
    added = out - x
    assert float(added.min()) >= 0
    assert float(added.max()) <= 3 * 0.1 + 1e-6  # lines may overlap
    extra = _peak_counts(out) - N_PEAKS
    assert extra.min() >= 0 and extra.max() <= 3 and extra.max() > 0


def test_poisson_noise_is_larger_for_short_exposures():
    x = _batch(32) + 0.1
    low = augment.poisson_noise(x, min_counts=20, max_counts=20, generator=_gen(0))
    high = augment.poisson_noise(x, min_counts=1e5, max_counts=1e5, generator=_gen(0))
    assert float((low - x).abs().mean()) > 5 * float((high - x).abs().mean())
    constant = torch.full((2, LENGTH), 3.0)
    assert torch.equal(augment.poisson_noise(constant, generator=_gen(0)), constant)


def test_intensity_texture_changes_relative_peak_heights_with_positive_factors():
    x = _batch(32)
    out = augment.intensity_texture(x, sigma=0.3, generator=_gen(0))
    ratio = out[:, x[0] > 0.1] / x[:, x[0] > 0.1]
    assert bool((ratio > 0).all())
    assert float(ratio.std(dim=1).mean()) > 0.05


def test_minmax_scales_each_curve_to_unit_range_and_constant_curves_to_zero():
    x = torch.stack([torch.linspace(-3, 5, 10), torch.full((10,), 2.0)])
    out = minmax(x)
    assert torch.allclose(out[0], torch.linspace(0, 1, 10))
    assert torch.equal(out[1], torch.zeros(10))


def test_augmenter_applies_named_steps_in_order_and_describes_itself():
    steps = ["magnitude_warp", ("jitter", {"sigma": 0.01}), "minmax"]
    augmenter = make_augmentation(steps, _gen(0))
    out = augmenter(_batch(4))
    assert augmenter.names == ("magnitude_warp", "jitter", "minmax")
    assert augmenter.describe()[1] == {"name": "jitter", "sigma": 0.01}
    assert torch.allclose(out.amin(dim=1), torch.zeros(4))
    assert torch.allclose(out.amax(dim=1), torch.ones(4))
    by_hand = _gen(0)
    expected = augment.magnitude_warp(_batch(4), generator=by_hand)
    expected = minmax(augment.jitter(expected, sigma=0.01, generator=by_hand))
    assert torch.equal(out, expected)


def test_augmenter_probability_applies_a_step_to_some_curves_only():
    x = _batch(200)
    out = make_augmentation([("scaling", {"p": 0.5})], _gen(0))(x)
    changed = (out != x).any(dim=1).float().mean()
    assert 0.3 < float(changed) < 0.7


def test_unknown_augmentation_name_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="angle_warp"):
        make_augmentation(["time_warp"])
