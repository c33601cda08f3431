"""Live mode in napari: curves arriving in a series' folder or HDF5 file grow its layer and are classified.

A Qt timer polls the watcher on the main thread (listing a folder and parsing a few new files
takes milliseconds), so layers are only ever touched there. The series is kept in memory while
live. Classification of new curves uses the session's fitted classifier; the phase strip,
confidence and boundaries are redrawn through ``XRDSession.apply_classification``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._layer_data import LIVE_PATH_KEY
from ..stack import StackError
from ._session import ClassificationResult, XRDSession, _series_meta, get_session

if TYPE_CHECKING:
    import napari

_LIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_live(viewer: napari.viewer.Viewer) -> LiveMode:
    """Return the live mode of ``viewer``'s session (one per viewer)."""
    live = _LIVE.get(viewer)
    if live is None:
        live = _LIVE[viewer] = LiveMode(get_session(viewer))
    return live


class LiveMode:
    """Watches one series' source and appends new curves to its layer, classifying them."""

    def __init__(self, session: XRDSession) -> None:
        self.session = session
        self.watcher: Any = None
        self.series: Any = None  # a live.LiveSeries holding the growing curves
        self.layer_name: str | None = None
        self._timer = None

    @property
    def running(self) -> bool:
        """True while the timer polls."""
        return self._timer is not None and self._timer.isActive()

    def start_live(self, path: str | Path, series: Any = None, poll_s: float = 0.5) -> None:
        """Watch ``path`` (the series' folder or HDF5 file) and grow ``series`` (default: current) as curves arrive."""
        from qtpy.QtCore import QTimer

        from ..live import LiveSeries, watcher_for

        self.stop_live()
        layer = self.session.series_layer(series)
        if layer.multiscale:
            raise StackError(
                f"{layer.name} is shown from disk (lazy); live mode keeps a series in memory: "
                "classify large files with xrdphase classify or stream.classify_to_file"
            )
        stack = self.session.compute_stack(layer)
        path = Path(path).expanduser()
        self.series = LiveSeries(stack)
        self.watcher = watcher_for(path, stack, poll_s)
        self.layer_name = layer.name
        # what arrives there is an input: exports must never write over it
        _series_meta(layer)[LIVE_PATH_KEY] = str(path.absolute())
        self._timer = QTimer()
        self._timer.setInterval(max(1, int(poll_s * 1000)))
        self._timer.timeout.connect(self.poll_once)
        self._timer.start()

    def stop_live(self) -> None:
        """Stop watching (the curves added so far stay)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def poll_once(self) -> int:
        """Look for new curves once; append and classify them; return how many arrived."""
        if self.watcher is None:
            return 0
        arrivals = self.watcher.poll()  # skipped files are warned about (notifications)
        update = self.series.add(arrivals) if arrivals else None
        if update is None or not len(update.rows):
            return 0
        try:
            layer = self.session.series_layer(self.layer_name)
        except StackError:  # the layer was closed: nothing left to grow
            self.stop_live()
            return 0
        self._show_grown(layer, update.rows.start)
        return len(update.rows)

    def _show_grown(self, layer: Any, first_new: int) -> None:
        from ..results import classify_series
        from ..stream import iter_probabilities

        session, grown = self.session, self.series.stack
        session.replace_stack(layer, grown)
        classifier = session.classifier
        if classifier is None or grown.name not in session.predictions:
            return
        _, old_proba = session.predictions[grown.name]
        start = min(first_new, old_proba.shape[0])
        fresh = np.concatenate([p for _, p in iter_probabilities(classifier, grown, start)])
        proba = np.concatenate([np.asarray(old_proba)[:start], fresh])
        # curves whose variable metadata.csv does not give are left out of the phase order
        result = classify_series(
            classifier, grown, proba, session.labels.get(grown.name), self.series.missing
        )
        labels, found = result.labels, result.boundaries
        predictions = dict(session.predictions)
        predictions[grown.name] = (labels, proba)
        boundaries = dict(session.boundaries)
        boundaries[grown.name] = found
        session.apply_classification(ClassificationResult(classifier, predictions, boundaries))
