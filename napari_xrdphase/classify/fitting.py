"""Linear evaluation: a linear classifier on frozen encoder embeddings of a few labelled curves.

Differences from the reference code (Sun et al. 2023, ``test_linear_Mocov2_RltRsn_1.py``):

- embeddings are standardised with the mean and standard deviation of the training part.
  ConvSC ends in a ReLU, so its features are non-negative with a large common mean: the
  loss then has one steep direction (all weights up, bias down) that makes SGD at the paper's
  learning rate 0.15 with momentum 0.9 oscillate, and how steep it is depends on the
  arbitrary scale of a given encoder's features. Standardised, the learning rate and the L2
  strength mean the same thing for every encoder;
- the cross-entropy takes logits (the reference applied a softmax first, which flattens the
  gradients);
- classes are weighted inversely to their number of labelled curves (the paper's 42 labels are
  15 before / 5 during / 25 after);
- early stopping watches the validation split only (the reference watched validation + test);
- ``solver="lbfgs"`` (the default): an L2-regularised multinomial logistic regression solved to
  convergence by L-BFGS (what scikit-learn's ``LogisticRegression`` does), its strength C
  chosen from ``LBFGS_C_GRID`` by stratified k-fold cross-validation of the labelled curves
  (k = 1 / ``val_fraction``), then refit on **every** labelled curve. ``solver="sgd"`` is the
  paper's protocol: SGD with momentum and early stopping on a held-out validation split, which
  never trains on those curves.

Why the refit: the paper protocol's 42 labels hold only 2 Fe "during" (coexistence) curves; a
25 % validation split can take one or both out of training, and the probe then never predicts
Fe "during" on other series. Built-in encoder, ``paper_suite`` data seeds 0 and 1 × 3 label
draws, weighted precision / recall: single split Fe 86.9 / 89.6, FeO 89.7 / 85.4;
cross-validation + refit Fe 91.5 / 89.6, FeO 93.1 / 91.0.

Why lbfgs is the default (the paper's protocol on simulated data): ``synth.paper_suite(seed=0)``
(D1–D9, 1,516 curves), 42 labelled curves drawn by ``benchmarks/protocol.sample_labels`` from
D1, D4, D5, D8, D9, every other curve as test set, 20 label draws per encoder. No pretrained
encoder existed yet, so the features come from ``Encoder.random(seed)`` (features of scale
0.0001–0.01, half or more of them constant). Test accuracy, mean ± std (worst draw):

=======  =====================  =====================  =====================
encoder  sgd, raw               sgd, standardised      lbfgs, standardised
=======  =====================  =====================  =====================
seed 1   0.301 ± 0.000 (0.301)  0.725 ± 0.061 (0.620)  0.768 ± 0.027 (0.717)
seed 2   0.354 ± 0.208 (0.125)  0.696 ± 0.051 (0.612)  0.758 ± 0.019 (0.729)
seed 3   0.192 ± 0.161 (0.125)  0.662 ± 0.070 (0.549)  0.742 ± 0.029 (0.655)
seed 4   0.507 ± 0.161 (0.125)  0.672 ± 0.049 (0.583)  0.745 ± 0.023 (0.693)
=======  =====================  =====================  =====================

On raw features this small SGD at lr 0.15 barely moves before early stopping fires: that is
the scale dependence standardisation removes. On standardised features L-BFGS is 4–8 points
more accurate than SGD with half the spread and a better worst case, needs no learning rate,
and depends on the seed only through the train/validation split (now: the folds). With ~32 training curves
in 128 dimensions the data are separable, so SGD's answer is decided by when early stopping
fires on ~10 validation curves; a smaller learning rate helps it only a little. (A second
check, 6 simpler simulated series with a random-projection encoder, agreed: lbfgs 0.880 ±
0.014, sgd standardised 0.851 ± 0.041, sgd raw 0.879 ± 0.015 there.)
"""

from __future__ import annotations

import contextlib
import math
import operator
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..defaults import MAX_PROBE_STRAIN, PROBE_STRAIN, PROBE_STRAIN_STEPS, PROBE_WHITENING_STRAIN
from ..phases.masking import PhaseMask, resolve_mask, unknown_pressure_note
from ..stack import SpectraStack
from .cache import FeatureCache, _embed_strained_subset, _rows_subset
from .classifier import (
    Classifier,
    ClassifierError,
    Embedder,
    FitSummary,
    _checked_embeddings,
    _standardisation,
)
from .labels import check_labels, labelled_phase_order, order_classes
from .whitening import _strain_whitening

