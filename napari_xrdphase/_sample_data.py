"""napari sample-data contributions: simulated pressure series with ground-truth labels."""

from __future__ import annotations

from ._layer_data import stack_to_layer_data


def _sample(material: str, decompression: bool, name: str, seed: int) -> list[tuple]:
    from .synth import simulate_series

    series = simulate_series(
        material,
        n_before=40,
        n_during=20,
        n_after=60,
        exposure_s=1.0,
        decompression=decompression,
        calibrant=True,
        medium="Ne",
        seed=seed,
        name=name,
    )
    return [stack_to_layer_data(series.stack, extra={"ground_truth": series.labels.tolist()})]


def fe_compression() -> list[tuple]:
    """Return a simulated Fe bcc→hcp compression series (120 curves, Pt calibrant, Ne medium)."""
    return _sample("Fe", False, "Fe compression (simulated)", seed=1)


def feo_compression() -> list[tuple]:
    """Return a simulated FeO B1→rB1 compression series (120 curves, Pt calibrant, Ne medium)."""
    return _sample("FeO", False, "FeO compression (simulated)", seed=2)


def fe_decompression() -> list[tuple]:
    """Return a simulated Fe hcp→bcc decompression series (120 curves, Pt calibrant, Ne medium)."""
    return _sample("Fe", True, "Fe decompression (simulated)", seed=3)
