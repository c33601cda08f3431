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

import hashlib
import json
import math
import operator
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ._files import atomic_write_bytes
from .defaults import MAX_PROBE_STRAIN, PROBE_STRAIN, PROBE_STRAIN_STEPS, PROBE_WHITENING_STRAIN
from .stack import SpectraStack, StackError

STANDARD_CLASS_ORDER = ("before", "during", "after")
SOLVERS = ("lbfgs", "sgd")
DEFAULT_SOLVER = "lbfgs"
# inverse regularisation strengths tried by the lbfgs solver (scikit-learn's C: the objective is
# C · Σ weighted CE + ½‖W‖²); the one with the lowest validation loss wins
LBFGS_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
# strain whitening (fit_classifier): at most this many curves of the series are sampled, and
# the embedding's derivative with respect to strain is taken between strains of ±this step
WHITENING_MAX_CURVES = 2048
WHITENING_STEP = 0.01
LBFGS_C_WITHOUT_VALIDATION = 1.0
# training sets up to this size are trained full-batch by sgd; larger ones in mini-batches
SGD_FULL_BATCH_LIMIT = 1024
SGD_BATCH_SIZE = 256
EARLY_STOPPING_MIN_DELTA = 1e-6
FILE_FORMAT = "napari-xrdphase classifier"
FILE_VERSION = 1


class LabelError(ValueError):
    """Labels that cannot train a classifier, with a message that says why."""


class ClassifierError(ValueError):
    """A classifier file or input that cannot be used, with a message that says why."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a stack of curves into one embedding row per curve."""

    def embed(self, stack_or_array: Any, batch_size: int = ..., device: Any = ...) -> np.ndarray:
        """Return the (curves × features) float32 embeddings."""
        ...