SOLVERS = ("lbfgs", "sgd")


DEFAULT_SOLVER = "lbfgs"


# inverse regularisation strengths tried by the lbfgs solver (scikit-learn's C: the objective is
# C · Σ weighted CE + ½‖W‖²); the one with the lowest validation loss wins
LBFGS_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


LBFGS_C_WITHOUT_VALIDATION = 1.0


# training sets up to this size are trained full-batch by sgd; larger ones in mini-batches
SGD_FULL_BATCH_LIMIT = 1024


SGD_BATCH_SIZE = 256


EARLY_STOPPING_MIN_DELTA = 1e-6


def _stratified_split(
    codes: np.ndarray, classes: Sequence[str], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    train, val, notes = [], [], []
    for code, name in enumerate(classes):
        rows = rng.permutation(np.flatnonzero(codes == code))
        if val_fraction > 0 and rows.size == 1:
            notes.append(
                f"class {name!r} has a single labelled curve: it is used for training only, "
                "so validation cannot check it; label at least 2 curves per class"
            )
        n_val = 0
        if val_fraction > 0 and rows.size >= 2:
            n_val = min(max(1, round(val_fraction * rows.size)), rows.size - 1)
        val.extend(rows[:n_val].tolist())
        train.extend(rows[n_val:].tolist())
    if val_fraction > 0 and not val:
        notes.append("no curves left for validation; training stops on the training loss")
    return (
        np.sort(np.asarray(train, dtype=np.int64)),
        np.sort(np.asarray(val, dtype=np.int64)),
        notes,
    )


def _class_weights(train_codes: np.ndarray, n_classes: int, balanced: bool) -> np.ndarray:
    counts = np.bincount(train_codes, minlength=n_classes).astype(np.float64)
    if not balanced:
        return np.ones(n_classes)
    weights = np.zeros(n_classes)
    present = counts > 0
    # "balanced" as in scikit-learn: every class carries the same total weight
    weights[present] = train_codes.size / (present.sum() * counts[present])
    return weights


def fit_classifier(
    encoder: Embedder,
    stacks: Sequence[SpectraStack] | SpectraStack,
    labels: Mapping[str, Mapping[int, str]],
    *,
    seed: int = 0,
    val_fraction: float = 0.25,
    patience: int = 20,
    max_epochs: int = 1000,
    lr: float = 0.15,
    weight_decay: float = 1e-4,
    class_balanced: bool = True,
    solver: str = DEFAULT_SOLVER,
    ordered: bool = True,
    strain: float = PROBE_STRAIN,
    n_strained: int = PROBE_STRAIN_STEPS,
    whitening_strain: float = PROBE_WHITENING_STRAIN,
    progress: Callable[[int, int], object] | None = None,
    ignore_phases: PhaseMask | str | Sequence[str] | None = None,
    cache: FeatureCache | None = None,
) -> Classifier:
    """Return a linear classifier trained on the embeddings of the labelled curves.

    With ``ordered`` (the default), the classifier's ``phase_order`` is the classes sorted by
    the median external variable of their labelled curves (``labelled_phase_order``), and
    ``Classifier.predict`` keeps the phases in that order along each leg of a ramp; with
    ``ordered=False``, or where the labels give no order, it predicts each curve on its own.

    Each labelled curve is also embedded ``n_strained`` more times with its d-spacings
    scaled by strains evenly spaced in ±``strain`` (``SpectraStack.strained``), all with its
    label: the phase does not change when pressure squeezes the lattice, so the classifier
    must not tell phases by where their lines sit (``strain=0`` turns this off).

    Those copies teach ±``strain`` only. Labelled curves often sit far from the others of
    their phase (the first curves of a ramp, the last ones), so the features are also
    whitened against strain: on up to ``WHITENING_MAX_CURVES`` curves
    of all ``stacks`` (labelled or not, their labels unused) the change of the embedding
    under a small uniform strain is measured, and the directions it moves along are scaled
    down as if every curve carried a random strain of standard deviation
    ``whitening_strain`` (0 turns this off). The final weights fold this in, so the
    classifier stays one linear map of the embedding.

    Apart from that sample, only the labelled rows are embedded. ``lbfgs`` (the
    default) picks the regularisation strength by stratified cross-validation on the labelled
    curves and then refits on all of them; ``sgd`` (the paper's protocol) holds out a seeded
    per-class ``val_fraction`` of them for early stopping. Validation scores the unstrained
    curves whose copies were all held out. ``lr``, ``patience``, ``max_epochs`` and
    ``weight_decay`` apply to ``sgd``; ``progress(done, total)`` is called after each epoch
    (``sgd``) or each regularisation strength (``lbfgs``).

    ``ignore_phases`` (names such as ``["Pt", "Ne"]``, 'Pt,Ne' or a ``PhaseMask``): the lines
    of these pressure markers and media are fitted and subtracted from every curve before it is
    embedded, here and whenever the classifier predicts (``phases.masking``), placed at each
    curve's pressure (the external variable when it is a pressure in GPa; curves without one
    keep their lines, with a note). None: what the encoder was pretrained with, if anything;
    ``[]``: nothing.
    ``cache``: a ``FeatureCache`` of this encoder; the curves' embeddings, their strained
    copies and the whitening then come from it (computed there once), so that a refit after a
    new label embeds only that curve's strained copies.
    """
    if cache is not None and cache.encoder is not encoder:
        raise ValueError("the feature cache holds another encoder's embeddings")
    if not callable(getattr(encoder, "embed", None)):
        raise TypeError(f"encoder must have an embed method, got {type(encoder).__name__}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; use one of {SOLVERS}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    strains = probe_strains(strain, n_strained)
    if isinstance(stacks, SpectraStack):
        stacks = [stacks]
    mask = resolve_mask(ignore_phases, encoder)
    mask_notes = []
    if mask is not None:  # before the strained copies are made: they move the lines too
        results = [mask.apply(stack) for stack in stacks]
        stacks = [r.stack for r in results]
        mask_notes = [n for n in map(unknown_pressure_note, results) if n]
    labelled = check_labels(stacks, labels)
    classes = order_classes({name for _, _, names in labelled for name in names})
    code_of = {name: k for k, name in enumerate(classes)}
    codes = np.array([code_of[name] for _, _, names in labelled for name in names], dtype=np.int64)
    embeddings, curve_of_row = _labelled_embeddings(encoder, labelled, strains, cache)
    reference = embeddings[: codes.size].copy()  # the labelled curves themselves, for novelty
    if cache is not None:
        whitening, whitening_note = cache.whitening(stacks, whitening_strain)
    else:
        whitening, whitening_note = _strain_whitening(encoder, stacks, whitening_strain)
    if whitening is not None:
        embeddings = whitening.apply(embeddings)
    row_codes = codes[curve_of_row]

    train, val, notes = _stratified_split(codes, classes, val_fraction, seed)
    notes += mask_notes
    if whitening_note:
        notes.append(whitening_note)
    phase_order = None
    if ordered:
        phase_order, why_not = labelled_phase_order(labelled)
        if why_not:
            notes.append(why_not)
    if np.all(np.ptp(embeddings[: codes.size], axis=0) == 0):
        notes.append(
            "the encoder gives the same embedding for every labelled curve, so the classifier "
            "can only predict the most weighted class; use a trained encoder"
        )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    with _one_thread_if_small(embeddings.size):
        fit, mean, scale, validation = _solve(
            solver, embeddings, curve_of_row, codes, classes, row_codes, train, val,
            val_fraction=val_fraction, seed=seed, class_balanced=class_balanced,
            patience=patience, max_epochs=max_epochs, lr=lr, weight_decay=weight_decay,
            progress=progress,
        )  # fmt: skip
    summary = FitSummary(
        solver=solver,
        classes=classes,
        labels_per_class={c: int((codes == k).sum()) for k, c in enumerate(classes)},
        n_train=validation[0],
        n_val=validation[1],
        val_accuracy=validation[2],
        val_loss=validation[3],
        epochs=fit.epochs,
        best_epoch=fit.best_epoch,
        inverse_regularisation=fit.inverse_regularisation,
        seed=int(seed),
        class_balanced=bool(class_balanced),
        notes=tuple(notes),
        strain=float(strain) if strains.size else 0.0,
        n_strained=int(strains.size),
        whitening_strain=float(whitening_strain) if whitening is not None else 0.0,
        n_whitening_curves=whitening.n_curves if whitening is not None else 0,
        ignored_phases=None if mask is None else mask.as_dict(),
    )
    weight, bias = fit.weight.numpy(), fit.bias.numpy()
    if whitening is not None:
        weight, bias, mean, scale = whitening.fold(weight, bias, mean, scale)
    return Classifier(
        encoder, classes, weight, bias, mean, scale, summary=summary, phase_order=phase_order,
        reference=reference,
    )  # fmt: skip


# fits smaller than this (rows × features) run torch on one thread: a pool of threads only
# slows such tiny solves, many times over when the cores are busy (benchmarks/live_refit.py)
ONE_THREAD_FIT_SIZE = 1_000_000


@contextlib.contextmanager
def _one_thread_if_small(size: int) -> Iterator[None]:
    """Run the block with torch on one thread when ``size`` is small, then restore the count.

    With torch's OpenMP backend the thread count belongs to the calling thread, so a fit in a
    worker thread leaves other threads' embedding alone.
    """
    before = torch.get_num_threads()
    if size > ONE_THREAD_FIT_SIZE or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _solve(
    solver, embeddings, curve_of_row, codes, classes, row_codes, train, val, *, val_fraction,
    seed, class_balanced, patience, max_epochs, lr, weight_decay, progress,
):  # fmt: skip
    """Return (fit, mean, scale, (n_train, n_validation, accuracy, loss)) of ``solver``."""
    if solver == "lbfgs":
        return _fit_lbfgs_cross_validated(
            embeddings, curve_of_row, codes, len(classes), val_fraction, seed, class_balanced,
            progress,
        )  # fmt: skip
    train_rows = np.flatnonzero(np.isin(curve_of_row, train))
    mean, scale = _standardisation(embeddings[train_rows])
    x = torch.from_numpy((embeddings - mean) / scale)
    y = torch.from_numpy(row_codes)
    class_weight = torch.from_numpy(
        _class_weights(row_codes[train_rows], len(classes), class_balanced)
    )
    train_t, val_t = torch.from_numpy(train_rows), torch.from_numpy(val)  # val: unstrained
    fit = _fit_sgd(
        x[train_t], y[train_t], x[val_t], y[val_t], class_weight,
        seed=seed, patience=patience, max_epochs=max_epochs, lr=lr,
        weight_decay=weight_decay, progress=progress,
    )  # fmt: skip
    val_accuracy = val_loss = None
    if val.size:
        with torch.no_grad():
            logits = x[val_t] @ fit.weight.T + fit.bias
            val_loss = float(F.cross_entropy(logits, y[val_t], weight=class_weight))
            val_accuracy = float((logits.argmax(dim=1) == y[val_t]).double().mean())
    validation = (int(train.size), int(val.size), val_accuracy, val_loss)
    return fit, mean, scale, validation


def probe_strains(strain: float, n_strained: int) -> np.ndarray:
    """Return the ``n_strained`` non-zero strains, evenly spaced in ±``strain``, fit_classifier uses."""
    if not (math.isfinite(strain) and 0 <= strain < MAX_PROBE_STRAIN):
        raise ValueError(f"strain must be in [0, {MAX_PROBE_STRAIN:g}), got {strain}")
    if isinstance(n_strained, bool) or operator.index(n_strained) < 0:
        raise ValueError(f"n_strained must be a whole number ≥ 0, got {n_strained}")
    if strain == 0 or n_strained == 0:
        return np.empty(0)
    half = (int(n_strained) + 1) // 2
    steps = np.arange(1, half + 1) * (strain / half)
    strains = np.concatenate([-steps[::-1], steps])
    # an odd count drops the smallest compression
    return strains[1:] if n_strained % 2 else strains


def _labelled_embeddings(
    encoder: Embedder,
    labelled: Sequence[tuple[SpectraStack, np.ndarray, list[str]]],
    strains: np.ndarray,
    cache: FeatureCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (embeddings, labelled curve of each row): the curves in order, then once per strain."""
    if cache is None:
        per_stack = [_embed_rows(encoder, stack, rows, strains) for stack, rows, _ in labelled]
    else:
        per_stack = [
            [cache.rows(stack, rows), *(cache.strained(stack, rows, s) for s in strains)]
            for stack, rows, _ in labelled
        ]
    if len({block.shape[1] for blocks in per_stack for block in blocks}) != 1:
        raise ClassifierError(
            "the encoder returned embeddings of different lengths "
            f"{[blocks[0].shape for blocks in per_stack]}"
        )
    n_curves = sum(blocks[0].shape[0] for blocks in per_stack)
    embeddings = np.concatenate(
        [blocks[k] for k in range(1 + strains.size) for blocks in per_stack], axis=0
    ).astype(np.float64)
    return embeddings, np.tile(np.arange(n_curves), 1 + strains.size)


def _embed_rows(
    encoder: Embedder, stack: SpectraStack, rows: np.ndarray, strains: np.ndarray
) -> list[np.ndarray]:
    """Return the embeddings of ``rows``, then of the same rows under each of ``strains``."""
    subset, keep = _rows_subset(stack, rows)
    blocks = [_checked_embeddings(encoder.embed(subset), subset.n_curves, stack.name)[keep]]
    blocks += [_embed_strained_subset(encoder, subset, keep, s, stack.name) for s in strains]
    return blocks


@dataclass
class _Fit:
    weight: torch.Tensor
    bias: torch.Tensor
    epochs: int
    best_epoch: int
    inverse_regularisation: float | None = None


def _fit_sgd(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    class_weight: torch.Tensor,
    *,
    seed: int,
    patience: int,
    max_epochs: int,
    lr: float,
    weight_decay: float,
    progress: Callable[[int, int], object] | None,
) -> _Fit:
    n_classes, n_features = class_weight.numel(), x_train.shape[1]
    # a convex problem: zero initial weights are as good as random ones and need no seed
    weight = torch.zeros(n_classes, n_features, dtype=x_train.dtype, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=x_train.dtype, requires_grad=True)
    optimiser = torch.optim.SGD([weight, bias], lr=lr, momentum=0.9, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(int(seed))
    n_train = x_train.shape[0]
    batch_size = n_train if n_train <= SGD_FULL_BATCH_LIMIT else SGD_BATCH_SIZE
    # with no validation curves, the training loss is the only thing left to watch
    x_watch, y_watch = (x_val, y_val) if x_val.shape[0] else (x_train, y_train)

    best_loss = math.inf
    best_weight, best_bias = weight.detach().clone(), bias.detach().clone()
    best_epoch = epochs_since_best = epoch = 0
    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(n_train, generator=generator) if batch_size < n_train else None
        for start in range(0, n_train, batch_size):
            batch = (
                slice(start, start + batch_size)
                if order is None
                else order[start : start + batch_size]
            )
            optimiser.zero_grad()
            loss = F.cross_entropy(
                x_train[batch] @ weight.T + bias, y_train[batch], weight=class_weight
            )
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            watched = float(
                F.cross_entropy(x_watch @ weight.T + bias, y_watch, weight=class_weight)
            )
        if not math.isfinite(watched):
            break
        if watched < best_loss - EARLY_STOPPING_MIN_DELTA:
            best_loss, best_epoch, epochs_since_best = watched, epoch, 0
            best_weight, best_bias = weight.detach().clone(), bias.detach().clone()
        else:
            epochs_since_best += 1
        if progress is not None:
            progress(epoch, max_epochs)
        if epochs_since_best >= patience:
            break
    return _Fit(best_weight, best_bias, epochs=epoch, best_epoch=best_epoch)


def _stratified_folds(codes: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Return the validation rows of ``n_folds`` folds, each class dealt round-robin.

    A class with a single labelled curve is never held out; any other class keeps at least one
    curve in every fold's training part.
    """
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for code in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == code))
        if rows.size < 2:
            continue
        for k, row in enumerate(rows):  # ≤ ⌈size/k⌉ < size of a class in any one fold
            folds[k % n_folds].append(int(row))
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds if f]


