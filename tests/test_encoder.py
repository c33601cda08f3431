"""Tests of curve preparation and of the Encoder: embedding, saving, safe loading."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import napari_xrdphase  # noqa: E402
from napari_xrdphase.encoder import (  # noqa: E402
    CHECKSUM_KEY,
    METADATA_KEY,
    Encoder,
    ModelError,
    builtin_encoder_path,
    resolve_device,
)
from napari_xrdphase.models import ConvSC  # noqa: E402
from napari_xrdphase.preprocess import prepare_curves, prepare_stack  # noqa: E402
from napari_xrdphase.stack import SpectraStack  # noqa: E402


def _stack(n: int = 12, points: int = 300, name: str = "series") -> SpectraStack:
    rng = np.random.default_rng(0)
    axis = np.linspace(5.0, 25.0, points)
    centers = rng.uniform(8, 22, size=(n, 3))
    curves = sum(
        np.exp(-0.5 * ((axis - centers[:, [k]]) / 0.15) ** 2) for k in range(centers.shape[1])
    )
    return SpectraStack(100 * curves + 7, axis, name=name)


# --- preprocessing -------------------------------------------------------------------------------
def test_prepare_curves_resamples_linearly_and_scales_each_curve_to_unit_range():
    axis = np.array([0.0, 1.0, 2.0, 4.0])
    curves = np.array([[0.0, 10.0, 20.0, 40.0], [5.0, 5.0, 5.0, 5.0], [3.0, 1.0, 3.0, 1.0]])
    out = prepare_curves(curves, axis, input_length=5)
    assert out.dtype == np.float32 and out.shape == (3, 5)
    # the grid is 0, 1, 2, 3, 4: the first curve is a straight line through it
    assert np.allclose(out[0], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.array_equal(out[1], np.zeros(5))  # constant curve → zeros, no NaN
    # third curve on the grid: 3, 1, 3, 2, 1 → scaled by its own min 1 and max 3
    assert np.allclose(out[2], [1.0, 0.0, 1.0, 0.5, 0.0])


def test_prepare_curves_gives_the_same_result_for_a_descending_axis():
    axis = np.linspace(10.0, 30.0, 50)
    curves = np.random.default_rng(1).random((4, 50))
    up = prepare_curves(curves, axis, input_length=64)
    down = prepare_curves(curves[:, ::-1], axis[::-1], input_length=64)
    assert np.allclose(up, down)


def test_prepare_curves_with_a_wider_axis_range_pads_edge_values():
    axis = np.array([1.0, 2.0, 3.0])
    curves = np.array([[1.0, 3.0, 2.0]])
    out = prepare_curves(curves, axis, input_length=5, axis_range=(0.0, 4.0))
    # grid 0..4: edge value 1 repeated at 0, value 2 repeated at 4
    assert np.allclose(out[0], [0.0, 0.0, 1.0, 0.5, 0.5])


def test_prepare_curves_rejects_mismatched_axis_and_non_finite_values():
    with pytest.raises(ValueError, match="axis has 3 values"):
        prepare_curves(np.ones((2, 4)), np.arange(3.0))
    with pytest.raises(ValueError, match="NaN"):
        prepare_curves(np.array([[1.0, np.nan, 2.0]]), np.arange(3.0))


def test_prepare_stack_streams_chunks_and_matches_prepare_curves():
    stack = _stack(n=10)
    whole = prepare_curves(stack.curves(), stack.axis, input_length=128)
    assert np.array_equal(prepare_stack(stack, input_length=128, chunk_size=3), whole)


# --- devices -------------------------------------------------------------------------------------
def test_resolve_device_explains_the_choice():
    device, reason = resolve_device("auto")
    assert device.type in ("cpu", "cuda")
    assert reason
    cpu, reason = resolve_device("cpu")
    assert cpu == torch.device("cpu") and "CPU" in reason


def test_resolve_device_rejects_unknown_and_unavailable_devices():
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu-9000")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


# --- encoder -------------------------------------------------------------------------------------
def test_random_encoder_embeds_stacks_and_arrays_as_128_floats():
    encoder = Encoder.random(seed=0, input_length=256)
    stack = _stack()
    embeddings = encoder.embed(stack, batch_size=5)
    assert embeddings.shape == (12, 128) and embeddings.dtype == np.float32
    assert np.all(embeddings >= 0) and np.all(np.isfinite(embeddings))
    # an array with the stack's axis gives the same result
    from_array = encoder.embed(stack.curves(), axis=stack.axis)
    assert np.allclose(from_array, embeddings, atol=1e-6)
    assert encoder.embed(stack.curves()[0]).shape == (1, 128)
    assert encoder.n_parameters == 37_636


def test_embeddings_do_not_depend_on_the_batch_size():
    encoder = Encoder.random(input_length=256)
    stack = _stack(n=9)
    assert np.allclose(encoder.embed(stack, batch_size=2), encoder.embed(stack), atol=1e-6)


def test_embed_is_invariant_to_intensity_scale_and_offset():
    encoder = Encoder.random(input_length=256)
    stack = _stack(n=4)
    brighter = stack.replace(intensities=stack.curves() * 3.0 + 50.0)
    assert np.allclose(encoder.embed(stack), encoder.embed(brighter), atol=1e-5)


def test_same_seed_gives_identical_encoders():
    first, second = Encoder.random(seed=5), Encoder.random(seed=5)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    other = Encoder.random(seed=6)
    assert not torch.equal(first.model.conv1.weight, other.model.conv1.weight)


def test_save_and_load_round_trip_gives_identical_embeddings(tmp_path):
    encoder = Encoder.random(seed=1, input_length=256)
    # make batch-norm statistics non-trivial so that they must survive the round trip
    encoder.model.train()
    encoder.model(torch.rand(8, 256, generator=torch.Generator().manual_seed(0)))
    encoder.model.eval()
    encoder.config["method"] = "specrr-moco"
    encoder.config["data"] = {"series": ["a", "b"], "n_curves": np.int64(12)}
    path = encoder.save(tmp_path / "model.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]  # no temporary file left
    loaded = Encoder.load(path)
    stack = _stack()
    assert np.array_equal(loaded.embed(stack), encoder.embed(stack))
    assert loaded.config["method"] == "specrr-moco"
    assert loaded.config["data"]["n_curves"] == 12
    assert loaded.config["version"] == napari_xrdphase.__version__
    assert loaded.input_length == 256


def test_save_writes_one_safetensors_file_with_json_config_in_metadata(tmp_path):
    path = Encoder.random().save(tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        config = json.loads(handle.metadata()[METADATA_KEY])
    assert config["architecture"] == "ConvSC"
    assert config["hyperparameters"]["feature_dim"] == 128
    assert config["input_length"] == 1024


def test_save_over_an_existing_file_replaces_it(tmp_path):
    path = tmp_path / "m.safetensors"
    Encoder.random(seed=1).save(path)
    Encoder.random(seed=2).save(path)
    assert torch.equal(
        Encoder.load(path).model.conv1.weight, Encoder.random(seed=2).model.conv1.weight
    )


def test_save_into_a_missing_folder_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Encoder.random().save(tmp_path / "nowhere" / "m.safetensors")


def test_load_missing_file_names_it(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(ModelError, match=r"absent\.safetensors"):
        Encoder.load(path)


def test_load_rejects_random_bytes(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match=r"noise\.safetensors"):
        Encoder.load(path)


def test_load_rejects_truncated_and_corrupted_files(tmp_path):
    good = Encoder.random().save(tmp_path / "good.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match=r"truncated\.safetensors"):
        Encoder.load(truncated)
    damaged = bytearray(good)
    damaged[-100] ^= 0xFF  # a flipped byte inside the weights
    corrupted = tmp_path / "corrupted.safetensors"
    corrupted.write_bytes(bytes(damaged))
    with pytest.raises(ModelError, match="damaged"):
        Encoder.load(corrupted)
    header = bytearray(good)
    header[20] ^= 0xFF  # a flipped byte inside the JSON header
    broken = tmp_path / "header.safetensors"
    broken.write_bytes(bytes(header))
    with pytest.raises(ModelError, match=r"header\.safetensors"):
        Encoder.load(broken)


class _CreatesMarker:
    """Unpickling this would create a marker file: the loader must never get that far."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_rejects_pickle_files_without_executing_them(tmp_path):
    marker = tmp_path / "executed.txt"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"state_dict": _CreatesMarker(str(marker))}))
    with pytest.raises(ModelError, match=r"model\.pt"):
        Encoder.load(path)
    assert not marker.exists()
    saved_by_torch = tmp_path / "torch.pt"
    torch.save(ConvSC().state_dict(), saved_by_torch)
    with pytest.raises(ModelError, match=r"torch\.pt"):
        Encoder.load(saved_by_torch)


