"""The one data type of the package: a series of 1D diffraction curves."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# axis kind -> accepted units; the first is the canonical one
AXIS_UNITS: dict[str, tuple[str, ...]] = {
    "2theta": ("deg", "rad"),
    "q": ("1/A", "1/nm"),
    "d": ("A", "nm"),
}
AXIS_LABELS = {"2theta": "2θ", "q": "q", "d": "d"}
_UNIT_ALIASES = {
    "degree": "deg",
    "degrees": "deg",
    "°": "deg",
    "radian": "rad",
    "radians": "rad",
    "1/angstrom": "1/A",
    "angstrom^-1": "1/A",
    "a^-1": "1/A",
    "1/å": "1/A",
    "å^-1": "1/A",
    "nm^-1": "1/nm",
    "angstrom": "A",
    "å": "A",
}
_AXIS_ALIASES = {
    "2th": "2theta",
    "2th_deg": "2theta",
    "tth": "2theta",
    "two_theta": "2theta",
    "twotheta": "2theta",
    "2θ": "2theta",
    "q_a^-1": "q",
    "q_nm^-1": "q",
    "d_spacing": "d",
}


class StackError(ValueError):
    """A series that cannot be used, with a message that says why."""


def normalize_unit(unit: str) -> str:
    """Return the canonical spelling of an axis unit (``deg``, ``rad``, ``1/A``, ``1/nm``, ``A``, ``nm``)."""
    text = unit.strip()
    low = text.lower().replace("angstroms", "angstrom")
    if low in _UNIT_ALIASES:
        return _UNIT_ALIASES[low]
    for units in AXIS_UNITS.values():
        for canonical in units:
            if low == canonical.lower():
                return canonical
    raise StackError(f"unknown axis unit {unit!r}; use one of deg, rad, 1/A, 1/nm, A, nm")


def normalize_axis_kind(kind: str) -> str:
    """Return the canonical axis kind (``2theta``, ``q`` or ``d``)."""
    low = kind.strip().lower()
    low = _AXIS_ALIASES.get(low, low)
    if low not in AXIS_UNITS:
        raise StackError(f"unknown axis kind {kind!r}; use 2theta, q or d")
    return low


def _to_canonical(values: np.ndarray, unit: str) -> np.ndarray:
    if unit == "rad":
        return np.degrees(values)
    if unit == "1/nm":
        return values / 10.0
    if unit == "nm":
        return values * 10.0
    return values


def _from_canonical(values: np.ndarray, unit: str) -> np.ndarray:
    if unit == "rad":
        return np.radians(values)
    if unit == "1/nm":
        return values * 10.0
    if unit == "nm":
        return values / 10.0
    return values


def convert_axis(
    values: np.ndarray,
    from_kind: str,
    from_unit: str,
    to_kind: str,
    to_unit: str | None = None,
    wavelength: float | None = None,
) -> np.ndarray:
    """Return scattering-axis ``values`` converted between 2θ, q and d (wavelength in Å)."""
    from_kind, to_kind = normalize_axis_kind(from_kind), normalize_axis_kind(to_kind)
    from_unit = normalize_unit(from_unit)
    to_unit = normalize_unit(to_unit) if to_unit else AXIS_UNITS[to_kind][0]
    if from_unit not in AXIS_UNITS[from_kind]:
        raise StackError(f"unit {from_unit} does not fit a {from_kind} axis")
    if to_unit not in AXIS_UNITS[to_kind]:
        raise StackError(f"unit {to_unit} does not fit a {to_kind} axis")
    x = _to_canonical(np.asarray(values, dtype=np.float64), from_unit)
    if from_kind != to_kind:
        if {from_kind, to_kind} == {"d", "q"}:
            with np.errstate(divide="ignore"):
                x = 2 * np.pi / x
        else:
            if wavelength is None or not wavelength > 0:
                raise StackError(
                    f"converting {from_kind} to {to_kind} needs the X-ray wavelength in Å"
                )
            if from_kind == "2theta":
                sin_t = np.sin(np.radians(x) / 2)
                with np.errstate(divide="ignore"):
                    x = (
                        4 * np.pi * sin_t / wavelength
                        if to_kind == "q"
                        else wavelength / (2 * sin_t)
                    )
            else:
                q = x if from_kind == "q" else 2 * np.pi / x
                sin_t = q * wavelength / (4 * np.pi)
                if np.any(np.abs(sin_t) > 1):
                    raise StackError(
                        f"{from_kind} values beyond the reach of λ = {wavelength} Å (sin θ > 1)"
                    )
                x = np.degrees(2 * np.arcsin(sin_t))
    return _from_canonical(x, to_unit)


def energy_kev_to_wavelength(energy_kev: float) -> float:
    """Return the X-ray wavelength in Å for a photon energy in keV."""
    return 12.398419843320026 / energy_kev


@dataclass
class SpectraStack:
    """A series of diffraction curves on a shared scattering axis.

    ``intensities`` is (curves × points) float32, either a numpy array or a lazy
    array-like (an h5py dataset) for series too large for memory. ``variable`` holds the
    external variable per curve (pressure, temperature, ...); when the source has none,
    it is the acquisition index with name ``"index"``.
    """

    intensities: Any
    axis: np.ndarray
    axis_kind: str = "2theta"
    axis_unit: str = "deg"
    variable: np.ndarray | None = None
    variable_name: str = "index"
    variable_unit: str = ""
    name: str = "series"
    sources: list[str] | None = None
    wavelength: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = self.intensities
        if isinstance(data, np.ndarray) or not hasattr(data, "shape"):
            data = np.asarray(data)
            if not np.issubdtype(data.dtype, np.number):
                raise StackError(f"{self.name}: intensities are not numeric ({data.dtype})")
            data = data.astype(np.float32, copy=False)
            self.intensities = data
        if len(data.shape) != 2:
            raise StackError(
                f"{self.name}: intensities must be 2D (curves × points), got shape {tuple(data.shape)}"
            )
        n_curves, n_points = (int(s) for s in data.shape)
        if n_curves < 2:
            raise StackError(
                f"{self.name}: a series needs at least 2 curves, got {n_curves}; "
                "a phase transition cannot be found in a single curve"
            )
        if n_points < 8:
            raise StackError(f"{self.name}: curves have only {n_points} points; need at least 8")
        self.axis_kind = normalize_axis_kind(self.axis_kind)
        self.axis_unit = normalize_unit(self.axis_unit)
        if self.axis_unit not in AXIS_UNITS[self.axis_kind]:
            raise StackError(
                f"{self.name}: unit {self.axis_unit} does not fit a {self.axis_kind} axis"
            )
        axis = np.asarray(self.axis, dtype=np.float64).ravel()
        if axis.shape[0] != n_points:
            raise StackError(
                f"{self.name}: axis has {axis.shape[0]} values but curves have {n_points} points"
            )
        if not np.all(np.isfinite(axis)):
            raise StackError(f"{self.name}: the scattering axis contains NaN or inf")
        steps = np.diff(axis)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            bad = int(np.flatnonzero(steps * np.sign(steps[0] or 1) <= 0)[0]) + 1
            raise StackError(
                f"{self.name}: the scattering axis is not strictly monotonic "
                f"(at point {bad}: {axis[bad - 1]:g} then {axis[bad]:g})"
            )
        self.axis = axis
        if self.variable is None:
            self.variable = np.arange(n_curves, dtype=np.float64)
            self.variable_name, self.variable_unit = "index", ""
        variable = np.asarray(self.variable, dtype=np.float64).ravel()
        if variable.shape[0] != n_curves:
            raise StackError(
                f"{self.name}: {variable.shape[0]} values of {self.variable_name!r} "
                f"for {n_curves} curves"
            )
        if not np.all(np.isfinite(variable)):
            bad = np.flatnonzero(~np.isfinite(variable))[:5].tolist()
            raise StackError(f"{self.name}: {self.variable_name!r} is NaN or inf at curves {bad}")
        self.variable = variable
        if self.sources is None:
            self.sources = [f"{self.name}[{i}]" for i in range(n_curves)]
        elif len(self.sources) != n_curves:
            raise StackError(f"{self.name}: {len(self.sources)} source names for {n_curves} curves")
        self.sources = [str(s) for s in self.sources]
        if self.wavelength is not None:
            self.wavelength = float(self.wavelength)
            if not (math.isfinite(self.wavelength) and self.wavelength > 0):
                raise StackError(f"{self.name}: wavelength must be a positive number of Å")
        if isinstance(self.intensities, np.ndarray):
            self._check_finite(self.intensities)

    def _check_finite(self, data: np.ndarray) -> None:
        finite = np.isfinite(data)
        if finite.all():
            return
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise StackError(
            f"{self.name}: {int((~finite).sum())} intensity values are NaN or inf "
            f"(curves {bad_rows[:10].tolist()}{' ...' if bad_rows.size > 10 else ''}); "
            "mask or interpolate them before loading"
        )

    # --- shape ---------------------------------------------------------------------------
    @property
    def n_curves(self) -> int:
        """Number of curves."""
        return int(self.intensities.shape[0])

    @property
    def n_points(self) -> int:
        """Number of points per curve."""
        return int(self.intensities.shape[1])

    @property
    def is_lazy(self) -> bool:
        """True when intensities stay on disk (read on demand)."""
        return not isinstance(self.intensities, np.ndarray)

    def __len__(self) -> int:
        return self.n_curves

    def __repr__(self) -> str:
        return (
            f"SpectraStack({self.name!r}, {self.n_curves} curves × {self.n_points} points, "
            f"{self.axis_label} {self.axis[0]:g}–{self.axis[-1]:g}, "
            f"{self.variable_label} {self.variable.min():g}–{self.variable.max():g}"
            f"{', lazy' if self.is_lazy else ''})"
        )

    @property
    def axis_label(self) -> str:
        """Axis label with unit, e.g. ``2θ (deg)``."""
        return f"{AXIS_LABELS[self.axis_kind]} ({self.axis_unit})"

    @property
    def variable_label(self) -> str:
        """External-variable label with unit, e.g. ``pressure (GPa)``."""
        return (
            f"{self.variable_name} ({self.variable_unit})"
            if self.variable_unit
            else self.variable_name
        )

    # --- data access -----------------------------------------------------------------------
    def curves(self, rows: slice | np.ndarray | list[int] | None = None) -> np.ndarray:
        """Return the intensities of ``rows`` (all when None) as an in-memory float32 array."""
        if rows is None:
            rows = slice(None)
        if isinstance(rows, slice) or not self.is_lazy:
            out = np.asarray(self.intensities[rows], dtype=np.float32)
        else:
            # h5py needs strictly increasing, non-negative indices: read each row once, in
            # order, then put them back (handles repeats, negative indices and boolean masks)
            selection = np.asarray(rows)
            if selection.dtype != bool:
                selection = selection.astype(np.int64)
            idx = np.arange(self.n_curves)[selection]
            unique, inverse = np.unique(idx, return_inverse=True)
            if unique.size == 0:
                return np.empty((0, self.n_points), dtype=np.float32)
            out = np.asarray(self.intensities[unique], dtype=np.float32)[inverse]
        if self.is_lazy:
            self._check_finite(out)
        return out

    def iter_chunks(self, chunk_size: int = 4096):
        """Yield ``(start, curves)`` blocks of at most ``chunk_size`` curves, bounded in memory."""
        for start in range(0, self.n_curves, chunk_size):
            yield start, self.curves(slice(start, min(start + chunk_size, self.n_curves)))

    def load(self) -> SpectraStack:
        """Return a copy whose intensities are in memory."""
        return self.replace(intensities=self.curves())

    def replace(self, **changes: Any) -> SpectraStack:
        """Return a new stack with some fields replaced (validated again)."""
        fields = {
            "intensities": self.intensities,
            "axis": self.axis,
            "axis_kind": self.axis_kind,
            "axis_unit": self.axis_unit,
            "variable": self.variable,
            "variable_name": self.variable_name,
            "variable_unit": self.variable_unit,
            "name": self.name,
            "sources": self.sources,
            "wavelength": self.wavelength,
            "metadata": dict(self.metadata),
        }
        fields.update(changes)
        return SpectraStack(**fields)

    def subset(self, rows: slice | np.ndarray | list[int]) -> SpectraStack:
        """Return the stack restricted to ``rows`` (in memory; a slice of an in-memory float32
        stack shares its intensities, which stacks never modify)."""
        idx = np.arange(self.n_curves)[rows]
        return self.replace(
            intensities=self.curves(rows if isinstance(rows, slice) else idx),
            variable=self.variable[idx],
            sources=[self.sources[i] for i in idx],
        )

    def axis_as(self, kind: str, unit: str | None = None) -> np.ndarray:
        """Return the scattering axis expressed as ``kind`` (2theta, q, d) in ``unit``."""
        return convert_axis(self.axis, self.axis_kind, self.axis_unit, kind, unit, self.wavelength)

    def with_axis(self, kind: str, unit: str | None = None) -> SpectraStack:
        """Return the stack on another axis kind/unit; d runs backwards, so curves are flipped."""
        new_axis = self.axis_as(kind, unit)
        kind = normalize_axis_kind(kind)
        unit = normalize_unit(unit) if unit else AXIS_UNITS[kind][0]
        return self.replace(
            intensities=self.curves(), axis=new_axis, axis_kind=kind, axis_unit=unit
        )

    def strained(self, strain: float) -> SpectraStack:
        """Return the same curves with every d-spacing divided by ``1 + strain``.

        What a uniform compression by ``strain`` does to a pattern: q is multiplied by
        ``1 + strain`` and sin θ with it (Bragg's law), so no wavelength is needed.
        """
        factor = 1.0 + float(strain)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"strain must be a finite number above -1, got {strain}")
        x = _to_canonical(np.asarray(self.axis, dtype=np.float64), self.axis_unit)
        if self.axis_kind == "q":
            x = x * factor
        elif self.axis_kind == "d":
            x = x / factor
        else:
            sin_t = np.sin(np.radians(x) / 2) * factor
            if np.any(np.abs(sin_t) >= 1):
                raise StackError(
                    f"{self.name}: a strain of {strain:g} takes 2θ beyond 180° "
                    f"(the axis reaches {float(np.max(np.abs(x))):g}°)"
                )
            x = 2 * np.degrees(np.arcsin(sin_t))
        return self.replace(intensities=self.curves(), axis=_from_canonical(x, self.axis_unit))

    def resampled(self, new_axis: np.ndarray) -> SpectraStack:
        """Return the stack linearly interpolated onto ``new_axis`` (same kind and unit)."""
        new_axis = np.asarray(new_axis, dtype=np.float64)
        src_axis, data = self.axis, self.curves()
        if src_axis[0] > src_axis[-1]:
            src_axis, data = src_axis[::-1], data[:, ::-1]
        out = np.empty((self.n_curves, new_axis.size), dtype=np.float32)
        for i in range(self.n_curves):
            out[i] = np.interp(new_axis, src_axis, data[i])
        return self.replace(intensities=out, axis=new_axis)


def repeated_curves(stack: SpectraStack, chunk_size: int = 4096) -> list[tuple[int, int]]:
    """Return (curve, earlier curve) for every curve identical, point for point, to an earlier one."""
    import hashlib

    # a cheap fingerprint of each row's bits (their sum and a few of them, in one numpy pass)
    # finds the candidates; only rows sharing a fingerprint are hashed whole and compared
    fingerprints = []
    for _, chunk in stack.iter_chunks(chunk_size):
        rows = np.ascontiguousarray(chunk)
        bits = rows.reshape(rows.shape[0], -1).view(np.uint8)
        words = bits[:, : bits.shape[1] // 8 * 8].view(np.uint64)
        sampled = words[:, :: max(1, words.shape[1] // 8)][:, :8]
        total = words.sum(axis=1, dtype=np.uint64)
        fingerprints.append(np.column_stack([total, sampled, bits[:, words.shape[1] * 8 :]]))
    if not fingerprints:
        return []
    table = np.ascontiguousarray(np.concatenate(fingerprints))
    keys = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel()
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    candidates = counts[inverse.ravel()] > 1
    first_of: dict[bytes, int] = {}
    repeats = []
    for start, chunk in stack.iter_chunks(chunk_size):
        if not candidates[start : start + chunk_size].any():
            continue  # chunks without candidates are not read again
        rows = np.ascontiguousarray(chunk)
        for offset in np.flatnonzero(candidates[start : start + chunk_size]).tolist():
            key = hashlib.blake2b(rows[offset].tobytes(), digest_size=16).digest()
            earlier = first_of.setdefault(key, start + offset)
            if earlier != start + offset:
                repeats.append((start + offset, earlier))
    return repeats


def describe_repeated_curves(stack: SpectraStack) -> str:
    """Return a one-line warning about curves repeated exactly, or "" when there are none."""
    repeats = repeated_curves(stack)
    if not repeats:
        return ""
    shown = ", ".join(f"{i} = {j}" for i, j in repeats[:4]) + (", …" if len(repeats) > 4 else "")
    return (
        f"{stack.name}: {len(repeats)} of {stack.n_curves} curves repeat an earlier curve exactly "
        f"(curve {shown}); the file may hold some frames twice, so check the acquisition"
    )
