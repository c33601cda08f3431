"""Data dock: which series, its axis and contrast, and a plot of the curve under the cursor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox

from .._layer_data import DISPLAY_MODES
from ._plot import ThemedPlot, report_errors
from ._session import get_session

if TYPE_CHECKING:
    import napari

AXIS_CHOICES = (("2θ (deg)", "2theta"), ("q (1/Å)", "q"), ("d (Å)", "d"))


class DataDock(Container):
    """Open series, choose axis unit and contrast, and plot single curves."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.session = get_session(viewer)
        self._updating = False
        self._plotted: tuple[str, int] | None = None

        self.series = ComboBox(label="series", choices=self._series_choices, nullable=True)
        self.open_file = PushButton(text="Open file…")
        self.open_folder = PushButton(text="Open folder…")
        self.info = Label(label="info", value="")
        self.axis = ComboBox(label="axis", choices=AXIS_CHOICES, value="2theta")
        self.wavelength = FloatSpinBox(
            label="λ (Å)", value=0.0, min=0.0, max=10.0, step=0.00001,
            tooltip="X-ray wavelength when the file gives none: needed to compare the series "
            "with others in q (pretraining, classification) and to show it on q or d",
        )  # fmt: skip
        self.display = ComboBox(label="contrast", choices=DISPLAY_MODES, value="sqrt")
        self.row = SpinBox(label="curve", value=0, min=0, max=0, tooltip="curve to plot")
        self.extend(
            [self.series, self.open_file, self.open_folder, self.info, self.axis,
             self.wavelength, self.display, self.row]
        )  # fmt: skip
        self.plot = ThemedPlot(viewer)
        self.native.layout().addWidget(self.plot.native)

        self.series.changed.connect(self._on_series_chosen)
        self.open_file.clicked.connect(lambda: self._ask_and_open(folder=False))
        self.open_folder.clicked.connect(lambda: self._ask_and_open(folder=True))
        self.axis.changed.connect(self._on_axis)
        self.display.changed.connect(self._on_display)
        self.wavelength.changed.connect(self._on_wavelength)
        self.row.changed.connect(self._on_row)
        self.session.events.series_changed.connect(self.refresh)
        self.session.events.classified.connect(self._replot)
        self.session.events.labels_changed.connect(self._replot)
        self.session.events.phases_changed.connect(self._replot)
        viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self.refresh()

    # --- series -------------------------------------------------------------------------------
    def _series_choices(self, widget: Any = None) -> list[str]:
        return [layer.name for layer in self.session.series_layers]

    def refresh(self) -> None:
        """Show the current series' details in the dock."""
        self._updating = True
        try:
            self.series.reset_choices()
            try:
                layer = self.session.current_layer
            except ValueError:
                self.info.value = "no series open"
                self.plot.clear()
                self.plot.draw()
                return
            self.series.value = layer.name
            source = self.session.compute_stack(layer)
            shown = self.session.shown_stack(layer)
            self.info.value = _describe(source, shown)
            self.axis.value = shown.axis_kind
            self.display.value = layer.metadata["xrdphase"].get("display", "sqrt")
            given = layer.metadata["xrdphase"].get("wavelength_given", False)
            self.wavelength.visible = source.wavelength is None or given
            if source.wavelength:
                self.wavelength.value = source.wavelength
            self.row.max = source.n_curves - 1
        finally:
            self._updating = False
        self.plot_curve(self.row.value)

    def _on_series_chosen(self, name: str | None) -> None:
        if self._updating or not name:
            return
        with report_errors("Choose series"):
            self.session.current_layer = name

    def open_path(self, path: str | Path) -> None:
        """Load a folder or file of curves as a series (errors become notifications)."""
        with report_errors(f"Open {Path(path).name}"):
            self.session.load(path, display=self.display.value)

    def _ask_and_open(self, folder: bool) -> None:
        from qtpy.QtWidgets import QFileDialog

        if folder:
            path = QFileDialog.getExistingDirectory(self.native, "Open a folder of curves")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self.native, "Open a diffraction series", "",
                "Series (*.h5 *.hdf5 *.nxs *.npz);;All files (*)",
            )  # fmt: skip
        if path:
            self.open_path(path)

    # --- axis and contrast ----------------------------------------------------------------------
    def _on_axis(self, kind: str) -> None:
        if self._updating:
            return
        self.set_axis(kind)

    def set_axis(self, kind: str) -> None:
        """Show the current series on a 2θ, q or d axis (errors become notifications)."""
        wavelength = self.wavelength.value if self.wavelength.value > 0 else None
        with report_errors("Change axis"):
            self.session.set_axis(kind, wavelength=wavelength)

    def _on_wavelength(self, wavelength: float) -> None:
        if self._updating or not wavelength > 0 or self.session.current_layer is None:
            return
        with report_errors("Set wavelength"):
            self.session.set_wavelength(wavelength)

    def _on_display(self, display: str) -> None:
        if self._updating:
            return
        with report_errors("Change contrast"):
            self.session.set_display(display)

    # --- the curve plot -------------------------------------------------------------------------
    def _on_mouse_move(self, viewer: Any, event: Any) -> None:
        try:
            layer = self.session.current_layer
        except ValueError:
            return
        y = event.position[-2]
        row = round((y - layer.translate[-2]) / layer.scale[-2])
        if 0 <= row < layer.data.shape[0] and self._plotted != (layer.name, row):
            self.plot_curve(row)

    def _on_row(self, row: int) -> None:
        if not self._updating:
            self.plot_curve(row)

    def _replot(self) -> None:
        if self._plotted is not None:
            self.plot_curve(self._plotted[1])

    def plot_curve(self, row: int) -> None:
        """Plot curve ``row`` of the current series, titled with its external variable."""
        try:
            layer = self.session.current_layer
        except ValueError:
            return
        shown = self.session.shown_stack(layer)
        if not 0 <= row < shown.n_curves:
            return
        self._plotted = (layer.name, row)
        source = self.session.compute_stack(layer)
        colors = self.plot.colors()
        self.plot.clear()
        ax = self.plot.axes
        ax.plot(shown.axis, shown.curves([row])[0], color=colors["foreground"], lw=0.8)
        ax.set_xlabel(shown.axis_label, fontsize=8)
        ax.set_ylabel("intensity", fontsize=8)
        value = source.variable[row]
        unit = f" {source.variable_unit}" if source.variable_unit else ""
        title = f"curve {row}: {source.variable_name} = {value:.4g}{unit}"
        label = self.session.labels.get(source.name, {}).get(row)
        predicted = self.session.predictions.get(source.name)
        if label:
            title += f"  · labelled {label}"
        if predicted is not None:
            title += f"  · predicted {predicted[0][row]}"
        color = self.session.class_color(label) if label else colors["foreground"]
        ax.set_title(title, fontsize=9, color=color)
        ax.margins(x=0)
        self._draw_phase_ticks(layer, row)
        self.plot.draw()
        self._updating = True
        try:
            self.row.value = row
        finally:
            self._updating = False

    def _draw_phase_ticks(self, layer: Any, row: int) -> None:
        """Mark the lines of the phases shown (Phases dock) under the curve, one colour each."""
        from ._phase_lines import curve_ticks

        ax = self.plot.axes
        for name, color, ticks in curve_ticks(self.session, layer, row):
            if not ticks:
                continue
            positions = [p for p, _ in ticks]
            # ticks along the bottom quarter of the plot, whatever the intensity scale
            ax.vlines(positions, 0.0, 0.25, colors=color, lw=1.5, transform=ax.get_xaxis_transform(),
                      label=name)  # fmt: skip
        if ax.collections:
            legend = ax.legend(fontsize=7, frameon=False, loc="upper right")
            for text in legend.get_texts():
                text.set_color(self.plot.colors()["foreground"])


def _describe(source: Any, shown: Any) -> str:
    variable = source.variable
    lines = [
        f"{source.n_curves} curves × {source.n_points} points",
        f"{shown.axis_label}: {np.min(shown.axis):.4g} – {np.max(shown.axis):.4g}",
        f"{source.variable_label}: {variable.min():.4g} – {variable.max():.4g}",
        f"λ = {source.wavelength:.5g} Å" if source.wavelength else "λ unknown",
    ]
    if source.is_lazy:
        lines.append("on disk (lazy)")
    return "\n".join(lines)
