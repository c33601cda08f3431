"""Series too large for memory: lazy display pyramids, chunked classification to a resumable
HDF5 results file, and a streamed export to the predictions CSV.

Memory stays bounded by the chunk size, not the series: a chunk of ``chunk_size`` curves is read
from disk, embedded, classified and written before the next one is read. With the default 8192
curves of 2048 points that is about 64 MB of raw curves plus the encoder's working memory.

Results file layout (HDF5)::

    /                    @format="napari-xrdphase predictions" @version=1
                         @classes=JSON list  @classifier_sha256  @input_sha256
                         @dataset  @variable_name  @variable_unit  @source  @rows_done
    /label_index         (N,)   int8     index into classes of the predicted phase: the most
                                          probable class while rows are being written; once
                                          every row is done, Classifier.phase_labels of the
                                          whole series (in phase order along the ramp)
    /probabilities       (N, C) float32  columns in classes order
    /variable            (N,)   float64  the external variable of each curve
    /sources             (N,)   str      where each curve came from (``SpectraStack.sources``);
                                          files written before it existed have none

``rows_done`` counts the rows written so far; it is updated (and the file flushed) after the
rows themselves, so an interrupted run restarts at the first chunk not fully recorded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .boundaries import phase_labels
from .stack import SpectraStack

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "PredictionFile",
    "RowStridedView",
    "StreamError",
    "StreamResult",
    "classifier_fingerprint",
    "classify_to_file",
    "display_pyramid",
    "export_predictions_csv",
    "iter_probabilities",
    "predict_chunked",
    "predict_proba_chunked",
    "read_prediction_file",
    "stack_fingerprint",
]

RESULT_FORMAT = "napari-xrdphase predictions"
RESULT_VERSION = 1
DEFAULT_CHUNK_SIZE = 8192
# the coarsest display level has at most this many rows (about a screen's height, twice)
PYRAMID_MAX_COARSE_ROWS = 2048


class StreamError(ValueError):
    """A results file that cannot be used or resumed, with a message that says why."""


# --- lazy display --------------------------------------------------------------------------------
class RowStridedView:
    """Every ``step``-th row of a 2D array-like, read on demand (a coarse level of a display pyramid).

    Reading a block of the view reads only the rows it shows, with one strided HDF5 selection,
    so a coarse overview of a 10⁶-curve file touches a few thousand rows, not the file.
    """

    def __init__(self, data: Any, step: int) -> None:
        if step < 1:
            raise ValueError(f"step must be ≥ 1, got {step}")
        self.data, self.step = data, int(step)
        n_rows, n_points = (int(s) for s in data.shape)
        self.shape = (n_rows // self.step, n_points)
        self.dtype = np.dtype(data.dtype)
        self.ndim = 2
        self.size = self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RowStridedView(every {self.step}th row of {tuple(self.data.shape)})"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, columns = (key[0] if key else slice(None)), key[1:]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step > 0:
                stop = max(stop, start)
                source = slice(start * self.step, (stop - 1) * self.step + 1, step * self.step)
                block = (
                    np.asarray(self.data[source])
                    if stop > start
                    else np.empty((0, self.shape[1]), self.dtype)
                )
            else:
                block = self[np.arange(self.shape[0])[rows]]
        elif isinstance(rows, (int, np.integer)):
            index = int(rows) + (self.shape[0] if rows < 0 else 0)
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"row {rows} out of range for {self.shape[0]} rows")
            block = np.asarray(self.data[index * self.step])
        else:
            wanted = np.arange(self.shape[0])[rows] * self.step
            unique, inverse = np.unique(wanted, return_inverse=True)
            block = (
                np.asarray(self.data[unique.tolist()])[inverse]
                if unique.size
                else np.empty((0, self.shape[1]), self.dtype)
            )
        return (
            block[(slice(None), *columns)]
            if columns and block.ndim == 2
            else (block[columns] if columns else block)
        )

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # napari materialises the coarsest level (its thumbnail); that level is small
        block = self[:]
        return block if dtype is None else block.astype(dtype)


def display_pyramid(data: Any, max_coarse_rows: int = PYRAMID_MAX_COARSE_ROWS) -> list[Any]:
    """Return ``[data, every 2nd row, every 4th row, ...]`` as lazy views, for napari's multiscale display.

    napari reads a whole non-multiscale 2D image when it draws it; as a multiscale image it reads
    only the rows of the level that fits the zoom, inside the visible region.
    """
    levels = [data]
    step = 1
    while int(data.shape[0]) // step > max_coarse_rows:
        step *= 2
        levels.append(RowStridedView(data, step))
    return levels


# --- fingerprints --------------------------------------------------------------------------------
def _update_with_array(digest: Any, name: str, array: Any) -> None:
    array = np.ascontiguousarray(np.asarray(array))
    digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes())


def classifier_fingerprint(classifier: Any) -> str:
    """Return a SHA-256 of a classifier's classes and weights and of its encoder's weights (or config)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(classifier.classes)).encode())
    for name in ("weight", "bias", "mean", "scale"):
        _update_with_array(digest, name, getattr(classifier, name))
    encoder = classifier.encoder
    model = getattr(encoder, "model", None)
    if model is not None and hasattr(model, "state_dict"):
        for name, tensor in sorted(model.state_dict().items()):
            _update_with_array(digest, name, tensor.detach().to("cpu").float().numpy())
    config = getattr(encoder, "config", None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def stack_fingerprint(stack: SpectraStack) -> str:
    """Return a SHA-256 of what identifies a series: name, points, axis, variable name and first curve.

    The curve count is left out on purpose: a series that grew since (a file still being
    written) resumes and is extended; the first curve tells another file of the same shape apart.
    """
    digest = hashlib.sha256()
    digest.update(f"{stack.name}|{stack.n_points}|{stack.variable_name}|{stack.axis_kind}".encode())
    _update_with_array(digest, "axis", stack.axis)
    _update_with_array(digest, "first", stack.curves(slice(0, 1)))
    return digest.hexdigest()


# --- chunked classification ----------------------------------------------------------------------
def iter_probabilities(
    classifier: Any, stack: SpectraStack, start: int = 0, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first row, probabilities float32)`` per chunk of at most ``chunk_size`` curves, from row ``start``."""
    for first, embeddings in _iter_embeddings(classifier, stack, start, chunk_size):
        yield first, np.asarray(classifier.predict_proba(embeddings), dtype=np.float32)


def _iter_embeddings(
    classifier: Any, stack: SpectraStack, start: int, chunk_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first row, embeddings)`` per chunk of at most ``chunk_size`` curves, from row ``start``."""
    chunk_size = max(int(chunk_size), 2)
    n = stack.n_curves
    for first in range(int(start), n, chunk_size):
        stop = min(first + chunk_size, n)
        # a SpectraStack holds at least 2 curves: a chunk of one curve borrows its predecessor
        read_from = min(first, stop - 2)
        part = stack.subset(slice(read_from, stop))
        yield first, classifier.embed(part, chunk_size=part.n_curves)[first - read_from :]


def predict_proba_chunked(
    classifier: Any,
    stack: SpectraStack,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int, int], object] | None = None,
) -> np.ndarray:
    """Return (curves × classes) float32 probabilities, embedding ``chunk_size`` curves at a time.

    Only the probabilities are kept (N × classes), never the curves or embeddings of the series.
    """
    return predict_chunked(classifier, stack, chunk_size, progress, novelty=False)[0]


