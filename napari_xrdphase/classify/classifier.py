"""The trained linear classifier: probabilities and phase labels from embeddings, and the errors of this package."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..stack import SpectraStack


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
    # phases.masking.PhaseMask.as_dict() of the phases whose lines the curves were seen without
    ignored_phases: dict[str, Any] | None = None

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
        if self.ignored_phases:
            from ..phases.masking import PhaseMask

            mask = PhaseMask.from_dict(self.ignored_phases)
            lines.append(f"curves seen without the lines of {mask.describe()}")
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
        reference: np.ndarray | None = None,
        novelty_scale: float | None = None,
    ) -> None:
        self.encoder = encoder
        # the phases whose lines every stack loses before it is embedded (phases.masking)
        self.ignored = None
        if summary.ignored_phases:
            from ..phases.masking import PhaseMask

            self.ignored = PhaseMask.from_dict(summary.ignored_phases)
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
        # the labelled curves' raw embeddings, for novelty (None: a file from before novelty)
        self.reference: np.ndarray | None = None
        self.novelty_scale: float | None = None
        if reference is not None:
            from .novelty import novelty_scale as calibrated_scale

            self.reference = np.asarray(reference, dtype=np.float32)
            if self.reference.ndim != 2 or self.reference.shape[1] != n_features:
                raise ClassifierError(
                    f"inconsistent classifier: reference curves {self.reference.shape}, "
                    f"{n_features} features"
                )
            self.novelty_scale = (
                calibrated_scale(self.features(self.reference))
                if novelty_scale is None
                else float(novelty_scale)
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
        time, so lazy (on-disk) series never need to fit in memory, after the lines of the
        phases the classifier ignores are fitted and subtracted (``phases.masking``); an
        array is taken as embeddings already computed that way.
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

    def embed(
        self, stack: SpectraStack, *, chunk_size: int = 4096, device: Any = None
    ) -> np.ndarray:
        """Return the embeddings of ``stack``'s curves through the stored encoder (chunked)."""
        return self._embed_stack(stack, chunk_size, device)

    def features(self, embeddings: np.ndarray) -> np.ndarray:
        """Return the standardised features ``(embeddings - mean) / scale`` the classifier reads."""
        return (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale

    @property
    def has_novelty(self) -> bool:
        """Whether the classifier knows its labelled curves (files from before novelty do not)."""
        return self.reference is not None and self.novelty_scale is not None

    def novelty(
        self,
        stack_or_embeddings: SpectraStack | np.ndarray,
        *,
        chunk_size: int = 4096,
        device: Any = None,
    ) -> np.ndarray | None:
        """Return how unlike every labelled curve each curve is (``classify.novelty``), or None.

        0 on a labelled curve, about 1 as far as labelled curves are from each other, above
        ``NOVELTY_THRESHOLD`` (1) for a curve unlike every labelled one; None for a classifier
        loaded from a file written before novelty existed.
        """
        from .novelty import novelty_scores

        if not self.has_novelty:
            return None
        if isinstance(stack_or_embeddings, SpectraStack):
            embeddings = self._embed_stack(stack_or_embeddings, chunk_size, device)
        else:
            embeddings = np.asarray(stack_or_embeddings)
        return novelty_scores(
            self.features(embeddings), self.features(self.reference), self.novelty_scale
        )

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
        from ..boundaries import phase_labels

        return phase_labels(
            stack.variable, probabilities, self.classes, self.phase_order,
            None if labels is None else dict(labels),
        )  # fmt: skip

    def _logits(self, embeddings: np.ndarray) -> np.ndarray:
        standardised = (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale
        return standardised @ self.weight.T + self.bias

    def _embed_stack(self, stack: SpectraStack, chunk_size: int, device: Any) -> np.ndarray:
        if self.ignored is not None:  # on disk, it stays there: masked as chunks are read
            stack = self.ignored.apply(stack).stack
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

    # --- files (format in ``classifier_file``) ------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the classifier to a safetensors file (atomically) and return its path.

        The encoder is not included: save it separately and pass it to ``Classifier.load``.
        """
        from .classifier_file import save_classifier

        return save_classifier(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: Embedder) -> Classifier:
        """Return the classifier saved at ``path``, embedding through ``encoder``."""
        from .classifier_file import load_classifier

        return load_classifier(path, encoder)


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


def _standardisation(train_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train_embeddings.mean(axis=0)
    std = train_embeddings.std(axis=0)
    # features (nearly) constant on the few training curves would be blown up by 1/std and
    # dominate on new curves; floor the scale at 1 % of a typical one (constant ones get 1)
    typical = float(std[std > 0].mean()) if np.any(std > 0) else 1.0
    scale = np.maximum(std, 0.01 * typical)
    scale[std == 0] = 1.0
    return mean, scale
