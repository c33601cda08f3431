"""The column-wise predictions CSV writer writes the very bytes of the per-row csv.writer one."""

import csv

import numpy as np
import pytest

from napari_xrdphase.io import write_predictions_csv
from napari_xrdphase.io.predictions_csv import (
    prediction_row,
    predictions_header,
    variable_column_name,
)
from napari_xrdphase.stack import SpectraStack


def reference_csv(path, results, classes):
    """The writer as it was: one csv.writer row per curve, built by prediction_row."""
    header = predictions_header(variable_column_name(s for s, _, _ in results), classes)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for stack, predicted, proba in results:
            proba = np.asarray(proba)
            for i in range(stack.n_curves):
                writer.writerow(
                    prediction_row(
                        stack.name, i, stack.sources[i], float(stack.variable[i]),
                        str(predicted[i]), proba[i], len(classes),
                    )
                )  # fmt: skip


def _series(name, n, seed, sources=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    variable = np.concatenate(
        [[0.0, -0.0, 1e-7, 123456789.0, 0.5, 2.5e-5, 1e16], rng.normal(0, 40, n - 7)]
    )
    stack = SpectraStack(
        rng.random((n, 16)), np.linspace(5.0, 20.0, 16), variable=variable[:n],
        variable_name="pressure", variable_unit="GPa", name=name, sources=sources,
    )  # fmt: skip
    raw = rng.random((n, 3)) ** 4
    raw[0] = [1.0, 0.0, 0.0]
    raw[1] = [0.5, 0.25, 0.25]
    raw[2] = [0.1234565, 0.8765435, 0.0]  # ties at the 7th decimal
    proba = (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)
    labels = np.array(["before", "during", "after"])[proba.argmax(axis=1)]
    return stack, labels, proba


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predictions_csv_bytes_match_the_per_row_writer(tmp_path, dtype):
    classes = ["before", "during", "after"]
    results = [_series("run_a", 200, 0, dtype=dtype), _series("run b", 50, 1, dtype=dtype)]
    expected, written = tmp_path / "expected.csv", tmp_path / "written.csv"
    reference_csv(expected, results, classes)
    write_predictions_csv(written, results, classes)
    assert written.read_bytes() == expected.read_bytes()


def test_predictions_csv_cells_that_need_quotes_are_written_as_csv_quotes_them(tmp_path):
    classes = ["before", "during", "after"]
    sources = [f'f_{i},"x".xy' if i % 3 == 0 else f"f_{i}.xy" for i in range(30)]
    results = [_series("run,1", 30, 2, sources=sources), _series("plain", 20, 3)]
    expected, written = tmp_path / "expected.csv", tmp_path / "written.csv"
    reference_csv(expected, results, classes)
    write_predictions_csv(written, results, classes)
    assert written.read_bytes() == expected.read_bytes()
    assert '"f_0,""x"".xy"' in written.read_text()


def _reference_repeats(stack):
    """Every curve hashed whole, as repeated_curves did before it fingerprinted rows."""
    import hashlib

    first_of, repeats = {}, []
    for index, row in enumerate(np.ascontiguousarray(stack.curves())):
        earlier = first_of.setdefault(hashlib.blake2b(row.tobytes()).digest(), index)
        if earlier != index:
            repeats.append((index, earlier))
    return repeats


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_curves_finds_exact_repeats_across_chunks_and_only_those(dtype):
    from napari_xrdphase.stack import repeated_curves

    rng = np.random.default_rng(5)
    curves = rng.random((40, 13)).astype(dtype)
    curves[7] = curves[2]
    curves[33] = curves[2]
    curves[20] = curves[19]
    curves[25] = curves[5][::-1]  # the same values in another order: no repeat
    curves[26, :] = curves[6, :]
    curves[26, 12] += 1e-3  # one point differs: no repeat
    stack = SpectraStack(curves, np.linspace(5.0, 20.0, 13), name="s")
    found = repeated_curves(stack, chunk_size=16)
    assert found == [(7, 2), (20, 19), (33, 2)] == _reference_repeats(stack)


def test_streamed_export_writes_the_bytes_of_the_per_row_writer(tmp_path):
    from napari_xrdphase.io.predictions_csv import prediction_rows_text

    stack, labels, proba = _series("run_a", 120, 4, dtype=np.float32)
    expected = tmp_path / "expected.csv"
    reference_csv(expected, [(stack, labels, proba)], ["before", "during", "after"])
    body = expected.read_bytes().split(b"\r\n", 1)[1]
    pieces = [
        prediction_rows_text(
            stack.name,
            first,
            stack.sources[first : first + 50],
            stack.variable[first : first + 50],
            labels[first : first + 50],
            proba[first : first + 50],
        )
        for first in range(0, 120, 50)
    ]
    assert "".join(pieces).encode() == body