def test_load_rejects_a_safetensors_file_of_a_foreign_model(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors_torch.save_file({"fc.weight": torch.zeros(3, 4)}, str(path), metadata={"a": "b"})
    with pytest.raises(ModelError, match="not a napari-xrdphase encoder"):
        Encoder.load(path)


def test_load_rejects_another_architecture(tmp_path):
    path = tmp_path / "resnet.safetensors"
    config = json.dumps({"architecture": "ResNet18", "hyperparameters": {}})
    safetensors_torch.save_file(
        {"fc.weight": torch.zeros(3, 4)}, str(path), metadata={METADATA_KEY: config}
    )
    with pytest.raises(ModelError, match="ResNet18"):
        Encoder.load(path)


def test_load_rejects_weights_whose_shapes_do_not_fit_the_config(tmp_path):
    narrow = ConvSC(channels=8)  # weights of another width ...
    config = Encoder.random().config  # ... under the default ConvSC config
    tensors = {k: v.contiguous() for k, v in narrow.state_dict().items()}
    path = tmp_path / "mismatch.safetensors"
    safetensors_torch.save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(config)})
    with pytest.raises(ModelError, match=r"mismatch\.safetensors.*conv2\.weight"):
        Encoder.load(path)


def test_load_rejects_missing_weights(tmp_path):
    config = Encoder.random().config
    tensors = {k: v.contiguous() for k, v in ConvSC().state_dict().items() if "embedding" not in k}
    path = tmp_path / "partial.safetensors"
    safetensors_torch.save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(config)})
    with pytest.raises(ModelError, match="missing embedding"):
        Encoder.load(path)


