"""The Explore dock: a UMAP map of the current series' curves with spectral clusters and scores.

The map, the clusters and the scores are computed in a worker (``explore.py``: pure compute);
the dock draws a scatter plot, one point per curve, coloured by cluster, label, prediction or
ground truth. Points and image rows are linked both ways through one selection: a lasso (or a
click) in the scatter selects curves, shown on the image as a translucent band over their rows
(the Labels layer "<series> selection"); a click on a row of the image selects that curve and
rings its point in the scatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox

from .._layer_data import METADATA_KEY
from ._plot import ThemedPlot, report_errors
from ._session import get_session

if TYPE_CHECKING:
    import napari

FEATURE_KINDS = ("encoder", "raw")
COLOR_BY = ("cluster", "label", "prediction", "ground truth")
ROLE_SELECTION = "selection"
SELECTION_COLOR = "#ffff00"
UNLABELLED_COLOR = "#808080"
# a click in the scatter selects the nearest point within this many pixels
CLICK_RADIUS_PX = 8
CLUSTER_COLORMAP = "tab10"


@dataclass
class ExploreResult:
    """A computed map of one series: 2D coordinates, clusters and scores per curve."""

    series: str
    features: str
    coordinates: np.ndarray
    clusters: np.ndarray
    scores: dict[str, float]


def compute_map(
    encoder: Any,
    stack: Any,
    features: str,
    n_clusters: int,
    affinity: str,
    assign_labels: str,
    n_neighbors: int,
    min_dist: float,
    seed: int,
    truth: list[str] | None = None,
) -> ExploreResult:
    """Return the UMAP map, spectral clusters and scores of a stack's encoder or raw features."""
    from ..explore import (
        clustering_scores,
        embed_umap,
        raw_features,
        spectral_clusters,
        standardize_features,
    )

    if features == "encoder":
        values = standardize_features(encoder.embed(stack))
    elif features == "raw":
        values = raw_features(stack, getattr(encoder, "input_length", 1024))
    else:
        raise ValueError(f"features must be one of {FEATURE_KINDS}, not {features!r}")
    coordinates = embed_umap(values, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    clusters = spectral_clusters(values, n_clusters, affinity, assign_labels, seed=seed)
    scores = clustering_scores(values, clusters, truth)
    return ExploreResult(stack.name, features, coordinates, clusters, scores)


def describe_scores(scores: dict[str, float], features: str) -> str:
    """Return the scores of a clustering as one line of text."""
    parts = [f"silhouette {scores['silhouette']:.2f} (in {features} features)"]
    if "nmi" in scores:
        parts.append(f"vs ground truth: NMI {scores['nmi']:.2f}, ARI {scores['ari']:.2f}")
    return " · ".join(parts)


class ExploreDock(Container):
    """A UMAP scatter of the current series' curves, clustered, linked to the image rows."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._session = get_session(viewer)
        self.result: ExploreResult | None = None
        self.selected_rows = np.empty(0, dtype=int)
        self.worker = None

        self.features = ComboBox(label="Features", choices=FEATURE_KINDS, value="encoder")
        self.n_clusters = SpinBox(label="Clusters", value=3, min=2, max=50)
        self.affinity = ComboBox(
            label="Affinity", choices=("nearest_neighbors", "rbf"), value="nearest_neighbors"
        )
        self.assign_labels = ComboBox(
            label="Assign labels", choices=("kmeans", "discretize"), value="kmeans"
        )
        self.n_neighbors = SpinBox(label="UMAP neighbours", value=15, min=2, max=500)
        self.min_dist = FloatSpinBox(label="UMAP min_dist", value=0.1, min=0.0, max=1.0, step=0.05)
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.compute_button = PushButton(text="Compute map")
        self.color_by = ComboBox(label="Colour by", choices=COLOR_BY, value="cluster")
        self.status = Label(label="Scores", value="not computed")
        self.status.native.setWordWrap(True)
        self.plot = ThemedPlot(viewer, height_inches=3.0)
        self.extend(
            [
                self.features,
                self.n_clusters,
                self.affinity,
                self.assign_labels,
                self.n_neighbors,
                self.min_dist,
                self.seed,
                self.compute_button,
                self.color_by,
                self.status,
            ]
        )
        self.native.layout().addWidget(self.plot.native)
        self._scatter = None
        self._rings = None
        self._lasso = None

        self.compute_button.clicked.connect(self.compute)
        self.color_by.changed.connect(self.redraw)
        self._session.events.labels_changed.connect(self._on_session_changed)
        self._session.events.classified.connect(self._on_session_changed)
        self._session.events.encoder_changed.connect(self._on_encoder_changed)
        viewer.mouse_drag_callbacks.append(self._on_viewer_click)
        self.native.destroyed.connect(lambda *_, v=viewer, cb=self._on_viewer_click: _drop(v, cb))

    # --- computing -----------------------------------------------------------------------------
    def compute(self) -> Any:
        """Compute the map of the current series in a worker; return the worker (None if refused)."""
        from napari.qt.threading import thread_worker

        with report_errors("Explore"):
            layer = self._session.current_layer
            stack = self._session.compute_stack(layer)
            truth = layer.metadata.get(METADATA_KEY, {}).get("ground_truth")
            encoder = self._session.encoder if self.features.value == "encoder" else None
            arguments = {
                "encoder": encoder,
                "stack": stack,
                "features": self.features.value,
                "n_clusters": int(self.n_clusters.value),
                "affinity": self.affinity.value,
                "assign_labels": self.assign_labels.value,
                "n_neighbors": int(self.n_neighbors.value),
                "min_dist": float(self.min_dist.value),
                "seed": int(self.seed.value),
                "truth": truth,
            }
            if arguments["n_clusters"] >= stack.n_curves:
                raise ValueError(
                    f"{stack.name} has {stack.n_curves} curves: ask for fewer clusters"
                )
            worker = thread_worker(compute_map, start_thread=False)(**arguments)
            worker.returned.connect(self._on_computed)
            worker.errored.connect(self._on_error)
            worker.finished.connect(lambda: setattr(self.compute_button, "enabled", True))
            self.compute_button.enabled = False
            self.status.value = f"computing the map of {stack.name}…"
            self.worker = worker
            worker.start()
            return worker
        return None

    def _on_computed(self, result: ExploreResult) -> None:
        self.result = result
        self.selected_rows = np.empty(0, dtype=int)
        self.status.value = describe_scores(result.scores, result.features)
        self.redraw()

    def _on_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.status.value = "failed"
        show_error(f"Explore: {exc}")

    def _on_session_changed(self, *_: Any) -> None:
        if self.result is not None and self.color_by.value in ("label", "prediction"):
            self.redraw()

    def _on_encoder_changed(self, *_: Any) -> None:
        if self.result is not None and self.result.features == "encoder":
            self.status.value = (
                describe_scores(self.result.scores, "encoder")
                + " · the encoder changed: compute again"
            )

    # --- the series this map belongs to ---------------------------------------------------------
    def _series_layer(self) -> Any:
        if self.result is None:
            return None
        for layer in self._session.series_layers:
            if self._session.compute_stack(layer).name == self.result.series:
                return layer
        return None

    def point_colors(self) -> list[str] | np.ndarray:
        """Return one colour per curve for the current "colour by" choice."""
        result = self.result
        n = result.coordinates.shape[0]
        choice = self.color_by.value
        if choice == "cluster":
            from matplotlib import colormaps

            cmap = colormaps[CLUSTER_COLORMAP]
            return cmap(result.clusters % cmap.N)
        if choice == "label":
            rows = self._session.labels.get(result.series, {})
            return [
                self._session.class_color(rows[i]) if i in rows else UNLABELLED_COLOR
                for i in range(n)
            ]
        if choice == "prediction":
            predicted = self._session.predictions.get(result.series)
            if predicted is None:
                return [UNLABELLED_COLOR] * n
            return [self._session.class_color(str(p)) for p in predicted[0]]
        layer = self._series_layer()
        truth = None if layer is None else layer.metadata.get(METADATA_KEY, {}).get("ground_truth")
        if truth is None:
            return [UNLABELLED_COLOR] * n
        return [self._session.class_color(str(t)) for t in truth]

    # --- drawing -------------------------------------------------------------------------------
    def redraw(self, *_: Any) -> None:
        """Draw the scatter of the current map with the chosen colours and the selection."""
        from matplotlib.widgets import LassoSelector

        if self.result is None:
            return
        plot = self.plot
        plot.clear()
        xy = self.result.coordinates
        self._scatter = plot.axes.scatter(
            xy[:, 0], xy[:, 1], c=self.point_colors(), s=14, linewidths=0
        )
        accent = plot.colors()["accent"]
        self._rings = plot.axes.scatter(
            [], [], s=70, facecolors="none", edgecolors=SELECTION_COLOR, linewidths=1.5
        )
        plot.axes.set_xticks([])
        plot.axes.set_yticks([])
        plot.axes.set_title(
            f"{self.result.series}: UMAP of {self.result.features} features",
            fontsize=9,
        )
        self._lasso = LassoSelector(
            plot.axes, self.select_in_scatter, props={"color": accent, "linewidth": 1}
        )
        self._show_rings()
        plot.draw()

    def _show_rings(self) -> None:
        if self._rings is None or self.result is None:
            return
        xy = self.result.coordinates[self.selected_rows].reshape(-1, 2)
        self._rings.set_offsets(xy)
        self.plot.draw()

    # --- selection -----------------------------------------------------------------------------
    def select_in_scatter(self, vertices: Any) -> np.ndarray:
        """Select the curves inside a lasso path (or nearest a click) in the scatter; return their rows."""
        from matplotlib.path import Path

        if self.result is None:
            return self.selected_rows
        vertices = np.asarray(vertices, dtype=float).reshape(-1, 2)
        xy = self.result.coordinates
        if len(vertices) >= 3 and np.ptp(vertices, axis=0).min() > 0:
            rows = np.flatnonzero(Path(vertices).contains_points(xy))
        else:  # a click: the nearest point, if it is close on screen
            rows = self._nearest_point(vertices[-1])
        self.select_rows(rows)
        return self.selected_rows

    def _nearest_point(self, data_xy: np.ndarray) -> np.ndarray:
        transform = self.plot.axes.transData
        screen = transform.transform(self.result.coordinates)
        target = transform.transform(data_xy[np.newaxis])[0]
        distances = np.hypot(*(screen - target).T)
        nearest = int(np.argmin(distances))
        return np.array([nearest]) if distances[nearest] <= CLICK_RADIUS_PX else np.empty(0, int)

    def select_rows(self, rows: Any) -> None:
        """Select curves by row: ring their points in the scatter and band their rows on the image."""
        n = 0 if self.result is None else self.result.coordinates.shape[0]
        rows = np.unique(np.asarray(rows, dtype=int).ravel())
        self.selected_rows = rows[(rows >= 0) & (rows < n)]
        self._show_rings()
        self._show_selection_on_image()

    def selection_layer(self) -> Any:
        """Return the Labels layer that bands the selected rows on the image (None if none yet)."""
        if self.result is None:
            return None
        for layer in self._viewer.layers:
            meta = layer.metadata.get(METADATA_KEY, {}) if hasattr(layer, "metadata") else {}
            if meta.get("role") == ROLE_SELECTION and meta.get("series") == self.result.series:
                return layer
        return None

    def _show_selection_on_image(self) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        series = self._series_layer()
        if series is None:
            return
        n_rows, n_cols = series.data.shape[-2:]
        mask = np.zeros((n_rows, 1), dtype=np.uint8)
        mask[self.selected_rows, 0] = 1
        # one column stretched over the image's width: cheap for any number of points per curve
        width = float(series.scale[-1]) * n_cols
        x0 = float(series.translate[-1]) - 0.5 * float(series.scale[-1])
        scale = (float(series.scale[-2]), width)
        translate = (float(series.translate[-2]), x0 + 0.5 * width)
        layer = self.selection_layer()
        if layer is None:
            if not self.selected_rows.size:
                return
            layer = self._viewer.add_labels(
                mask,
                name=f"{series.name} selection",
                scale=scale,
                translate=translate,
                opacity=0.35,
                colormap=DirectLabelColormap(
                    color_dict={None: "transparent", 0: "transparent", 1: SELECTION_COLOR}
                ),
                metadata={METADATA_KEY: {"role": ROLE_SELECTION, "series": self.result.series}},
            )
            layer.editable = False
            # the series stays the active layer: its tools (and the session's) act on it
            self._viewer.layers.selection.active = series
        else:
            layer.data = mask
            layer.scale, layer.translate = scale, translate

    def row_at(self, position: Any) -> int | None:
        """Return the row of the mapped series under a world position (None if outside it)."""
        series = self._series_layer()
        if series is None:
            return None
        data = series.world_to_data(position)
        row, col = round(float(data[-2])), round(float(data[-1]))
        n_rows, n_cols = series.data.shape[-2:]
        if 0 <= row < n_rows and 0 <= col < n_cols:
            return row
        return None

    def _on_viewer_click(self, viewer: Any, event: Any):
        """A click (press and release without dragging) on a row of the image selects that curve."""
        if self.result is None or event.type != "mouse_press":
            return
        start = np.asarray(event.position, dtype=float)
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if dragged and not np.allclose(np.asarray(event.position, dtype=float), start):
            return
        row = self.row_at(start)
        if row is not None:
            self.select_rows([row])


def _drop(viewer: Any, callback: Any) -> None:
    if callback in viewer.mouse_drag_callbacks:
        viewer.mouse_drag_callbacks.remove(callback)
