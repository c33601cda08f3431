"""Did a pretraining learn anything? The check run at the end of every pretraining.

A pretraining that learned nothing ends quietly: the losses sit at the values a model that
guesses gets, and the encoder it writes is no better than an untrained one. ``check_training``
looks at three things and turns each problem into one plain sentence that says what to do
instead (a :class:`Finding`):

- ``chance_losses``: the last epochs' mean of every loss that compares curves is still at its
  chance value (:func:`chance_losses` gives them);
- ``collapsed``: the encoder gives (almost) the same embedding to every curve it was trained on;
- ``few_curves``: fewer curves than the method was ever measured to need.

The verdict (:class:`TrainingCheck`) is stored in the encoder's config under
``"training_check"`` (so in the model file), printed by ``xrdphase pretrain``, shown by the
Encoder dock and read back by ``Encoder.training_check``. No torch, no Qt: the embeddings are
computed by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CHANCE_TOLERANCE",
    "MIN_CURVES",
    "MIN_EFFECTIVE_RANK",
    "Finding",
    "PretrainingWarning",
    "TrainingCheck",
    "chance_losses",
    "check_curve_count",
    "check_embeddings",
    "check_losses",
    "check_training",
    "embedding_statistics",
]

CHECK_VERSION = 1
# A loss counts as "at chance" while the mean of the last epochs is above (1 − 3 %) × chance.
# At chance the per-epoch means scatter by < 0.5 % (inter, external; up to ±2 % for intra, which
# draws one piece pair per curve); the built-in encoder's external loss was 3.5 % below chance
# after 9 of its 60 epochs and 46 % below at the end, its inter loss 45 % below.
CHANCE_TOLERANCE = 0.03
# the mean of the last quarter of the epochs, at most this many and at least one
MAX_EPOCHS_AVERAGED = 5
# Steps the built-in encoder needed (1516 curves, batch 128, 12 steps per epoch) before a loss
# fell 3 % below chance: external after 9 epochs (108 steps), inter after 23 (276 steps).
STEPS_TO_LEAVE_CHANCE = (108, 276)
# Fewer curves than two batches of the default size (128): every encoder measured in
# docs/benchmarks.md was pretrained on 872–1,516 curves, and with fewer than 256 an epoch is at
# most two optimisation steps, so the default 60 epochs stay below the ~110–280 steps the
# built-in encoder needed before its losses left chance.
MIN_CURVES = 256
# the embeddings of at most this many curves (evenly spaced over the training curves) are checked
EMBEDDING_SAMPLE = 512
# An output varies when its standard deviation over the curves is above this fraction of its
# largest magnitude (float32 resolves ~1e-7; an untrained encoder's outputs vary by ~2e-4 of
# their size and still classify, once standardised).
VARYING_RELATIVE_STD = 1e-6
# Below this effective rank the embeddings vary along about one direction. Trained encoders gave
# 2.6–9 on one 50-curve series and 36 on the nine paper-suite series (the built-in encoder).
MIN_EFFECTIVE_RANK = 1.5

# losses that compare curves with each other decide whether a relational method learned; the
# intra-sample loss is left out: a background slope alone tells where in a curve a piece was cut
_DECIDING_TERMS = ("inter", "external")
NOT_LEARNED = ("chance_losses", "collapsed")
INSTEAD = "use the built-in encoder instead (leave out --model; in the Encoder dock: Use built-in)"


class PretrainingWarning(UserWarning):
    """A pretrained encoder whose end-of-training check found that it did not learn."""


@dataclass(frozen=True)
class Finding:
    """One problem found by the check: ``kind`` (``chance_losses``, ``collapsed``, ``few_curves``)
    and a ``message``, one plain sentence that says what to do instead."""

    kind: str
    message: str


@dataclass(frozen=True)
class TrainingCheck:
    """The verdict on a pretraining: its findings and the numbers they rest on.

    ``final_losses`` are the means of the last ``epochs_averaged`` epochs, ``chance_losses``
    the values a model that learned nothing gets, ``embedding`` the statistics of
    :func:`embedding_statistics` (None when no embeddings were checked).
    """

    findings: tuple[Finding, ...] = ()
    final_losses: dict[str, float] = field(default_factory=dict)
    chance_losses: dict[str, float] = field(default_factory=dict)
    epochs_averaged: int = 0
    tolerance: float = CHANCE_TOLERANCE
    embedding: dict[str, float] | None = None
    n_curves: int = 0
    steps: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings

    @property
    def learned(self) -> bool:
        """False when the losses stayed at chance or the embedding collapsed."""
        return not any(f.kind in NOT_LEARNED for f in self.findings)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of the findings, in order."""
        return tuple(f.kind for f in self.findings)

    @property
    def messages(self) -> list[str]:
        """One sentence per finding."""
        return [f.message for f in self.findings]

    @property
    def problems(self) -> list[Finding]:
        """The findings that say the encoder did not learn (``chance_losses``, ``collapsed``)."""
        return [f for f in self.findings if f.kind in NOT_LEARNED]

    def warning(self) -> str:
        """Return the findings as one paragraph ("" when there are none)."""
        return " ".join(self.messages)

    def summary(self) -> str:
        """Return a one-line account of the check, for logs and the dock."""
        losses = ", ".join(
            f"{name} {self.final_losses[name]:.3f} (chance {chance:.3f})"
            for name, chance in self.chance_losses.items()
            if name in self.final_losses
        )
        parts = [losses] if losses else []
        if self.embedding:
            parts.append(
                f"embeddings of {int(self.embedding['n_curves'])} curves: "
                f"{int(self.embedding['varying_outputs'])} outputs vary, effective rank "
                f"{self.embedding['effective_rank']:.1f}"
            )
        verdict = "passed" if self.ok else ("did not learn" if not self.learned else "caution")
        return f"{verdict}: " + "; ".join(parts) if parts else verdict

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as plain JSON types (stored in the model file)."""
        return {
            "version": CHECK_VERSION,
            "ok": self.ok,
            "learned": self.learned,
            "findings": [{"kind": f.kind, "message": f.message} for f in self.findings],
            "final_losses": dict(self.final_losses),
            "chance_losses": dict(self.chance_losses),
            "epochs_averaged": self.epochs_averaged,
            "tolerance": self.tolerance,
            "embedding": None if self.embedding is None else dict(self.embedding),
            "n_curves": self.n_curves,
            "steps": self.steps,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TrainingCheck | None:
        """Return the verdict stored by :meth:`to_dict`; None when ``data`` is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("findings"), list):
            return None
        try:
            findings = tuple(
                Finding(str(f["kind"]), str(f["message"]))
                for f in data["findings"]
                if isinstance(f, Mapping)
            )
            embedding = data.get("embedding")
            return cls(
                findings=findings,
                final_losses=_floats(data.get("final_losses")),
                chance_losses=_floats(data.get("chance_losses")),
                epochs_averaged=int(data.get("epochs_averaged", 0)),
                tolerance=float(data.get("tolerance", CHANCE_TOLERANCE)),
                embedding=_floats(embedding) if isinstance(embedding, Mapping) else None,
                n_curves=int(data.get("n_curves", 0)),
                steps=int(data.get("steps", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _floats(values: Any) -> dict[str, float]:
    if not isinstance(values, Mapping):
        return {}
    return {str(k): float(v) for k, v in values.items() if isinstance(v, (int, float))}


# --- chance values ---------------------------------------------------------------------------
def _entropy(counts: Sequence[float] | np.ndarray) -> float:
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def piece_class_entropy(input_length: int, piece_size: float, n_classes: int) -> float:
    """Return the entropy of the intra-sample distance classes (the intra loss at chance).

    Both pieces start uniformly in [0, L − W) with W = int(piece_size · L), and the class is
    ``min(|s1 − s2| · 2C // L, C − 1)`` (``ssl.piece_distance_labels``); the classes are not
    equally likely (near pieces are the most common), so chance is below ln C: 1.589 for
    C = 5, piece size 0.2.
    """
    length = int(input_length)
    starts = length - int(piece_size * length)
    distance = np.arange(starts)
    # ordered pairs of starts at each distance: s pairs at 0, 2 (s − d) at d > 0
    pairs = np.where(distance == 0, starts, 2 * (starts - distance)).astype(np.float64)
    classes = np.minimum(distance * 2 * n_classes // length, n_classes - 1)
    return _entropy(np.bincount(classes, weights=pairs, minlength=n_classes))


def external_bin_entropy(series_sizes: Sequence[int], n_bins: int) -> float:
    """Return the entropy of the external-variable bins over all curves (that loss at chance).

    Each series is cut into ``n_bins`` equal parts in acquisition order
    (``ssl.series_bin_labels``); a head that learned nothing can still learn how often each bin
    occurs, so chance is the entropy of the pooled bins: ln n_bins when every series divides
    evenly (ln 5 = 1.609), a little less otherwise.
    """
    counts = np.zeros(int(n_bins))
    for size in series_sizes:
        size = int(size)
        if size > 0:
            counts += np.bincount((np.arange(size) * n_bins) // size, minlength=n_bins)
    return _entropy(counts) if counts.sum() else math.log(n_bins)


def chance_losses(
    objectives: Sequence[str],
    *,
    uses_moco: bool = False,
    input_length: int = 1024,
    piece_size: float = 0.2,
    n_piece_classes: int = 5,
    series_sizes: Sequence[int] = (),
    n_bins: int = 5,
    queue_size: int = 0,
) -> dict[str, float]:
    """Return each trained loss's value for an encoder that learned nothing.

    - ``inter``: ln 2 — binary cross-entropy on as many same-curve pairs as shifted pairs;
    - ``intra``: the entropy of the piece-distance classes (:func:`piece_class_entropy`);
    - ``external``: the entropy of the series-fifth bins (:func:`external_bin_entropy`);
    - ``moco``: 2 ln(queue + 1) — the symmetric InfoNCE is two cross-entropies over the positive
      key and ``queue_size`` negatives, each ln(queue + 1) when every logit is alike.

    The spread term is not a guess between classes and has no chance value.
    """
    out: dict[str, float] = {}
    if "inter" in objectives:
        out["inter"] = math.log(2)
    if "external" in objectives:
        out["external"] = external_bin_entropy(series_sizes, n_bins)
    if "intra" in objectives:
        out["intra"] = piece_class_entropy(input_length, piece_size, n_piece_classes)
    if uses_moco and queue_size > 0:
        out["moco"] = 2 * math.log(queue_size + 1)
    return out


def _chance_of_config(config: Mapping[str, Any]) -> dict[str, float]:
    training = config.get("training") or {}
    data = config.get("data") or {}
    moco_weight = training.get("moco_weight", 0)
    relational = moco_weight != "inf"
    return chance_losses(
        list(training.get("objectives") or []) if relational else [],
        uses_moco=bool(training.get("uses_moco")),
        input_length=int(training.get("input_length", config.get("input_length", 1024))),
        piece_size=float(training.get("piece_size", 0.2)),
        n_piece_classes=int(training.get("n_piece_classes", 5)),
        series_sizes=[int(s.get("n_curves", 0)) for s in data.get("stacks") or []],
        n_bins=int(training.get("n_bins", 5)),
        queue_size=int(training.get("queue_size", 0)),
    )


# --- the three checks ------------------------------------------------------------------------
def final_losses(history: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], int]:
    """Return the mean of each loss over the last epochs of ``history`` and how many were averaged.

    The last quarter of the epochs, at most :data:`MAX_EPOCHS_AVERAGED` and at least one: one
    epoch of a short run is noisy, the early epochs of a long one are not where it ended.
    """
    history = [h for h in history if isinstance(h, Mapping)]
    if not history:
        return {}, 0
    n = max(1, min(MAX_EPOCHS_AVERAGED, len(history) // 4))
    last = history[-n:]
    names = [name for name in last[-1] if all(name in h for h in last)]
    return {name: float(np.mean([float(h[name]) for h in last])) for name in names}, n


def _at_chance(value: float, chance: float, tolerance: float) -> bool:
    # NaN or a loss above chance did not learn either
    return not value < chance * (1.0 - tolerance)


def _chance_label(name: str, chance: float) -> str:
    for k in range(2, 11):
        if abs(chance - math.log(k)) < 5e-4:
            return f"ln {k} = {chance:.3f}"
    return f"{chance:.3f}"


def check_losses(
    final: Mapping[str, float],
    chance: Mapping[str, float],
    *,
    steps: int = 0,
    tolerance: float = CHANCE_TOLERANCE,
) -> Finding | None:
    """Return a ``chance_losses`` finding when the losses that compare curves are all at chance.

    Those are ``inter`` and ``external`` for the relational methods (``moco`` for MoCo alone,
    ``intra`` when it is the only one); a loss is at chance unless it is more than
    ``tolerance`` (relative) below its chance value. The intra-sample loss does not decide:
    where a piece was cut can be read from a curve's background alone.
    """
    deciding = [name for name in _DECIDING_TERMS if name in chance and name in final]
    if not deciding:
        deciding = [n for n in ("moco", "intra") if n in chance and n in final][:1]
    if not deciding:
        return None
    if not all(_at_chance(final[n], chance[n], tolerance) for n in deciding):
        return None
    shown = [n for n in ("inter", "external", "intra", "moco") if n in chance and n in final]
    values = "; ".join(f"{n} {final[n]:.3f}, chance {_chance_label(n, chance[n])}" for n in shown)
    moved = [
        n for n in shown if n not in deciding and not _at_chance(final[n], chance[n], tolerance)
    ]
    only = (
        f", and only the {' and '.join(moved)} loss moved, which does not compare curves"
        if moved
        else ""
    )
    after = f"after {steps} optimisation steps " if steps else ""
    more = ", or pretrain on more curves"
    if steps and steps < STEPS_TO_LEAVE_CHANCE[1]:
        more = (
            f", or pretrain longer on more curves (more epochs or a smaller batch size: the "
            f"built-in encoder's losses left chance only after {STEPS_TO_LEAVE_CHANCE[0]}–"
            f"{STEPS_TO_LEAVE_CHANCE[1]} steps)"
        )
    return Finding(
        "chance_losses",
        f"The pretraining learned nothing: {after}its losses are still at their chance values "
        f"({values}){only}, so this encoder is no better than an untrained one; {INSTEAD}"
        f"{more}.",
    )


def effective_rank(embeddings: np.ndarray) -> float:
    """Return exp(entropy) of the centred embeddings' normalised squared singular values (0 if constant)."""
    x = np.asarray(embeddings, dtype=np.float64)
    centred = x - x.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    energy = sv**2
    if not energy.sum() > 0:
        return 0.0
    return float(math.exp(_entropy(energy)))


def embedding_statistics(embeddings: np.ndarray) -> dict[str, float]:
    """Return how much (N, D) embeddings vary between curves.

    ``varying_outputs``: outputs whose standard deviation over the curves exceeds
    :data:`VARYING_RELATIVE_STD` of their largest magnitude; ``effective_rank``: see
    :func:`effective_rank`; ``mean_abs_cosine``: the mean |cosine| between two curves'
    centred embeddings (1: all on one line); ``finite``: 1 when every value is a number.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n, d = x.shape
    finite = bool(np.isfinite(x).all())
    stats = {"n_curves": float(n), "outputs": float(d), "finite": float(finite)}
    if not finite or n < 2:
        stats.update(varying_outputs=0.0, effective_rank=0.0, mean_abs_cosine=float("nan"))
        return stats
    std = x.std(axis=0)
    scale = np.abs(x).max(axis=0)
    varying = std > VARYING_RELATIVE_STD * scale
    centred = x - x.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    units = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    cosines = np.abs(units @ units.T)
    stats.update(
        varying_outputs=float(varying.sum()),
        effective_rank=effective_rank(x[:, varying]) if varying.any() else 0.0,
        mean_abs_cosine=float((cosines.sum() - np.trace(cosines)) / (n * (n - 1))),
    )
    return stats


def check_embeddings(stats: Mapping[str, float]) -> Finding | None:
    """Return a ``collapsed`` finding when the embeddings are not numbers, constant or one-dimensional."""
    n = int(stats.get("n_curves", 0))
    if n < 2:
        return None
    again = "pretrain again with another seed or method"
    if not stats.get("finite", 1):
        return Finding(
            "collapsed",
            f"The encoder's outputs on your curves are not numbers (NaN or infinity), so it "
            f"cannot be used; {INSTEAD}, or pretrain again with a lower learning rate.",
        )
    if stats.get("varying_outputs", 0) == 0:
        return Finding(
            "collapsed",
            f"The encoder collapsed: all {int(stats.get('outputs', 0))} of its outputs are the "
            f"same for the {n} curves checked, so every curve gets the same embedding and no "
            f"classifier can tell phases apart with it; {INSTEAD}, or {again}.",
        )
    rank = float(stats.get("effective_rank", 0.0))
    if rank < MIN_EFFECTIVE_RANK:
        return Finding(
            "collapsed",
            f"The encoder nearly collapsed: the embeddings of the {n} curves checked vary "
            f"along about one direction only (effective rank {rank:.2f}, below "
            f"{MIN_EFFECTIVE_RANK:g}), so the classifier can hardly tell phases apart with "
            f"it; {INSTEAD}, or {again}.",
        )
    return None


def check_curve_count(n_curves: int, min_curves: int = MIN_CURVES) -> Finding | None:
    """Return a ``few_curves`` finding for fewer than ``min_curves`` training curves."""
    if n_curves >= min_curves:
        return None
    return Finding(
        "few_curves",
        f"Only {n_curves} curves were pretrained on (fewer than {min_curves}): the encoders measured in docs/benchmarks.md were pretrained on 872–1,516 curves, "
        f"and at the default batch of 128 so few curves make at most two optimisation steps "
        f"per epoch; pretrain on more series together, or {INSTEAD}.",
    )


def check_training(
    config: Mapping[str, Any],
    embeddings: np.ndarray | None = None,
    *,
    tolerance: float = CHANCE_TOLERANCE,
    min_curves: int = MIN_CURVES,
) -> TrainingCheck:
    """Return the verdict on a pretraining from its encoder config and (optionally) embeddings.

    ``config`` is an encoder config as ``training.pretrain`` writes it (the loss history and
    settings under ``"training"``, the curve counts under ``"data"``); ``embeddings`` the
    trained encoder's embeddings of (a sample of) its training curves.
    """
    training = config.get("training") or {}
    data = config.get("data") or {}
    chance = _chance_of_config(config)
    final, n_averaged = final_losses(training.get("epoch_losses") or [])
    steps = int(training.get("steps_completed", 0) or 0)
    n_curves = int(data.get("n_curves", 0) or 0)
    findings = []
    found = check_losses(final, chance, steps=steps, tolerance=tolerance)
    if found is not None:
        findings.append(found)
    stats = None
    if embeddings is not None:
        stats = embedding_statistics(embeddings)
        found = check_embeddings(stats)
        if found is not None:
            findings.append(found)
    found = check_curve_count(n_curves, min_curves) if n_curves else None
    if found is not None:
        findings.append(found)
    return TrainingCheck(
        findings=tuple(findings),
        final_losses={k: v for k, v in final.items() if k != "total"},
        chance_losses=chance,
        epochs_averaged=n_averaged,
        tolerance=float(tolerance),
        embedding=stats,
        n_curves=n_curves,
        steps=steps,
    )
