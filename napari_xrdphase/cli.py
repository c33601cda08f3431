"""The ``xrdphase`` command line: a thin door into the Python API."""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_METHOD,
    DEFAULT_MOCO_WEIGHT,
    PAPER_METHODS,
)

SIMULATION_FORMATS = {"xy": "", "h5": ".h5", "npz": ".npz"}


class CommandError(Exception):
    """An error the user can fix; printed without a traceback."""


def _print_err(message: str) -> None:
    print(f"xrdphase: {message}", file=sys.stderr)


# --wavelength outside this range (Å) is a unit mistake: 0.05 Å is 250 keV, 5 Å is 2.5 keV
WAVELENGTH_RANGE = (0.05, 5.0)


def _load_all(
    paths: Sequence[str],
    wavelength: float | None = None,
    variable: str | None = None,
    pressure_from: str | None = None,
    pressure_scale: str | None = None,
):
    """Load every path; ``wavelength`` (Å) is given to the series whose files state none.

    ``variable`` names the external variable of every series (see ``load_stack``);
    ``pressure_from`` names a calibrant whose fitted pressure becomes every series' variable.
    """
    from .io import load_stack

    if wavelength is not None and not (math.isfinite(wavelength) and wavelength > 0):
        raise CommandError(f"--wavelength must be a positive number of Å, got {wavelength}")
    if wavelength is not None and not WAVELENGTH_RANGE[0] <= wavelength <= WAVELENGTH_RANGE[1]:
        low, high = WAVELENGTH_RANGE
        hint = ""
        if wavelength < 1e-6:
            hint = f"; in metres that is {wavelength * 1e10:.4g} Å"
        elif wavelength < low:
            hint = f"; in nm that is {wavelength * 10:.4g} Å"
        raise CommandError(
            f"--wavelength is in Å, and X-ray diffraction uses {low:g}–{high:g} Å; "
            f"got {wavelength:g}{hint}"
        )
    stacks = [load_stack(p, variable=variable) for p in paths]
    for stack in stacks:
        if stack.wavelength is None and wavelength is not None:
            stack.wavelength = float(wavelength)
    if pressure_from is not None:
        import numpy as np

        from .pressure import with_fitted_pressure

        stacks = [with_fitted_pressure(s, pressure_from, pressure_scale) for s in stacks]
        for s in stacks:
            sigma = np.median(s.metadata["pressure_sigma_gpa"])
            print(
                f"{s.name}: pressure from {s.metadata['pressure_calibrant']}: "
                f"{s.variable.min():.2f}–{s.variable.max():.2f} GPa (median σ {sigma:.2f} GPa)",
                file=sys.stderr,
            )
    return stacks


def add_pressure_from_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--pressure-from`` and ``--pressure-scale``: the fitted pressure as the variable."""
    parser.add_argument(
        "--pressure-from", metavar="NAME",
        help="fit the pressure of every curve from the lines of this calibrant (Au, Pt, … or a "
        ".jcpds file) and use it as the external variable (boundaries in GPa); a series with a "
        "curve whose fit fails is refused (default: the series' own variable)",
    )  # fmt: skip
    parser.add_argument(
        "--pressure-scale", metavar="NAME",
        help="pressure scale of the calibrant for --pressure-from (default: its default scale, "
        "see `xrdphase phases`)",
    )  # fmt: skip


def cmd_pressure(args: argparse.Namespace) -> None:
    """Fit the pressure of every curve from the calibrant's lines; write the CSV, print summaries."""
    import csv

    from ._files import atomic_write
    from .pressure import fit_pressure, pressure_rows

    stacks = _load_all(args.paths, args.wavelength, args.variable)
    out = _output_path(args, inputs=list(args.paths))
    rows = []
    for stack in stacks:
        fit = fit_pressure(stack, args.calibrant, args.scale)
        print(fit.summary())
        rows += pressure_rows(fit)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out, write)
    print(f"wrote {out}", file=sys.stderr)


