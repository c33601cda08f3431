"""Live mode: watch a folder or a growing HDF5 file and classify curves as they arrive.

Watching is polling (no extra dependency): every ``poll_s`` seconds the folder is listed, or the
HDF5 file reopened and its row count read. A text file counts as arrived once it is *complete*:
its size and modification time did not change between two polls, it parses, and it covers the
series' axis range (a file cut short while being written usually ends early). Anything else is
retried on the next poll; a file that is still unreadable after ``max_attempts`` stable polls is
skipped with a warning, never crashing the watch.
"""

from __future__ import annotations

import csv
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .io import INDEX_VARIABLE, METADATA_CSV, TEXT_SUFFIXES, ReaderError
from .io.text_folder import _natural_key, _read_text_curve
from .stack import SpectraStack

__all__ = [
    "CurveFile",
    "FolderWatcher",
    "HDF5Watcher",
    "LiveSeries",
    "LiveUpdate",
    "NewRows",
    "PredictionsCsvAppender",
    "watcher_for",
]

DEFAULT_POLL_S = 0.5
DEFAULT_MAX_ATTEMPTS = 20


@dataclass
class CurveFile:
    """A curve file that arrived complete: its path and its x and intensity columns."""

    path: Path
    x: np.ndarray
    y: np.ndarray


@dataclass
class NewRows:
    """Rows appended to a growing HDF5 series since the last poll."""

    start: int
    intensities: np.ndarray
    variable: np.ndarray | None


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable_polls: int = 0
    failures: int = 0
    last_error: str = ""


class FolderWatcher:
    """Polls a folder for new, completely written curve files (``.xy/.xye/.chi/.dat``), in natural order.

    Files present when it starts are not reported unless ``include_existing``; ``skip`` names
    more files to ignore (the curves of a series already loaded). ``axis`` is the series' axis:
    a file that does not reach both of its ends is taken as still being written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        poll_s: float = DEFAULT_POLL_S,
        *,
        include_existing: bool = False,
        skip: Sequence[str] = (),
        axis: np.ndarray | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise ReaderError(
                f"{self.path}: not a folder; live mode watches a folder or an HDF5 file"
            )
        self.poll_s = float(poll_s)
        self.axis = None if axis is None else np.asarray(axis, dtype=np.float64)
        self.max_attempts = int(max_attempts)
        self.done: set[str] = set(skip)
        self._pending: dict[str, _Pending] = {}
        if not include_existing:
            self.done.update(entry.name for entry in self._curve_entries())

    def _curve_entries(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.path) as entries:
                return [
                    e for e in entries
                    if e.name.lower().endswith(TEXT_SUFFIXES) and not e.name.startswith(".")
                    and e.is_file()
                ]  # fmt: skip
        except OSError:
            return []  # the folder is being moved or remounted: try again next poll

    def _covers_axis(self, x: np.ndarray) -> bool:
        if self.axis is None:
            return True
        lo, hi = float(np.min(self.axis)), float(np.max(self.axis))
        tolerance = 1e-6 * (hi - lo)
        return float(np.min(x)) <= lo + tolerance and float(np.max(x)) >= hi - tolerance

    def poll(self) -> list[CurveFile]:
        """Look once; return the curve files that became complete since the last poll, in natural order."""
        arrived = []
        for entry in sorted(self._curve_entries(), key=lambda e: _natural_key(e.name)):
            if entry.name in self.done:
                continue
            try:
                info = entry.stat()
            except OSError:
                continue  # gone again (a temporary file renamed away)
            pending = self._pending.get(entry.name)
            if pending is None or (pending.size, pending.mtime_ns) != (
                info.st_size,
                info.st_mtime_ns,
            ):
                failures = pending.failures if pending else 0
                self._pending[entry.name] = _Pending(info.st_size, info.st_mtime_ns, 0, failures)
                continue  # new or still growing: look again next poll
            pending.stable_polls += 1
            if info.st_size == 0:
                continue
            try:
                curve = _read_text_curve(Path(entry.path))
                if not self._covers_axis(curve.x):
                    raise ReaderError(f"{entry.path}: does not cover the series' axis range yet")
            except ReaderError as exc:
                pending.failures += 1
                pending.last_error = str(exc)
                if pending.failures >= self.max_attempts:
                    warnings.warn(
                        f"{entry.path}: skipped after {pending.failures} attempts: {exc}",
                        UserWarning, stacklevel=2,
                    )  # fmt: skip
                    self.done.add(entry.name)
                    del self._pending[entry.name]
                continue
            self.done.add(entry.name)
            del self._pending[entry.name]
            arrived.append(CurveFile(Path(entry.path), curve.x, curve.y))
        return arrived

    def watch(
        self, timeout_s: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[list[CurveFile]]:
        """Yield each non-empty poll's new files until ``should_stop()`` or ``timeout_s`` seconds without any."""
        yield from _watch(self, timeout_s, should_stop)

    def __iter__(self) -> Iterator[CurveFile]:
        for batch in self.watch():
            yield from batch


