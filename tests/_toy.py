"""Toy series and a stand-in encoder shared by the classifier and streaming tests."""

import numpy as np

from napari_xrdphase.stack import SpectraStack

N_POINTS = 64
AXIS = np.linspace(10.0, 40.0, N_POINTS)


def peak(center, width=1.0):
    return np.exp(-0.5 * ((AXIS - center) / width) ** 2)


def phase_series(name="run1", n=60, start=0.4, end=0.6, noise=0.02, seed=0):
    """A compression series: peak at 20° (before), at 30° (after), both during the transition.

    During the transition the 30° phase grows from 35 % to 65 %, so the three classes are
    separable.
    """
    rng = np.random.default_rng(seed)
    pressure = np.linspace(0.0, 30.0, n)
    position = np.arange(n) / (n - 1)
    fraction = np.where(position < start, 0.0, np.where(position > end, 1.0, 0.0))
    during = (position >= start) & (position <= end)
    fraction[during] = 0.35 + 0.3 * (position[during] - start) / (end - start)
    curves = (1 - fraction)[:, None] * peak(20) + fraction[:, None] * peak(30)
    curves = curves * rng.uniform(0.8, 1.2, (n, 1)) + noise * rng.standard_normal((n, N_POINTS))
    truth = np.where(fraction == 0, "before", np.where(fraction == 1, "after", "during"))
    stack = SpectraStack(
        curves, AXIS, variable=pressure, variable_name="pressure", variable_unit="GPa", name=name
    )
    return stack, truth


class ProjectionEncoder:
    """Fixed random projection + ReLU: non-negative features like ConvSC's, computed from curves."""

    def __init__(self, dim=24, seed=0):
        self.projection = np.random.default_rng(seed).standard_normal((N_POINTS, dim))
        self.config = {"kind": "projection", "dim": dim, "seed": seed}
        self.seen_sources: list[list[str]] = []

    def embed(self, stack_or_array, batch_size=4096, device=None):
        self.seen_sources.append(list(stack_or_array.sources))
        curves = stack_or_array.curves()
        return np.maximum(curves @ self.projection, 0.0).astype(np.float32)

    @property
    def seen(self) -> list[str]:
        """Every curve embedded so far, in order."""
        return [source for batch in self.seen_sources for source in batch]
