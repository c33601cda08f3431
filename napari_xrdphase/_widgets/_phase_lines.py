"""Known phases in the viewer: their lines over a series image, the pressure fit on its rows.

The session's phase methods (``XRDSession.show_phase_lines``, ``fit_pressure``, ...) live
here as functions of the session, so the session module stays small. No Qt widgets: layers
are napari layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._layer_data import METADATA_KEY
from ..phases.lines import DEFAULT_MIN_INTENSITY, PhaseLine, line_positions
from ..stack import SpectraStack, StackError

if TYPE_CHECKING:
    from ..pressure import PressureFit
    from ._session import XRDSession

ROLE_PHASE_LINES = "phase lines"
# distinct colours that read on the inferno image (black → purple → orange → yellow) and on the
# dark and light plot themes: cyan, green and pink first, since white, orange and yellow vanish
# on the bright lines of the image
PHASE_COLORS = ("#26c6da", "#9ccc65", "#f06292", "#ffffff", "#ffca28", "#9575cd", "#8d6e63")
LINE_TEXT_SIZE = 9


def phase_color(session: XRDSession, name: str) -> str:
    """Return the colour of phase ``name``: its place among the phases shown, else the first."""
    names = [n.lower() for n in session.shown_phases]
    k = names.index(name.lower()) if name.lower() in names else 0
    return PHASE_COLORS[k % len(PHASE_COLORS)]


def resolve_phase(session: XRDSession, name: str) -> str:
    """Return what ``get_phase`` needs for ``name``: a JCPDS path added to the session, or the name."""
    return session.phase_files.get(str(name), str(name))


def row_pressures(session: XRDSession, layer: Any) -> np.ndarray:
    """Return each curve's pressure (GPa) for drawing lines; refuse a series without one.

    The series' variable when it is a pressure (GPa, kbar, MPa), else the pressure fitted by
    ``fit_pressure`` (NaN where that fit failed). Neither: ``StackError`` saying what to do.
    """
    from ..phases.masking import curve_pressures

    stack = session.compute_stack(layer)
    pressures = curve_pressures(stack)
    if np.any(np.isfinite(pressures)):
        return pressures
    fit = session.pressure_fits.get(stack.name)
    if fit is not None and fit.pressure.size == stack.n_curves:
        return np.asarray(fit.pressure, dtype=np.float64)
    raise StackError(
        f"{stack.name}: its variable is {stack.variable_label}, not a pressure, so the lines "
        "cannot follow it; fit the pressure from a marker first (Phases dock → Use as "
        "pressure, xrd.fit_pressure('Pt'))"
    )


def series_lines(
    session: XRDSession, layer: Any, name: str, min_intensity: float = DEFAULT_MIN_INTENSITY
) -> list[PhaseLine]:
    """Return the lines of phase ``name`` on the series' axis as shown, at each row's pressure."""
    shown = session.shown_stack(layer)
    return line_positions(
        shown, resolve_phase(session, name), row_pressures(session, layer),
        scale=session.phase_scales.get(name), min_intensity=min_intensity,
    )  # fmt: skip


def _world_x(layer: Any, shown: SpectraStack, position: np.ndarray) -> np.ndarray:
    """Return world x of axis ``position`` values: the layer's columns are axis points."""
    order = np.argsort(shown.axis)
    column = np.interp(position, shown.axis[order], np.arange(shown.n_points, dtype=float)[order])
    column[~np.isfinite(position)] = np.nan
    return float(layer.translate[-1]) + float(layer.scale[-1]) * column


def _paths(session: XRDSession, layer: Any, lines: list[PhaseLine]) -> tuple[list, list[str]]:
    """Return one polyline per run of rows where a line is placed, and its (hkl) text."""
    shown = session.shown_stack(layer)
    rows = np.arange(shown.n_curves, dtype=float)
    y = float(layer.translate[-2]) + float(layer.scale[-2]) * rows
    paths, texts = [], []
    for line in lines:
        x = _world_x(layer, shown, line.position)
        ok = np.isfinite(x)
        padded = np.concatenate([[False], ok, [False]])
        edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
        first = True
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            if stop - start < 2:  # a path needs two points; a lone row is left out
                continue
            paths.append(np.column_stack([y[start:stop], x[start:stop]]))
            texts.append(line.label if first else "")  # the (hkl) once, at the line's top end
            first = False
    return paths, texts


def lines_layer(session: XRDSession, layer: Any, name: str):
    """Return the Shapes layer of phase ``name``'s lines over series ``layer`` (None: not shown)."""
    series = session.compute_stack(layer).name
    for each in session.viewer.layers:
        meta = each.metadata.get(METADATA_KEY, {}) if isinstance(each.metadata, dict) else {}
        if (
            meta.get("role") == ROLE_PHASE_LINES
            and meta.get("series") == series
            and str(meta.get("phase", "")).lower() == name.lower()
        ):
            return each
    return None