def add_classifier_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--seed``, ``--unordered``, ``--strain``, ``--whitening-strain``: the classifier's fit."""
    from .defaults import PROBE_STRAIN, PROBE_WHITENING_STRAIN

    add_seed_argument(parser, "the cross-validation folds")
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="label each curve with its most probable class; by default the phases are kept in "
        "the order of their labelled curves' external variable along each leg of the ramp",
    )
    parser.add_argument(
        "--strain",
        type=float,
        default=PROBE_STRAIN,
        metavar="FRACTION",
        help="also learn each labelled curve with its d-spacings scaled by 1 ± FRACTION, so that "
        f"phases are told by their pattern, not by pressure (default {PROBE_STRAIN:g}; 0: off)",
    )
    parser.add_argument(
        "--whitening-strain",
        type=float,
        default=PROBE_WHITENING_STRAIN,
        metavar="FRACTION",
        help="whiten the classifier's features against a uniform strain of this standard "
        "deviation, measured on the curves of every PATH, so that curves far in pressure from "
        f"the labelled ones keep their phase (default {PROBE_WHITENING_STRAIN:g}; 0: off)",
    )


def _fit_classifier(encoder: Any, stacks: list, labels: dict, args: argparse.Namespace) -> Any:
    """Fit the classifier as the ``add_classifier_arguments`` options say and print its summary."""
    from .classify import fit_classifier
    from .defaults import MAX_PROBE_STRAIN

    for option, value in (("--strain", args.strain), ("--whitening-strain", args.whitening_strain)):
        if not 0 <= value < MAX_PROBE_STRAIN:  # also false for NaN
            raise CommandError(
                f"{option} must be a fraction in [0, {MAX_PROBE_STRAIN:g}), got {value:g}"
            )
    classifier = fit_classifier(
        encoder, stacks, labels, seed=args.seed, ordered=not args.unordered, strain=args.strain,
        whitening_strain=args.whitening_strain, ignore_phases=_phase_mask(args),
    )  # fmt: skip
    print(f"classifier: {classifier.summary}", file=sys.stderr)
    _print_phase_order(classifier, stacks[0])
    return classifier


def add_ignore_phases_arguments(parser: argparse.ArgumentParser, model_default: bool) -> None:
    """Add ``--ignore-phases`` and ``--ignore-width``: markers and media the encoder must not see."""
    from .phases.masking import DEFAULT_WIDTH_FWHM

    default = (
        "default: what the --model was pretrained with, else none; '' for none"
        if model_default
        else "default: none"
    )
    parser.add_argument(
        "--ignore-phases",
        metavar="NAME[,NAME...]",
        help="pressure markers and media (built-in names as `xrdphase phases` lists them, or "
        ".jcpds files), e.g. Pt,Ne: their lines, placed at each curve's pressure (the external "
        "variable in GPa), are fitted and subtracted from every curve before it is embedded, "
        f"so they are never read as a phase change; Ne from 4.7 GPa, Ar from 1.3 GPa ({default})",
    )
    parser.add_argument(
        "--ignore-width",
        type=float,
        default=DEFAULT_WIDTH_FWHM,
        metavar="FWHM",
        help="where a line cannot be fitted (at the end of the axis), half-width of the window "
        "replaced by background instead, in the line's widths (FWHM) "
        f"(default {DEFAULT_WIDTH_FWHM:g})",
    )


def _phase_mask(args: argparse.Namespace) -> Any:
    """Return the ``PhaseMask`` that ``--ignore-phases`` asks for, or None (not given)."""
    from .phases.masking import PhaseMask, parse_phase_list

    if args.ignore_phases is None:
        return None
    names = parse_phase_list(args.ignore_phases)
    return PhaseMask(names, width=args.ignore_width) if names else ()


def add_wavelength_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wavelength",
        type=float,
        metavar="Å",
        help="X-ray wavelength in Å (0.05–5) for series whose files state none (Fit2D .chi, bare .xy): "
        "with it, series of different wavelengths or 2θ windows are compared in q "
        "(default: the wavelength the files state)",
    )