class HDF5Watcher:
    """Polls a growing HDF5/NeXus series (a writer appending rows) for new rows.

    The file is reopened on every poll, so it is never held open between polls; a file that
    cannot be opened or read right now (the writer holds it, or is mid-write) is retried.
    ``variable`` is ``load_stack``'s: the dataset the new rows' variable is read from.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        poll_s: float = DEFAULT_POLL_S,
        *,
        known_rows: int = 0,
        variable: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.poll_s = float(poll_s)
        self.rows = int(known_rows)
        self.variable = variable

    def poll(self) -> list[NewRows]:
        """Look once; return the rows added since the last poll (one ``NewRows`` or none)."""
        from .io import load_stack

        try:
            stack = load_stack(self.path, variable=self.variable, lazy_threshold_bytes=0)
        except (ReaderError, OSError):
            return []  # being written: retry
        try:
            n = stack.n_curves
            if n <= self.rows:
                return []
            try:
                block = stack.curves(slice(self.rows, n))
            except (ValueError, OSError):
                return []  # rows allocated but not filled yet (NaN), or a read race: retry
            variable = (
                None if stack.variable_name == INDEX_VARIABLE else stack.variable[self.rows : n]
            )
            new = NewRows(self.rows, block, variable)
            self.rows = n
            return [new]
        finally:
            handle = getattr(stack.intensities, "file", None)
            if handle is not None:
                handle.close()

    def watch(
        self, timeout_s: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[list[NewRows]]:
        """Yield each non-empty poll's new rows until ``should_stop()`` or ``timeout_s`` seconds without any."""
        yield from _watch(self, timeout_s, should_stop)


def _watch(watcher: Any, timeout_s: float | None, should_stop: Callable[[], bool] | None):
    last_arrival = time.monotonic()
    while should_stop is None or not should_stop():
        batch = watcher.poll()
        now = time.monotonic()
        if batch:
            last_arrival = now
            yield batch
        elif timeout_s is not None and now - last_arrival >= timeout_s:
            return
        time.sleep(watcher.poll_s)


