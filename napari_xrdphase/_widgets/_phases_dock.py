"""Phases dock: marker, medium and reference lines over a series, pressure from the marker."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from ._plot import USER_ERRORS, ThemedPlot, report_errors, report_worker_error
from ._session import get_session

if TYPE_CHECKING:
    import napari

# the built-in phases offered for each role (any built-in or JCPDS phase may take any role)
MARKERS = ("Pt", "Au", "Cu", "Ag", "W", "Mo", "Ta", "Re", "MgO", "NaCl-B1", "NaCl-B2", "KCl-B2")
MEDIA = ("Ne", "Ar", "NaCl-B1", "NaCl-B2", "KCl-B2", "MgO")
FAILED_COLOR = "#ef5350"


class PhasesDock(Container):
    """Choose known phases, draw their lines over the series, fit the pressure from the marker."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.session = get_session(viewer)
        self.worker = None
        self._updating = False

        self.marker = ComboBox(label="marker", choices=self._marker_choices, nullable=True)
        self.marker.tooltip = "pressure marker (calibrant) whose lines give the pressure"
        self.scale = ComboBox(label="scale", choices=self._scale_choices, nullable=True)
        self.scale.tooltip = "pressure scale (equation of state) of the marker; empty: its default"
        self.medium = ComboBox(label="medium", choices=self._medium_choices, nullable=True)
        self.medium.tooltip = "pressure medium (Ne and Ar give lines once frozen)"
        self.reference = ComboBox(label="reference", choices=self._all_choices, nullable=True)
        self.reference.tooltip = "any other known phase whose lines to draw (e.g. a JCPDS file)"
        self.load_jcpds = PushButton(text="Load JCPDS/CIF…")
        self.show_button = PushButton(text="Show lines")
        self.hide_button = PushButton(text="Hide lines")
        self.fit_button = PushButton(text="Use as pressure")
        self.fit_button.tooltip = (
            "Fit each curve's pressure from the marker's lines (in the background) and make it "
            "the series' variable; a series where some curves fail keeps its variable"
        )
        self.ignore = CheckBox(text="ignore in classification", value=False)
        self.ignore.tooltip = (
            "Classify with the marker's and medium's lines replaced by background "
            "(xrd.ignore_phases; --ignore-phases on the command line)"
        )
        self.info = Label(label="pressure", value="")
        buttons = Container(
            layout="horizontal", labels=False, widgets=[self.show_button, self.hide_button]
        )
        buttons.margins = (0, 0, 0, 0)
        self.extend(
            [self.marker, self.scale, self.medium, self.reference, self.load_jcpds, buttons,
             self.fit_button, self.ignore, self.info]
        )  # fmt: skip
        self.plot = ThemedPlot(viewer, height_inches=2.2)
        self.native.layout().addWidget(self.plot.native)

        self.marker.changed.connect(self._on_marker)
        self.medium.changed.connect(self._on_ignore_choice)
        self.load_jcpds.clicked.connect(self._ask_jcpds)
        self.show_button.clicked.connect(self.show_lines)
        self.hide_button.clicked.connect(self.hide_lines)
        self.fit_button.clicked.connect(self.start_pressure_fit)
        self.ignore.changed.connect(self._on_ignore_choice)
        self.session.events.series_changed.connect(self.refresh)
        self.session.events.phases_changed.connect(self.refresh)
        self.refresh()

    # --- choices --------------------------------------------------------------------------------
    def _files(self) -> list[str]:
        return list(self.session.phase_files)

    def _marker_choices(self, widget: Any = None) -> list[str]:
        return [*MARKERS, *self._files()]

    def _medium_choices(self, widget: Any = None) -> list[str]:
        return [*MEDIA, *self._files()]

    def _all_choices(self, widget: Any = None) -> list[str]:
        from ..phases import builtin_phase_names

        return [*builtin_phase_names(), *self._files()]

    def _scale_choices(self, widget: Any = None) -> list[str]:
        from ..phases import get_phase

        if not getattr(self, "marker", None) or not self.marker.value:
            return []
        try:
            return list(
                get_phase(self.session.phase_files.get(self.marker.value, self.marker.value)).scales
            )
        except ValueError:
            return []

    def selected(self) -> list[str]:
        """Return the chosen marker, medium and reference (in that order, without repeats)."""
        names = [self.marker.value, self.medium.value, self.reference.value]
        return list(dict.fromkeys(n for n in names if n))

    def _on_marker(self, value: Any = None) -> None:
        self.scale.reset_choices()
        self.scale.value = None
        self._on_ignore_choice()

    def _on_ignore_choice(self, value: Any = None) -> None:
        if self._updating:
            return
        names = [n for n in (self.marker.value, self.medium.value) if n]
        self.session.ignore_phases = list(dict.fromkeys(names)) if self.ignore.value else []

    def refresh(self) -> None:
        """Offer the phases known now (JCPDS files added) and show the series' pressure fit."""
        self._updating = True
        try:
            for combo in (self.marker, self.medium, self.reference):
                value = combo.value
                combo.reset_choices()
                if value in combo.choices:
                    combo.value = value
            self.ignore.value = bool(self.session.ignore_phases)
        finally:
            self._updating = False
        self.plot_pressure()

    # --- actions --------------------------------------------------------------------------------
    def add_jcpds(self, path: str | Path) -> str | None:
        """Offer the phase of a JCPDS or CIF file in the lists (as reference); return its name."""
        with report_errors(f"Load {Path(path).name}"):
            name = self.session.add_phase_file(path)
            self.reference.value = name
            return name
        return None

    def _ask_jcpds(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native,
            "Load a JCPDS or CIF phase",
            "",
            "Phase files (*.jcpds *.cif);;All files (*)",
        )
        if path:
            self.add_jcpds(path)

    def show_lines(self) -> list:
        """Draw the chosen phases' lines over the current series (errors become notifications)."""
        names = self.selected()
        scales = (
            {self.marker.value: self.scale.value} if self.marker.value and self.scale.value else {}
        )
        with report_errors("Show lines"):
            if not names:
                raise ValueError("choose a marker, a medium or a reference phase first")
            return self.session.show_phase_lines(names, scales=scales)
        return []

    def hide_lines(self) -> None:
        """Remove the phase lines of the current series."""
        with report_errors("Hide lines"):
            self.session.show_phase_lines([])

    def start_pressure_fit(self):
        """Fit the pressure from the marker in a worker thread; return the worker (None: refused)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_info, show_warning

        if self.worker is not None:
            return self.worker
        if not self.marker.value:
            show_error("Use as pressure: choose the marker whose lines give the pressure first")
            return None
        try:
            layer = self.session.current_layer
        except USER_ERRORS as exc:
            show_error(f"Use as pressure: {exc}")
            return None
        self.fit_button.enabled = False
        self.fit_button.text = "Fitting pressure…"
        worker = create_worker(
            self.session.compute_pressure_fit, self.marker.value, self.scale.value or None,
            layer.name, _progress={"desc": f"Fitting {self.marker.value} pressure"},
        )  # fmt: skip

        def on_returned(result: Any) -> None:
            with report_errors("Use as pressure"):
                name, fit = result
                message = self.session.apply_pressure_fit(name, fit)
                (show_warning if fit.failed.any() else show_info)(message)

        def on_finished() -> None:
            self.worker = None
            self.fit_button.enabled = True
            self.fit_button.text = "Use as pressure"

        worker.returned.connect(on_returned)
        worker.errored.connect(report_worker_error("Use as pressure"))
        worker.finished.connect(on_finished)
        self.worker = worker
        worker.start()
        return worker

    # --- the pressure plot ----------------------------------------------------------------------
    def plot_pressure(self) -> None:
        """Plot the current series' fitted pressure against the curve (failed curves marked)."""
        self.plot.clear()
        ax = self.plot.axes
        colors = self.plot.colors()
        try:
            stack = self.session.stack
        except USER_ERRORS:
            self.info.value = "no series open"
            self.plot.draw()
            return
        fit = self.session.pressure_fits.get(stack.name)
        if fit is None or fit.pressure.size != stack.n_curves:
            self.info.value = f"{stack.variable_label}; not fitted"
            self.plot.draw()
            return
        rows = np.arange(fit.pressure.size)
        ok = ~fit.failed
        ax.errorbar(
            rows[ok], fit.pressure[ok], yerr=fit.sigma[ok], fmt="o", ms=2.5, lw=0.8,
            color=colors["foreground"], label=f"{fit.calibrant} ({fit.scale})",
        )  # fmt: skip
        if fit.failed.any():
            ax.plot(
                rows[~ok], np.zeros(int((~ok).sum())), "x", color=FAILED_COLOR,
                transform=ax.get_xaxis_transform(), clip_on=False, ms=6,
                label=f"failed ({int((~ok).sum())})",
            )  # fmt: skip
        ax.set_xlabel("curve", fontsize=8)
        ax.set_ylabel("pressure (GPa)", fontsize=8)
        legend = ax.legend(fontsize=7, frameon=False, loc="upper left")
        for text in legend.get_texts():
            text.set_color(colors["foreground"])
        self.info.value = fit.summary().split(": ", 1)[-1]
        self.plot.draw()
