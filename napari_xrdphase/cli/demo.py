"""``xrdphase demo``: napari with the sample series (or PATHs), the docks, and a headless screenshot."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ._common import CommandError

# a sparse start (two curves per phase on the 120-curve sample), then one round of answered suggestions
DEMO_LABEL_FRACTION = 0.05
DEMO_ANSWERS = 4


DEMO_DOCKS = ("Data", "Labels", "Classify")


def cmd_demo(args: argparse.Namespace) -> None:
    """Open napari with a series (the Fe sample by default) and the docks; with --screenshot, run the whole path headless."""
    if args.screenshot:
        from .._files import check_output_path

        check_output_path(
            args.screenshot, inputs=[*args.paths, args.labels], overwrite=args.overwrite
        )
    with warnings.catch_warnings():
        # napari's start-up deprecation chatter is not for users of this command
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="System theme detection")
        import napari

        from .._widgets import get_session

        viewer = napari.Viewer(title="napari-xrdphase demo")
    try:
        session = get_session(viewer)
        for dock in DEMO_DOCKS:
            viewer.window.add_plugin_dock_widget("napari-xrdphase", dock)
        if args.paths:
            for path in args.paths:
                session.load(path)
        else:
            viewer.open_sample("napari-xrdphase", "fe_compression")
        _ = session.encoder  # the built-in encoder, ready (or a warning that it is missing)
        if args.labels:
            session.import_labels(args.labels)
        if getattr(args, "pressure_from", None):
            _demo_pressure(viewer, session, args)
        if args.screenshot:
            _demo_screenshot(viewer, session, args)
            return
        napari.run()
    finally:
        if args.screenshot:
            viewer.close()


def _demo_pressure(viewer, session, args: argparse.Namespace) -> None:
    """Fit every series' pressure from --pressure-from and show the marker's lines (Phases dock).

    As in the Phases dock: the fitted pressure becomes a series' variable when every curve has
    one; otherwise the series keeps its variable and the message says which curves failed.
    """
    import numpy as np

    from ..pressure import PressureError

    _, dock = viewer.window.add_plugin_dock_widget("napari-xrdphase", "Phases")
    calibrant = None
    for layer in session.series_layers:
        try:
            name, fit = session.compute_pressure_fit(
                args.pressure_from, args.pressure_scale, layer.name
            )
        except (PressureError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        print(session.apply_pressure_fit(name, fit), file=sys.stderr)
        calibrant = fit.calibrant
        if np.isfinite(fit.pressure).any():
            session.show_phase_lines([fit.calibrant], series=layer)
    session.current_layer = session.series_layers[-1]
    if calibrant in dock.marker.choices:
        dock.marker.value = calibrant
        if args.pressure_scale in dock.scale.choices:
            dock.scale.value = args.pressure_scale
    dock.refresh()


def _demo_screenshot(viewer, session, args: argparse.Namespace) -> None:
    """Label a few curves, classify, answer one round of suggestions, classify again, show the next ones."""
    from qtpy.QtWidgets import QApplication

    simulated = {}
    for layer in session.series_layers:
        truth = layer.metadata.get("xrdphase", {}).get("ground_truth")
        name = session.compute_stack(layer).name
        if truth is not None:
            simulated[name] = (layer, truth)
        if not session.labels.get(name):
            if truth is None:
                raise CommandError(
                    f"{layer.name} has no labels: give --labels LABELS.csv (dataset,index,label) "
                    "or use a simulated series"
                )
            n = session.apply_ground_truth(DEMO_LABEL_FRACTION, seed=args.seed, series=layer)
            print(f"{layer.name}: labelled {n} curves from the ground truth", file=sys.stderr)
    print(f"classifying with the {session.encoder_source} encoder", file=sys.stderr)
    _print_boundaries(session.classify(seed=args.seed), session, simulated)
    if simulated:
        # the labelling loop, the simulated truth playing the user
        asked = session.suggest(n=DEMO_ANSWERS, seed=args.seed)
        for name, (layer, _) in simulated.items():
            rows = [s.index for s in asked if s.dataset == name]
            if rows:
                session.apply_ground_truth(rows, series=layer)
                shown = ", ".join(str(r) for r in rows)
                print(
                    f"{name}: answered the suggested curves {shown} from the ground truth",
                    file=sys.stderr,
                )
        print("classifying again", file=sys.stderr)
        _print_boundaries(session.classify(seed=args.seed), session, simulated)
        session.suggest(n=DEMO_ANSWERS, seed=args.seed)  # the stars: what to label next
    viewer.window.resize(1700, 1000)
    viewer.layers.selection.active = session.current_layer
    _settle(QApplication)
    _close_notifications(viewer)
    viewer.reset_view()
    _show_status_of_a_curve(viewer, session.current_layer)
    _settle(QApplication)
    out = Path(args.screenshot).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    if not out.is_file() or out.stat().st_size == 0:
        raise CommandError(f"the screenshot {out} was not written")
    print(f"wrote {out}", file=sys.stderr)


def _print_boundaries(found, session, simulated) -> None:
    """Print each series' boundaries and, for a simulated one, how many curves are right."""
    import numpy as np

    for name, boundaries in found.items():
        score = ""
        if name in simulated:
            predicted = np.asarray(session.predictions[name][0], dtype=str)
            truth = np.asarray(simulated[name][1], dtype=str)
            score = f" ({int((predicted == truth).sum())} of {truth.size} curves as simulated)"
        print(f"{name}:{score}", file=sys.stderr)
        for boundary in boundaries:
            print(f"  {boundary}", file=sys.stderr)


def _show_status_of_a_curve(viewer, layer) -> None:
    # the status bar as with the cursor on the middle curve, a third across the image
    rows, cols = layer.data.shape[-2:]
    viewer.mouse_over_canvas = True
    viewer.cursor.position = tuple(layer.data_to_world((rows // 2, cols // 3)))
    viewer.update_status_from_cursor()


def _settle(application, rounds: int = 10) -> None:
    # let Qt lay out the resized window before the view is fitted and grabbed
    import time

    for _ in range(rounds):
        application.processEvents()
        time.sleep(0.02)


def _close_notifications(viewer) -> None:
    # the toasts (e.g. "built-in encoder missing") would cover the canvas in the screenshot
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()
    except Exception:  # private napari API: a screenshot with a toast is still a screenshot
        pass