def watcher_for(
    path: str | os.PathLike,
    stack: SpectraStack,
    poll_s: float = DEFAULT_POLL_S,
    *,
    variable: str | None = None,
) -> FolderWatcher | HDF5Watcher:
    """Return the watcher that reports curves added to the series ``stack`` was loaded from.

    ``variable`` is the one ``stack`` was loaded with (``load_stack``'s). New curve files take
    theirs from metadata.csv by ``stack.variable_name``, or the index when that is ``index``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return FolderWatcher(path, poll_s, skip=stack.sources, axis=stack.axis)
    if h5py.is_hdf5(path):
        return HDF5Watcher(path, poll_s, known_rows=stack.n_curves, variable=variable)
    raise ReaderError(f"{path}: live mode watches a folder of curve files or an HDF5/NeXus file")


# --- the growing series --------------------------------------------------------------------------
@dataclass
class LiveUpdate:
    """What one batch of new curves changed: their rows, classes, probabilities and the boundaries."""

    rows: range
    labels: np.ndarray
    probabilities: np.ndarray
    boundaries: list
    boundaries_changed: bool


def _boundary_key(boundaries: Sequence[Any]) -> list[tuple]:
    return [(b.from_label, b.to_label, b.index_before, b.index_after) for b in boundaries]


@dataclass
class LiveSeries:
    """A series that grows as curves arrive, every new curve classified with a fixed classifier.

    The curves are kept in memory in a buffer that doubles when full, so appending is cheap.
    """

    stack: SpectraStack
    classifier: Any = None
    folder: Path | None = None
    probabilities: np.ndarray | None = None
    boundaries: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack = self.stack.load() if self.stack.is_lazy else self.stack
        self._buffer = np.array(self.stack.intensities, dtype=np.float32)
        self._rows = self.stack.n_curves
        self._warned_variable = False
        if self.classifier is not None and self.probabilities is None:
            from .stream import predict_proba_chunked

            self.probabilities = predict_proba_chunked(self.classifier, self.stack)
        if self.probabilities is not None:
            self.boundaries = self._find_boundaries()

    @property
    def labels(self) -> np.ndarray | None:
        """The predicted class of every curve (None without a classifier)."""
        if self.probabilities is None:
            return None
        return self.classifier.phase_labels(self.stack, self.probabilities)

    def _find_boundaries(self) -> list:
        from .boundaries import find_boundaries

        return find_boundaries(
            self.stack.variable, self.labels, self.probabilities, self.classifier.classes,
            phase_order=self.classifier.phase_order, unit=self.stack.variable_unit,
        )  # fmt: skip

    def add(self, arrivals: Sequence[CurveFile | NewRows]) -> LiveUpdate | None:
        """Append curve files or HDF5 rows, classify them, and return what changed (None for nothing)."""
        blocks, values, names = [], [], []
        for item in arrivals:
            if isinstance(item, CurveFile):
                blocks.append(self._on_grid(item.x, item.y)[None, :])
                values.append([self._variable_of_file(item.path.name, len(names))])
                names.append(item.path.name)
            else:
                blocks.append(np.asarray(item.intensities, dtype=np.float32))
                k = blocks[-1].shape[0]
                start = self._rows + len(names)
                values.append(
                    np.arange(start, start + k, dtype=np.float64) if item.variable is None
                    else np.asarray(item.variable, dtype=np.float64)
                )  # fmt: skip
                names.extend(f"{self.stack.name}[{item.start + i}]" for i in range(k))
        if not names:
            return None
        return self.append(np.concatenate(blocks), np.concatenate(values), names)

    def append(
        self, intensities: np.ndarray, variable: np.ndarray, sources: Sequence[str]
    ) -> LiveUpdate:
        """Append curves already on the series' axis; classify them; return what changed."""
        block = np.asarray(intensities, dtype=np.float32)
        old, new = self._rows, self._rows + block.shape[0]
        if new > self._buffer.shape[0]:
            grown = np.empty((max(new, 2 * self._buffer.shape[0]), self.stack.n_points), np.float32)
            grown[:old] = self._buffer[:old]
            self._buffer = grown
        self._buffer[old:new] = block
        self.stack = self.stack.replace(
            intensities=self._buffer[:new],
            variable=np.concatenate([self.stack.variable, variable]),
            sources=[*self.stack.sources, *sources],
        )
        self._rows = new
        rows = range(old, new)
        if self.classifier is None:
            return LiveUpdate(rows, np.array([], dtype=str), np.empty((0, 0)), [], False)
        from .stream import iter_probabilities

        fresh = np.concatenate([p for _, p in iter_probabilities(self.classifier, self.stack, old)])
        self.probabilities = np.concatenate([self.probabilities, fresh])
        before = _boundary_key(self.boundaries)
        self.boundaries = self._find_boundaries()
        labels = self.labels[old:new]
        changed = _boundary_key(self.boundaries) != before
        return LiveUpdate(rows, labels, fresh, self.boundaries, changed)

    def _on_grid(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        axis = self.stack.axis
        if x.shape == axis.shape and np.allclose(x, axis, rtol=1e-9, atol=0):
            return y.astype(np.float32)
        order = np.argsort(x)
        return np.interp(axis, x[order], y[order]).astype(np.float32)

    def _variable_of_file(self, name: str, offset: int) -> float:
        if self.stack.variable_name == INDEX_VARIABLE:
            return float(self._rows + offset)
        value = _metadata_value(self.folder, name, self.stack.variable_name)
        if value is None:
            if not self._warned_variable:
                warnings.warn(
                    f"{name}: no {self.stack.variable_name!r} for it in {METADATA_CSV}; new curves "
                    "without one repeat the previous value",
                    UserWarning, stacklevel=3,
                )  # fmt: skip
                self._warned_variable = True
            return float(self.stack.variable[-1])
        return value


def _metadata_value(folder: Path | None, name: str, variable_name: str) -> float | None:
    """The value of ``variable_name`` for the curve file ``name`` in the folder's metadata.csv.

    Read like ``load_stack`` reads it (encodings, delimiters, file-name columns, units and
    decimal commas in cells); None when it is missing or unreadable right now.
    """
    from .io.metadata_csv import _metadata_csv_value

    if folder is None or not (folder / METADATA_CSV).is_file():
        return None
    return _metadata_csv_value(folder / METADATA_CSV, name, variable_name)


# --- the predictions CSV, row by row -------------------------------------------------------------
class PredictionsCsvAppender:
    """Writes the predictions CSV of ``xrdphase classify`` and appends rows as curves arrive."""

    def __init__(self, path: str | os.PathLike, variable_name: str, classes: Sequence[str]) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(
                ["dataset", "index", variable_name, "label", *(f"p_{c}" for c in classes)]
            )

    def append(
        self, stack: SpectraStack, rows: Sequence[int], labels: Sequence[str], proba: np.ndarray
    ) -> None:
        """Append one row per curve in ``rows`` and flush, so readers see each row at once."""
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            for row, label, p in zip(rows, labels, proba, strict=True):
                writer.writerow(
                    [stack.name, row, f"{stack.variable[row]:.6g}", label, *(f"{v:.6f}" for v in p)]
                )
