"""The ONNX Runtime forward pass agrees with the eager PyTorch reference."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture
def curves():
    """Two simulated series (Fe, FeO) of 300 curves each, 1200 points."""
    from napari_xrdphase.synth import simulate_series

    fe = simulate_series("Fe", 100, 60, 140, n_points=1200, seed=1, name="fe")
    feo = simulate_series("FeO", 120, 40, 140, n_points=1200, seed=2, name="feo")
    return [fe, feo]


def _eager(encoder):
    from napari_xrdphase.encoder import Encoder

    reference = Encoder(encoder.model, encoder.config)
    reference.fast_inference = False  # ConvSC.forward, in sub-batches
    return reference


def test_onnx_embeddings_agree_with_the_eager_forward(curves, one_torch_thread):
    from napari_xrdphase.encoder import Encoder

    encoder = Encoder.builtin()
    assert encoder.cpu_backend == "onnxruntime"
    stack = curves[0].stack
    fast = encoder.embed(stack)
    assert encoder._ort is not None  # 300 curves: the session was built and used
    reference = _eager(encoder).embed(stack)
    assert fast.dtype == np.float32 and fast.shape == reference.shape
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-4 * np.abs(reference).max())
    # a small call after that goes through the same session
    np.testing.assert_allclose(
        encoder.embed(stack.subset(slice(0, 5))), reference[:5], rtol=0, atol=1e-4 * 8
    )


def test_onnx_and_eager_embeddings_give_identical_labels(curves, one_torch_thread):
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder

    encoder = Encoder.builtin()
    stacks = [s.stack for s in curves]
    labels = {
        s.stack.name: {int(i): str(s.labels[i]) for i in np.linspace(5, 295, 12).astype(int)}
        for s in curves
    }
    classifier = fit_classifier(encoder, stacks, labels, seed=0)
    reference = _eager(encoder)
    for stack in stacks:
        fast = classifier.predict(encoder.embed(stack))
        eager = classifier.predict(reference.embed(stack))
        assert encoder._ort is not None
        assert fast.tolist() == eager.tolist()


def test_xrdphase_onnx_0_keeps_the_forward_pass_in_pytorch(curves, monkeypatch, one_torch_thread):
    from napari_xrdphase.encoder import Encoder

    monkeypatch.setenv("XRDPHASE_ONNX", "0")
    encoder = Encoder.builtin()
    assert encoder.cpu_backend == "torch-folded"
    encoder.embed(curves[0].stack)
    assert encoder._ort is None
