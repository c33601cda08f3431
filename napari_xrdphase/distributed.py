"""Classify many series (or one huge one) on a dask.distributed cluster.

The client ships only paths, integers and small numpy arrays: every worker loads the encoder
and classifier files itself (safetensors, never unpickled) and reads only the rows it is given
with ``load_stack`` + ``SpectraStack.curves``. So the workers must see the same files at the
same paths as the client (a shared file system), and the results are those of
``Classifier.predict_proba`` on one machine. See ``docs/distributed.md``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .boundaries import phase_labels

DEFAULT_CHUNK_SIZE = 4096
# stacks kept open per worker process; a row block of a series read whole (folders, .npz,
# HDF5 below the lazy threshold) would otherwise re-read the file for every block
_STACK_CACHE_SIZE = 2
_MODEL_CACHE_SIZE = 2

SeriesInput = str | os.PathLike[str] | tuple[str | os.PathLike[str], slice]


class SeriesPrediction(NamedTuple):
    """Predicted phase and class probabilities per curve of one input.

    The labels are ``Classifier.phase_labels`` of the whole input: with the classifier's phase
    order, in order along each leg of the ramp.
    """

    labels: np.ndarray  # str, one per curve
    probabilities: np.ndarray  # curves × classes, columns in ``classes`` order
    classes: tuple[str, ...]


class _FileKey(NamedTuple):
    path: str
    mtime_ns: int
    size: int


def _file_key(path: str) -> _FileKey:
    # a changed file (same path, new content) must not be served from a worker's cache
    try:
        info = os.stat(path)
    except OSError:
        return _FileKey(path, -1, -1)  # load_stack / the model loaders say what is wrong
    return _FileKey(path, info.st_mtime_ns, info.st_size)


# --- what runs on the workers ------------------------------------------------------------------
_cache_lock = threading.Lock()
_stack_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_model_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _cached(cache: OrderedDict, key: tuple[Any, ...], limit: int, make: Any) -> Any:
    with _cache_lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)
    return value


def _worker_stack(path: str, variable: str | None, lazy_threshold_bytes: int) -> Any:
    from .io import load_stack

    key = (_file_key(path), variable, lazy_threshold_bytes)
    return _cached(
        _stack_cache,
        key,
        _STACK_CACHE_SIZE,
        lambda: load_stack(path, variable=variable, lazy_threshold_bytes=lazy_threshold_bytes),
    )


def _worker_classifier(classifier_path: str, encoder_path: str | None, torch_threads: int | None):
    import torch

    from .classify import Classifier
    from .encoder import Encoder

    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)

    def load() -> Classifier:
        encoder = Encoder.load(encoder_path) if encoder_path else Encoder.builtin()
        return Classifier.load(classifier_path, encoder)

    key = (_file_key(classifier_path), _file_key(encoder_path) if encoder_path else None)
    return _cached(_model_cache, key, _MODEL_CACHE_SIZE, load)


def _count_curves(path: str, variable: str | None, lazy_threshold_bytes: int) -> int:
    """Return the number of curves of the series at ``path`` (runs on a worker)."""
    return _worker_stack(path, variable, lazy_threshold_bytes).n_curves


class _Block(NamedTuple):
    """Rows ``start:stop:step`` of a series to embed together; ``keep`` of them are returned."""

    start: int
    stop: int
    step: int
    keep_start: int
    keep_stop: int


def _classify_rows(
    classifier_path: str,
    encoder_path: str | None,
    path: str,
    block: tuple[int, int, int, int, int],
    variable: str | None,
    lazy_threshold_bytes: int,
    torch_threads: int | None,
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...] | None, np.ndarray]:
    """Return (probabilities, classes, phase order, variable) of one block of rows (on a worker)."""
    start, stop, step, keep_start, keep_stop = block
    classifier = _worker_classifier(classifier_path, encoder_path, torch_threads)
    stack = _worker_stack(path, variable, lazy_threshold_bytes)
    rows = slice(start, stop, step)
    part = stack.replace(
        intensities=stack.curves(rows),
        variable=stack.variable[rows],
        sources=stack.sources[rows],
    )
    # one block is one chunk of Classifier.predict_proba: the same curves go through the
    # encoder together, so the numbers are the single-machine ones
    probabilities = classifier.predict_proba(part, chunk_size=max(part.n_curves, 2))
    keep = slice(keep_start, keep_stop)
    return probabilities[keep], classifier.classes, classifier.phase_order, part.variable[keep]


# --- the client side ---------------------------------------------------------------------------
def _normalised_input(item: SeriesInput) -> tuple[str, slice]:
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[1], slice):
            raise ValueError(f"an input is a path or (path, slice), got {item!r}")
        path, rows = item
    else:
        path, rows = item, slice(None)
    if rows.step is not None and rows.step < 1:
        raise ValueError(f"{path}: row slice {rows} needs a positive step")
    # relative paths mean the client's working folder; workers may run elsewhere
    return str(Path(path).expanduser().absolute()), rows


def _blocks(rows: range, chunk_size: int, n_curves: int) -> list[_Block]:
    """Return the blocks of ``rows`` that ``Classifier.predict_proba(chunk_size=...)`` embeds together."""
    blocks = []
    for first in range(0, len(rows), chunk_size):
        part = rows[first : first + chunk_size]
        if len(part) > 1:
            blocks.append(_Block(part[0], part[-1] + 1, part.step, 0, len(part)))
        elif first > 0:  # a last chunk of one curve borrows its predecessor, as predict_proba does
            previous = rows[first - 1]
            blocks.append(_Block(previous, part[0] + 1, part[0] - previous, 1, 2))
        elif n_curves > 1:  # a single selected curve borrows a neighbour in the series
            row = part[0]
            neighbour = row - 1 if row > 0 else row + 1
            low, high = min(row, neighbour), max(row, neighbour)
            keep = row - low
            blocks.append(_Block(low, high + 1, 1, keep, keep + 1))
        else:
            blocks.append(_Block(part[0], part[0] + 1, 1, 0, 1))  # load_stack refuses this one
    return blocks


def _open_client(client_or_address: Any, exits: ExitStack) -> Any:
    from distributed import Client, LocalCluster

    if isinstance(client_or_address, Client):
        return client_or_address
    if isinstance(client_or_address, str):
        return exits.enter_context(Client(client_or_address))
    if client_or_address is not None:
        raise TypeError(
            "client_or_address must be a distributed.Client, a scheduler address such as "
            f"'tcp://10.0.0.5:8786', or None; got {type(client_or_address).__name__}"
        )
    try:
        return Client.current()
    except ValueError:  # no client yet: a temporary cluster on this machine
        cluster = exits.enter_context(LocalCluster(threads_per_worker=1, processes=True))
        return exits.enter_context(Client(cluster))


def classify_distributed(
    classifier_path: str | os.PathLike[str],
    encoder_path: str | os.PathLike[str] | None,
    inputs: Sequence[SeriesInput],
    client_or_address: Any = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    variable: str | None = None,
    lazy_threshold_bytes: int = 1 << 30,
    torch_threads: int | None = 1,
) -> list[SeriesPrediction]:
    """Return a ``SeriesPrediction`` (labels, probabilities, classes) per input, computed on a dask cluster.

    ``inputs`` are paths or ``(path, row_slice)`` pairs; each is cut into blocks of
    ``chunk_size`` curves, and every block is one task that loads the model files and reads its
    rows on a worker. ``encoder_path=None`` means the encoder shipped with the package.
    ``client_or_address``: a ``distributed.Client``, a scheduler address, or None for the
    current client (or, failing that, a temporary ``LocalCluster`` on this machine).
    ``torch_threads`` sets each worker's torch thread count (None leaves it alone).
    """
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    chunk_size = max(int(chunk_size), 2)  # as Classifier.predict_proba: a chunk holds ≥ 2 curves
    classifier_file = str(Path(classifier_path).expanduser().absolute())
    encoder_file = str(Path(encoder_path).expanduser().absolute()) if encoder_path else None
    series = [_normalised_input(item) for item in inputs]
    if not series:
        return []

    with ExitStack() as exits:
        client = _open_client(client_or_address, exits)
        paths = sorted({path for path, _ in series})
        counted = client.map(
            _count_curves,
            paths,
            variable=variable,
            lazy_threshold_bytes=lazy_threshold_bytes,
            pure=False,
        )
        n_curves = dict(zip(paths, client.gather(counted), strict=True))

        tasks: list[list[Any]] = []
        for path, rows in series:
            selected = range(n_curves[path])[rows]
            if not selected:
                raise ValueError(f"{path}: the row slice {rows} selects no curves")
            futures = [
                client.submit(
                    _classify_rows,
                    classifier_file,
                    encoder_file,
                    path,
                    tuple(block),
                    variable,
                    lazy_threshold_bytes,
                    torch_threads,
                    pure=False,
                )
                for block in _blocks(selected, chunk_size, n_curves[path])
            ]
            tasks.append(futures)
        results = client.gather(tasks)

    predictions = []
    models: set[tuple[tuple[str, ...], tuple[str, ...] | None]] = set()
    for parts in results:
        models |= {(part_classes, order) for _, part_classes, order, _ in parts}
        if len(models) > 1:  # the classifier file changed during the run
            raise ValueError(
                f"{classifier_file}: workers saw different classifiers "
                f"{sorted(models, key=str)}; do not replace the classifier file during a run"
            )
        ((classes, phase_order),) = models
        probabilities = np.concatenate([p for p, _, _, _ in parts], axis=0)
        values = np.concatenate([v for _, _, _, v in parts])
        labels = phase_labels(values, probabilities, classes, phase_order)
        predictions.append(SeriesPrediction(labels, probabilities, classes))
    return predictions