def add_variable_argument(parser: argparse.ArgumentParser) -> None:
    from .io import INDEX_VARIABLE

    parser.add_argument(
        "--variable",
        metavar="NAME",
        help="the external variable: a metadata.csv column, HDF5 dataset or .npz entry "
        f"(default: found in the files); {INDEX_VARIABLE!r} for the acquisition order",
    )


def cmd_info(args: argparse.Namespace) -> None:
    """Print a summary of each series."""
    for stack in _load_all(args.paths, args.wavelength, args.variable):
        var = stack.variable
        print(f"{stack.name}")
        print(f"  curves:   {stack.n_curves}")
        print(f"  points:   {stack.n_points}")
        print(
            f"  axis:     {stack.axis.min():g} – {stack.axis.max():g} {stack.axis_unit} ({stack.axis_kind})"
        )
        print(
            f"  {stack.variable_name + ':':<9} {var.min():g} – {var.max():g} {stack.variable_unit}".rstrip()
        )
        if stack.wavelength:
            print(f"  wavelength: {stack.wavelength:.5g} Å")
        elif stack.axis_kind == "2theta":
            print("  wavelength: none stated (2θ needs one for q: give --wavelength Å)")
        if stack.is_lazy:
            print("  storage:  on disk (lazy)")
        _warn_repeated_curves(stack)


