"""``xrdphase classify``, ``watch``, ``suggest`` and ``segment``: labels in, phases out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import (
    CommandError,
    _load_all,
    _output_path,
    _print_boundaries,
    _print_phase_order,
    _print_pressure,
    _unique_names,
    _warn_constant_variable,
    _warn_repeated_curves,
)


def _fit_classifier(encoder: Any, stacks: list, labels: dict, args: argparse.Namespace) -> Any:
    """Fit the classifier as the ``add_classifier_arguments`` options say and print its summary."""
    from ..classify import fit_classifier
    from ..defaults import MAX_PROBE_STRAIN

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


def _phase_mask(args: argparse.Namespace) -> Any:
    """Return the ``PhaseMask`` that ``--ignore-phases`` asks for, or None (not given)."""
    from ..phases.masking import PhaseMask, parse_phase_list

    if args.ignore_phases is None:
        return None
    names = parse_phase_list(args.ignore_phases)
    return PhaseMask(names, width=args.ignore_width) if names else ()


def _resolved_mask(args: argparse.Namespace, encoder: Any) -> Any:
    """Return the ``PhaseMask`` to use (``--ignore-phases``, else the encoder's), printing it; or None."""
    from ..phases.masking import resolve_mask

    mask = resolve_mask(_phase_mask(args), encoder)
    if mask is not None:
        print(f"curves seen without the lines of {mask.describe()}", file=sys.stderr)
    return mask


def cmd_classify(args: argparse.Namespace) -> None:
    """Fit the linear classifier on the labels, write per-curve predictions, print boundaries."""
    from ..encoder import Encoder
    from ..io import read_labels_csv, write_predictions_csv
    from ..results import classify_series

    stacks = _load_all(
        args.paths, args.wavelength, args.variable, args.pressure_from, args.pressure_scale
    )
    _unique_names(stacks)
    labels = read_labels_csv(args.labels)
    out = _output_path(args, inputs=[*args.paths, args.labels, args.model])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    if getattr(args, "compare_encoders", False):
        _compare_with_builtin(encoder, stacks, labels, args)
    classifier = _fit_classifier(encoder, stacks, labels, args)
    results, novelty = [], {}
    for stack in stacks:
        if stack.is_lazy:  # on disk: stream it in chunks, keep only probabilities and novelty
            from ..stream import predict_chunked

            proba, novelty[stack.name] = predict_chunked(classifier, stack)
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


def _compare_with_builtin(
    encoder: Any, stacks: list, labels: dict, args: argparse.Namespace
) -> None:
    """Print the cross-validated scores of ``--model`` and the built-in encoder on the labels."""
    from ..classify import compare_encoders, describe_comparison
    from ..encoder import Encoder

    if not args.model:
        raise CommandError(
            "--compare-encoders compares a --model with the built-in encoder: give --model"
        )
    comparison = compare_encoders(
        {str(args.model): encoder, "built-in encoder": Encoder.builtin()}, stacks, labels,
        seed=args.seed, ordered=not args.unordered, strain=args.strain,
        whitening_strain=args.whitening_strain, ignore_phases=_phase_mask(args),
    )  # fmt: skip
    for line in describe_comparison(comparison):
        print(f"compare: {line}", file=sys.stderr)


def cmd_suggest(args: argparse.Namespace) -> None:
    """Write the curves whose labels would help most (best first) and print them."""
    from ..encoder import Encoder
    from ..io import read_labels_csv
    from ..io.proposals_csv import write_suggestions_csv
    from ..suggest import suggest_curves

    if args.n < 1:
        raise CommandError(f"-n must be a whole number ≥ 1, got {args.n}")
    stacks = _load_all(
        args.paths, args.wavelength, args.variable, args.pressure_from, args.pressure_scale
    )
    _unique_names(stacks)
    labels = read_labels_csv(args.labels) if args.labels else {}
    inputs = [*args.paths, args.labels, args.model]
    out = _output_path(args, inputs=[p for p in inputs if p])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    mask = _resolved_mask(args, encoder)
    if not any(labels.values()):
        print("no labels yet: proposing curves spread over each series", file=sys.stderr)
    suggestions = suggest_curves(
        encoder, stacks, labels, args.n, seed=args.seed, ignore_phases=mask or ()
    )
    for s in suggestions:
        known = f"  predicted {s.predicted} (p {s.confidence:.2f}), novelty {s.novelty:.2f}"
        print(f"{s.dataset} curve {s.index} ({s.variable:.4g}){known if s.predicted else ''}")
    path = write_suggestions_csv(out, suggestions, stacks)
    print(f"wrote {path}", file=sys.stderr)


def cmd_segment(args: argparse.Namespace) -> None:
    """Propose phases without labels: change points per series, matched across series."""
    from ..encoder import Encoder
    from ..io.proposals_csv import write_segments_csv
    from ..segment import propose_phases

    stacks = _load_all(
        args.paths, args.wavelength, args.variable, args.pressure_from, args.pressure_scale
    )
    _unique_names(stacks)
    out = _output_path(args, inputs=[p for p in [*args.paths, args.model] if p])
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    segments = propose_phases(encoder, stacks, ignore_phases=_resolved_mask(args, encoder) or ())
    for series, stack in zip(segments, stacks, strict=True):
        print("\n".join(series.describe(stack)))
    path = write_segments_csv(out, segments, stacks)
    print(f"wrote {path}", file=sys.stderr)


def cmd_watch(args: argparse.Namespace) -> None:
    """Classify a series, then every curve that arrives in its folder or HDF5 file, until stopped."""
    from ..encoder import Encoder
    from ..io import read_labels_csv
    from ..io.predictions_csv import own_variable_names
    from ..live import LiveSeries, PredictionsCsvAppender, watcher_for

    path = Path(args.path).expanduser()
    (own,) = _load_all([path], args.wavelength, args.variable)
    out_path = _output_path(args, inputs=[path, args.labels, args.model])
    stack, track = own, None
    if args.pressure_from is not None:  # as classify: a curve without a pressure is refused
        from ..pressure import PressureTrack, stack_with_pressure

        track = PressureTrack(args.pressure_from, args.pressure_scale)
        stack = stack_with_pressure(own, track.begin(own))
        _print_pressure(stack)
    encoder = Encoder.load(args.model) if args.model else Encoder.builtin()
    labels = read_labels_csv(args.labels)
    classifier = _fit_classifier(encoder, [stack], labels, args)
    live = LiveSeries(stack, classifier, labels_given=labels.get(stack.name), pressure=track)
    # new curves bring the series' own variable (metadata.csv, HDF5), whatever replaced it
    watcher = watcher_for(path, own, poll_s=args.poll, variable=args.variable)
    out = PredictionsCsvAppender(
        out_path, live.stack.variable_name, classifier.classes, own_variable_names([live.stack])
    )
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
                last = update.rows[-1]
                at = ""
                if track is not None and not live.missing[last]:
                    at = f" at {live.stack.variable[last]:.2f} GPa"
                print(
                    f"{live.stack.name}: +{len(update.rows)} curves (now {live.stack.n_curves}), "
                    f"last {update.labels[-1]!s}{at}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
            if update.boundaries_changed:
                _print_boundaries(live.stack.name, update.boundaries, live.labels, live.indices)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    _print_boundaries(live.stack.name, live.boundaries, live.labels, live.indices)
    skipped = f", {len(live.skipped)} skipped" if live.skipped else ""
    if track is not None and live.missing.any():
        skipped += f", {int(live.missing.sum())} without a pressure"
    print(f"wrote {out.path} ({live.stack.n_curves} curves{skipped})", file=sys.stderr)
