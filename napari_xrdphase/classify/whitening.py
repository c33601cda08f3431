"""Strain whitening: features made insensitive to a uniform strain of the curves."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..defaults import MAX_PROBE_STRAIN
from ..stack import SpectraStack, StackError
from .classifier import Embedder, _checked_embeddings, _standardisation

# strain whitening (fit_classifier): at most this many curves of the series are sampled, and
# the embedding's derivative with respect to strain is taken between strains of ±this step
WHITENING_MAX_CURVES = 2048


WHITENING_STEP = 0.01


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