def cmd_simulate(args: argparse.Namespace) -> None:
    """Write a simulated suite of series and its ground-truth labels.csv."""
    from .io import save_stack, write_labels_csv
    from .synth import paper_suite

    out = Path(args.outdir).expanduser()
    suite = paper_suite(seed=args.seed, n_points=args.points)
    targets = [out / f"{s.stack.name}{SIMULATION_FORMATS[args.format]}" for s in suite]
    existing = [t for t in [*targets, out / "labels.csv"] if t.exists()]
    if existing and not args.overwrite:
        raise CommandError(f"{existing[0]} exists and is kept; give --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for series, target in zip(suite, targets, strict=True):
        save_stack(series.stack, target, format=args.format)
        rows.extend((series.stack.name, i, str(lab)) for i, lab in enumerate(series.labels))
        print(f"wrote {target} ({series.stack.n_curves} curves)", file=sys.stderr)
    write_labels_csv(out / "labels.csv", rows)
    print(f"wrote {out / 'labels.csv'} ({len(rows)} labels)", file=sys.stderr)


def progress_printer(every_s: float = 2.0):
    """Return a ``pretrain`` progress callback printing a line to stderr every ``every_s`` s."""
    last = [0.0]

    def report(info: dict) -> None:
        now = info["elapsed_s"]
        if now - last[0] >= every_s or info["step"] == info["total_steps"]:
            last[0] = now
            losses = " ".join(f"{k}={v:.3f}" for k, v in info["losses"].items())
            print(
                f"epoch {info['epoch']}/{info['epochs']} step {info['step_in_epoch']}/"
                f"{info['steps_per_epoch']} loss={info['loss']:.4f} ({losses}) "
                f"lr={info['lr']:.3g} {now:.0f}s on {info['device']}",
                file=sys.stderr,
            )

    return report


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Pretrain an encoder without labels on every curve of the given series."""
    from .training import pretrain

    stacks = _load_all(
        args.paths,
        args.wavelength,
        args.variable,
        getattr(args, "pressure_from", None),
        getattr(args, "pressure_scale", None),
    )
    out = _output_path(args, inputs=[*args.paths, args.checkpoint])
    n = sum(s.n_curves for s in stacks)
    print(f"pretraining {args.method} on {n} curves from {len(stacks)} series", file=sys.stderr)
    mask = _phase_mask(args)
    if mask:
        print(f"curves seen without the lines of {mask.describe()}", file=sys.stderr)
    encoder = pretrain(
        stacks,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        c=args.c,
        device=args.device,
        seed=args.seed,
        q_range=args.q_range,
        progress=progress_printer(),
        checkpoint=args.checkpoint,
        ignore_phases=mask,
    )
    path = encoder.save(out)
    print(f"wrote {path}", file=sys.stderr)
    report_training_check(encoder)


def report_training_check(encoder: Any) -> None:
    """Print the end-of-training check to stderr: its summary, then one warning per finding."""
    check = encoder.training_check
    if check is None:
        return
    print(f"training check: {check.summary()}", file=sys.stderr)
    for message in check.messages:
        _print_err(f"warning: {message}")


def _unique_names(stacks) -> None:
    seen: dict[str, int] = {}
    for s in stacks:
        seen[s.name] = seen.get(s.name, 0) + 1
    twice = sorted(k for k, v in seen.items() if v > 1)
    if twice:
        raise CommandError(
            f"several series are named {', '.join(twice)}; labels name series by folder name "
            "or file stem, so give each series a distinct name"
        )


def cmd_classify(args: argparse.Namespace) -> None:
    """Fit the linear classifier on the labels, write per-curve predictions, print boundaries."""
    from .encoder import Encoder
    from .io import read_labels_csv, write_predictions_csv
    from .results import classify_series

    stacks = _load_all(
        args.paths, args.wavelength, args.variable, args.pressure_from, args.pressure_scale
    )
    _unique_names(stacks)
    labels = read_labels_csv(args.labels)
    out = _output_path(args, inputs=[*args.paths, args.labels, args.model])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    classifier = _fit_classifier(encoder, stacks, labels, args)
    results, novelty = [], {}
    for stack in stacks:
        if stack.is_lazy:  # on disk: stream it in chunks, keep only the probabilities
            from .stream import predict_proba_chunked

            proba = predict_proba_chunked(classifier, stack)
            novelty[stack.name] = classifier.novelty(stack)
        else:
            embeddings = classifier.embed(stack)
            proba = classifier.predict_proba(embeddings)
            novelty[stack.name] = classifier.novelty(embeddings)
        _warn_constant_variable(stack)
        _warn_repeated_curves(stack)
        result = classify_series(
            classifier, stack, proba, labels.get(stack.name), novelty=novelty[stack.name]
        )
        results.append((stack, result.labels, result.probabilities))
        print("\n".join(result.describe()))
    path = write_predictions_csv(out, results, classifier.classes, novelty=novelty)
    print(f"wrote {path}", file=sys.stderr)


def cmd_suggest(args: argparse.Namespace) -> None:
    """Write the curves whose labels would help most (best first) and print them."""
    from .encoder import Encoder
    from .io import read_labels_csv
    from .io.proposals_csv import write_suggestions_csv
    from .suggest import suggest_curves

    if args.n < 1:
        raise CommandError(f"-n must be a whole number ≥ 1, got {args.n}")
    stacks = _load_all(args.paths, args.wavelength, args.variable)
    _unique_names(stacks)
    labels = read_labels_csv(args.labels) if args.labels else {}
    inputs = [*args.paths, args.labels, args.model]
    out = _output_path(args, inputs=[p for p in inputs if p])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    if not any(labels.values()):
        print("no labels yet: proposing curves spread over each series", file=sys.stderr)
    suggestions = suggest_curves(encoder, stacks, labels, args.n, seed=args.seed)
    for s in suggestions:
        known = f"  predicted {s.predicted} (p {s.confidence:.2f}), novelty {s.novelty:.2f}"
        print(f"{s.dataset} curve {s.index} ({s.variable:.4g}){known if s.predicted else ''}")
    path = write_suggestions_csv(out, suggestions, stacks)
    print(f"wrote {path}", file=sys.stderr)


def cmd_segment(args: argparse.Namespace) -> None:
    """Propose phases without labels: change points per series, matched across series."""
    from .encoder import Encoder
    from .io.proposals_csv import write_segments_csv
    from .segment import propose_phases

    stacks = _load_all(args.paths, args.wavelength, args.variable)
    _unique_names(stacks)
    out = _output_path(args, inputs=[p for p in [*args.paths, args.model] if p])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    segments = propose_phases(encoder, stacks)
    for series, stack in zip(segments, stacks, strict=True):
        print("\n".join(series.describe(stack)))
    path = write_segments_csv(out, segments, stacks)
    print(f"wrote {path}", file=sys.stderr)


def _warn_repeated_curves(stack: Any) -> None:
    from .stack import describe_repeated_curves

    message = describe_repeated_curves(stack)
    if message:
        _print_err(f"warning: {message}")


def _warn_constant_variable(stack: Any) -> None:
    if stack.n_curves > 1 and not float(stack.variable.max() - stack.variable.min()) > 0:
        value = f"{stack.variable[0]:g} {stack.variable_unit}".rstrip()
        _print_err(
            f"warning: {stack.name}: {stack.variable_name} is {value} on every curve, so "
            "boundaries cannot be placed in it and the phases are not kept in order; read "
            "the curve numbers, or pick another variable with --variable (--variable index: "
            "the acquisition order)"
        )


def _print_phase_order(classifier: Any, stack: Any) -> None:
    hint = "" if classifier.phase_order is None else " (--unordered: each curve on its own)"
    print(classifier.describe_phase_order(stack.variable_name) + hint, file=sys.stderr)


def cmd_watch(args: argparse.Namespace) -> None:
    """Classify a series, then every curve that arrives in its folder or HDF5 file, until stopped."""
    from .encoder import Encoder
    from .io import read_labels_csv
    from .live import LiveSeries, PredictionsCsvAppender, watcher_for

    path = Path(args.path).expanduser()
    (stack,) = _load_all([path], args.wavelength, args.variable)
    out_path = _output_path(args, inputs=[path, args.labels, args.model])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    labels = read_labels_csv(args.labels)
    classifier = _fit_classifier(encoder, [stack], labels, args)
    live = LiveSeries(stack, classifier, labels_given=labels.get(stack.name))
    watcher = watcher_for(path, live.stack, poll_s=args.poll, variable=args.variable)
    out = PredictionsCsvAppender(out_path, live.stack.variable_name, classifier.classes)
    out.append_live(live)
    _print_boundaries(live.stack.name, live.boundaries, live.labels, live.indices)
    waiting = f"{args.timeout:g} s without new curves" if args.timeout else "Ctrl-C"
    print(f"watching {path} every {args.poll:g} s (stops after {waiting})", file=sys.stderr)
    try:
        for arrivals in watcher.watch(timeout_s=args.timeout):
            update = live.add(arrivals)
            if update is None:
                continue
            out.append_live(live, update)  # a skipped curve: a row with its reason, no label
            if len(update.rows):
                print(
                    f"{live.stack.name}: +{len(update.rows)} curves (now {live.stack.n_curves}), "
                    f"last {update.labels[-1]!s}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
            if update.boundaries_changed:
                _print_boundaries(live.stack.name, update.boundaries, live.labels, live.indices)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    skipped = f", {len(live.skipped)} skipped" if live.skipped else ""
    print(f"wrote {out.path} ({live.stack.n_curves} curves{skipped})", file=sys.stderr)


def _print_boundaries(name: str, boundaries, labels, indices=None) -> None:
    """Print a series' summary (``results.describe_series``); ``indices``: each row's curve number."""
    from .results import describe_series

    print("\n".join(describe_series(name, labels, boundaries, indices=indices)), flush=True)


DEMO_LABEL_FRACTION = 0.05
DEMO_DOCKS = ("Data", "Labels", "Classify")


def cmd_demo(args: argparse.Namespace) -> None:
    """Open napari with a series (the Fe sample by default) and the docks; with --screenshot, run the whole path headless."""
    if args.screenshot:
        from ._files import check_output_path

        check_output_path(
            args.screenshot, inputs=[*args.paths, args.labels], overwrite=args.overwrite
        )
    with warnings.catch_warnings():
        # napari's start-up deprecation chatter is not for users of this command
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="System theme detection")
        import napari

        from ._widgets import get_session

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
        if args.screenshot:
            _demo_screenshot(viewer, session, args)
            return
        napari.run()
    finally:
        if args.screenshot:
            viewer.close()


def _demo_screenshot(viewer, session, args: argparse.Namespace) -> None:
    from qtpy.QtWidgets import QApplication

    for layer in session.series_layers:
        if not session.labels.get(session.compute_stack(layer).name):
            if "ground_truth" not in layer.metadata.get("xrdphase", {}):
                raise CommandError(
                    f"{layer.name} has no labels: give --labels LABELS.csv (dataset,index,label) "
                    "or use a simulated series"
                )
            n = session.apply_ground_truth(DEMO_LABEL_FRACTION, seed=args.seed, series=layer)
            print(f"{layer.name}: labelled {n} curves from the ground truth", file=sys.stderr)
    print(f"classifying with the {session.encoder_source} encoder", file=sys.stderr)
    found = session.classify(seed=args.seed)
    for name, boundaries in found.items():
        print(f"{name}:", file=sys.stderr)
        for boundary in boundaries:
            print(f"  {boundary}", file=sys.stderr)
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


PATHS_HELP = (
    "a series: a folder of .xy/.xye/.chi/.dat curves, or an .h5/.hdf5/.nxs (NeXus, Dioptas) "
    "or .npz file"
)
LABELS_HELP = (
    "CSV with columns dataset,index,label: dataset is the series' name as `xrdphase info` "
    "prints it (folder name or file stem), index the 0-based curve number"
)
MODEL_HELP = "encoder file from `xrdphase pretrain` (default: the encoder shipped with the package)"


def add_paths_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)


def add_seed_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"seed of {what}; the same seed gives the same result (default 0)",
    )


def add_labels_out_model_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add ``--labels``, ``--out`` and ``--model``: what classifying commands read and write."""
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help=LABELS_HELP)
    parser.add_argument("--out", required=True, metavar="PRED.csv", help=out_help)
    parser.add_argument("--model", metavar="MODEL", help=MODEL_HELP)


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output if it exists (an input file is never replaced)",
    )