def predict_chunked(
    classifier: Any,
    stack: SpectraStack,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int, int], object] | None = None,
    novelty: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return float32 probabilities and each curve's novelty, embedding every chunk once.

    The novelty is None when not asked for or when the classifier does not know its labelled
    curves (``Classifier.has_novelty``).
    """
    n = stack.n_curves
    proba_out = np.empty((n, len(classifier.classes)), dtype=np.float32)
    novelty_out = np.empty(n) if novelty and classifier.has_novelty else None
    for first, embeddings in _iter_embeddings(classifier, stack, 0, chunk_size):
        stop = first + embeddings.shape[0]
        proba_out[first:stop] = classifier.predict_proba(embeddings)
        if novelty_out is not None:
            novelty_out[first:stop] = classifier.novelty(embeddings)
        if progress is not None:
            progress(stop, n)
    return proba_out, novelty_out


@dataclass
class StreamResult:
    """What ``classify_to_file`` did: the results file, rows written so far, and whether it was stopped."""

    path: Path
    n_curves: int
    rows_done: int
    rows_this_run: int
    stopped: bool

    @property
    def complete(self) -> bool:
        """True when every curve of the series has its row."""
        return self.rows_done >= self.n_curves


def _open_stack(stack_or_path: SpectraStack | str | os.PathLike) -> tuple[SpectraStack, bool]:
    if isinstance(stack_or_path, SpectraStack):
        return stack_or_path, False
    from .io import load_stack

    # streaming is the point: keep any HDF5 signal on disk, whatever its size
    return load_stack(stack_or_path, lazy_threshold_bytes=0), True


def _close_stack(stack: SpectraStack) -> None:
    handle = getattr(stack.intensities, "file", None) or getattr(
        getattr(stack.intensities, "dataset", None), "file", None
    )
    if handle is not None:
        handle.close()


def _create_results(
    h5: h5py.File,
    classifier: Any,
    stack: SpectraStack,
    fingerprints: tuple[str, str],
    chunk: int,
    source: str,
) -> None:
    n, n_classes = stack.n_curves, len(classifier.classes)
    rows_per_chunk = max(1, min(n, chunk))
    h5.attrs["format"] = RESULT_FORMAT
    h5.attrs["version"] = RESULT_VERSION
    h5.attrs["classes"] = json.dumps(list(classifier.classes))
    h5.attrs["classifier_sha256"], h5.attrs["input_sha256"] = fingerprints
    h5.attrs["dataset"] = stack.name
    h5.attrs["variable_name"] = stack.variable_name
    h5.attrs["variable_unit"] = stack.variable_unit
    h5.attrs["source"] = source
    h5.attrs["rows_done"] = 0
    h5.create_dataset(
        "label_index", shape=(n,), maxshape=(None,), dtype=np.int8, chunks=(rows_per_chunk,)
    )
    h5.create_dataset(
        "probabilities", shape=(n, n_classes), maxshape=(None, n_classes), dtype=np.float32,
        chunks=(rows_per_chunk, n_classes),
    )  # fmt: skip
    h5.create_dataset("variable", data=stack.variable, maxshape=(None,), chunks=(rows_per_chunk,))
    h5.create_dataset(
        "sources", data=stack.sources, dtype=h5py.string_dtype(), maxshape=(None,),
        chunks=(rows_per_chunk,),
    )  # fmt: skip


def _check_resumable(h5: h5py.File, path: Path, fingerprints: tuple[str, str], n: int) -> int:
    if h5.attrs.get("format") != RESULT_FORMAT:
        raise StreamError(
            f"{path}: not a napari-xrdphase predictions file; choose another output path"
        )
    if int(h5.attrs.get("version", -1)) != RESULT_VERSION:
        raise StreamError(
            f"{path}: predictions file version {h5.attrs.get('version')}, this napari-xrdphase "
            f"writes version {RESULT_VERSION}; pass resume=False to start it again"
        )
    if h5.attrs["classifier_sha256"] != fingerprints[0]:
        raise StreamError(
            f"{path} was written by another classifier or encoder (model hash "
            f"{h5.attrs['classifier_sha256'][:12]}…, this one {fingerprints[0][:12]}…); "
            "resume with the same model, or pass resume=False to start again"
        )
    if h5.attrs["input_sha256"] != fingerprints[1]:
        raise StreamError(
            f"{path} holds predictions for another series ({h5.attrs.get('dataset')!r}, "
            f"input hash {h5.attrs['input_sha256'][:12]}…); resume with the same input, or pass "
            "resume=False to start again"
        )
    stored = int(h5["label_index"].shape[0])
    if n < stored:
        raise StreamError(
            f"{path} holds {stored} rows but the series now has only {n} curves; "
            "pass resume=False to start again"
        )
    return min(int(h5.attrs["rows_done"]), stored)


def classify_to_file(
    classifier: Any,
    stack_or_path: SpectraStack | str | os.PathLike,
    out_path: str | os.PathLike,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    resume: bool = True,
    progress: Callable[[int, int], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StreamResult:
    """Classify every curve chunk by chunk into an HDF5 results file; resume where an earlier run stopped.

    ``progress(rows_done, n_curves)`` is called after each chunk; when ``should_stop()`` returns
    True the run stops after the current chunk (run it again to go on). With ``resume=True`` an
    existing file must come from the same classifier (model hash) and series, else
    ``StreamError``; a series that has grown since is extended. ``resume=False`` starts over.
    """
    out = Path(out_path).expanduser()
    stack, opened_here = _open_stack(stack_or_path)
    try:
        n = stack.n_curves
        fingerprints = (classifier_fingerprint(classifier), stack_fingerprint(stack))
        if out.exists() and resume:
            try:
                h5 = h5py.File(out, "r+")
            except OSError as exc:
                raise StreamError(
                    f"{out}: cannot reopen the predictions file ({exc}); it may be damaged by "
                    "the interruption: delete it or pass resume=False"
                ) from None
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            h5 = h5py.File(out, "w")
            source = "" if isinstance(stack_or_path, SpectraStack) else str(stack_or_path)
            _create_results(h5, classifier, stack, fingerprints, chunk_size, source)
        with h5:
            done = _check_resumable(h5, out, fingerprints, n)
            if h5["label_index"].shape[0] < n:  # the series grew since the file was made
                for name in ("label_index", "probabilities", "variable", "sources"):
                    if name in h5:
                        h5[name].resize(n, axis=0)
                h5["variable"][:] = stack.variable
                if "sources" in h5:
                    h5["sources"][:] = stack.sources
            start, stopped = done, False
            if progress is not None:
                progress(done, n)
            for first, proba in iter_probabilities(classifier, stack, done, chunk_size):
                stop = first + proba.shape[0]
                h5["probabilities"][first:stop] = proba
                h5["label_index"][first:stop] = proba.argmax(axis=1).astype(np.int8)
                h5.flush()
                h5.attrs["rows_done"] = done = stop
                h5.flush()
                if progress is not None:
                    progress(done, n)
                if should_stop is not None and done < n and should_stop():
                    stopped = True
                    break
            if done == n and getattr(classifier, "phase_order", None) is not None:
                phases = phase_labels(
                    h5["variable"][:], h5["probabilities"][:], classifier.classes,
                    classifier.phase_order,
                )  # fmt: skip
                codes = np.zeros(n, dtype=np.int8)
                for k, name in enumerate(classifier.classes):
                    codes[phases == name] = k
                h5["label_index"][:] = codes
                h5.flush()
        return StreamResult(out, n, done, done - start, stopped)
    finally:
        if opened_here:
            _close_stack(stack)


# --- reading and exporting results ---------------------------------------------------------------
@dataclass
class PredictionFile:
    """The contents of a results file (N × classes: small even for 10⁶ curves)."""

    path: Path
    dataset: str
    classes: tuple[str, ...]
    label_index: np.ndarray
    probabilities: np.ndarray
    variable: np.ndarray
    variable_name: str
    variable_unit: str
    rows_done: int

    @property
    def complete(self) -> bool:
        """True when every row has been classified."""
        return self.rows_done >= self.label_index.shape[0]

    @property
    def labels(self) -> np.ndarray:
        """The predicted class name of every classified row."""
        return np.asarray(self.classes)[self.label_index[: self.rows_done]]


def _open_results(path: Path) -> h5py.File:
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise StreamError(f"{path}: cannot open the predictions file ({exc})") from None
    if h5.attrs.get("format") != RESULT_FORMAT:
        h5.close()
        raise StreamError(f"{path}: not a napari-xrdphase predictions file")
    return h5


def read_prediction_file(path: str | os.PathLike) -> PredictionFile:
    """Return the labels, probabilities and variable stored in a results file."""
    path = Path(path).expanduser()
    with _open_results(path) as h5:
        return PredictionFile(
            path=path,
            dataset=str(h5.attrs["dataset"]),
            classes=tuple(json.loads(h5.attrs["classes"])),
            label_index=h5["label_index"][:],
            probabilities=h5["probabilities"][:],
            variable=h5["variable"][:],
            variable_name=str(h5.attrs["variable_name"]),
            variable_unit=str(h5.attrs["variable_unit"]),
            rows_done=int(h5.attrs["rows_done"]),
        )


def _sources(h5: h5py.File, dataset: str, first: int, stop: int) -> list[str]:
    """The stored source names of rows ``first:stop``, or ``SpectraStack``'s default names."""
    if "sources" not in h5:  # a results file from before sources were stored
        return [f"{dataset}[{i}]" for i in range(first, stop)]
    return [s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
            for s in h5["sources"][first:stop]]  # fmt: skip