def test_load_rejects_hand_made_file_without_checksum(tmp_path):
    config = Encoder.random().config
    tensors = {k: v.contiguous() for k, v in ConvSC().state_dict().items()}
    path = tmp_path / "nochecksum.safetensors"
    safetensors_torch.save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(config)})
    with pytest.raises(ModelError, match="checksum"):
        Encoder.load(path)
    assert CHECKSUM_KEY != METADATA_KEY


def test_builtin_encoder_path_is_inside_the_package():
    path = builtin_encoder_path()
    assert path.parent.name == "models_data"
    assert path.parent.parent == builtin_encoder_path().parent.parent
    assert path.name == "builtin_encoder.safetensors"
    if not path.is_file():
        with pytest.raises(ModelError, match="built-in encoder is missing"):
            Encoder.builtin()


def test_package_exposes_encoder_lazily():
    assert napari_xrdphase.Encoder is Encoder
    assert napari_xrdphase.ModelError is ModelError
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_encoder_features_are_not_all_zero_and_differ_between_curves(seed):
    embeddings = Encoder.random(seed=seed, input_length=256).embed(_stack(n=6))
    assert embeddings.max() > 0
    assert np.ptp(embeddings, axis=0).max() > 0


def test_builtin_encoder_ships_with_the_package_and_embeds():
    from napari_xrdphase.synth import simulate_series

    assert builtin_encoder_path().is_file(), "run scripts/train_builtin_encoder.py"
    encoder = Encoder.builtin()
    assert encoder.config["method"] == "xrdphase"
    assert encoder.config["builtin"]["script"] == "scripts/train_builtin_encoder.py"
    assert encoder.config["training"]["stopped_early"] is False
    series = simulate_series("Fe", 10, 4, 10, n_points=700, seed=11)
    embedding = encoder.embed(series.stack)
    assert embedding.shape == (24, 128) and np.isfinite(embedding).all()
    assert encoder.config["training"]["epochs"] == 60
    assert not np.allclose(embedding, Encoder.random(0).embed(series.stack))