def _fit_lbfgs_cross_validated(
    embeddings: np.ndarray,
    curve_of_row: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    val_fraction: float,
    seed: int,
    class_balanced: bool,
    progress: Callable[[int, int], object] | None,
) -> tuple[_Fit, np.ndarray, np.ndarray, tuple[int, int, float | None, float | None]]:
    """Choose C by stratified k-fold cross-validation, then fit on every labelled curve.

    Returns (fit, mean, scale, (n_train, n_held_out, accuracy, loss)). ``codes`` has one
    entry per labelled curve, ``curve_of_row`` the curve of each embedding row (the first
    ``codes.size`` rows are the curves themselves). k = round(1 / val_fraction) (4 by
    default); a fold holds out every row of its curves and scores the unstrained ones.
    Holding a quarter of 42 labels out of the final fit, as a single split does, can leave a
    rare class (2 labelled Fe "during" curves in the paper protocol) with none to learn from;
    cross-validation uses each label for choosing C and all of them for the final weights.
    """
    row_codes = codes[curve_of_row]
    rows_per_curve = curve_of_row.size // codes.size
    y = torch.from_numpy(row_codes)
    folds = _stratified_folds(codes, round(1 / val_fraction), seed) if val_fraction > 0 else []
    grid = sorted(LBFGS_C_GRID if folds else (LBFGS_C_WITHOUT_VALIDATION,))
    fold_losses = np.zeros((len(folds), len(grid)))
    fold_correct = np.zeros((len(folds), len(grid)))
    for f, val in enumerate(folds):
        train = np.flatnonzero(~np.isin(curve_of_row, val))
        mean, scale = _standardisation(embeddings[train])
        x = torch.from_numpy((embeddings - mean) / scale)
        weight_of = torch.from_numpy(_class_weights(row_codes[train], n_classes, class_balanced))
        path = _lbfgs_path(x[train], y[train], weight_of, grid, rows_per_curve)
        for i, fit in enumerate(path):
            with torch.no_grad():
                logits = x[val] @ fit.weight.T + fit.bias
                # unweighted per-curve loss, summed: folds of different sizes count per curve
                fold_losses[f, i] = float(F.cross_entropy(logits, y[val], reduction="sum"))
                fold_correct[f, i] = float((logits.argmax(dim=1) == y[val]).sum())
        if progress is not None:
            progress(f + 1, len(folds) + 1)
    n_held_out = int(sum(v.size for v in folds))
    # strict `<` over the grid from strong to weak regularisation: ties go to the stronger
    best = int(np.argmin(np.round(fold_losses.sum(axis=0), 9))) if folds else 0
    mean, scale = _standardisation(embeddings)
    x = torch.from_numpy((embeddings - mean) / scale)
    class_weight = torch.from_numpy(_class_weights(row_codes, n_classes, class_balanced))
    fit = _lbfgs_path(x, y, class_weight, grid[: best + 1], rows_per_curve)[-1]
    if progress is not None:
        progress(len(folds) + 1, len(folds) + 1)
    validation = (
        int(codes.size),
        n_held_out,
        float(fold_correct[:, best].sum() / n_held_out) if n_held_out else None,
        float(fold_losses[:, best].sum() / n_held_out) if n_held_out else None,
    )
    return fit, mean, scale, validation


