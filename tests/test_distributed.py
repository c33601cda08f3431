"""Batch classification on a dask.distributed cluster equals classification on one machine."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")

from napari_xrdphase.classify import Classifier, fit_classifier  # noqa: E402
from napari_xrdphase.distributed import classify_distributed  # noqa: E402
from napari_xrdphase.encoder import Encoder  # noqa: E402
from napari_xrdphase.io import ReaderError, load_stack, save_stack  # noqa: E402
from napari_xrdphase.synth import simulate_series  # noqa: E402

INPUT_LENGTH = 256  # a small encoder input keeps the workers quick


@pytest.fixture(scope="module")
def client():
    # processes: each worker has its own torch (thread count, caches) and nothing leaks into
    # the test process; two single-threaded workers, as on a small real cluster
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """An encoder file, a classifier file trained on a simulated series, and the classifier."""
    folder = tmp_path_factory.mktemp("model")
    series = simulate_series("Fe", 12, 6, 12, n_points=600, seed=1, name="train")
    encoder = Encoder.random(seed=2, input_length=INPUT_LENGTH)
    labels = {"train": {i: str(series.labels[i]) for i in range(0, 30, 3)}}
    classifier = fit_classifier(encoder, [series.stack], labels, seed=0)
    encoder_path = encoder.save(folder / "encoder.safetensors")
    classifier_path = classifier.save(folder / "classifier.safetensors")
    return encoder_path, classifier_path, Classifier.load(classifier_path, encoder)


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    """The same kinds of series in each format: NeXus, .npz and a folder of .xy files."""
    folder = tmp_path_factory.mktemp("series")
    first = simulate_series("Fe", 20, 10, 27, n_points=500, seed=3, name="fe_run").stack
    second = simulate_series("FeO", 8, 4, 9, n_points=400, seed=4, name="feo_run").stack
    return [
        save_stack(first, folder / "fe_run.nxs"),
        save_stack(second, folder / "feo_run.npz"),
        save_stack(first.subset(slice(0, 13)), folder / "fe_folder", format="xy"),
    ]


def single_machine(classifier: Classifier, path, rows=slice(None), chunk_size=4096) -> np.ndarray:
    """The reference: the same rows classified in this process, on one torch thread as the workers.

    oneDNN's float32 convolutions may round differently with another thread count (~1e-7
    relative), which the untrained test encoder's tiny features then blow up.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return classifier.predict_proba(load_stack(path).subset(rows), chunk_size=chunk_size)
    finally:
        torch.set_num_threads(threads)


def test_many_series_classified_on_two_workers_equal_the_single_machine_result(
    client, model_files, series_files
):
    encoder_path, classifier_path, classifier = model_files
    results = classify_distributed(
        classifier_path, encoder_path, series_files, client, chunk_size=16
    )
    assert len(results) == len(series_files)
    for path, result in zip(series_files, results, strict=True):
        expected = single_machine(classifier, path, chunk_size=16)
        assert result.probabilities.shape == expected.shape
        np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(result.labels, classifier.predict(load_stack(path)))
        assert result.classes == classifier.classes


def test_one_series_split_into_row_slices_and_odd_blocks_matches(client, model_files, series_files):
    encoder_path, classifier_path, classifier = model_files
    nexus = series_files[0]
    slices = [slice(0, 28), slice(28, None), slice(1, 50, 7), slice(-3, None), slice(5, 6)]
    # chunk_size 4 leaves last blocks of one curve: they borrow their predecessor, exactly as
    # predict_proba's chunks do; a lone curve borrows its neighbour in the series
    results = classify_distributed(
        classifier_path, encoder_path, [(nexus, s) for s in slices], client, chunk_size=4
    )
    for rows, result in zip(slices[:-1], results, strict=False):
        expected = single_machine(classifier, nexus, np.arange(57)[rows], chunk_size=4)
        np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6, atol=1e-9)
    lone = single_machine(classifier, nexus, slice(4, 6), chunk_size=4)[1:]
    np.testing.assert_allclose(results[-1].probabilities, lone, rtol=1e-6, atol=1e-9)
    whole = np.concatenate([results[0].probabilities, results[1].probabilities])
    assert whole.shape[0] == 57  # 28 + 29: the split reproduces the whole series' chunks
    np.testing.assert_allclose(
        whole, single_machine(classifier, nexus, chunk_size=4), rtol=1e-6, atol=1e-9
    )


def test_a_scheduler_address_connects_like_a_client(client, model_files, series_files):
    encoder_path, classifier_path, classifier = model_files
    (result,) = classify_distributed(
        classifier_path, encoder_path, [series_files[1]], client.scheduler.address
    )
    np.testing.assert_allclose(
        result.probabilities, single_machine(classifier, series_files[1]), rtol=1e-6, atol=1e-9
    )


def test_reader_errors_on_a_worker_reach_the_client_naming_the_file(client, model_files, tmp_path):
    encoder_path, classifier_path, _ = model_files
    with pytest.raises(ReaderError, match=r"missing\.nxs: no such file"):
        classify_distributed(classifier_path, encoder_path, [tmp_path / "missing.nxs"], client)


def test_an_empty_row_slice_and_a_negative_step_are_refused(client, model_files, series_files):
    encoder_path, classifier_path, _ = model_files
    with pytest.raises(ValueError, match="selects no curves"):
        classify_distributed(
            classifier_path, encoder_path, [(series_files[1], slice(5, 5))], client
        )
    with pytest.raises(ValueError, match="positive step"):
        classify_distributed(
            classifier_path, encoder_path, [(series_files[1], slice(None, None, -1))], client
        )