def _output_path(args: argparse.Namespace, inputs: Sequence[Any]) -> Path:
    """Return ``args.out`` when writing it destroys nothing; else a one-line ``OutputError``."""
    from ._files import check_output_path

    return check_output_path(args.out, inputs=inputs, overwrite=getattr(args, "overwrite", False))


def add_pretraining_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add the options ``xrdphase pretrain`` and the DDP launcher share to ``parser``."""
    add_paths_argument(parser)
    parser.add_argument("--out", required=True, metavar="MODEL", help=out_help)
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=(DEFAULT_METHOD, *PAPER_METHODS),
        help=f"pretraining method (default {DEFAULT_METHOD}); the paper's: "
        + ", ".join(PAPER_METHODS),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        help=f"passes over all curves (default {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"curves per training step (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--c",
        type=float,
        default=DEFAULT_MOCO_WEIGHT,
        help=f"weight of the MoCo loss in specrrmoco (default {DEFAULT_MOCO_WEIGHT:g})",
    )
    add_seed_argument(parser, "the weights, augmentations and batches")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where to train: auto takes a CUDA GPU when there is one (default auto)",
    )
    parser.add_argument(
        "--q-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="q window (1/Å) the encoder reads, inside the range every series covers "
        "(default: all of that range)",
    )
    add_wavelength_argument(parser)
    add_variable_argument(parser)
    add_overwrite_argument(parser)


def cmd_phases(args: argparse.Namespace) -> None:
    """Print the built-in phases (or the named ones): structure, scales, references."""
    from .phases import builtin_phase_names, get_phase
    from .phases.eos import EOS_FORMS

    names = args.names or builtin_phase_names()
    print("Equations of state are 300 K isotherms; * marks each phase's default scale.")
    for name in names:
        phase = get_phase(name)
        cell = phase.cell()
        size = f"a = {cell.a:.4f} Å" + (f", c = {cell.c:.4f} Å" if cell.c != cell.a else "")
        print(f"\n{phase.name}  {phase.structure}, {size} at 0 GPa ({phase.source})")
        for scale_name, eos in phase.scales.items():
            mark = "*" if scale_name == phase.default_scale else " "
            print(
                f"  {mark} {scale_name:<17} {EOS_FORMS[eos.form]:<26} V0 = {eos.v0:9.4f} Å³  "
                f"K0 = {eos.k0:7.2f} GPa  K0' = {eos.k0p:.3f}"
            )
            print(f"      {eos.reference}")
            if eos.note:
                print(f"      ({eos.note})")
        if args.lines is not None:
            print(f"    reflections at {args.lines:g} GPa:")
            for line in phase.reflections(args.lines):
                mult = "" if line.multiplicity is None else f"  m = {line.multiplicity}"
                print(f"      {line.label:<10} d = {line.d:.4f} Å  I = {line.intensity:5.1f}{mult}")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``xrdphase`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="xrdphase",
        description="Find phase transitions in series of 1D X-ray diffraction curves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="summarise series (folders of .xy/.chi/..., .h5/.nxs, .npz)")
    add_paths_argument(info)
    add_wavelength_argument(info)
    add_variable_argument(info)
    info.set_defaults(func=cmd_info)

    sim = sub.add_parser("simulate", help="write the simulated paper suite D1–D9 with labels.csv")
    sim.add_argument(
        "outdir", metavar="OUTDIR", help="folder to write the series and labels.csv to"
    )
    sim.add_argument(
        "--suite", choices=["paper"], default="paper", help="which suite (default paper: D1–D9)"
    )
    sim.add_argument(
        "--format",
        choices=sorted(SIMULATION_FORMATS),
        default="h5",
        help="h5: one NeXus file per series; xy: one folder of .xy curves per series; "
        "npz: one NumPy archive per series (default h5)",
    )
    add_seed_argument(sim, "the simulation")
    sim.add_argument("--points", type=int, default=4000, help="points per curve (default 4000)")
    add_overwrite_argument(sim)
    sim.set_defaults(func=cmd_simulate)

    pre = sub.add_parser("pretrain", help="pretrain an encoder without labels")
    add_pretraining_arguments(pre, out_help="model file to write (.safetensors)")
    pre.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write the training state here after every epoch and resume from it if it exists "
        "(default: no checkpoint)",
    )
    add_pressure_from_argument(pre)
    add_ignore_phases_arguments(pre, model_default=False)
    pre.set_defaults(func=cmd_pretrain)

    cls = sub.add_parser("classify", help="classify every curve from a few labelled ones")
    add_paths_argument(cls)
    add_labels_out_model_arguments(cls, out_help="predictions CSV to write, one row per curve")
    add_classifier_arguments(cls)
    add_ignore_phases_arguments(cls, model_default=True)
    add_wavelength_argument(cls)
    add_variable_argument(cls)
    add_pressure_from_argument(cls)
    add_overwrite_argument(cls)
    cls.set_defaults(func=cmd_classify)

    watch = sub.add_parser(
        "watch", help="classify a series, then each new curve in its folder or HDF5 file (live)"
    )
    watch.add_argument("path", metavar="PATH", help="a folder of curve files or an HDF5/NeXus file")
    add_labels_out_model_arguments(watch, out_help="predictions CSV, appended as curves arrive")
    watch.add_argument(
        "--poll", type=float, default=0.5, help="seconds between looks for new curves (default 0.5)"
    )
    watch.add_argument(
        "--timeout", type=float, default=None, metavar="S",
        help="stop after S seconds without new curves (default: run until Ctrl-C)",
    )  # fmt: skip
    add_classifier_arguments(watch)
    add_ignore_phases_arguments(watch, model_default=True)
    add_wavelength_argument(watch)
    add_variable_argument(watch)
    add_overwrite_argument(watch)
    watch.set_defaults(func=cmd_watch)

    sug = sub.add_parser(
        "suggest", help="propose the curves to label next (works with no labels too)"
    )
    add_paths_argument(sug)
    sug.add_argument(
        "--labels", metavar="LABELS.csv",
        help=LABELS_HELP + " (default: none yet; curves spread over each series are proposed)",
    )  # fmt: skip
    sug.add_argument(
        "--out", required=True, metavar="SUGGEST.csv",
        help="CSV to write: dataset,index,<variable>,predicted,confidence,novelty, best first",
    )  # fmt: skip
    sug.add_argument("-n", type=int, default=5, help="how many curves to propose (default 5)")
    sug.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    add_seed_argument(sug, "the classifier's folds and the clustering without labels")
    add_wavelength_argument(sug)
    add_variable_argument(sug)
    add_overwrite_argument(sug)
    sug.set_defaults(func=cmd_suggest)

    segm = sub.add_parser(
        "segment", help="propose phases without labels: change points along each series"
    )
    add_paths_argument(segm)
    segm.add_argument(
        "--out", required=True, metavar="SEGMENTS.csv",
        help="CSV to write, one row per curve: dataset,index,<variable>,segment (S1, S2, ...)",
    )  # fmt: skip
    segm.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    add_wavelength_argument(segm)
    add_variable_argument(segm)
    add_overwrite_argument(segm)
    segm.set_defaults(func=cmd_segment)

    demo = sub.add_parser(
        "demo", help="open napari with the sample series (or PATHs) and the docks"
    )
    demo.add_argument(
        "paths", nargs="*", metavar="PATH", help=PATHS_HELP + " (default: the simulated Fe sample)"
    )
    demo.add_argument("--labels", metavar="LABELS.csv", help=LABELS_HELP)
    demo.add_argument(
        "--screenshot", metavar="OUT.png",
        help="label a few curves, classify, save a screenshot of the window and exit",
    )  # fmt: skip
    add_seed_argument(demo, "the labelled curves and the classifier")
    add_overwrite_argument(demo)
    demo.set_defaults(func=cmd_demo)

    phases = sub.add_parser(
        "phases", help="list the built-in pressure markers and media with their scales"
    )
    phases.add_argument(
        "names", nargs="*", metavar="PHASE",
        help="built-in phase names or .jcpds files to describe (default: every built-in phase)",
    )  # fmt: skip
    phases.add_argument(
        "--lines", type=float, default=None, metavar="GPA",
        help="also list each phase's reflections (hkl, d, multiplicity, intensity) at GPA, "
        "with the default scale (default: no reflections)",
    )  # fmt: skip
    phases.set_defaults(func=cmd_phases)

    pressure = sub.add_parser(
        "pressure", help="fit the pressure of every curve from the lines of a calibrant"
    )
    add_paths_argument(pressure)
    pressure.add_argument(
        "--calibrant", required=True, metavar="NAME",
        help="the pressure marker in the sample: a built-in phase (Au, Pt, …; see `xrdphase "
        "phases`) or a .jcpds file",
    )  # fmt: skip
    pressure.add_argument(
        "--scale", metavar="NAME",
        help="pressure scale of the calibrant (default: its default scale)",
    )  # fmt: skip
    pressure.add_argument(
        "--out", required=True, metavar="PRESSURE.csv",
        help="CSV to write: dataset,index,pressure_gpa,pressure_sigma_gpa,lines_used (pressure "
        "empty where the fit failed)",
    )  # fmt: skip
    add_wavelength_argument(pressure)
    add_variable_argument(pressure)
    add_overwrite_argument(pressure)
    pressure.set_defaults(func=cmd_pressure)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xrdphase`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *a, **k: _print_err(f"warning: {msg}")
        try:
            args.func(args)
        except BrokenPipeError:  # the reader went away (`xrdphase info ... | head`): not an error
            # stdout can no longer be flushed at exit: point it at devnull, as Python's docs advise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        # every error a user can cause is a ValueError subclass (ReaderError, StackError,
        # LabelError, ModelError, ClassifierError) or an OSError
        except (CommandError, ValueError, OSError) as exc:
            _print_err(f"error: {exc}")
            return 2
        except KeyboardInterrupt:
            _print_err("interrupted")
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
