"""Live dock: keep classifying the curves that arrive while the experiment runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import Container, FileEdit, FloatSpinBox, Label, PushButton

from ._live import get_live
from ._plot import report_errors

if TYPE_CHECKING:
    import napari


class LiveDock(Container):
    """Watch the current series' folder (or growing HDF5 file) and classify new curves."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.live = get_live(viewer)
        self.source = FileEdit(label="watch", mode="d", tooltip="folder that receives new curves")
        self.poll_s = FloatSpinBox(label="poll (s)", value=0.5, min=0.05, max=60.0, step=0.05)
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(label="status", value="stopped")
        buttons = Container(
            layout="horizontal", labels=False, widgets=[self.start_button, self.stop_button]
        )
        buttons.margins = (0, 0, 0, 0)
        self.extend([self.source, self.poll_s, buttons, self.status])
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.live.session.events.series_changed.connect(self.refresh)
        self.native.destroyed.connect(lambda *_: self.live.stop_live())

    def start(self) -> None:
        """Start watching the chosen folder or file for the current series."""
        with report_errors("Live"):
            self.live.start_live(self.source.value, poll_s=self.poll_s.value)
        self.refresh()

    def stop(self) -> None:
        """Stop watching; the curves added so far stay."""
        self.live.stop_live()
        self.refresh()

    def refresh(self) -> None:
        """Show whether live mode runs and how many curves the series has."""
        running = self.live.running
        self.start_button.enabled, self.stop_button.enabled = not running, running
        if running and self.live.series is not None:
            n = self.live.series.stack.n_curves
            self.status.value = f"watching {self.live.layer_name}: {n} curves"
        else:
            self.status.value = "stopped"
