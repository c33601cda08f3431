"""The session object: what the docks do, as methods, shared by all docks of a viewer.

It is exposed as ``xrd`` in the napari console, so everything the docks do can be scripted::

    xrd.load("beamtime/run_017")
    xrd.label(3, "before"); xrd.label(110, "after")
    xrd.classify()
    xrd.boundaries

No Qt widgets live here; layers are napari layers, events are psygnal signals (emitted on the
main thread, so docks may update widgets in their handlers even when a worker thread changed
the session).
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, SignalGroup

from .._files import check_output_path
from .._layer_data import LIVE_PATH_KEY, METADATA_KEY, SOURCE_PATH_KEY, stack_to_layer_data
from ..defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_METHOD,
    DEFAULT_MOCO_WEIGHT,
    PROBE_STRAIN,
    PROBE_WHITENING_STRAIN,
)
from ..results import describe_series
from ..stack import AXIS_LABELS, SpectraStack, StackError
from ._assist import LabellingAssist

if TYPE_CHECKING:
    import napari

    from ..boundaries import Boundary
    from ..classify import Classifier
    from ..encoder import Encoder
    from ..training_check import TrainingCheck

DEFAULT_CLASSES = ("before", "during", "after")
# bright colours that stand out on the inferno colormap (black → purple → orange → yellow)
CLASS_COLORS = (
    "#29b6f6",  # sky blue
    "#69f069",  # green
    "#ff4fd8",  # magenta
    "#ffffff",
    "#ffd54f",
    "#ff7043",
    "#b39ddb",
    "#80cbc4",
    "#bdbdbd",
)
BOUNDARY_COLOR = "#00ffff"
STRIP_FRACTION = 0.04  # width of the phase / confidence strips, as a fraction of the image width
GAP_FRACTION = 0.01
ROLE_LABELS, ROLE_PHASE, ROLE_CONFIDENCE, ROLE_BOUNDARIES, ROLE_LEGEND, ROLE_TITLES = (
    "labels",
    "phase",
    "confidence",
    "boundaries",
    "legend",
    "strip titles",
)
ROLE_NOVELTY = "novelty"
NOVELTY_DISPLAY_MAX = 2.0  # the novelty strip: black 0, mid grey 1 (the threshold), white ≥ 2
LEGEND_TEXT_COLOR = "#000000"  # class names on the phase strip: black reads on every class colour
HEADER_TEXT_COLOR = "#a0a0a0"  # strip titles above the image: grey reads on dark and light canvas
LEGEND_FONT_SIZE = 10
# how the status bar spells the axis units
_UNIT_TEXT = {"A": "Å", "1/A": "1/Å", "nm": "nm", "1/nm": "1/nm", "deg": "deg", "rad": "rad"}


class SessionEvents(SignalGroup):
    """Signals of an ``XRDSession``."""

    series_changed = Signal()
    encoder_changed = Signal()
    labels_changed = Signal()
    classified = Signal()
    phases_changed = Signal()  # phase lines shown, pressure fitted, phases ignored


@dataclass
class ClassificationResult:
    """What ``XRDSession.compute_classification`` returns: fitted classifier and per-series results."""

    classifier: Classifier
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    boundaries: dict[str, list[Boundary]]
    # per series: why its curves were labelled each on its own despite a phase order ("" if not)
    notes: dict[str, str] = field(default_factory=dict)
    # per series: each curve's novelty (Classifier.novelty; None: not known)
    novelty: dict[str, np.ndarray | None] = field(default_factory=dict)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_session(viewer: napari.viewer.Viewer) -> XRDSession:
    """Return the session of ``viewer``, creating it (and the console's ``xrd``) the first time."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = XRDSession(viewer)
        _SESSIONS[viewer] = session
        # no console (headless, or napari-console missing): nothing to expose then
        with contextlib.suppress(Exception):
            viewer.update_console({"xrd": session})
    return session


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _series_meta(layer: Any) -> dict[str, Any]:
    meta = getattr(layer, "metadata", None)
    if not isinstance(meta, Mapping):
        return {}
    inner = meta.get(METADATA_KEY)
    return inner if isinstance(inner, dict) else {}


def _has_stack(layer: Any) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image) and isinstance(_series_meta(layer).get("stack"), SpectraStack)


def class_color(index: int) -> str:
    """Return the colour of the class at position ``index`` of the class list."""
    return CLASS_COLORS[index % len(CLASS_COLORS)]


def confirm_by_default(message: str) -> bool:
    """Confirm without asking (scripts); the docks pass a dialog instead."""
    return True