def _lbfgs_path(
    x: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor,
    grid: Sequence[float],
    rows_per_curve: int = 1,
) -> list[_Fit]:
    """Return the fits for each C of ``grid`` (ascending), each warm-started from the last.

    ``rows_per_curve`` copies of each curve (strained ones) count as one curve in the penalty,
    so that C means the same with and without them.
    """
    n_classes, n_features = class_weight.numel(), x.shape[1]
    weight = torch.zeros(n_classes, n_features, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=x.dtype, requires_grad=True)
    fits = []
    for inverse_regularisation in grid:
        # scikit-learn's C·Σ CE + ½‖W‖², divided by C·n: mean CE + ‖W‖² / (2 C n)
        penalty = rows_per_curve / (2.0 * inverse_regularisation * x.shape[0])
        iterations = _minimise_lbfgs(weight, bias, x, y, class_weight, penalty)
        fit = _Fit(weight.detach().clone(), bias.detach().clone(), iterations, iterations)
        fit.inverse_regularisation = float(inverse_regularisation)
        fits.append(fit)
    return fits


def _minimise_lbfgs(
    weight: torch.Tensor,
    bias: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor,
    penalty: float,
) -> int:
    """Minimise mean weighted CE + penalty·‖W‖² in place; return the L-BFGS iteration count."""
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=500,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y, weight=class_weight)
        loss = loss + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    optimiser.step(objective)
    return int(optimiser.state[weight].get("n_iter", 0))