@dataclass(frozen=True)
class FitSummary:
    """What a classifier was trained on and how the training went."""

    solver: str
    classes: tuple[str, ...]
    labels_per_class: dict[str, int]
    n_train: int
    n_val: int
    val_accuracy: float | None
    val_loss: float | None
    epochs: int
    best_epoch: int
    inverse_regularisation: float | None
    seed: int
    class_balanced: bool
    notes: tuple[str, ...] = field(default=())
    strain: float = 0.0  # older files: no strained copies
    n_strained: int = 0
    whitening_strain: float = 0.0  # older files: not whitened
    n_whitening_curves: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-compatible values."""
        out = asdict(self)
        out["classes"] = list(self.classes)
        out["notes"] = list(self.notes)
        return out

    def __str__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.labels_per_class.items())
        if self.val_accuracy is None:
            validation = "no validation curves"
        elif self.solver == "lbfgs":
            validation = (
                f"cross-validated accuracy {self.val_accuracy:.1%} ({self.n_val} curves held out "
                f"in turn); final fit on all {self.n_train}"
            )
        else:
            validation = f"validation accuracy {self.val_accuracy:.1%} on {self.n_val} curves"
        if self.solver == "sgd":
            run = f"best epoch {self.best_epoch} of {self.epochs}"
        else:
            run = f"C = {self.inverse_regularisation:g}, {self.epochs} L-BFGS iterations"
        lines = [
            f"{self.solver} linear classifier; labelled curves {counts}",
            f"{validation}; {run}",
        ]
        if self.n_strained:
            lines.append(
                f"each labelled curve also learnt under {self.n_strained} strains in "
                f"±{100 * self.strain:g} %"
            )
        if self.whitening_strain:
            lines.append(
                f"features whitened against a {100 * self.whitening_strain:g} % uniform strain "
                f"(its effect measured on {self.n_whitening_curves} curves of the series)"
            )
        lines += list(self.notes)
        return "\n".join(lines)


class Classifier:
    """A linear classifier on standardised embeddings of a frozen encoder."""

    def __init__(
        self,
        encoder: Embedder,
        classes: Sequence[str],
        weight: np.ndarray,
        bias: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        summary: FitSummary,
        phase_order: Sequence[str] | None = None,
    ) -> None:
        self.encoder = encoder
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        # the classes as the external variable rises (None: the phases are not ordered)
        self.phase_order: tuple[str, ...] | None = (
            None if phase_order is None else tuple(str(c) for c in phase_order)
        )
        if self.phase_order is not None and sorted(self.phase_order) != sorted(self.classes):
            raise ClassifierError(
                f"phase order {self.phase_order} is not an ordering of the classes {self.classes}"
            )
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.summary = summary
        n_classes, n_features = self.weight.shape
        if (
            n_classes != len(self.classes)
            or self.bias.shape != (n_classes,)
            or self.mean.shape != (n_features,)
            or self.scale.shape != (n_features,)
        ):
            raise ClassifierError(
                f"inconsistent classifier: weight {self.weight.shape}, bias {self.bias.shape}, "
                f"mean {self.mean.shape}, scale {self.scale.shape}, {len(self.classes)} classes"
            )

    @property
    def n_features(self) -> int:
        """Length of the embeddings the classifier expects."""
        return int(self.weight.shape[1])

    def __repr__(self) -> str:
        return (
            f"Classifier(classes={self.classes}, {self.n_features} features, "
            f"solver={self.summary.solver!r})"
        )

    def predict_proba(
        self,
        stack_or_embeddings: SpectraStack | np.ndarray,
        *,
        chunk_size: int = 4096,
        device: Any = None,
    ) -> np.ndarray:
        """Return class probabilities (curves × classes), columns in ``classes`` order.

        A ``SpectraStack`` is embedded through the stored encoder ``chunk_size`` curves at a
        time, so lazy (on-disk) series never need to fit in memory; an array is taken as
        embeddings already computed with that encoder.
        """
        if isinstance(stack_or_embeddings, SpectraStack):
            embeddings = self._embed_stack(stack_or_embeddings, chunk_size, device)
        else:
            embeddings = np.asarray(stack_or_embeddings)
            if embeddings.ndim != 2 or embeddings.shape[1] != self.n_features:
                raise ClassifierError(
                    f"expected embeddings of shape (curves, {self.n_features}), got "
                    f"{embeddings.shape}; pass a SpectraStack to embed raw curves"
                )
        logits = self._logits(embeddings)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities

    def predict(
        self,
        stack_or_embeddings: SpectraStack | np.ndarray,
        *,
        labels: Mapping[int, str] | None = None,
        chunk_size: int = 4096,
        device: Any = None,
    ) -> np.ndarray:
        """Return the phase of every curve (numpy array of str).

        For a ``SpectraStack``, with a ``phase_order``, the phases follow that order along
        each leg of the series' ramp (``boundaries.phase_labels``; ``labels`` {row: class}
        fixes labelled curves); for embeddings, or without an order, the most probable class.
        """
        probabilities = self.predict_proba(
            stack_or_embeddings, chunk_size=chunk_size, device=device
        )
        if not isinstance(stack_or_embeddings, SpectraStack):
            return np.asarray(self.classes)[probabilities.argmax(axis=1)]
        return self.phase_labels(stack_or_embeddings, probabilities, labels)

    def describe_phase_order(self, variable_name: str = "external variable") -> str:
        """Return one line saying how curves are labelled: in phase order, or each on its own."""
        if self.phase_order is None:
            return "phases: each curve classified on its own"
        return f"phases in order of rising {variable_name}: {' → '.join(self.phase_order)}"

    def phase_labels(
        self,
        stack: SpectraStack,
        probabilities: np.ndarray,
        labels: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Return the phase of every curve of ``stack`` from its ``probabilities``.

        ``boundaries.phase_labels`` with this classifier's classes and ``phase_order``.
        """
        from .boundaries import phase_labels

        return phase_labels(
            stack.variable, probabilities, self.classes, self.phase_order,
            None if labels is None else dict(labels),
        )  # fmt: skip

    def _logits(self, embeddings: np.ndarray) -> np.ndarray:
        standardised = (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale
        return standardised @ self.weight.T + self.bias

    def _embed_stack(self, stack: SpectraStack, chunk_size: int, device: Any) -> np.ndarray:
        chunk_size = max(int(chunk_size), 2)
        n = stack.n_curves
        if n <= chunk_size and not stack.is_lazy:
            return _checked_embeddings(_call_embed(self.encoder, stack, device), n, stack.name)
        parts = []
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            # a SpectraStack holds at least 2 curves: a last chunk of one curve borrows its
            # predecessor and drops its embedding again
            first = min(start, stop - 2)
            chunk = _checked_embeddings(
                _call_embed(self.encoder, stack.subset(slice(first, stop)), device),
                stop - first,
                stack.name,
            )
            parts.append(chunk[start - first :])
        return np.concatenate(parts, axis=0)

    # --- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the classifier to a safetensors file (atomically) and return its path.

        The encoder is not included: save it separately and pass it to ``Classifier.load``.
        """
        from safetensors.numpy import save as safetensors_bytes

        path = Path(path)
        tensors = {
            "weight": np.ascontiguousarray(self.weight),
            "bias": np.ascontiguousarray(self.bias),
            "mean": np.ascontiguousarray(self.mean),
            "scale": np.ascontiguousarray(self.scale),
        }
        metadata = {
            "format": FILE_FORMAT,
            "version": str(FILE_VERSION),
            "classes": json.dumps(list(self.classes)),
            "phase_order": json.dumps(None if self.phase_order is None else list(self.phase_order)),
            "summary": json.dumps(self.summary.as_dict()),
            "encoder_config": _config_json(self.encoder),
            "sha256": _tensor_checksum(tensors),
        }
        data = safetensors_bytes(tensors, metadata=metadata)
        atomic_write_bytes(path, data)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: Embedder) -> Classifier:
        """Return the classifier saved at ``path``, embedding through ``encoder``."""
        from safetensors.numpy import load as load_safetensors

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ClassifierError(f"cannot read classifier file {path}: {exc}") from exc
        try:
            metadata = _safetensors_metadata(data)
            tensors = load_safetensors(data)
        except Exception as exc:
            raise ClassifierError(
                f"{path} is not a readable classifier file (corrupt or truncated?): {exc}; "
                "train the classifier again and save it"
            ) from exc
        if metadata.get("format") != FILE_FORMAT:
            raise ClassifierError(f"{path} is not a napari-xrdphase classifier file")
        if metadata.get("version") != str(FILE_VERSION):
            raise ClassifierError(
                f"{path} has classifier file version {metadata.get('version')}; "
                f"this napari-xrdphase reads version {FILE_VERSION}"
            )
        if metadata.get("sha256") != _tensor_checksum(tensors):
            raise ClassifierError(
                f"{path}: classifier weights do not match their checksum (the file is corrupt); "
                "train the classifier again and save it"
            )
        try:
            classes = json.loads(metadata["classes"])
            phase_order = json.loads(metadata.get("phase_order", "null"))  # older files: none
            if phase_order is not None and not (
                isinstance(phase_order, list) and all(isinstance(c, str) for c in phase_order)
            ):
                raise ValueError(f"phase_order is {phase_order!r}")
            summary_fields = json.loads(metadata["summary"])
            summary_fields["classes"] = tuple(summary_fields["classes"])
            summary_fields["notes"] = tuple(summary_fields["notes"])
            summary = FitSummary(**summary_fields)
            arrays = [tensors[name] for name in ("weight", "bias", "mean", "scale")]
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"{path}: classifier file is incomplete ({exc})") from exc
        if not all(np.all(np.isfinite(a)) for a in arrays) or not np.all(arrays[3] > 0):
            raise ClassifierError(f"{path}: classifier weights contain NaN, inf or zero scales")
        saved_config, current_config = metadata.get("encoder_config", ""), _config_json(encoder)
        if saved_config and current_config and saved_config != current_config:
            warnings.warn(
                f"{path} was trained on embeddings of an encoder with another configuration; "
                "its predictions are meaningless unless the encoders match",
                UserWarning,
                stacklevel=2,
            )
        try:
            return cls(encoder, classes, *arrays, summary=summary, phase_order=phase_order)
        except ClassifierError as exc:
            raise ClassifierError(f"{path}: {exc}") from exc


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header
    if len(data) < 8:
        raise ValueError(f"file has {len(data)} bytes")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a mapping")
    return metadata


def _tensor_checksum(tensors: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _config_json(encoder: Any) -> str:
    config = getattr(encoder, "config", None)
    if not isinstance(config, Mapping):
        return ""
    return json.dumps(config, sort_keys=True, default=str)


def _call_embed(encoder: Embedder, stack: SpectraStack, device: Any) -> np.ndarray:
    if device is None:
        return encoder.embed(stack)
    return encoder.embed(stack, device=device)


def _checked_embeddings(embeddings: Any, n_rows: int, name: str) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise ClassifierError(
            f"{name}: the encoder returned embeddings of shape {array.shape} for {n_rows} curves"
        )
    if not np.all(np.isfinite(array)):
        raise ClassifierError(f"{name}: the encoder returned NaN or inf embeddings")
    return array


# --- labels ----------------------------------------------------------------------------------
def order_classes(names: Sequence[str] | set[str]) -> tuple[str, ...]:
    """Return class names in display order: before, during, after when all are among those; else sorted."""
    unique = set(names)
    if unique <= set(STANDARD_CLASS_ORDER):
        return tuple(c for c in STANDARD_CLASS_ORDER if c in unique)
    return tuple(sorted(unique))


def check_labels(
    stacks: Sequence[SpectraStack], labels: Mapping[str, Mapping[int, str]]
) -> list[tuple[SpectraStack, np.ndarray, list[str]]]:
    """Return (stack, sorted rows, labels) per labelled stack, or raise ``LabelError``."""
    if not isinstance(labels, Mapping):
        raise LabelError(
            f"labels must map dataset names to {{row: label}}, got {type(labels).__name__}"
        )
    known = [s.name for s in stacks]
    unknown = [name for name in labels if name not in known]
    if unknown:
        raise LabelError(
            f"labels name datasets {unknown} that are not among the series; known datasets: {known}"
        )
    out = []
    for stack in stacks:
        if stack.name not in labels:
            continue
        if known.count(stack.name) > 1:
            raise LabelError(
                f"{known.count(stack.name)} series are named {stack.name!r}, so its labels are "
                "ambiguous; give each series its own name"
            )
        per_row = labels[stack.name]
        if not isinstance(per_row, Mapping):
            raise LabelError(
                f"labels of {stack.name!r} must map row indices to label strings, "
                f"got {type(per_row).__name__}"
            )
        rows, names = [], []
        for index, label in per_row.items():
            try:
                row = operator.index(index)
            except TypeError:
                raise LabelError(f"{stack.name}: row index {index!r} is not an integer") from None
            if not 0 <= row < stack.n_curves:
                raise LabelError(
                    f"{stack.name}: labelled index {row} is out of range; the series has "
                    f"{stack.n_curves} curves (indices 0–{stack.n_curves - 1})"
                )
            if not isinstance(label, str) or not label.strip():
                raise LabelError(f"{stack.name}: curve {row} has an empty label ({label!r})")
            rows.append(row)
            names.append(label.strip())
        if not rows:
            continue
        order = np.argsort(rows, kind="stable")
        out.append((stack, np.asarray(rows, dtype=np.int64)[order], [names[i] for i in order]))
    if not out:
        raise LabelError("no labelled curves; label at least one curve of each phase")
    classes = {name for _, _, names in out for name in names}
    by_spelling: dict[str, list[str]] = {}
    for name in sorted(classes):
        by_spelling.setdefault(" ".join(name.casefold().split()), []).append(name)
    same = next((names for names in by_spelling.values() if len(names) > 1), None)
    if same:
        raise LabelError(
            f"the labels {' and '.join(map(repr, same))} differ only in case or spacing, so they "
            "would be separate classes; spell each phase the same way on every curve"
        )
    if len(classes) < 2:
        raise LabelError(
            f"all labelled curves are {classes.pop()!r}; a classifier needs at least two "
            "classes: label curves of another phase too"
        )
    return out


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


def _standardisation(train_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train_embeddings.mean(axis=0)
    std = train_embeddings.std(axis=0)
    # features (nearly) constant on the few training curves would be blown up by 1/std and
    # dominate on new curves; floor the scale at 1 % of a typical one (constant ones get 1)
    typical = float(std[std > 0].mean()) if np.any(std > 0) else 1.0
    scale = np.maximum(std, 0.01 * typical)
    scale[std == 0] = 1.0
    return mean, scale


def _class_weights(train_codes: np.ndarray, n_classes: int, balanced: bool) -> np.ndarray:
    counts = np.bincount(train_codes, minlength=n_classes).astype(np.float64)
    if not balanced:
        return np.ones(n_classes)
    weights = np.zeros(n_classes)
    present = counts > 0
    # "balanced" as in scikit-learn: every class carries the same total weight
    weights[present] = train_codes.size / (present.sum() * counts[present])
    return weights


# --- training --------------------------------------------------------------------------------
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
    """
    if not callable(getattr(encoder, "embed", None)):
        raise TypeError(f"encoder must have an embed method, got {type(encoder).__name__}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; use one of {SOLVERS}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    strains = probe_strains(strain, n_strained)
    if isinstance(stacks, SpectraStack):
        stacks = [stacks]
    labelled = check_labels(stacks, labels)
    classes = order_classes({name for _, _, names in labelled for name in names})
    code_of = {name: k for k, name in enumerate(classes)}
    codes = np.array([code_of[name] for _, _, names in labelled for name in names], dtype=np.int64)
    embeddings, curve_of_row = _labelled_embeddings(encoder, labelled, strains)
    whitening, whitening_note = _strain_whitening(encoder, stacks, whitening_strain)
    if whitening is not None:
        embeddings = whitening.apply(embeddings)
    row_codes = codes[curve_of_row]

    train, val, notes = _stratified_split(codes, classes, val_fraction, seed)
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
    if solver == "lbfgs":
        fit, mean, scale, validation = _fit_lbfgs_cross_validated(
            embeddings, curve_of_row, codes, len(classes), val_fraction, seed, class_balanced,
            progress,
        )  # fmt: skip
    else:
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
    )
    weight, bias = fit.weight.numpy(), fit.bias.numpy()
    if whitening is not None:
        weight, bias, mean, scale = whitening.fold(weight, bias, mean, scale)
    return Classifier(
        encoder, classes, weight, bias, mean, scale, summary=summary, phase_order=phase_order
    )


@dataclass(frozen=True)
class _StrainWhitening:
    """Features ``((e - mean) / scale) @ matrix`` of embeddings ``e`` (``_strain_whitening``)."""

    mean: np.ndarray
    scale: np.ndarray
    matrix: np.ndarray
    n_curves: int

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        """Return the whitened features of (rows × features) embeddings."""
        return ((embeddings - self.mean) / self.scale) @ self.matrix

    def fold(self, weight, bias, mean, scale):
        """Return (weight, bias, mean, scale) of the same logits on the raw embeddings.

        A classifier fitted on standardised features ``(f - mean) / scale`` gives
        ``((e - m) / s) @ M @ (W / scale).T + bias - (mean / scale) @ W.T``.
        """
        folded = (weight / scale) @ self.matrix.T
        return folded, bias - (mean / scale) @ weight.T, self.mean, self.scale


def _strain_whitening(
    encoder: Embedder, stacks: Sequence[SpectraStack], whitening_strain: float
) -> tuple[_StrainWhitening | None, str]:
    """Return (the whitening against a uniform strain of sd ``whitening_strain``, a note).

    On a sample of the curves (``_whitening_rows``), the embedding's derivative with respect
    to strain is estimated by central differences at ±``WHITENING_STEP`` (standardised
    features); with ``C`` the covariance those derivatives give a strain of standard
    deviation ``whitening_strain``, the features are multiplied by ``(I + C)^-1/2``: directions
    a strain moves a lot shrink, the others stay as they are. Series that cannot be strained
    (2θ close to 180°) are left out of the sample, and the note says so.
    """
    if not (math.isfinite(whitening_strain) and 0 <= whitening_strain < MAX_PROBE_STRAIN):
        raise ValueError(
            f"whitening_strain must be in [0, {MAX_PROBE_STRAIN:g}), got {whitening_strain}"
        )
    if whitening_strain == 0:
        return None, ""
    centre, stretched, squeezed, left_out = [], [], [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cover only", category=UserWarning)
        for stack, rows in _whitening_rows(stacks):
            sample = stack.subset(rows)
            try:
                copies = [sample.strained(WHITENING_STEP), sample.strained(-WHITENING_STEP)]
            except StackError:
                left_out.append(stack.name)
                continue
            for out, curves in zip((centre, stretched, squeezed), [sample, *copies], strict=True):
                out.append(_checked_embeddings(encoder.embed(curves), rows.size, stack.name))
    note = (
        f"no strain whitening from {', '.join(left_out)}: a strain of {WHITENING_STEP:g} "
        "takes its 2θ beyond 180°"
        if left_out
        else ""
    )
    if not centre:
        return None, note
    embeddings = np.concatenate(centre).astype(np.float64)
    mean, scale = _standardisation(embeddings)
    derivative = (np.concatenate(stretched) - np.concatenate(squeezed)) / (2 * WHITENING_STEP)
    derivative = derivative / scale
    covariance = whitening_strain**2 * (derivative.T @ derivative) / derivative.shape[0]
    eigenvalues, vectors = np.linalg.eigh(covariance)
    matrix = (vectors / np.sqrt(1.0 + np.clip(eigenvalues, 0.0, None))) @ vectors.T
    return _StrainWhitening(mean, scale, matrix, int(embeddings.shape[0])), note


def _whitening_rows(stacks: Sequence[SpectraStack]) -> list[tuple[SpectraStack, np.ndarray]]:
    """Return up to ``WHITENING_MAX_CURVES`` rows, evenly spread over each stack by its size."""
    sizes = np.array([stack.n_curves for stack in stacks], dtype=np.float64)
    share = min(1.0, WHITENING_MAX_CURVES / sizes.sum())
    out = []
    for stack in stacks:
        n = max(2, round(share * stack.n_curves))  # a SpectraStack holds at least 2 curves
        out.append((stack, np.unique(np.linspace(0, stack.n_curves - 1, n).round().astype(int))))
    return out


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
) -> tuple[np.ndarray, np.ndarray]:
    """Return (embeddings, labelled curve of each row): the curves in order, then once per strain."""
    per_stack = [_embed_rows(encoder, stack, rows, strains) for stack, rows, _ in labelled]
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


def labelled_phase_order(
    labelled: Sequence[tuple[SpectraStack, np.ndarray, list[str]]],
) -> tuple[tuple[str, ...] | None, str]:
    """Return (classes by the median external variable of their labelled curves, why not).

    ``labelled`` as ``check_labels`` returns it. The order is None, with the reason, when
    the labelled series have different external variables (by unit; by name where there is
    none, so "P" and "pressure" in GPa agree) or two classes share a median.
    """
    kinds = {stack.variable_unit or stack.variable_name for stack, _, _ in labelled}
    variables = {(stack.variable_name, stack.variable_unit) for stack, _, _ in labelled}
    if len(kinds) > 1:
        listed = ", ".join(f"{name} [{unit}]" if unit else name for name, unit in sorted(variables))
        return None, (
            f"the labelled series have different external variables ({listed}), so the "
            "phases are not put in order along them; each curve is classified on its own"
        )
    values: dict[str, list[float]] = {}
    for stack, rows, names in labelled:
        for value, name in zip(
            np.asarray(stack.variable, dtype=np.float64)[rows], names, strict=True
        ):
            values.setdefault(name, []).append(float(value))
    medians = {name: float(np.median(v)) for name, v in values.items()}
    if len(set(medians.values())) < len(medians):
        return None, (
            "two classes have labelled curves at the same median "
            f"{min(variables)[0]} ({medians}), so the phases are not put in order; "
            "each curve is classified on its own"
        )
    return tuple(sorted(medians, key=medians.__getitem__)), ""


def _embed_rows(
    encoder: Embedder, stack: SpectraStack, rows: np.ndarray, strains: np.ndarray
) -> list[np.ndarray]:
    """Return the embeddings of ``rows``, then of the same rows under each of ``strains``."""
    keep: slice | list[int] = slice(None)
    if rows.size == 1:
        # a SpectraStack holds at least 2 curves: embed a neighbour along and drop it
        row = int(rows[0])
        partner = row + 1 if row + 1 < stack.n_curves else row - 1
        pair = sorted((row, partner))
        subset, keep = stack.subset(pair), [pair.index(row)]
    else:
        subset = stack.subset(rows)
    n = subset.n_curves
    blocks = [_checked_embeddings(encoder.embed(subset), n, stack.name)[keep]]
    with warnings.catch_warnings():
        # a window-coverage warning was given for the curves themselves
        warnings.filterwarnings("ignore", message=".*cover only", category=UserWarning)
        for strain in strains:
            try:
                strained = subset.strained(float(strain))
            except StackError as exc:
                raise ClassifierError(
                    f"{exc}; fit the classifier with strain=0 (no strained copies)"
                ) from exc
            embeddings = encoder.embed(strained)
            blocks.append(_checked_embeddings(embeddings, n, stack.name)[keep])
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
