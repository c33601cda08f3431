"""Phases proposed without labels: change points along each series, matched across series.

``propose_phases(encoder, stacks)`` returns one ``SeriesSegments`` per series:

1. **Features.** The encoder's embeddings of every curve of every series, standardised over
   all curves and reduced by PCA to ``N_COMPONENTS`` (10) components; each component is then
   divided by its noise level, estimated from the differences of consecutive curves
   (median absolute difference / (0.6745·√2), pooled over the series), so that curve-to-curve
   noise has unit variance in every component.
2. **Change points.** Along each series in acquisition order, ``ruptures.Pelt`` with the
   least-squares cost (``model="l2"``: a change of the mean) and a BIC-like penalty
   ``pen = PENALTY_FACTOR · d · ln n`` (d components, n curves). A plain BIC would take a
   factor near 2; the embeddings drift with pressure within a phase (lines move), which a
   change-of-mean cost reads as many small changes, so the factor is 30 (on the simulated paper
   suite, factors 10 / 30 / 100 gave 7–27 / 5–14 / 2–9 changes per series against 1–2 true
   ones; docs/labelling.md has the scores), segments at least ``MIN_SEGMENT`` (3) curves long.
3. **Common phases.** The segments' mean features are clustered across all series
   (average-linkage agglomerative clustering, scipy) with a distance threshold of
   ``MERGE_FACTOR`` (3) times the median within-segment spread (root-mean-square distance
   of a segment's curves to its mean): segments closer than curves of one segment are to each
   other are the same provisional phase. Phases are named S1, S2, ... in order of their first
   curve (series in the given order).

Only numpy, scipy, scikit-learn and ruptures; the encoder needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stack import SpectraStack, StackError

N_COMPONENTS = 10
PENALTY_FACTOR = 30.0
MIN_SEGMENT = 3
MERGE_FACTOR = 3.0


@dataclass
class SeriesSegments:
    """One series cut into segments, each named after its provisional phase."""

    name: str
    labels: np.ndarray  # the phase (S1, S2, ...) of every curve
    breaks: list[int] = field(default_factory=list)  # first curve of each segment but the first

    def describe(self, stack: SpectraStack | None = None) -> list[str]:
        """Return the summary lines: the segments with their curves (and variable range)."""
        lines = [f"{self.name}:"]
        starts = [0, *self.breaks]
        stops = [*self.breaks, len(self.labels)]
        for start, stop in zip(starts, stops, strict=True):
            where = f"curves {start}–{stop - 1}"
            if stack is not None:
                values = np.asarray(stack.variable, dtype=float)[start:stop]
                if np.all(np.isfinite(values)) and values.size:
                    unit = f" {stack.variable_unit}".rstrip()
                    where += f", {stack.variable_name} {values.min():.3g}–{values.max():.3g}{unit}"
            lines.append(f"  {self.labels[start]}: {where}")
        if self.breaks:
            lines.append(
                "  proposed boundaries before curves " + ", ".join(str(b) for b in self.breaks)
            )
        else:
            lines.append("  no change found: one segment")
        return lines


def propose_phases(
    encoder: Any,
    stacks: Sequence[SpectraStack],
    *,
    embeddings: Mapping[str, np.ndarray] | None = None,
    penalty_factor: float = PENALTY_FACTOR,
    merge_factor: float = MERGE_FACTOR,
    min_segment: int = MIN_SEGMENT,
    ignore_phases: Any = None,
) -> list[SeriesSegments]:
    """Return each series cut at its change points, segments named by common phase S1, S2, ...

    ``embeddings`` {series: curves × features}: the encoder's, when already computed.
    ``ignore_phases`` (names such as ``["Pt", "Ne"]``, 'Pt,Ne' or a ``PhaseMask``): the lines
    of these markers and media, at each curve's pressure, are fitted and subtracted before
    the curves are embedded (``phases.masking``); None: what the encoder was pretrained with,
    ``[]``: nothing.
    """
    import ruptures as rpt
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.decomposition import PCA

    stacks = list(stacks)
    if not stacks:
        raise StackError("no series to segment")
    if not (penalty_factor > 0 and merge_factor > 0):
        raise StackError("the penalty and merge factors must be positive numbers")
    given = embeddings or {}
    if any(s.name not in given for s in stacks):
        from .phases.masking import masked_stacks

        stacks, _ = masked_stacks(stacks, ignore_phases, encoder)
    emb = [
        np.asarray(given[s.name] if s.name in given else encoder.embed(s), dtype=np.float64)
        for s in stacks
    ]
    everything = np.concatenate(emb)
    mean, std = everything.mean(axis=0), everything.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    n_components = int(min(N_COMPONENTS, everything.shape[1], everything.shape[0] - 1))
    pca = PCA(n_components=max(n_components, 1), svd_solver="full").fit((everything - mean) / std)
    reduced = [pca.transform((e - mean) / std) for e in emb]
    steps = np.concatenate([np.abs(np.diff(r, axis=0)) for r in reduced if r.shape[0] > 1])
    noise = np.median(steps, axis=0) / (0.6745 * np.sqrt(2.0)) if steps.size else None
    if noise is None:
        noise = np.ones(reduced[0].shape[1])
    noise = np.where(noise > 0, noise, 1.0)
    signals = [r / noise for r in reduced]

    cuts = []
    for signal in signals:
        n, d = signal.shape
        if n < 2 * min_segment:
            cuts.append([n])
            continue
        pen = penalty_factor * d * np.log(n)
        algo = rpt.Pelt(model="l2", min_size=int(min_segment), jump=1).fit(signal)
        cuts.append([int(b) for b in algo.predict(pen=pen)])

    means, spreads, owners = [], [], []
    for s, (signal, ends) in enumerate(zip(signals, cuts, strict=True)):
        start = 0
        for stop in ends:
            part = signal[start:stop]
            centre = part.mean(axis=0)
            means.append(centre)
            spreads.append(np.sqrt(((part - centre) ** 2).sum(axis=1).mean()))
            owners.append((s, start, stop))
            start = stop
    threshold = merge_factor * float(np.median(spreads)) if spreads else 1.0
    if len(means) > 1:
        tree = linkage(np.asarray(means), method="average")
        group = fcluster(tree, t=threshold, criterion="distance")
    else:
        group = np.ones(1, dtype=int)
    names: dict[int, str] = {}
    for g in group:  # S1, S2, ... in order of first appearance
        names.setdefault(int(g), f"S{len(names) + 1}")
    out = []
    for s, stack in enumerate(stacks):
        labels = np.empty(stack.n_curves, dtype=object)
        breaks = []
        for (owner, start, stop), g in zip(owners, group, strict=True):
            if owner != s:
                continue
            labels[start:stop] = names[int(g)]
            if start > 0 and labels[start - 1] != names[int(g)]:
                breaks.append(start)
        out.append(SeriesSegments(stack.name, labels.astype(str), breaks))
    return out
