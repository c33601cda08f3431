"""Classify dock: fit the classifier on the labels, show phases and boundaries, export them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container, Label, PushButton, SpinBox, TextEdit

from ._plot import (
    Confirm,
    ask_save_path,
    ask_yes_no,
    export_file,
    report_errors,
    report_worker_error,
)
from ._session import get_session

if TYPE_CHECKING:
    import napari


class ClassifyDock(Container):
    """Classify every curve from the labelled ones and locate the phase boundaries.

    ``confirm(message) -> bool`` answers whether an existing file may be replaced by an export;
    by default a dialog asks the user.
    """

    def __init__(self, viewer: napari.viewer.Viewer, confirm: Confirm | None = None) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.session = get_session(viewer)
        self.worker = None
        self._confirm = confirm

        self.encoder_info = Label(label="encoder", value="")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.ordered = CheckBox(text="phases in order along the ramp", value=True)
        self.ordered.tooltip = (
            "Keep the phases in the order of their labelled curves' pressure (or other external "
            "variable) along each compression or decompression leg: one transition at a time, "
            "labelled curves as labelled. Untick to classify each curve on its own."
        )
        self.classify_button = PushButton(text="Classify")
        self.live = CheckBox(text="live: refit on every label change", value=False)
        self.live.tooltip = (
            "Refit the classifier and redraw the strips and boundaries each time a label is "
            "added, moved or removed (in the background; embeddings are computed once)."
        )
        self.propose_button = PushButton(text="Propose phases")
        self.propose_button.tooltip = (
            "Without labels: cut each series where its curves change and name the segments "
            "S1, S2, ... (rename and merge them with xrd.rename_segment / xrd.merge_segments, "
            "then xrd.segments_to_labels() labels a few curves of each)."
        )
        self.summary = TextEdit(label="result", value="not classified yet")
        self.summary.read_only = True
        self.summary.min_height = 160
        self.export_predictions_button = PushButton(text="Export predictions…")
        self.export_boundaries_button = PushButton(text="Export boundaries…")
        exports = Container(
            layout="horizontal", labels=False,
            widgets=[self.export_predictions_button, self.export_boundaries_button],
        )  # fmt: skip
        exports.margins = (0, 0, 0, 0)
        self.extend(
            [
                self.encoder_info,
                self.seed,
                self.ordered,
                self.classify_button,
                self.live,
                self.propose_button,
                self.summary,
                exports,
            ]
        )

        self.classify_button.clicked.connect(self.start_classification)
        self.propose_button.clicked.connect(self.start_proposal)
        self.live_worker = None
        self._live_pending = False  # a label changed while a live refit ran: one more refit
        self._fitted_labels: dict | None = None  # the labels the last live refit used
        self.live.changed.connect(lambda on: on and self._on_labels_changed())
        self.session.events.labels_changed.connect(self._on_labels_changed)
        self.export_predictions_button.clicked.connect(lambda: self._ask_export("predictions"))
        self.export_boundaries_button.clicked.connect(lambda: self._ask_export("boundaries"))
        self.session.events.classified.connect(self.refresh)
        self.session.events.encoder_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Show the encoder in use and the latest classification."""
        self.encoder_info.value = self.session.encoder_source
        self.summary.value = self.session.summary()

    def classify(self) -> None:
        """Classify now, in the GUI thread (errors become notifications)."""
        with report_errors("Classify"):
            self.session.classify(seed=self.seed.value, ordered=self.ordered.value)

    def start_classification(self):
        """Classify in a worker thread; return the worker (layers update when it returns)."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return self.worker
        _ = self.session.encoder  # loads the built-in one (or warns) in the GUI thread
        self.classify_button.enabled = False
        self.classify_button.text = "Classifying…"
        worker = create_worker(
            self.session.compute_classification, seed=self.seed.value, ordered=self.ordered.value
        )

        def on_returned(result: Any) -> None:
            with report_errors("Classify"):
                self.session.apply_classification(result)

        def on_finished() -> None:
            self.worker = None
            self.classify_button.enabled = True
            self.classify_button.text = "Classify"

        worker.returned.connect(on_returned)
        worker.errored.connect(report_worker_error("Classify"))
        worker.finished.connect(on_finished)
        self.worker = worker
        worker.start()
        return worker

    # --- live refits --------------------------------------------------------------------------
    def _on_labels_changed(self) -> None:
        """Refit when live and the labels really changed (a number key only changes the class)."""
        if not self.live.value:
            return
        labels = self.session.labels
        if labels == self._fitted_labels:
            return
        if len({c for rows in labels.values() for c in rows.values()}) < 2:
            return  # nothing to fit yet: no notification while the user labels the first class
        self.start_live_refit()

    def start_live_refit(self):
        """Refit in a worker thread; while one runs, schedule exactly one more; return the worker."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.live_worker is not None:
            self._live_pending = True
            return self.live_worker
        _ = self.session.encoder  # loads the built-in one (or warns) in the GUI thread
        labels = self.session.labels
        worker = create_worker(
            self.session.compute_classification, seed=self.seed.value, ordered=self.ordered.value
        )

        def on_returned(result: Any) -> None:
            with report_errors("Live classify"):
                self.session.apply_classification(result)
                self._fitted_labels = labels

        def on_errored(exc: Exception) -> None:
            self._fitted_labels = labels  # the same labels would fail again
            show_error(f"Live classify: {exc}")

        def on_finished() -> None:
            self.live_worker = None
            if self._live_pending:
                self._live_pending = False
                self._on_labels_changed()

        worker.returned.connect(on_returned)
        worker.errored.connect(on_errored)
        worker.finished.connect(on_finished)
        self.live_worker = worker
        worker.start()
        return worker

    # --- phases without labels ------------------------------------------------------------------
    def propose_phases(self) -> None:
        """Propose phases now, in the GUI thread (errors become notifications)."""
        with report_errors("Propose phases"):
            self.session.propose_phases()

    def start_proposal(self):
        """Propose phases in a worker thread; return the worker (the strips update when it returns)."""
        from napari.qt.threading import create_worker

        _ = self.session.encoder
        self.propose_button.enabled = False
        worker = create_worker(self.session.compute_segments)

        def on_returned(found: Any) -> None:
            with report_errors("Propose phases"):
                self.session.apply_segments(found)

        def on_finished() -> None:
            self.propose_button.enabled = True

        worker.returned.connect(on_returned)
        worker.errored.connect(report_worker_error("Propose phases"))
        worker.finished.connect(on_finished)
        worker.start()
        return worker

    def confirm(self, message: str) -> bool:
        """Ask the user (before an existing file is replaced); True for yes."""
        if self._confirm is not None:
            return bool(self._confirm(message))
        return ask_yes_no(self.native, "Classify", message)

    def export_predictions(self, path: str | Path) -> Path | None:
        """Write per-curve predictions (as ``xrdphase classify --out``); return the file or None."""
        return self._export("predictions", path)

    def export_boundaries(self, path: str | Path) -> Path | None:
        """Write the boundaries of every series as CSV; return the file or None."""
        return self._export("boundaries", path)

    def _export(self, what: str, path: str | Path) -> Path | None:
        # an existing file only when confirmed; an input of the session never
        writer = getattr(self.session, f"export_{what}")

        def check(out: str | Path, overwrite: bool) -> Path:
            self.session.require_classified()  # before asking whether to replace a file
            return self.session.check_output(out, overwrite=overwrite)

        return export_file(f"Export {what}", path, writer, check, self.confirm)

    def _ask_export(self, what: str) -> None:
        path = ask_save_path(self.native, f"Export {what}", f"{what}.csv", "CSV (*.csv)")
        if path:
            self._export(what, path)