def draw_phase_lines(session: XRDSession, layer: Any) -> list:
    """(Re)draw one Shapes layer per phase of ``session.shown_phases`` over series ``layer``."""
    series = session.compute_stack(layer).name
    keep = {n.lower() for n in session.shown_phases}
    for each in list(session.viewer.layers):  # phases no longer shown: their layers go
        meta = each.metadata.get(METADATA_KEY, {}) if isinstance(each.metadata, dict) else {}
        if (
            meta.get("role") == ROLE_PHASE_LINES
            and meta.get("series") == series
            and str(meta.get("phase", "")).lower() not in keep
        ):
            session.viewer.layers.remove(each)
    if not session.shown_phases:
        return []
    computed = [(n, series_lines(session, layer, n)) for n in session.shown_phases]  # may raise
    width = max(float(layer.scale[-1]) * 1.5, 1e-9)
    drawn = []
    for name, lines in computed:
        old = lines_layer(session, layer, name)
        if old is not None:
            session.viewer.layers.remove(old)  # Shapes cannot be emptied and refilled cleanly
        paths, texts = _paths(session, layer, lines)
        color = phase_color(session, name)
        shapes = session.viewer.add_shapes(
            paths or None,
            shape_type="path",
            name=f"{layer.name} {name} lines",
            edge_color=color,
            edge_width=width,
            opacity=0.8,
            features={"text": texts},
            text={"string": "{text}", "color": color, "anchor": "upper_left",
                  "size": LINE_TEXT_SIZE},
            metadata={METADATA_KEY: {"role": ROLE_PHASE_LINES, "series": series, "phase": name}},
        )  # fmt: skip
        shapes.editable = False
        drawn.append(shapes)
    session.viewer.layers.selection.active = layer
    return drawn


def curve_ticks(session: XRDSession, layer: Any, row: int) -> list[tuple[str, str, list]]:
    """Return (phase, colour, [(position, label), ...]) of the shown phases' lines in curve ``row``.

    Empty when no phase is shown or the row has no pressure (the plot then has no ticks).
    """
    if not session.shown_phases:
        return []
    try:
        pressures = row_pressures(session, layer)
    except StackError:
        return []
    if not np.isfinite(pressures[row]):
        return []
    shown = session.shown_stack(layer)
    out = []
    for name in session.shown_phases:
        try:
            lines = line_positions(
                shown, resolve_phase(session, name), pressures,
                scale=session.phase_scales.get(name),
            )  # fmt: skip
        except ValueError:
            continue
        ticks = [
            (float(line.position[row]), line.label)
            for line in lines
            if np.isfinite(line.position[row])
        ]
        out.append((name, phase_color(session, name), ticks))
    return out


def fit_series_pressure(
    session: XRDSession, calibrant: str, scale: str | None = None, series: Any = None
) -> tuple[str, PressureFit]:
    """Fit the pressure of a series from ``calibrant``'s lines (no layers: thread-safe)."""
    from ..pressure import fit_pressure

    layer = session.series_layer(series)
    stack = session.compute_stack(layer)
    return layer.name, fit_pressure(stack, resolve_phase(session, calibrant), scale)


def apply_pressure_fit(session: XRDSession, layer_name: str, fit: PressureFit) -> str:
    """Keep ``fit`` and, when every curve has a pressure, make it the series' variable; return a message.

    As ``with_fitted_pressure`` (and ``--pressure-from``): a series with failed curves keeps
    its variable, since a made-up pressure would place boundaries; the fit is kept all the
    same, so phase lines follow it where it worked.
    """
    layer = session.series_layer(layer_name)
    stack = session.compute_stack(layer)
    session.pressure_fits[stack.name] = fit
    failed = np.flatnonzero(fit.failed)
    if failed.size:
        shown = ", ".join(str(i) for i in failed[:5]) + (" …" if failed.size > 5 else "")
        return (
            f"{stack.name}: {failed.size} of {stack.n_curves} curves have no {fit.calibrant} "
            f"pressure (curves {shown}: {fit.reason[failed[0]].split(' (')[0]}), so the variable stays "
            f"{stack.variable_label}, as --pressure-from refuses such a series; phase lines "
            "follow the fitted pressure where there is one"
        )
    from ..pressure import stack_with_pressure

    changed = stack_with_pressure(stack, fit)
    changes = {
        "variable": changed.variable, "variable_name": changed.variable_name,
        "variable_unit": changed.variable_unit, "metadata": changed.metadata,
    }  # fmt: skip
    meta = layer.metadata[METADATA_KEY]
    if meta.get("source_stack") is not None:
        meta["source_stack"] = meta["source_stack"].replace(**changes)
    meta["stack"] = meta["stack"].replace(**changes)
    return f"{fit.summary()}; the fitted pressure is now the variable of {stack.name}"
