"""``xrdphase segment`` with no labels against the simulated truth, on both simulators.

For every series of the paper suite (``napari_xrdphase.synth.paper_suite``) and of the
independent simulator (``benchmarks.independent_suite``, written to disk and read back):
the adjusted Rand index of ``propose_phases``' segments against the true phases, the phases
found per series against the true number, and two references on the same series:

* ``ari_unaligned``: the same pipeline on the embeddings of the curves as measured (no strain
  alignment): what the alignment brings;
* ``ari_true_count``: the least-squares change-of-mean split of the aligned embeddings with the
  true number of changes (``ruptures.Dynp``): what a perfect penalty would reach with that cost.

The target (issue 22): ARI ≥ 0.9 on every compression series, with the right number of phases.

    python -m benchmarks.segment [--seed 0] [--out DIR]

Writes DIR/segment.json and DIR/segment.md (default DIR: benchmarks/results/segment).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks._report import write_report


def adjusted_rand(truth, found) -> float:
    """Adjusted Rand index of two labellings (sklearn's)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(truth), np.asarray(found)))


def segment_scores(encoder, stacks, truth, decompression, raw_embeddings=None):
    """Per series: ARI, phases and changes found / true, and the two references."""
    from napari_xrdphase.segment import propose_phases, strain_aligned

    aligned = {s.name: encoder.embed(strain_aligned(s)) for s in stacks}
    found = propose_phases(encoder, stacks, embeddings=aligned)
    raw = raw_embeddings or {s.name: encoder.embed(s) for s in stacks}
    unaligned = propose_phases(encoder, stacks, embeddings=raw)
    oracle = oracle_segments(stacks, aligned, truth)
    out = {}
    for stack, seg, plain in zip(stacks, found, unaligned, strict=True):
        y = np.asarray(truth[stack.name])
        out[stack.name] = {
            "ari": adjusted_rand(y, seg.labels),
            "phases_found": int(np.unique(seg.labels).size),
            "phases_true": int(np.unique(y).size),
            "breaks_found": len(seg.breaks),
            "breaks": [int(b) for b in seg.breaks],
            "breaks_true": [int(b) for b in np.flatnonzero(y[1:] != y[:-1]) + 1],
            "decompression": bool(decompression[stack.name]),
            "ari_unaligned": adjusted_rand(y, plain.labels),
            "ari_true_count": adjusted_rand(y, oracle[stack.name]),
        }
    return out


def oracle_segments(stacks, embeddings, truth, n_components=10):
    """The best change-of-mean cuts when the true number of changes is given (a ceiling).

    Embeddings standardised over all curves, PCA to ``n_components``; per series
    ``ruptures.Dynp`` (least squares, exact) with the true number of changes.
    """
    import ruptures as rpt
    from sklearn.decomposition import PCA

    everything = np.concatenate([embeddings[s.name] for s in stacks]).astype(np.float64)
    mean, std = everything.mean(axis=0), everything.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    pca = PCA(n_components=n_components, svd_solver="full").fit((everything - mean) / std)
    out = {}
    for stack in stacks:
        y = np.asarray(truth[stack.name])
        k = int((y[1:] != y[:-1]).sum())
        signal = pca.transform((embeddings[stack.name] - mean) / std)
        ends = rpt.Dynp(model="l2", min_size=3, jump=1).fit(signal).predict(n_bkps=k)
        out[stack.name] = np.repeat(np.arange(len(ends)), np.diff([0, *ends]))
    return out


def segment_table(segment):
    """Markdown rows, one per series, and the means over the compression series."""
    lines = [
        "| series | direction | ARI | phases found / true | changes found / true "
        "| ARI unaligned | ARI, true number of changes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in segment.items():
        direction = "decompression" if s["decompression"] else "compression"
        lines.append(
            f"| {name} | {direction} | {s['ari']:.2f} | {s['phases_found']} / {s['phases_true']}"
            f" | {s['breaks_found']} / {len(s['breaks_true'])} | {s['ari_unaligned']:.2f}"
            f" | {s['ari_true_count']:.2f} |"
        )
    comp = [s for s in segment.values() if not s["decompression"]]
    right = sum(s["phases_found"] == s["phases_true"] for s in comp)
    lines.append(
        f"\ncompression series: mean ARI {np.mean([s['ari'] for s in comp]):.2f} "
        f"(unaligned {np.mean([s['ari_unaligned'] for s in comp]):.2f}, true number of changes "
        f"{np.mean([s['ari_true_count'] for s in comp]):.2f}); ARI ≥ 0.9 in "
        f"{sum(s['ari'] >= 0.9 for s in comp)} of {len(comp)}; right number of phases in "
        f"{right} of {len(comp)}"
    )
    return lines


def suites(seed):
    """(name, stacks, truth, decompression) of the paper suite and the independent one."""
    from benchmarks.independent import load_written_suite
    from benchmarks.independent_suite import independent_suite
    from napari_xrdphase.synth import PAPER_SUITE, paper_suite

    paper = paper_suite(seed)
    yield (
        "paper",
        [s.stack for s in paper],
        {s.stack.name: np.asarray(s.labels) for s in paper},
        {spec.name: spec.decompression for spec in PAPER_SUITE},
    )
    design = independent_suite(seed)
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_written_suite(design, folder)
    yield (
        "independent",
        [s.stack for s in loaded],
        {s.stack.name: np.asarray(s.labels) for s in loaded},
        {s.name: s.decompression for s in design},
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segment", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of both suites (default 0)")
    parser.add_argument(
        "--out",
        default="benchmarks/results/segment",
        help="folder of segment.json / .md (default %(default)s)",
    )
    args = parser.parse_args(argv)

    from napari_xrdphase.encoder import Encoder

    encoder = Encoder.builtin()
    started = time.perf_counter()
    out = {"settings": vars(args).copy(), "suites": {}}
    lines = [
        "# segment (no labels) against the simulated truth",
        "",
        f"Built-in encoder, `propose_phases` defaults, suites of seed {args.seed}.",
    ]
    for name, stacks, truth, decompression in suites(args.seed):
        scores = segment_scores(encoder, stacks, truth, decompression)
        out["suites"][name] = scores
        lines += ["", f"## {name} suite", "", *segment_table(scores)]
    out["seconds"] = time.perf_counter() - started
    lines.append(f"\ntotal {out['seconds']:.0f} s")
    write_report(args.out, "segment", out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
