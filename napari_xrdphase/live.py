"""Live mode: watch a folder or a growing HDF5 file and classify curves as they arrive.

Watching is polling (no extra dependency): every ``poll_s`` seconds the folder is listed, or the
HDF5 file reopened and its row count read.

A curve file counts as arrived once it is *complete*: its size and modification time did not
change between two polls, it parses, and it covers the series' axis range. A file that looks
unfinished (it ends mid-line, holds too few points, or stops short of the axis) is retried on
the next poll, and skipped with a warning naming the reader's reason once it has stayed so for
``max_attempts`` polls; a file that is complete but unreadable (a bad line followed by good
ones, another axis) is skipped at once, with the reader's reason. A skipped file still takes
its place in the series: the curves after it keep their file-order index, and it is reported
as a ``SkippedCurve`` (in the predictions CSV: a row with an empty label and the reason).

Files are reported in natural file order: a file still being written holds back the files
after it (for at most ``max_attempts`` polls), so a curve's index is its position in the
folder, as ``xrdphase classify`` of the finished folder numbers it.

When the series' variable comes from the folder's ``metadata.csv``, each new curve's value is
read with batch mode's checks (``io.metadata_csv``), except that rows may name files still to
come. A curve not listed yet waits for its row (for at most ``max_attempts`` polls); while
metadata.csv is invalid (a file listed twice, a repeated header line, text in the column), a
one-line warning names the line and the curves that arrive get no value (NaN), never an old one.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "SkippedCurve",
    "watcher_for",
]

DEFAULT_POLL_S = 0.5
DEFAULT_MAX_ATTEMPTS = 20


@dataclass
class CurveFile:
    """A curve file that arrived complete: its path, its x and intensity columns, and its variable.

    ``variable`` is the value metadata.csv gives it (NaN when it gives none), or None when the
    series takes no variable from metadata.csv (then it is the curve's index).
    """

    path: Path
    x: np.ndarray
    y: np.ndarray
    variable: float | None = None


@dataclass
class NewRows:
    """Rows appended to a growing HDF5 series since the last poll, from row ``start``."""

    start: int
    intensities: np.ndarray
    variable: np.ndarray | None
    sources: list[str] | None = None


@dataclass
class SkippedCurve:
    """A curve that could not be read: where it came from and why.

    ``index`` is its position in the series (an HDF5 row; None for a file: the next position,
    given by ``LiveSeries``); ``variable`` its value when known.
    """

    source: str
    reason: str
    index: int | None = None
    variable: float | None = None


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable_polls: int = 0
    failures: int = 0
    last_error: str = ""
    polls: int = 0  # polls since first seen
    unlisted: int = 0  # complete polls spent waiting for a metadata.csv row


def _reason(message: str, path: Path) -> str:
    """A reader's message without the file's path in front: ``line 31: cannot read ...``."""
    text = str(message)
    for prefix in (str(path), path.name):
        if text.startswith(prefix):
            return text[len(prefix) :].lstrip(": ").strip() or text
    return text


def _names_a_line(message: str, path: Path) -> bool:
    """True when a reader's message points at a line of the file (``<path> line 31: ...``)."""
    return str(message).startswith(f"{path} line ")


class _Metadata:
    """One poll's view of a live folder's metadata.csv: values by file, or why there are none."""

    def __init__(self, watcher: FolderWatcher, present: list[str], changed: bool = True) -> None:
        self.watcher = watcher
        self.present = present
        self.changed = changed  # since the last poll: a row may be being written
        self.loaded = False
        self.values: dict[str, float] = {}
        self.problem: str | None = None  # the file is invalid: curves get NaN
        self.unsettled = False  # being written (ends mid-line) or absent: curves wait

    def load(self) -> None:
        if self.loaded:
            return
        from .io.metadata_csv import _read_metadata_csv_partial

        self.loaded = True
        path = self.watcher.path / METADATA_CSV
        try:
            data = path.read_bytes()
        except OSError:
            self.unsettled = True  # gone for a moment (replaced by a rename): look again
            return
        try:
            self.values = _read_metadata_csv_partial(
                path, self.present, self.watcher.variable, data
            )
        except ReaderError as exc:
            if self.changed and not data.endswith((b"\n", b"\r")):
                self.unsettled = self.watcher._metadata_unsettled = True  # a row being written
                return
            self.problem = str(exc)
        self.watcher._metadata_unsettled = False
        self.watcher._metadata_checked(self.problem)

    def value(self, name: str, pending: _Pending | None) -> tuple[float | None, bool]:
        """(value, wait): the curve's value (NaN when there is none), or wait for its row."""
        self.load()
        if self.problem is not None:
            return math.nan, False
        if name in self.values:
            return self.values[name], False
        if pending is None:
            return None, False
        pending.unlisted += 1
        if pending.unlisted < self.watcher.max_attempts:
            return None, True
        warnings.warn(
            f"{self.watcher.path / name}: {METADATA_CSV} has no row for it after "
            f"{pending.unlisted} looks; its {self.watcher.variable} is left missing (NaN)",
            UserWarning, stacklevel=4,
        )  # fmt: skip
        return math.nan, False


class FolderWatcher:
    """Polls a folder for new, completely written curve files (``.xy/.xye/.chi/.dat``), in natural order.

    ``poll()`` returns ``CurveFile``s and ``SkippedCurve``s (see the module docstring). Files
    present when it starts are not reported unless ``include_existing``; ``skip`` names more
    files to ignore (the curves of a series already loaded). ``axis`` is the series' axis: a
    file that does not reach both of its ends is taken as still being written; ``axis_kind``
    its (kind, unit): a file whose header states another is skipped. ``variable`` is the
    series' variable: unless it is ``index`` (or None), each curve's value is read from the
    folder's metadata.csv.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        poll_s: float = DEFAULT_POLL_S,
        *,
        include_existing: bool = False,
        skip: Sequence[str] = (),
        axis: np.ndarray | None = None,
        axis_kind: tuple[str, str] | None = None,
        variable: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise ReaderError(
                f"{self.path}: not a folder; live mode watches a folder or an HDF5 file"
            )
        self.poll_s = float(poll_s)
        self.axis = None if axis is None else np.asarray(axis, dtype=np.float64)
        self.axis_kind = None if axis_kind is None else tuple(axis_kind)
        self.variable = None if variable in (None, INDEX_VARIABLE) else str(variable)
        self.max_attempts = max(int(max_attempts), 1)
        self.done: set[str] = set(skip)
        self._pending: dict[str, _Pending] = {}
        self._metadata_stat: tuple[int, int] | None = None
        self._metadata_problem: str | None = None
        self._metadata_unsettled = False  # at the last look, a row was being written
        if not include_existing:
            self.done.update(entry.name for entry in self._curve_entries())
        self._last: str | None = max(self.done, key=_natural_key, default=None)

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

    def _axis_problem(self, x: np.ndarray) -> str | None:
        if self.axis is None:
            return None
        lo, hi = float(np.min(self.axis)), float(np.max(self.axis))
        tolerance = 1e-6 * (hi - lo)
        if float(np.min(x)) <= lo + tolerance and float(np.max(x)) >= hi - tolerance:
            return None
        return (
            f"its x values span {float(np.min(x)):g}–{float(np.max(x)):g}, short of the "
            f"series' axis {lo:g}–{hi:g}"
        )

    def _metadata_changed(self) -> bool:
        try:
            info = (self.path / METADATA_CSV).stat()
        except OSError:
            return False
        stat = (info.st_size, info.st_mtime_ns)
        changed, self._metadata_stat = stat != self._metadata_stat, stat
        return changed

    def _metadata_checked(self, problem: str | None) -> None:
        """Warn once, in one line, when metadata.csv turns invalid (again, or in a new way)."""
        if problem is not None and problem != self._metadata_problem:
            warnings.warn(
                f"{problem}; until it is corrected, new curves get no {self.variable} (NaN)",
                UserWarning, stacklevel=5,
            )  # fmt: skip
        self._metadata_problem = problem

    def _holds_back(self, pending: _Pending) -> bool:
        # a file being written keeps the files after it waiting, for at most max_attempts polls
        return pending.polls < self.max_attempts

    def poll(self) -> list[CurveFile | SkippedCurve]:
        """Look once; return the files that arrived or were given up since the last poll, in natural order."""
        entries = sorted(self._curve_entries(), key=lambda e: _natural_key(e.name))
        changed = self.variable is not None and self._metadata_changed()
        metadata = _Metadata(self, [e.name for e in entries], changed)
        if changed or self._metadata_unsettled:
            metadata.load()  # say at once when it turns invalid
        arrived: list[CurveFile | SkippedCurve] = []
        blocked = False
        for entry in entries:
            if entry.name in self.done:
                continue
            try:
                info = entry.stat()
            except OSError:
                continue  # gone again (a temporary file renamed away)
            pending = self._pending.get(entry.name)
            if pending is None:
                pending = self._pending[entry.name] = _Pending(info.st_size, info.st_mtime_ns)
                blocked = True  # new: look again next poll
                continue
            pending.polls += 1
            if (pending.size, pending.mtime_ns) != (info.st_size, info.st_mtime_ns):
                pending.size, pending.mtime_ns, pending.stable_polls = (
                    info.st_size, info.st_mtime_ns, 0,
                )  # fmt: skip
                blocked = blocked or self._holds_back(pending)  # still growing
                continue
            pending.stable_polls += 1
            if blocked:
                continue  # complete, perhaps, but an earlier file is not yet
            item = self._examine(Path(entry.path), pending, metadata)
            if item is None:
                blocked = self._holds_back(pending)
                continue
            self.done.add(entry.name)
            del self._pending[entry.name]
            self._check_order(Path(entry.path))
            arrived.append(item)
        return arrived

    def _examine(
        self, path: Path, pending: _Pending, metadata: _Metadata
    ) -> CurveFile | SkippedCurve | None:
        """The file's curve, or its skip, or None to look again next poll."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return self._retry(path, pending, f"cannot read the file ({exc.strerror or exc})")
        if not data.strip():
            return self._retry(path, pending, "the file is empty")
        try:
            curve = _read_text_curve(path, data)
        except ReaderError as exc:
            reason = _reason(str(exc), path)
            if data.endswith((b"\n", b"\r")) and _names_a_line(str(exc), path):
                # every line is complete and one of them is bad: writing on will not mend it
                return self._skip(path, reason, metadata, "(complete but unreadable)")
            return self._retry(path, pending, reason, metadata)
        if self.axis_kind is not None and curve.axis is not None and curve.axis != self.axis_kind:
            reason = (
                f"its header says the x axis is {' in '.join(curve.axis)}, but the series' is "
                f"{' in '.join(self.axis_kind)}"
            )
            return self._skip(path, reason, metadata, "(complete, but on another axis)")
        problem = self._axis_problem(curve.x)
        if problem is not None:
            return self._retry(path, pending, problem, metadata)
        value = None
        if self.variable is not None:
            value, wait = metadata.value(path.name, pending)
            if wait:
                return None
        return CurveFile(path, curve.x, curve.y, value)

    def _retry(
        self, path: Path, pending: _Pending, reason: str, metadata: _Metadata | None = None
    ) -> SkippedCurve | None:
        """Look again next poll, unless the file has looked unfinished ``max_attempts`` times."""
        pending.failures += 1
        pending.last_error = reason
        if pending.failures < self.max_attempts:
            return None
        return self._skip(
            path, reason, metadata,
            f"after {pending.failures} attempts (unchanged, it still looks unfinished)",
        )  # fmt: skip

    def _skip(self, path: Path, reason: str, metadata: _Metadata | None, why: str) -> SkippedCurve:
        warnings.warn(f"{path}: skipped {why}: {reason}", UserWarning, stacklevel=4)
        value = None
        if self.variable is not None and metadata is not None:
            value = metadata.value(path.name, None)[0]
        return SkippedCurve(path.name, reason, None, value)

    def _check_order(self, path: Path) -> None:
        if self._last is not None and _natural_key(path.name) < _natural_key(self._last):
            warnings.warn(
                f"{path}: arrived after {self._last}, which it comes before in file order; it "
                "is added as the next curve, so its index is not its place among the files",
                UserWarning, stacklevel=4,
            )  # fmt: skip
            return
        self._last = path.name

    def watch(
        self, timeout_s: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[list[CurveFile | SkippedCurve]]:
        """Yield each non-empty poll's new files until ``should_stop()`` or ``timeout_s`` seconds without any."""
        yield from _watch(self, timeout_s, should_stop)

    def __iter__(self) -> Iterator[CurveFile | SkippedCurve]:
        for batch in self.watch():
            yield from batch


class HDF5Watcher:
    """Polls a growing HDF5/NeXus series (a writer appending rows) for new rows.

    The file is reopened on every poll, so it is never held open between polls; a file that
    cannot be opened or read right now (the writer holds it, or is mid-write) is retried.
    ``variable`` is ``load_stack``'s: the dataset the new rows' variable is read from. Rows
    holding NaN or inf at the end of the signal are taken as not written yet; such a row with
    filled rows after it is a hole: it is skipped (``SkippedCurve`` with its row as index) once
    it has stayed so for ``max_attempts`` polls, and the rows after it keep their index.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        poll_s: float = DEFAULT_POLL_S,
        *,
        known_rows: int = 0,
        variable: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.path = Path(path).expanduser()
        self.poll_s = float(poll_s)
        self.rows = int(known_rows)
        self.variable = variable
        self.max_attempts = max(int(max_attempts), 1)
        self._holes: dict[int, int] = {}

    def poll(self) -> list[NewRows | SkippedCurve]:
        """Look once; return the rows added since the last poll, and the holes given up, in row order."""
        from .io import load_stack

        try:
            stack = load_stack(self.path, variable=self.variable, lazy_threshold_bytes=0)
        except (ValueError, OSError):  # ReaderError, StackError: being written, retry
            return []
        try:
            n = stack.n_curves
            if n <= self.rows:
                return []
            try:
                block = np.asarray(stack.intensities[self.rows : n], dtype=np.float32)
            except (ValueError, OSError):
                return []  # a read race: retry
            return self._take(stack, block)
        finally:
            handle = getattr(stack.intensities, "file", None) or getattr(
                getattr(stack.intensities, "dataset", None), "file", None
            )
            if handle is not None:
                handle.close()

    def _take(self, stack: SpectraStack, block: np.ndarray) -> list[NewRows | SkippedCurve]:
        first, k = self.rows, block.shape[0]
        finite = np.isfinite(block).all(axis=1)
        by_index = stack.variable_name == INDEX_VARIABLE
        values = None if by_index else stack.variable[first : first + k]
        sources = stack.sources[first : first + k]
        out: list[NewRows | SkippedCurve] = []
        i = 0
        while i < k:
            if finite[i]:
                stop = i + int(np.argmin(finite[i:])) if not finite[i:].all() else k
                out.append(
                    NewRows(
                        first + i, block[i:stop], None if values is None else values[i:stop],
                        list(sources[i:stop]),
                    )
                )  # fmt: skip
                i = stop
                continue
            if not finite[i:].any():
                break  # the rows at the end are not written yet
            row = first + i
            looks = self._holes[row] = self._holes.get(row, 0) + 1
            if looks < self.max_attempts:
                break  # perhaps written out of order: look again
            del self._holes[row]
            bad = int((~np.isfinite(block[i])).sum())
            reason = (
                f"row {row} holds {bad} NaN or inf values, still after {looks} looks, while "
                "later rows are filled"
            )
            warnings.warn(f"{self.path}: skipped {sources[i]}: {reason}", UserWarning, stacklevel=3)
            out.append(
                SkippedCurve(sources[i], reason, row, None if values is None else float(values[i]))
            )
            i += 1
        self.rows = first + i
        return out

    def watch(
        self, timeout_s: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[list[NewRows | SkippedCurve]]:
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
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> FolderWatcher | HDF5Watcher:
    """Return the watcher that reports curves added to the series ``stack`` was loaded from.

    ``variable`` is the one ``stack`` was loaded with (``load_stack``'s). New curve files take
    theirs from metadata.csv by ``stack.variable_name``, or the index when that is ``index``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return FolderWatcher(
            path, poll_s, skip=stack.sources, axis=stack.axis,
            axis_kind=(stack.axis_kind, stack.axis_unit), variable=stack.variable_name,
            max_attempts=max_attempts,
        )  # fmt: skip
    if h5py.is_hdf5(path):
        return HDF5Watcher(
            path, poll_s, known_rows=stack.n_curves, variable=variable, max_attempts=max_attempts
        )
    raise ReaderError(f"{path}: live mode watches a folder of curve files or an HDF5/NeXus file")


# --- the growing series --------------------------------------------------------------------------
@dataclass
class LiveUpdate:
    """What one batch of arrivals changed: the new rows, their classes and probabilities, the boundaries.

    ``rows`` are rows of ``LiveSeries.stack``; ``skipped`` the curves given up in this batch,
    each with its index in the series.
    """

    rows: range
    labels: np.ndarray
    probabilities: np.ndarray
    boundaries: list
    boundaries_changed: bool
    skipped: list[SkippedCurve] = field(default_factory=list)


def _boundary_key(boundaries: Sequence[Any]) -> list[tuple]:
    return [(b.from_label, b.to_label, b.index_before, b.index_after) for b in boundaries]


@dataclass
class LiveSeries:
    """A series that grows as curves arrive, every new curve classified with a fixed classifier.

    The curves are kept in memory in a buffer that doubles when full, so appending is cheap.
    ``indices`` holds each row's index in the series: its position among the files (or HDF5
    rows), counting the skipped ones, which are kept in ``skipped``; ``missing`` marks rows
    whose external variable is unknown (their ``stack.variable`` repeats the row before, only
    to keep the series valid: they are left out of the phase order and the boundaries, and
    written as empty). ``labels_given`` ({row: class}) are the labelled curves.

    ``pressure``: a ``pressure.PressureTrack`` begun on ``stack``'s curves, where ``stack`` is
    the series with that fit's pressure as its variable (``pressure.stack_with_pressure``):
    each new curve's pressure is then fitted from the calibrant's lines, continuing the
    track; the value a new curve brings (metadata.csv, HDF5, its index) is its own variable,
    kept in ``metadata["own_variable"]``. A curve whose fit fails has no pressure (missing,
    with a warning naming it).
    """

    stack: SpectraStack
    classifier: Any = None
    probabilities: np.ndarray | None = None
    boundaries: list = field(default_factory=list)
    labels_given: Mapping[int, str] | None = None
    pressure: Any = None

    def __post_init__(self) -> None:
        self.stack = self.stack.load() if self.stack.is_lazy else self.stack
        if self.pressure is not None and "own_variable" not in self.stack.metadata:
            raise ValueError(
                f"{self.stack.name}: a live pressure track needs the series with the fitted "
                "pressure as its variable (pressure.stack_with_pressure)"
            )
        self._buffer = np.array(self.stack.intensities, dtype=np.float32)
        self._rows = self.stack.n_curves
        self.indices = np.arange(self._rows, dtype=np.int64)
        self.missing = np.zeros(self._rows, dtype=bool)
        self.skipped: list[SkippedCurve] = []
        self.next_index = self._rows
        self._labels: np.ndarray | None = None
        if self.classifier is not None and self.probabilities is None:
            from .stream import predict_proba_chunked

            self.probabilities = predict_proba_chunked(self.classifier, self.stack)
        if self.probabilities is not None:
            self._classify()

    @property
    def labels(self) -> np.ndarray | None:
        """The predicted class of every curve (None without a classifier)."""
        return self._labels

    def _classify(self) -> None:
        from .results import classify_series

        result = classify_series(
            self.classifier, self.stack, self.probabilities, self.labels_given, self.missing
        )
        self._labels, self.boundaries = result.labels, result.boundaries

    @property
    def own_variable_name(self) -> str:
        """The variable new curves bring: the series' own (the fitted pressure replaced it)."""
        if self.pressure is None:
            return self.stack.variable_name
        return str(self.stack.metadata["own_variable"]["name"])

    def add(self, arrivals: Sequence[CurveFile | NewRows | SkippedCurve]) -> LiveUpdate | None:
        """Append curve files or HDF5 rows, classify them, and return what changed (None for nothing)."""
        by_index = self.own_variable_name == INDEX_VARIABLE
        blocks, values, names, indices, skipped = [], [], [], [], []
        for item in arrivals:
            if isinstance(item, CurveFile):
                index = self.next_index
                blocks.append(self._on_grid(item.x, item.y)[None, :])
                value = item.variable if item.variable is not None and not by_index else None
                values.append([float(index) if by_index else _nan_if_none(value)])
                names.append(item.path.name)
                indices.append([index])
                self.next_index = index + 1
            elif isinstance(item, SkippedCurve):
                index = item.index if item.index is not None else self.next_index
                value = float(index) if by_index else item.variable
                skipped.append(dataclasses.replace(item, index=index, variable=value))
                self.next_index = max(self.next_index, index + 1)
            else:
                blocks.append(np.asarray(item.intensities, dtype=np.float32))
                k = blocks[-1].shape[0]
                rows = np.arange(item.start, item.start + k, dtype=np.int64)
                values.append(
                    rows.astype(np.float64) if by_index or item.variable is None
                    else np.asarray(item.variable, dtype=np.float64)
                )  # fmt: skip
                names.extend(item.sources or [f"{self.stack.name}[{i}]" for i in rows])
                indices.append(rows)
                self.next_index = max(self.next_index, item.start + k)
        self.skipped.extend(skipped)
        if not names:
            if not skipped:
                return None
            empty = np.empty((0, 0 if self.classifier is None else len(self.classifier.classes)))
            return LiveUpdate(
                range(self._rows, self._rows), np.array([], dtype=str), empty,
                self.boundaries, False, skipped,
            )  # fmt: skip
        update = self.append(
            np.concatenate(blocks), np.concatenate(values), names, np.concatenate(indices)
        )
        update.skipped = skipped
        return update

    def append(
        self,
        intensities: np.ndarray,
        variable: np.ndarray,
        sources: Sequence[str],
        indices: Sequence[int] | None = None,
    ) -> LiveUpdate:
        """Append curves already on the series' axis; classify them; return what changed.

        ``variable`` may hold NaN (unknown); ``indices`` are the curves' indices in the series
        (default: the next ones). With a ``pressure`` track, ``variable`` is the curves' own
        variable and their variable is the fitted pressure.
        """
        block = np.asarray(intensities, dtype=np.float32)
        old, new = self._rows, self._rows + block.shape[0]
        if indices is None:
            indices = np.arange(self.next_index, self.next_index + block.shape[0])
        indices = np.asarray(indices, dtype=np.int64)
        self.next_index = max(self.next_index, int(indices.max(initial=-1)) + 1)
        values = np.asarray(variable, dtype=np.float64)
        metadata = self.stack.metadata
        if self.pressure is not None:
            values, metadata = self._fitted_pressure(block, values, sources)
        missing = ~np.isfinite(values)
        filled, previous = values.copy(), float(self.stack.variable[-1])
        for i in range(filled.size):  # keep the series valid; these rows are marked missing
            if missing[i]:
                filled[i] = previous
            previous = filled[i]
        if new > self._buffer.shape[0]:
            grown = np.empty((max(new, 2 * self._buffer.shape[0]), self.stack.n_points), np.float32)
            grown[:old] = self._buffer[:old]
            self._buffer = grown
        self._buffer[old:new] = block
        self.stack = self.stack.replace(
            intensities=self._buffer[:new],
            variable=np.concatenate([self.stack.variable, filled]),
            sources=[*self.stack.sources, *sources],
            metadata=metadata,
        )
        self.indices = np.concatenate([self.indices, indices])
        self.missing = np.concatenate([self.missing, missing])
        self._rows = new
        rows = range(old, new)
        if self.classifier is None:
            return LiveUpdate(rows, np.array([], dtype=str), np.empty((0, 0)), [], False)
        from .stream import iter_probabilities

        fresh = np.concatenate([p for _, p in iter_probabilities(self.classifier, self.stack, old)])
        self.probabilities = np.concatenate([self.probabilities, fresh])
        before = _boundary_key(self.boundaries)
        self._classify()
        labels = self._labels[old:new]
        changed = _boundary_key(self.boundaries) != before
        return LiveUpdate(rows, labels, fresh, self.boundaries, changed)

    def _fitted_pressure(
        self, block: np.ndarray, own: np.ndarray, sources: Sequence[str]
    ) -> tuple[np.ndarray, dict]:
        """Return the new curves' fitted pressure (NaN where the fit failed, with a warning).

        And the series' metadata with their own variable, σ and lines used added.
        """
        fit = self.pressure.extend(block)
        metadata = dict(self.stack.metadata)
        own_variable = metadata["own_variable"]
        metadata["own_variable"] = {
            **own_variable,
            "values": [*own_variable["values"], *own.tolist()],
        }
        metadata["pressure_sigma_gpa"] = [*metadata["pressure_sigma_gpa"], *fit.sigma.tolist()]
        metadata["pressure_lines_used"] = [
            *metadata["pressure_lines_used"], *(" ".join(u) for u in fit.lines_used)
        ]  # fmt: skip
        for source, reason in zip(sources, fit.reason, strict=True):
            if reason:
                warnings.warn(
                    f"{source}: no pressure from {fit.calibrant}: {reason}; its pressure is left "
                    "missing, out of the phase order and the boundaries",
                    UserWarning, stacklevel=4,
                )  # fmt: skip
        return fit.pressure, metadata

    def _own_values(self, rows: range) -> list[tuple[float, ...]]:
        """Per row, the own variable that follows the probabilities in the CSV (none: ())."""
        if not self._own_column():
            return [() for _ in rows]
        values = self.stack.metadata["own_variable"]["values"]
        return [(float(values[r]),) for r in rows]

    def _own_column(self) -> bool:
        return self.pressure is not None and self.own_variable_name != INDEX_VARIABLE

    def _on_grid(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        axis = self.stack.axis
        if x.shape == axis.shape and np.allclose(x, axis, rtol=1e-9, atol=0):
            return y.astype(np.float32)
        order = np.argsort(x)
        return np.interp(axis, x[order], y[order]).astype(np.float32)

    def prediction_rows(self, update: LiveUpdate | None = None) -> list[tuple]:
        """The predictions CSV rows of ``update`` (all so far when None), in index order.

        Each is ``(index, source, variable or NaN, label, probabilities or None, skipped reason,
        own variable)``; the last is ``(value,)`` where a fitted pressure replaced the series'
        own variable (index left out), else ``()``. A skipped curve has no fitted pressure.
        """
        rows = range(self._rows) if update is None else update.rows
        skipped = self.skipped if update is None else update.skipped
        have = self._labels is not None
        out = []
        for r, own in zip(rows, self._own_values(rows), strict=True):
            value = math.nan if self.missing[r] else float(self.stack.variable[r])
            label = str(self._labels[r]) if have else ""
            proba = self.probabilities[r] if have else None
            out.append((int(self.indices[r]), self.stack.sources[r], value, label, proba, "", own))
        for s in skipped:
            value, own = _nan_if_none(s.variable), ()
            if self.pressure is not None:  # its own variable, and no pressure
                value, own = math.nan, (value,) if self._own_column() else ()
            out.append((s.index, s.source, value, "", None, s.reason, own))
        return sorted(out, key=lambda row: row[0])


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


# --- the predictions CSV, row by row -------------------------------------------------------------
class PredictionsCsvAppender:
    """Writes the predictions CSV of ``xrdphase classify`` and appends rows as curves arrive.

    The columns are ``io.predictions_csv``'s; every row is flushed at once, so readers see it.
    ``extra`` names the own-variable columns after the probabilities (``own_variable_names``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        variable_name: str,
        classes: Sequence[str],
        extra: Sequence[str] = (),
    ) -> None:
        from .io.predictions_csv import predictions_header

        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_classes = len(classes)
        with open(self.path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(predictions_header(variable_name, classes, extra))

    def append(
        self, stack: SpectraStack, rows: Sequence[int], labels: Sequence[str], proba: np.ndarray
    ) -> None:
        """Append one row per curve in ``rows`` (its index is its row) and flush."""
        self._write(
            stack.name,
            [
                (row, stack.sources[row], float(stack.variable[row]), str(label), p, "", ())
                for row, label, p in zip(rows, labels, proba, strict=True)
            ],
        )

    def append_live(self, live: LiveSeries, update: LiveUpdate | None = None) -> None:
        """Append the rows of ``update`` (every row so far when None), skipped curves included, and flush."""
        self._write(live.stack.name, live.prediction_rows(update))

    def _write(self, dataset: str, rows: Sequence[tuple]) -> None:
        from .io.predictions_csv import prediction_row

        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            for index, source, value, label, proba, reason, own in rows:
                writer.writerow(
                    prediction_row(
                        dataset, index, source, value, label, proba, self.n_classes, reason, own
                    )
                )
