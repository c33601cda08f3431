"""Read the JCPDS phase files Dioptas and PeakPo users keep (keyword versions 4 and 5).

A file is ``KEYWORD: value`` lines after ``VERSION: 4`` (or 5): COMMENT, K0, K0P, DK0DT, DK0PDT,
SYMMETRY, A, B, C, ALPHA, BETA, GAMMA, VOLUME, ALPHAT or THERMAL EXPANSION, DALPHADT, and one
``DIHKL: d I h k l`` line per reflection. The equation of state is 3rd-order Birch–Murnaghan with
K0, K0′ and V0 from the cell; the cell keeps its shape under pressure (as in Dioptas), and the
DIHKL lines are recomputed from their (hkl) in the compressed cell. Temperature terms are read,
checked and not used: pressures are at room temperature. The old fixed-column versions 1–3 are
not read.
"""

from __future__ import annotations

from pathlib import Path

from ._errors import PhaseError
from .eos import EquationOfState
from .phase import Cell, JcpdsLine, Phase
from .reflections import cell_volume

SYMMETRIES = (
    "CUBIC", "TETRAGONAL", "HEXAGONAL", "TRIGONAL", "RHOMBOHEDRAL", "ORTHORHOMBIC", "MONOCLINIC",
    "TRICLINIC",
)  # fmt: skip
_NUMBERS = {
    "K0": "k0", "K0P": "k0p", "DK0DT": "dk0dt", "DK0PDT": "dk0pdt", "A": "a", "B": "b",
    "C": "c", "ALPHA": "alpha", "BETA": "beta", "GAMMA": "gamma", "VOLUME": "volume",
    "ALPHAT": "alphat", "THERMAL EXPANSION": "alphat", "DALPHADT": "dalphadt",
}  # fmt: skip


class JcpdsError(PhaseError):
    """A JCPDS file that cannot be read; the message names the file and the line."""


def _cell(symmetry: str, v: dict[str, float], fail) -> Cell:
    a = v.get("a")
    if a is None or a <= 0:
        fail("no positive A: line (the cell edge a in Å)")
    b, c = v.get("b") or a, v.get("c") or a
    alpha, beta, gamma = v.get("alpha") or 90.0, v.get("beta") or 90.0, v.get("gamma") or 90.0
    if symmetry == "CUBIC":
        return Cell(a, a, a)
    if symmetry == "TETRAGONAL":
        return Cell(a, a, c)
    if symmetry in ("HEXAGONAL", "TRIGONAL"):
        return Cell(a, a, c, 90.0, 90.0, 120.0)
    if symmetry == "RHOMBOHEDRAL":
        return Cell(a, a, a, alpha, alpha, alpha)
    if symmetry == "ORTHORHOMBIC":
        return Cell(a, b, c)
    if symmetry == "MONOCLINIC":
        return Cell(a, b, c, 90.0, beta, 90.0)
    return Cell(a, b, c, alpha, beta, gamma)


def read_jcpds(path: str | Path) -> Phase:
    """Return the phase described by a JCPDS file (versions 4 and 5); its name is the file stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise JcpdsError(f"{path}: cannot read the JCPDS file ({exc.strerror or exc})") from None
    where = [0]

    def fail(message: str):
        line = f", line {where[0]}" if where[0] else ""
        raise JcpdsError(f"{path}{line}: {message}")

    values: dict[str, float] = {}
    comments: list[str] = []
    symmetry = ""
    lines: list[JcpdsLine] = []
    version_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        where[0] = number
        stripped = raw.strip()
        if not stripped:
            continue
        key, colon, value = stripped.partition(":")
        key, value = " ".join(key.upper().split()), value.strip()
        if not colon:
            fail(f"expected 'KEYWORD: value', got {stripped[:40]!r}")
        if not version_seen:
            if key != "VERSION":
                fail("not a JCPDS file of version 4 or 5: the first line must be 'VERSION: 4'")
            if value.split()[:1] not in (["4"], ["5"], ["4.0"], ["5.0"]):
                fail(f"JCPDS version {value!r} is not read (versions 4 and 5 are)")
            version_seen = True
        elif key == "COMMENT":
            comments.append(value)
        elif key == "SYMMETRY":
            symmetry = value.upper()
            if symmetry not in SYMMETRIES:
                fail(f"unknown SYMMETRY {value!r}; known: {', '.join(SYMMETRIES)}")
        elif key in _NUMBERS:
            try:
                values[_NUMBERS[key]] = float(value)
            except ValueError:
                fail(f"{key} must be a number, got {value!r}")
        elif key == "DIHKL":
            fields = value.split()
            try:
                d0, intensity = float(fields[0]), float(fields[1])
                hkl = tuple(int(float(x)) for x in fields[2:5])
            except (ValueError, IndexError):
                fail(f"DIHKL must be 'd I h k l', got {value!r}")
            if len(hkl) != 3 or hkl == (0, 0, 0) or d0 <= 0:
                fail(f"DIHKL must be 'd I h k l' with d > 0 and hkl not 000, got {value!r}")
            lines.append(JcpdsLine(hkl, d0, intensity))
        # other keywords (PeakPo's extras, future ones) are left alone
    where[0] = 0
    if not version_seen:
        fail("empty file: a JCPDS file starts with 'VERSION: 4'")
    if not symmetry:
        fail("no SYMMETRY: line")
    if not lines:
        fail("no DIHKL: lines (reflections)")
    cell = _cell(symmetry, values, fail)
    k0, k0p = values.get("k0", 0.0), values.get("k0p", 4.0)
    if k0 <= 0:
        fail("K0 must be a positive bulk modulus in GPa (the equation of state needs it)")
    v0 = cell_volume(*cell.as_tuple())
    reference = comments[0] if comments else f"JCPDS file {path.name}"
    eos = EquationOfState("JCPDS", "bm3", v0, k0, k0p, reference, f"from {path.name}")
    shape = Cell(1.0, cell.b / cell.a, cell.c / cell.a, cell.alpha, cell.beta, cell.gamma)
    return Phase(
        name=path.stem,
        structure=f"JCPDS ({symmetry.lower()})",
        symmetry=symmetry,
        scales={"JCPDS": eos},
        default_scale="JCPDS",
        shape=shape,
        jcpds_lines=tuple(lines),
        source=str(path),
        comments=tuple(comments),
    )
