"""Classify dock: fit the classifier on the labels, show phases and boundaries, export them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container, Label, PushButton, SpinBox, TextEdit

from ._plot import USER_ERRORS, Confirm, ask_save_path, ask_yes_no, export_file, report_errors
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
                self.summary,
                exports,
            ]
        )

        self.classify_button.clicked.connect(self.start_classification)
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
        from napari.utils.notifications import show_error

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

        def on_errored(exc: Exception) -> None:
            if isinstance(exc, USER_ERRORS):
                show_error(f"Classify: {exc}")
            else:
                show_error(f"Classify failed: {type(exc).__name__}: {exc}")

        def on_finished() -> None:
            self.worker = None
            self.classify_button.enabled = True
            self.classify_button.text = "Classify"

        worker.returned.connect(on_returned)
        worker.errored.connect(on_errored)
        worker.finished.connect(on_finished)
        self.worker = worker
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