class XRDSession(LabellingAssist):
    """What the docks do, as methods: exposed as `xrd` in the napari console."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.events = SessionEvents()
        self.classes: list[str] = list(DEFAULT_CLASSES)
        self._current_class = self.classes[0]
        self._current_name: str | None = None
        self._encoder: Encoder | None = None
        self.encoder_source: str = "built-in"
        self._labels: dict[str, dict[int, str]] = {}
        self.labels_backup: dict[str, dict[int, str]] | None = None
        self.labels_saved = True  # False after a change that was not exported
        self.labels_files: list[Path] = []  # labels files imported: inputs, never written over
        self._encoder_file: Path | None = None
        self.classifier: Classifier | None = None
        self.predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.boundaries: dict[str, list[Boundary]] = {}
        self.series_notes: dict[str, str] = {}
        # known phases (Phases dock): lines shown, JCPDS files added, pressure fits, mask
        self.shown_phases: list[str] = []
        self.phase_files: dict[str, str] = {}
        self.phase_scales: dict[str, str] = {}
        self.pressure_fits: dict[str, Any] = {}
        self.ignore_phases: list[str] = []
        self.novelty: dict[str, np.ndarray | None] = {}
        self._syncing = False
        self._init_assist()
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        viewer.layers.selection.events.active.connect(self._on_active_changed)
        for layer in self.series_layers:  # opened before the session (e.g. by the reader)
            _install_status(layer, self)

    def __repr__(self) -> str:
        names = [layer.name for layer in self.series_layers]
        return (
            f"XRDSession(series={names}, current={self._current_layer_name()!r}, "
            f"encoder={self.encoder_source!r}, classes={self.classes}, "
            f"labelled={sum(len(v) for v in self._labels.values())})"
        )

    # --- events ---------------------------------------------------------------------------------
    def _emit(self, signal_name: str) -> None:
        signal = getattr(self.events, signal_name)
        if _is_main_thread():
            signal.emit()
            return
        try:  # a worker thread changed the session: let the handlers (Qt widgets) run on main
            from superqt.utils import ensure_main_thread

            ensure_main_thread(signal.emit)()
        except Exception:
            signal.emit()

    def _on_layers_changed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and not _has_stack(layer):
            return
        if layer is not None and getattr(event, "type", "") == "inserted":
            self._current_name = layer.name
            _install_status(layer, self)
        self._emit("series_changed")

    def _on_active_changed(self, event: Any = None) -> None:
        layer = self.viewer.layers.selection.active
        if layer is not None and _has_stack(layer) and layer.name != self._current_name:
            self._current_name = layer.name
            self._emit("series_changed")

    # --- series ---------------------------------------------------------------------------------
    @property
    def series_layers(self) -> list:
        """Image layers that carry a SpectraStack, in layer-list order."""
        return [layer for layer in self.viewer.layers if _has_stack(layer)]

    @property
    def stacks(self) -> list[SpectraStack]:
        """The stacks of all series layers (as loaded: the axis conversion is display only)."""
        return [self.compute_stack(layer) for layer in self.series_layers]

    def _current_layer_name(self) -> str | None:
        layer = self._current_or_none()
        return None if layer is None else layer.name

    def _current_or_none(self):
        layers = self.series_layers
        if not layers:
            return None
        for layer in layers:
            if layer.name == self._current_name:
                return layer
        active = self.viewer.layers.selection.active
        if active is not None and _has_stack(active):
            return active
        return layers[-1]

    @property
    def current_layer(self):
        """The series the docks act on: set by name or layer; defaults to the selected/last series."""
        layer = self._current_or_none()
        if layer is None:
            raise StackError(
                "no diffraction series is open; open a folder or file (Data dock → Open…, "
                "xrd.load(path)) or a sample (File → Open Sample → XRD Phase)"
            )
        return layer

    @current_layer.setter
    def current_layer(self, layer_or_name: Any) -> None:
        self._current_name = self.series_layer(layer_or_name).name
        self._emit("series_changed")

    def series_layer(self, layer_or_name: Any = None):
        """Return the series layer named ``layer_or_name`` (a layer, a layer name or a dataset name)."""
        if layer_or_name is None:
            return self.current_layer
        layers = self.series_layers
        if not isinstance(layer_or_name, str):
            if layer_or_name in layers:
                return layer_or_name
            raise StackError(
                f"layer {getattr(layer_or_name, 'name', layer_or_name)!r} is not a diffraction series"
            )
        for layer in layers:
            if layer.name == layer_or_name:
                return layer
        for layer in layers:
            if self.compute_stack(layer).name == layer_or_name:
                return layer
        known = [layer.name for layer in layers]
        raise StackError(f"no series named {layer_or_name!r} is open; open series: {known}")

    @property
    def stack(self) -> SpectraStack:
        """The SpectraStack of the current series (as loaded)."""
        return self.compute_stack(self.current_layer)

    @staticmethod
    def compute_stack(layer: Any) -> SpectraStack:
        """Return the stack a layer was loaded with (before any display conversion of its axis)."""
        meta = _series_meta(layer)
        source = meta.get("source_stack")
        return source if source is not None else meta["stack"]

    @staticmethod
    def shown_stack(layer: Any) -> SpectraStack:
        """Return the stack as the layer shows it (axis possibly converted)."""
        return _series_meta(layer)["stack"]

    def load(self, path: str | Path, display: str = "sqrt", variable: str | None = None):
        """Load a folder or file of curves as a new series layer; return the layer.

        ``variable`` as in ``load_stack`` (``"index"`` for the acquisition order).
        """
        from ..io import load_stack

        return self.add_stack(load_stack(path, variable=variable), display=display, source=path)

    def add_stack(
        self,
        stack: SpectraStack,
        display: str = "sqrt",
        ground_truth: Sequence[str] | None = None,
        source: str | Path | None = None,
    ):
        """Add ``stack`` as a series layer (with optional ground-truth labels); return the layer.

        ``source``: the file or folder it was read from, which exports never write over.
        """
        extra: dict[str, Any] = {}
        if source is not None:
            extra[SOURCE_PATH_KEY] = str(Path(source).expanduser().absolute())
        if ground_truth is not None:
            truth = [str(v) for v in ground_truth]
            if len(truth) != stack.n_curves:
                raise StackError(
                    f"{stack.name}: {len(truth)} ground-truth labels for {stack.n_curves} curves"
                )
            extra["ground_truth"] = truth
        data, kwargs, _ = stack_to_layer_data(stack, display, extra)
        layer = self.viewer.add_image(data, **kwargs)
        self._current_name = layer.name
        self._refresh_label_points(layer)
        self._emit("series_changed")
        return layer

    def set_display(self, display: str, series: Any = None) -> None:
        """Show a series with ``display`` contrast: ``sqrt``, ``log`` or ``linear``."""
        layer = self.series_layer(series)
        self._update_layer(layer, self.shown_stack(layer), display)

    def set_axis(
        self,
        kind: str,
        unit: str | None = None,
        wavelength: float | None = None,
        series: Any = None,
    ) -> None:
        """Show a series on another axis (``2theta``, ``q``, ``d``); ``wavelength`` (Å) when it has none.

        The conversion is for display: classification keeps using the curves as loaded.
        """
        layer = self.series_layer(series)
        source = self.compute_stack(layer)
        if wavelength is not None:
            source = source.replace(wavelength=wavelength)
        shown = source.with_axis(kind, unit)
        if shown.axis[0] > shown.axis[-1]:  # d runs backwards: show it increasing to the right
            shown = shown.replace(intensities=shown.curves()[:, ::-1], axis=shown.axis[::-1])
        meta = _series_meta(layer)
        meta["source_stack"] = source
        self._update_layer(layer, shown, meta.get("display", "sqrt"))
        if self.shown_phases:  # the lines move to the new axis
            from ._phase_lines import draw_phase_lines

            with contextlib.suppress(ValueError):
                draw_phase_lines(self, layer)

    def set_wavelength(self, wavelength: float, series: Any = None) -> None:
        """Give a series the X-ray wavelength (Å) its file lacks.

        Pretraining and classification compare series on a q grid, which a 2θ series can only
        join with its wavelength; the axis conversions of ``set_axis`` use it too.
        """
        layer = self.series_layer(series)
        meta = _series_meta(layer)
        key = "source_stack" if meta.get("source_stack") is not None else "stack"
        meta[key] = meta[key].replace(wavelength=float(wavelength))  # checks it is > 0 and finite
        meta["wavelength_given"] = True  # the Data dock keeps its field for corrections
        self._emit("series_changed")

    def replace_stack(self, layer: Any, stack: SpectraStack) -> None:
        """Show ``stack`` in the series ``layer`` (e.g. a series that grew during the experiment).

        Labels and the display mode stay; an axis conversion is dropped (it would be stale), and
        so is the ground truth when it no longer covers every curve.
        """
        meta = layer.metadata.get(METADATA_KEY, {})
        meta.pop("source_stack", None)
        truth = meta.get("ground_truth")
        if truth is not None and len(truth) != stack.n_curves:
            meta.pop("ground_truth")
        self._update_layer(layer, stack, meta.get("display", "sqrt"))

    def _update_layer(self, layer: Any, shown: SpectraStack, display: str) -> None:
        old_meta = dict(_series_meta(layer))
        data, kwargs, _ = stack_to_layer_data(shown, display)
        layer.data = data
        layer.scale = kwargs["scale"]
        layer.translate = kwargs["translate"]
        layer.gamma = kwargs["gamma"]
        layer.contrast_limits = kwargs["contrast_limits"]
        layer.axis_labels = kwargs["axis_labels"]
        meta = kwargs["metadata"][METADATA_KEY]
        for key, value in old_meta.items():
            meta.setdefault(key, value)
        meta["stack"], meta["display"] = shown, display
        layer.metadata = {**layer.metadata, METADATA_KEY: meta}
        self._refresh_label_points(layer)
        name = self.compute_stack(layer).name
        if name in self.predictions:
            self._show_classification(layer)
        self._emit("series_changed")

    # --- encoder --------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The encoder classification uses: the built-in one until another is set."""
        if self._encoder is None:
            self._encoder, self.encoder_source = self._builtin_encoder()
        return self._encoder

    @staticmethod
    def _builtin_encoder() -> tuple[Encoder, str]:
        from ..encoder import Encoder, ModelError

        try:
            return Encoder.builtin(), "built-in"
        except ModelError as exc:
            _notify_warning(
                f"{exc} Using an untrained encoder (Encoder.random(0)) for now: results will be "
                "poor; pretrain an encoder or load one."
            )
            return Encoder.random(0), "untrained (random, seed 0): built-in file missing"

    def use_builtin(self) -> None:
        """Use the encoder shipped with the package."""
        self._encoder, self.encoder_source = self._builtin_encoder()
        self._encoder_file = None
        self._emit("encoder_changed")

    def save_encoder(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the encoder in use to ``path`` (one .safetensors file); return the path.

        An existing file is kept unless ``overwrite``; an input of the session never is written
        over (``check_output``).
        """
        path = Path(path).expanduser()
        if not path.suffix:
            path = path.with_suffix(".safetensors")
        out = self.check_output(path, overwrite=overwrite)
        return self.encoder.save(out)

    def load_encoder(self, path: str | Path) -> Encoder:
        """Use the encoder stored in ``path`` (a napari-xrdphase .safetensors file); return it.

        A file whose end-of-training check says the encoder did not learn is used all the
        same, with a warning notification saying so.
        """
        import warnings

        from ..encoder import Encoder
        from ..training_check import PretrainingWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PretrainingWarning)
            encoder = Encoder.load(path)
        for warning in caught:
            if issubclass(warning.category, PretrainingWarning):
                _notify_warning(str(warning.message))
            else:  # anything else goes on as it came
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        self.set_encoder(encoder, str(path))
        self._encoder_file = Path(path).expanduser().absolute()
        return encoder

    def set_encoder(self, encoder: Encoder, source: str) -> None:
        """Use ``encoder`` (described by ``source`` in the docks)."""
        if not callable(getattr(encoder, "embed", None)):
            raise TypeError(f"an encoder needs an embed method, got {type(encoder).__name__}")
        self._encoder, self.encoder_source = encoder, str(source)
        self._encoder_file = None
        self._emit("encoder_changed")

    def pretrain(
        self,
        method: str = DEFAULT_METHOD,
        epochs: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        c: float = DEFAULT_MOCO_WEIGHT,
        seed: int = 0,
        device: str = "auto",
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        notify: bool = True,
        init: str = "builtin",
    ) -> Encoder:
        """Pretrain an encoder without labels on every loaded series, use it and return it.

        The encoder's end-of-training check (``training_check``) is shown as a warning
        notification when it found something, unless ``notify`` is False (the Encoder dock
        shows it itself). ``init`` "builtin" fine-tunes the built-in encoder (``epochs`` a cap,
        default 30, the stopping rule ends it earlier), "random" trains from scratch (default
        60 epochs); ``training.pretrain``.
        """
        from ..training import pretrain

        stacks = self.stacks
        if not stacks:
            raise StackError("no diffraction series is open; open one before pretraining")
        encoder = pretrain(
            stacks, method=method, epochs=epochs, batch_size=batch_size, c=c, seed=seed,
            device=device, progress=progress, should_stop=should_stop, init=init,
        )  # fmt: skip
        training = encoder.config.get("training", {})
        stopped = training.get("stopped_early")
        chosen = encoder.config.get("fine_tuning", {}).get("chosen_epoch")
        length = f"{training.get('epochs')} epochs" if chosen is None else f"epoch {chosen} kept"
        start = "fine-tuned from the built-in encoder" if chosen is not None else "pretrained"
        source = f"{start} ({method}, {length}{', stopped early' if stopped else ''})"
        self.set_encoder(encoder, source)
        check = encoder.training_check
        if notify and check is not None and check.findings:
            _notify_warning(check.warning())
        comparison = encoder.config.get("builtin_comparison") or {}
        if notify and comparison.get("better_than_builtin") is False:
            _notify_warning(comparison["message"])
        return encoder

    @property
    def training_check(self) -> TrainingCheck | None:
        """The end-of-training check of the encoder in use (None: built-in, or none recorded).

        ``training_check.ok`` is True when nothing was found; ``messages`` says what was and
        what to do instead (``training_check.TrainingCheck``).
        """
        return getattr(self.encoder, "training_check", None)

    # --- labels ---------------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, dict[int, str]]:
        """Labelled curves: dataset name → {row: label} (a copy; change them with ``label``)."""
        return {name: dict(sorted(rows.items())) for name, rows in self._labels.items() if rows}

    def label_counts(self, series: Any = None) -> dict[str, int]:
        """Return the number of labelled curves per class (of one series, or of all)."""
        if series is None:
            values = [v for rows in self._labels.values() for v in rows.values()]
        else:
            values = list(
                self._labels.get(self.compute_stack(self.series_layer(series)).name, {}).values()
            )
        counts = {c: 0 for c in self.classes}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return counts

    def _check_rows(self, stack: SpectraStack, indices: Iterable[int]) -> list[int]:
        rows = []
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, int | np.integer):
                raise StackError(f"{stack.name}: row {index!r} is not an integer")
            if not 0 <= int(index) < stack.n_curves:
                raise StackError(
                    f"{stack.name}: there is no curve {index}; rows are 0–{stack.n_curves - 1}"
                )
            rows.append(int(index))
        return rows

    def _add_class(self, cls: str) -> str:
        cls = str(cls).strip()
        if not cls:
            raise StackError("a class name cannot be empty")
        if cls not in self.classes:
            self.classes.append(cls)
        return cls

    @property
    def current_class(self) -> str:
        """The class that clicks and points added by hand give a curve (the dock's choice)."""
        if self._current_class not in self.classes:
            self._current_class = self.classes[0] if self.classes else ""
        return self._current_class

    @current_class.setter
    def current_class(self, cls: str) -> None:
        self._current_class = self._add_class(cls)
        for layer in self.series_layers:
            points = self._role_layer(layer, ROLE_LABELS)
            if points is not None:
                self._set_point_defaults(points)
        self._emit("labels_changed")

    def add_class(self, cls: str) -> None:
        """Add a class name to the class list."""
        self._add_class(cls)
        self._emit("labels_changed")

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class, in the class list and in every label."""
        new = str(new).strip()
        if old not in self.classes:
            raise StackError(f"there is no class {old!r}; classes: {self.classes}")
        if not new:
            raise StackError("a class name cannot be empty")
        if new in self.classes and new != old:
            raise StackError(f"there is a class {new!r} already")
        self.classes[self.classes.index(old)] = new
        if self._current_class == old:
            self._current_class = new
        for rows in self._labels.values():
            for row, cls in rows.items():
                if cls == old:
                    rows[row] = new
        self._labels_changed(None)

    def remove_class(self, cls: str) -> None:
        """Remove a class that no curve is labelled with."""
        used = sum(1 for rows in self._labels.values() for c in rows.values() if c == cls)
        if used:
            raise StackError(
                f"{used} curves are labelled {cls!r}; unlabel them (or rename the class) first"
            )
        if cls in self.classes:
            self.classes.remove(cls)
        self._emit("labels_changed")

    def label(self, index: int | Iterable[int], cls: str, series: Any = None) -> None:
        """Label row(s) ``index`` of a series (the current one by default) as class ``cls``."""
        layer = self.series_layer(series)
        stack = self.compute_stack(layer)
        indices = [index] if isinstance(index, int | np.integer) else list(index)
        rows = self._check_rows(stack, indices)
        cls = self._add_class(cls)
        target = self._labels.setdefault(stack.name, {})
        for row in rows:
            target[row] = cls
        self._labels_changed(layer)

    def unlabel(self, index: int | Iterable[int], series: Any = None) -> None:
        """Remove the label of row(s) ``index`` of a series."""
        layer = self.series_layer(series)
        stack = self.compute_stack(layer)
        indices = [index] if isinstance(index, int | np.integer) else list(index)
        target = self._labels.get(stack.name, {})
        for row in self._check_rows(stack, indices):
            target.pop(row, None)
        self._labels_changed(layer)

    def clear_labels(
        self, series: Any = None, confirm: Callable[[str], bool] = confirm_by_default
    ) -> bool:
        """Remove all labels (of one series, or of all when ``series`` is "all"); True when done.

        ``series=None`` clears the current series. Labels not yet exported are kept in
        ``labels_backup`` and ``confirm(message)`` is asked first.
        """
        if series == "all":
            names = list(self._labels)
            what = "all labels"
        else:
            names = [self.compute_stack(self.series_layer(series)).name]
            what = f"the labels of {names[0]}"
        n = sum(len(self._labels.get(name, {})) for name in names)
        if n == 0:
            return True
        if not self.labels_saved and not confirm(f"Remove {what} ({n} curves, not exported)?"):
            return False
        self.labels_backup = self.labels
        for name in names:
            self._labels.pop(name, None)
        self._labels_changed(None)
        return True

    def import_labels(
        self, path: str | Path, confirm: Callable[[str], bool] = confirm_by_default
    ) -> dict[str, dict[int, str]]:
        """Replace the labels by those of a ``dataset,index,label`` CSV; return them.

        Labels not yet exported are kept in ``labels_backup`` and ``confirm(message)`` is asked
        first. Rows beyond the end of a loaded series raise ``StackError``.
        """
        from ..io import read_labels_csv

        imported = read_labels_csv(path)
        source = Path(path).expanduser().absolute()
        for layer in self.series_layers:
            stack = self.compute_stack(layer)
            if stack.name in imported:
                self._check_rows(stack, imported[stack.name])
        n_old = sum(len(v) for v in self._labels.values())
        if n_old and not self.labels_saved:
            message = (
                f"Replace {n_old} labels that were not exported by those of {Path(path).name}?"
            )
            if not confirm(message):
                return self.labels
        self.labels_backup = self.labels if n_old else self.labels_backup
        self._labels = {name: dict(rows) for name, rows in imported.items()}
        if source not in self.labels_files:
            self.labels_files.append(source)
        for rows in imported.values():
            for cls in rows.values():
                self._add_class(cls)
        self._labels_changed(None, saved=True)
        return self.labels

    def export_labels(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write all labels as a ``dataset,index,label`` CSV; return the path.

        An existing file is kept unless ``overwrite``; an input of the session (a labels file
        imported, a series' source) never is written over (``check_output``).
        """
        from ..io import write_labels_csv

        out = write_labels_csv(self.check_output(path, overwrite=overwrite), self.labels)
        self.labels_saved = True
        return out

    def apply_ground_truth(
        self, fraction_or_indices: float | Iterable[int] = 0.05, seed: int = 0, series: Any = None
    ) -> int:
        """Label curves from the layer's ground truth (simulated data): a fraction spread over the classes, or given rows; return how many."""
        layer = self.series_layer(series)
        truth = _series_meta(layer).get("ground_truth")
        stack = self.compute_stack(layer)
        if truth is None:
            raise StackError(
                f"{stack.name} carries no ground-truth labels (only simulated series do)"
            )
        truth = np.asarray([str(t) for t in truth])
        if (
            isinstance(fraction_or_indices, float | int)
            and not isinstance(fraction_or_indices, bool)
            and 0 < float(fraction_or_indices) < 1
        ):
            rng = np.random.default_rng(seed)
            n_total = max(2, round(float(fraction_or_indices) * stack.n_curves))
            classes = [c for c in dict.fromkeys(truth.tolist())]
            per_class = max(1, n_total // len(classes))
            rows: list[int] = []
            for cls in classes:
                members = np.flatnonzero(truth == cls)
                take = min(per_class, members.size)
                # spread over the class's rows: one random row per equal slice
                for chunk in np.array_split(members, take):
                    rows.append(int(rng.choice(chunk)))
        else:
            if isinstance(fraction_or_indices, float | int):
                raise StackError(f"fraction must be between 0 and 1, got {fraction_or_indices}")
            rows = self._check_rows(stack, list(fraction_or_indices))
        target = self._labels.setdefault(stack.name, {})
        for row in rows:
            target[row] = self._add_class(truth[row])
        self._labels_changed(layer)
        return len(rows)

    def _labels_changed(self, layer: Any, saved: bool = False) -> None:
        self.labels_saved = saved
        for each in self.series_layers if layer is None else [layer]:
            self._refresh_label_points(each)
            self._refresh_suggestion_points(each)
        self._emit("labels_changed")

    # --- the labels' Points layer ---------------------------------------------------------------
    def labels_layer(self, series: Any = None):
        """Return the Points layer showing the labels of a series (None when it has none)."""
        layer = self.series_layer(series)
        return self._role_layer(layer, ROLE_LABELS)

    def _role_layer(self, series_layer: Any, role: str):
        name = self.compute_stack(series_layer).name
        for layer in self.viewer.layers:
            meta = _series_meta(layer)
            if meta.get("role") == role and meta.get("series") == name:
                return layer
        return None

    @staticmethod
    def _row_to_world(layer: Any, row: float) -> float:
        return float(layer.translate[0] + layer.scale[0] * row)

    def _world_to_row(self, layer: Any, y: float) -> int:
        return round((y - layer.translate[0]) / layer.scale[0])

    @staticmethod
    def _x_extent(layer: Any) -> tuple[float, float]:
        n_cols = layer.data.shape[1]
        start = float(layer.translate[1] - 0.5 * layer.scale[1])
        return start, start + float(layer.scale[1] * n_cols)

    def _point_geometry(self, layer: Any) -> tuple[float, float]:
        x0, x1 = self._x_extent(layer)
        width = x1 - x0
        height = layer.scale[0] * layer.data.shape[0]
        size = max(2.0 * layer.scale[0], 0.022 * max(width, height))
        return x0 - 0.7 * size, size

    def _refresh_label_points(self, layer: Any) -> None:
        """Make the series' Points layer show its labels (created on the first label)."""
        stack = self.compute_stack(layer)
        rows = self._labels.get(stack.name, {})
        points = self._role_layer(layer, ROLE_LABELS)
        if points is None and not rows:
            return
        x, size = self._point_geometry(layer)
        ordered = sorted(rows.items())
        coords = np.array(
            [[self._row_to_world(layer, r), x] for r, _ in ordered], dtype=float
        ).reshape(-1, 2)
        names = [c for _, c in ordered]
        colors = [self.class_color(c) for c in names] or np.empty((0, 4))
        self._syncing = True
        try:
            if points is None:
                points = self.viewer.add_points(
                    coords,
                    name=f"{layer.name} labels",
                    features={"label": names, "row": [r for r, _ in ordered]},
                    face_color=colors if names else "white",
                    border_color="black",
                    border_width=0.15,
                    size=size,
                    metadata={METADATA_KEY: {"role": ROLE_LABELS, "series": stack.name}},
                )
                points.events.data.connect(self._on_points_edited)
                self.viewer.layers.selection.active = layer
            else:
                points.data = coords
                points.features = {"label": names, "row": [r for r, _ in ordered]}
                if names:
                    points.face_color = colors
                points.size = size
            self._set_point_defaults(points)
        finally:
            self._syncing = False

    def _set_point_defaults(self, points: Any) -> None:
        # a point added by hand (add mode) gets the current class and its colour
        points.feature_defaults = {"label": self.current_class, "row": -1}
        points.current_face_color = self.class_color(self.current_class)

    def class_color(self, cls: str) -> str:
        """Return the display colour of class ``cls``."""
        if cls in self.classes:
            return class_color(self.classes.index(cls))
        return "#bdbdbd"

    def _on_points_edited(self, event: Any) -> None:
        """Points added, moved or deleted by hand in the labels layer → labels of their rows."""
        if self._syncing or str(getattr(event, "action", "")) not in (
            "added",
            "removed",
            "changed",
        ):
            return
        points = event.source
        name = _series_meta(points).get("series")
        try:
            layer = self.series_layer(name)
        except StackError:
            return
        stack = self.compute_stack(layer)
        features = points.features
        labels = features["label"].astype(str).tolist() if "label" in features else []
        rows: dict[int, str] = {}
        for (y, _x), cls in zip(np.asarray(points.data)[:, -2:], labels, strict=False):
            row = self._world_to_row(layer, y)
            if 0 <= row < stack.n_curves and cls:
                rows[row] = self._add_class(cls)
        self._labels[stack.name] = rows
        self._labels_changed(layer)

    # --- classification -------------------------------------------------------------------------
    def compute_classification(
        self,
        seed: int = 0,
        ordered: bool = True,
        strain: float = PROBE_STRAIN,
        whitening_strain: float = PROBE_WHITENING_STRAIN,
        ignore_phases: Any = None,
    ) -> ClassificationResult:
        """Fit the classifier on all labels over all loaded series and predict every curve (no layers: thread-safe).

        ``ordered``: keep the phases in the order of their labelled curves' external variable
        along each leg of the ramp (``fit_classifier(ordered=...)``); ``strain``: the labelled
        curves are also learnt with their d-spacings scaled by 1 ± ``strain``
        (``fit_classifier(strain=...)``, 0: off); ``whitening_strain``: the features are
        whitened against a uniform strain of that standard deviation, measured on the open
        series (``fit_classifier(whitening_strain=...)``, 0: off); ``ignore_phases``: markers
        and media whose lines every curve loses before it is embedded, e.g. ``["Pt", "Ne"]``
        (``fit_classifier(ignore_phases=...)``; None: ``self.ignore_phases`` when set, else
        what the encoder was pretrained with).
        """
        from ..classify import fit_classifier
        from ..results import classify_series

        layers = self.series_layers
        if not layers:
            raise StackError("no diffraction series is open; open one and label a few curves first")
        stacks = [self.compute_stack(layer) for layer in layers]
        names = [s.name for s in stacks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise StackError(
                f"several open series are named {', '.join(twice)}; close one (labels name "
                "series by name)"
            )
        labels = {name: rows for name, rows in self.labels.items() if name in names}
        ignored = sorted(set(self.labels) - set(labels))
        if ignored:
            _notify_warning(
                f"labels of series that are not open are not used: {', '.join(ignored)}"
            )
        encoder = self.encoder
        if ignore_phases is None:
            ignore_phases = self.chosen_ignore_phases()
        cache = self.feature_cache
        classifier = fit_classifier(
            encoder, stacks, labels, seed=seed, ordered=ordered, strain=strain,
            whitening_strain=whitening_strain, ignore_phases=ignore_phases, cache=cache,
        )  # fmt: skip
        predictions, found, notes, novelty = {}, {}, {}, {}
        for stack in stacks:
            # a classifier that ignores phases embeds its masked curves itself
            embeddings = cache.embeddings(stack) if classifier.ignored is None else None
            embeddings = classifier.embed(stack) if embeddings is None else embeddings
            result = classify_series(
                classifier, stack, classifier.predict_proba(embeddings), labels.get(stack.name),
                novelty=classifier.novelty(embeddings),
            )  # fmt: skip
            predictions[stack.name] = (result.labels, result.probabilities)
            found[stack.name] = result.boundaries
            notes[stack.name] = result.note
            novelty[stack.name] = result.novelty
        return ClassificationResult(classifier, predictions, found, notes, novelty)

    def apply_classification(self, result: ClassificationResult) -> dict[str, list[Boundary]]:
        """Store a classification and show it as layers (main thread); return the boundaries."""
        self.classifier = result.classifier
        self.predictions = dict(result.predictions)
        self.boundaries = dict(result.boundaries)
        self.series_notes = dict(result.notes)
        self.novelty = dict(result.novelty)
        self.showing = "classification"
        for cls in result.classifier.classes:
            self._add_class(cls)
        for layer in self.series_layers:
            if self.compute_stack(layer).name in self.predictions:
                self._show_classification(layer)
        self.viewer.layers.selection.active = self.current_layer
        self._emit("classified")
        return self.boundaries

    def chosen_ignore_phases(self) -> list[str] | None:
        """The phases the Phases dock's "ignore in classification" names (files by path), or None."""
        if not self.ignore_phases:
            return None
        return [self.phase_files.get(n, n) for n in self.ignore_phases]

    def classify(
        self,
        seed: int = 0,
        ordered: bool = True,
        strain: float = PROBE_STRAIN,
        whitening_strain: float = PROBE_WHITENING_STRAIN,
        ignore_phases: Any = None,
    ) -> dict[str, list[Boundary]]:
        """Classify every curve of every series from the labels; show phase, confidence and boundaries; return the boundaries per series.

        ``ignore_phases``: e.g. ``["Pt", "Ne"]``, markers and media whose lines are replaced
        by background before the curves are embedded (see ``compute_classification``).
        """
        return self.apply_classification(
            self.compute_classification(seed, ordered, strain, whitening_strain, ignore_phases)
        )

    def _show_classification(self, layer: Any) -> None:
        if self.showing == "segments":
            self._show_segments(layer)
            return
        stack = self.compute_stack(layer)
        predicted, proba = self.predictions[stack.name]
        self._draw_strips(
            layer, predicted, list(self.classifier.classes), proba.max(axis=1),
            self.novelty.get(stack.name), self.boundaries.get(stack.name, []),
        )  # fmt: skip

    def _draw_strips(
        self,
        layer: Any,
        predicted: Sequence[str],
        classes: list[str],
        confidence: np.ndarray | None,
        novelty: np.ndarray | None,
        found: Sequence[Boundary],
    ) -> None:
        """Draw a series' phase strip, confidence and novelty strips, boundaries, legend and titles.

        ``confidence`` / ``novelty`` None: that strip is left out (and removed if shown).
        """
        from napari.utils.colormaps import DirectLabelColormap

        stack = self.compute_stack(layer)
        codes = np.array([classes.index(p) + 1 for p in predicted], dtype=np.int32)
        x0, x1 = self._x_extent(layer)
        width = x1 - x0
        strip, gap = STRIP_FRACTION * width, GAP_FRACTION * width
        row_scale, y0 = float(layer.scale[0]), float(layer.translate[0])
        common = {"scale": (row_scale, strip), "translate": (y0, x1 + gap + 0.5 * strip)}
        meta = lambda role: {METADATA_KEY: {"role": role, "series": stack.name}}  # noqa: E731

        colors = {None: "transparent", 0: "transparent"}
        colors.update({k + 1: self.class_color(c) for k, c in enumerate(classes)})
        phase = self._role_layer(layer, ROLE_PHASE)
        data = codes[:, None]
        features = {"index": list(range(len(classes) + 1)), "phase": ["", *classes]}
        if phase is None:
            phase = self.viewer.add_labels(
                data, name=f"{layer.name} phase", metadata=meta(ROLE_PHASE), opacity=1.0, **common
            )
        else:
            phase.data = data
            phase.scale, phase.translate = common["scale"], common["translate"]
        phase.colormap = DirectLabelColormap(color_dict=colors)
        phase.features = features
        phase.editable = False

        titles = [("phase", x1 + gap)]
        grey = [(ROLE_CONFIDENCE, confidence, 1.0), (ROLE_NOVELTY, novelty, NOVELTY_DISPLAY_MAX)]
        for role, values, top in grey:  # grey strips, in this order right of the phase strip
            old = self._role_layer(layer, role)
            if values is None:
                if old is not None:
                    self.viewer.layers.remove(old)
                continue
            left = x1 + (len(titles) + 1) * gap + len(titles) * strip
            titles.append((role, left))
            data = np.asarray(values, dtype=np.float32)[:, None]
            translate = (y0, left + 0.5 * strip)
            if old is None:
                self.viewer.add_image(
                    data, name=f"{layer.name} {role}", colormap="gray",
                    contrast_limits=(0.0, top), scale=common["scale"], translate=translate,
                    interpolation2d="nearest", metadata=meta(role),
                )  # fmt: skip
            else:
                old.data = data
                old.scale, old.translate = common["scale"], translate
                old.contrast_limits = (0.0, top)

        x_end = x1 + len(titles) * (gap + strip) + gap
        lines = [
            np.array([[y, x0], [y, x_end]])
            for y in (self._row_to_world(layer, self.boundary_row(b)) for b in found)
        ]
        texts = [str(b) for b in found]
        line_width = max(row_scale, 0.004 * width)
        shapes = self._role_layer(layer, ROLE_BOUNDARIES)
        if shapes is not None:
            self.viewer.layers.remove(shapes)  # Shapes cannot be emptied and refilled cleanly
        shapes = self.viewer.add_shapes(
            lines or None,
            shape_type="line",
            name=f"{layer.name} boundaries",
            edge_color=BOUNDARY_COLOR,
            edge_width=line_width,
            features={"text": texts},
            text={
                "string": "{text}", "color": BOUNDARY_COLOR, "anchor": "upper_left",
                "size": 11, "translation": [-1.2 * line_width, 0.0],
            },
            metadata=meta(ROLE_BOUNDARIES),
        )  # fmt: skip
        shapes.editable = False
        self._show_legend(layer, codes, classes, titles, strip)

    def _show_legend(
        self,
        layer: Any,
        codes: np.ndarray,
        classes: list[str],
        titles: Sequence[tuple[str, float]],
        width: float,
    ) -> None:
        """Name the phases on the phase strip and title both strips (Points layers of texts).

        Each predicted class is written once along the phase strip, in black (which reads on
        every class colour), at the middle of its longest run of curves; the strips' titles
        (``phase``, ``confidence``, ``novelty``) stand above them, ending at their top.
        ``titles``: (title, x of the strip's left edge) of each strip drawn; ``width``: the
        strips' width.
        """
        phase_x = titles[0][1]
        names, coords = [], []
        for k, cls in enumerate(classes):
            run = _longest_run(codes == k + 1)
            if run is not None:
                names.append(cls)
                middle = (run[0] + run[1] - 1) / 2
                coords.append([self._row_to_world(layer, middle), phase_x + 0.5 * width])
        height = float(layer.scale[0]) * layer.data.shape[0]
        top = self._row_to_world(layer, -0.5) - 0.012 * height
        # text turned a quarter clockwise (reading downwards); a title's anchor is its lower end,
        # the text running up from it and right of it (about 0.4 strip wide at the fitted zoom)
        where = [[top, x + 0.3 * width] for _, x in titles]
        self._text_layer(layer, ROLE_LEGEND, coords, names, LEGEND_TEXT_COLOR, "center")
        self._text_layer(
            layer, ROLE_TITLES, where, [t for t, _ in titles], HEADER_TEXT_COLOR, "upper_right"
        )

    def _text_layer(
        self, layer: Any, role: str, coords: list, texts: list[str], color: str, anchor: str
    ) -> None:
        """(Re)draw a Points layer of texts only (no markers) beside a series."""
        old = self._role_layer(layer, role)
        if old is not None:
            self.viewer.layers.remove(old)  # like the boundaries: rebuilt, never refilled
        name = self.compute_stack(layer).name
        points = self.viewer.add_points(
            np.array(coords, dtype=float).reshape(-1, 2),
            name=f"{layer.name} {role}",
            features={"text": texts},
            size=0.0,
            face_color="transparent",
            border_color="transparent",
            border_width=0,
            text={
                "string": "{text}", "color": color, "size": LEGEND_FONT_SIZE, "rotation": 90,
                "anchor": anchor,
            },
            metadata={METADATA_KEY: {"role": role, "series": name}},
        )  # fmt: skip
        points.editable = False

    @staticmethod
    def boundary_row(boundary: Boundary) -> float:
        """Return the (fractional) row where a boundary line is drawn: where the phase changes."""
        if math.isfinite(boundary.row):
            return boundary.row
        return (boundary.index_before + boundary.index_after) / 2

    def summary(self) -> str:
        """Return the classifier summary and the boundaries of every series as text."""
        if self.showing == "segments":
            return self.segments_summary()
        if self.classifier is None:
            return "not classified yet"
        variables = {
            layer_stack.variable_name for layer_stack in map(self.compute_stack, self.series_layers)
        }
        variable = variables.pop() if len(variables) == 1 else "external variable"
        lines = [str(self.classifier.summary), self.classifier.describe_phase_order(variable), ""]
        for name, found in self.boundaries.items():
            predicted, _ = self.predictions[name]
            lines += describe_series(
                name, predicted, found, self.series_notes.get(name, ""),
                novelty=self.novelty.get(name),
            )  # fmt: skip
        return "\n".join(lines)

    # --- known phases (Phases dock) -------------------------------------------------------------
    def add_phase_file(self, path: str | Path) -> str:
        """Read a JCPDS or CIF file and offer its phase by name (the file's stem); return the name."""
        from ..phases import get_phase

        phase = get_phase(Path(path).expanduser())  # JcpdsError / CifError / PhaseError: one line
        self.phase_files[phase.name] = str(Path(path).expanduser().absolute())
        self._emit("phases_changed")
        return phase.name

    def show_phase_lines(
        self, phases: Sequence[str] | str, series: Any = None, scales: Mapping | None = None
    ) -> list:
        """Draw the lines of ``phases`` (e.g. ``["Pt", "Ne"]``) over a series, following each row's pressure; return the Shapes layers.

        One layer "<series> <phase> lines" per phase; the Data dock's plot shows them as ticks.
        The pressure per row: the variable when it is in GPa, else the fitted one
        (``fit_pressure``). ``[]`` removes them; ``scales``: {phase: scale name}.
        """
        from ._phase_lines import draw_phase_lines

        names = [phases] if isinstance(phases, str) else [str(p) for p in phases]
        layer = self.series_layer(series)
        previous = (list(self.shown_phases), dict(self.phase_scales))
        self.shown_phases = list(dict.fromkeys(names))
        self.phase_scales.update(scales or {})
        try:
            layers = draw_phase_lines(self, layer)
        except ValueError:
            self.shown_phases, self.phase_scales = previous
            raise
        self._emit("phases_changed")
        return layers

    def phase_pressures(self, series: Any = None) -> np.ndarray:
        """Return the pressure (GPa) per curve the phase lines use; ``StackError`` when there is none."""
        from ._phase_lines import row_pressures

        return row_pressures(self, self.series_layer(series))

    def compute_pressure_fit(self, calibrant: str, scale: str | None = None, series: Any = None):
        """Fit a series' pressure from ``calibrant``'s lines (no layers: thread-safe); return (layer name, PressureFit)."""
        from ._phase_lines import fit_series_pressure

        return fit_series_pressure(self, calibrant, scale, series)

    def apply_pressure_fit(self, layer_name: str, fit: Any) -> str:
        """Put a fitted pressure on a series' rows (main thread); return what was done, in one line."""
        from ._phase_lines import apply_pressure_fit, draw_phase_lines

        message = apply_pressure_fit(self, layer_name, fit)
        if self.shown_phases:
            with contextlib.suppress(ValueError):
                draw_phase_lines(self, self.series_layer(layer_name))
        self._emit("series_changed")
        self._emit("phases_changed")
        return message

    def fit_pressure(self, calibrant: str, scale: str | None = None, series: Any = None):
        """Fit a series' pressure from the lines of ``calibrant`` (e.g. "Pt") and use it as its variable; return the ``PressureFit``.

        Where any curve failed the variable stays (as ``--pressure-from`` refuses such a
        series) and a warning says which; the lines follow the fit where it worked.
        """
        name, fit = self.compute_pressure_fit(calibrant, scale, series)
        message = self.apply_pressure_fit(name, fit)
        if fit.failed.any():
            _notify_warning(message)
        return fit

    # --- status bar ---------------------------------------------------------------------------
    def describe_position(
        self, layer: Any, position: Any, world: bool = True, value: str = ""
    ) -> str | None:
        """Return the status-bar text of a point of a series layer (None when off its rows).

        ``curve 17 · pressure 12.3 GPa · 2θ 12.345 deg: <value> · labelled before · predicted
        before (p 0.97)``: the row, its external variable, the x position on the axis as shown
        (only over the image), napari's ``value`` of the pixel, the curve's label and its
        predicted class with its probability.
        """
        described = self._describe(layer, position, world)
        if described is None:
            return None
        where, notes = described
        return " · ".join([f"{where}: {value}" if value else where, *notes])

    def _describe(self, layer: Any, position: Any, world: bool) -> tuple[str, list[str]] | None:
        if not _has_stack(layer):
            return None
        coords = np.asarray(position, dtype=float)
        if world:
            coords = np.asarray(layer.world_to_data(coords), dtype=float)
        if coords.size < 2 or not np.all(np.isfinite(coords[-2:])):
            return None
        row, col = (round(float(v)) for v in coords[-2:])
        shown = self.shown_stack(layer)
        if not 0 <= row < shown.n_curves:
            return None
        where = [f"curve {row}"]
        if shown.variable_name != "index":
            unit = f" {shown.variable_unit}" if shown.variable_unit else ""
            where.append(f"{shown.variable_name} {float(shown.variable[row]):.4g}{unit}")
        if 0 <= col < shown.n_points:
            axis = shown.axis
            step = abs(float(axis[min(col + 1, axis.size - 1)] - axis[max(col - 1, 0)])) / 2
            decimals = int(np.clip(np.ceil(-np.log10(step)) + 1, 0, 6)) if step > 0 else 4
            unit = _UNIT_TEXT.get(shown.axis_unit, shown.axis_unit)
            where.append(f"{AXIS_LABELS[shown.axis_kind]} {float(axis[col]):.{decimals}f} {unit}")
        notes = []
        name = self.compute_stack(layer).name
        label = self._labels.get(name, {}).get(row)
        if label is not None:
            notes.append(f"labelled {label}")
        if name in self.predictions:
            predicted, proba = self.predictions[name]
            if row < len(predicted):
                notes.append(f"predicted {predicted[row]} (p {float(np.max(proba[row])):.2f})")
            novelty = self.novelty.get(name)
            if novelty is not None and row < len(novelty):
                notes.append(f"novelty {float(novelty[row]):.2f}")
        notes += self._describe_assist(name, row)
        return " · ".join(where), notes

    # --- exports --------------------------------------------------------------------------------
    def input_paths(self) -> list[Path]:
        """The files and folders this session reads, which its exports never write over.

        The source file or folder of every open series (and the one live mode watches), the
        labels files imported, the encoder file in use and the built-in encoder file.
        """
        from ..encoder import builtin_encoder_path

        paths: list[Path] = []
        for layer in self.series_layers:
            meta = _series_meta(layer)
            for key in (SOURCE_PATH_KEY, LIVE_PATH_KEY):
                if meta.get(key):
                    paths.append(Path(meta[key]))
        paths.extend(self.labels_files)
        if self._encoder_file is not None:
            paths.append(self._encoder_file)
        paths.append(builtin_encoder_path())
        return list(dict.fromkeys(paths))

    def check_output(self, path: str | Path, overwrite: bool = False) -> Path:
        """Return ``path`` when an export may write it, else raise ``OutputError`` (a ValueError).

        Refused: any of ``input_paths()`` (or a curve file inside an input folder), a folder,
        and an existing file unless ``overwrite``.
        """
        return check_output_path(
            path,
            inputs=self.input_paths(),
            overwrite=overwrite,
            overwrite_hint="pass overwrite=True to replace it",
        )

    def require_classified(self) -> None:
        """Raise ``StackError`` when there is no classification to export yet."""
        if self.classifier is None:
            raise StackError("nothing to export yet: classify first")

    def export_predictions(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write per-curve predictions (the CSV of ``xrdphase classify --out``); return the path.

        An existing file is kept unless ``overwrite``; inputs never are (``check_output``).
        """
        from ..io import write_predictions_csv

        self.require_classified()
        path = self.check_output(path, overwrite=overwrite)
        results, novelty = [], {}
        for layer in self.series_layers:
            stack = self.compute_stack(layer)
            if stack.name in self.predictions:
                predicted, proba = self.predictions[stack.name]
                results.append((stack, predicted, proba))
                novelty[stack.name] = self.novelty.get(stack.name)
        return write_predictions_csv(path, results, self.classifier.classes, novelty=novelty)

    def export_boundaries(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the boundaries as CSV (``dataset,unit`` + ``boundaries.BOUNDARY_COLUMNS``); return the path.

        An existing file is kept unless ``overwrite``; inputs never are (``check_output``).
        """
        import csv

        from .._files import atomic_write
        from ..boundaries import BOUNDARY_COLUMNS, boundaries_table

        self.require_classified()
        path = self.check_output(path, overwrite=overwrite)
        columns = ["dataset", *BOUNDARY_COLUMNS, "unit"]

        def write(temporary: Path) -> None:
            with open(temporary, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                for name, found in self.boundaries.items():
                    for boundary, row in zip(found, boundaries_table(found), strict=True):
                        writer.writerow({"dataset": name, **row, "unit": boundary.unit})

        return atomic_write(path, write)


def _longest_run(mask: np.ndarray) -> tuple[int, int] | None:
    """Return ``(start, stop)`` of the longest run of True in ``mask`` (the first such), or None."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    if edges.size == 0:
        return None
    starts, stops = edges[::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _install_status(layer: Any, session: XRDSession) -> None:
    """Make the status bar describe the curve under the cursor when ``layer`` (a series) is active.

    napari 0.9 builds the status text in a thread from the active layer's ``get_status``; the
    series layer's own method is wrapped so that its coordinates read as
    ``XRDSession.describe_position`` says (``curve 17 · pressure 12.3 GPa · 2θ 12.345 deg:
    <value> · predicted during (p 0.93)``) instead of world coordinates.
    """
    if not _has_stack(layer) or getattr(layer, "_xrdphase_status", False):
        return
    plain = layer.get_status
    session_ref = weakref.ref(session)

    def get_status(position: Any = None, **kwargs: Any) -> dict[str, str]:
        status = plain(position, **kwargs)
        owner = session_ref()
        if position is None or owner is None:
            return status
        try:
            described = owner._describe(layer, position, kwargs.get("world", False))
        except Exception:  # a status text must never break napari's status thread
            return status
        if described is not None:
            where, notes = described
            value = status.get("value", "")
            status["coords"] = where  # napari's multi-layer status adds " » layer: value"
            status["coordinates"] = " · ".join([f"{where}: {value}" if value else where, *notes])
        return status

    layer.get_status = get_status
    layer._xrdphase_status = True


def _notify_warning(message: str) -> None:
    try:
        from napari.utils.notifications import show_warning

        show_warning(message)
    except Exception:  # napari's notification machinery unavailable: fall back to warnings
        import warnings

        warnings.warn(message, UserWarning, stacklevel=3)