def export_predictions_csv(
    result_paths: str | os.PathLike | Sequence[str | os.PathLike],
    csv_path: str | os.PathLike,
    chunk_size: int = 65536,
) -> Path:
    """Write results files as the predictions CSV of ``xrdphase classify``, streaming; return its path.

    The columns are those of ``io.predictions_csv`` (``dataset,index,source,<variable>,label,
    skipped,p_<class>...``).
    """
    from ._files import atomic_write
    from .io.predictions_csv import MIXED_VARIABLES, prediction_rows_text, predictions_header

    paths = [result_paths] if isinstance(result_paths, (str, os.PathLike)) else list(result_paths)
    paths = [Path(p).expanduser() for p in paths]
    headers = []
    for path in paths:
        with _open_results(path) as h5:
            n, done = int(h5["label_index"].shape[0]), int(h5.attrs["rows_done"])
            if done < n:
                raise StreamError(
                    f"{path}: only {done} of {n} curves are classified; run classify_to_file "
                    "again to finish before exporting"
                )
            headers.append((tuple(json.loads(h5.attrs["classes"])), str(h5.attrs["variable_name"])))
    classes = headers[0][0] if headers else ()
    if any(c != classes for c, _ in headers):
        raise StreamError("the results files have different classes; export them separately")
    names = {name for _, name in headers}
    header = predictions_header(names.pop() if len(names) == 1 else MIXED_VARIABLES, classes)
    class_names = np.asarray(classes)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for path in paths:
                with _open_results(path) as h5:
                    dataset, n = str(h5.attrs["dataset"]), int(h5["label_index"].shape[0])
                    for first in range(0, n, chunk_size):
                        stop = min(first + chunk_size, n)
                        fh.write(
                            prediction_rows_text(
                                dataset, first, _sources(h5, dataset, first, stop),
                                h5["variable"][first:stop],
                                class_names[h5["label_index"][first:stop]],
                                h5["probabilities"][first:stop],
                            )
                        )  # fmt: skip

    return atomic_write(Path(csv_path).expanduser(), write)
