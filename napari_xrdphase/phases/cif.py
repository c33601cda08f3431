"""Read crystal structures from CIF files (small-molecule / inorganic CIF) with ``gemmi``.

gemmi (a maintained crystallography library, already our source of atomic form factors) parses
the CIF, finds the space group (from its name, Hall symbol or symmetry operations) and expands
the atom sites to the full unit cell; this module only turns that into a ``Phase``. The cell
in the file is the phase's cell at 0 GPa and its lines come from the structure factor of those
atoms (with their occupancies), so the extinctions are the structure's own. A CIF carries no
equation of state: give K0 and K0′ to ``read_cif`` or add ``_xrdphase_eos_K0`` and
``_xrdphase_eos_K0_prime`` (and optionally ``_xrdphase_eos_form``, ``bm3`` or ``vinet``) to the
file; without them the phase has its lines at 0 GPa only.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._errors import PhaseError
from .eos import EOS_FORMS, EquationOfState
from .phase import Cell, Phase

_CELL_ITEMS = (
    "_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha",
    "_cell_angle_beta", "_cell_angle_gamma",
)  # fmt: skip
_GEMMI_WHERE = re.compile(r":(\d+):[^:\s]*:\s*(.*)$")
_KPA_PER_GPA = 1e6


class CifError(PhaseError):
    """A CIF file that cannot be read or used; the message names the file (and the line)."""


def _number(block, tag: str) -> float | None:
    import gemmi

    value = block.find_value(tag)
    if value is None or gemmi.cif.is_null(value):
        return None
    number = gemmi.cif.as_number(value)
    return None if number != number else float(number)  # NaN: not a number


def read_cif(
    path: str | Path,
    *,
    k0: float | None = None,
    k0p: float | None = None,
    form: str | None = None,
) -> Phase:
    """Return the phase of the first data block with atom sites in a CIF; its name is the file stem.

    ``k0`` (GPa), ``k0p`` and ``form`` ('bm3', the default, or 'vinet') give its equation of
    state with V0 from the file's cell; they override ``_xrdphase_eos_*`` items in the file.
    K0′ defaults to 4. Without K0 the phase has no scale and only its 0-GPa lines.
    """
    path = Path(path)
    try:
        import gemmi
    except ImportError:
        raise CifError(f"{path}: reading CIF files needs gemmi (pip install gemmi)") from None
    try:
        document = gemmi.cif.read(str(path))
    except FileNotFoundError:
        raise CifError(f"{path}: no such file") from None
    except (ValueError, RuntimeError, OSError) as exc:
        message = " ".join(str(exc).split())
        where = _GEMMI_WHERE.search(message)
        if where:
            raise CifError(f"{path}, line {where.group(1)}: {where.group(2)}") from None
        raise CifError(f"{path}: not a readable CIF ({message})") from None
    blocks = [b for b in document if b.find_values("_atom_site_fract_x")]
    if not blocks:
        raise CifError(f"{path}: no data block with atom sites (_atom_site_fract_x)")
    block = blocks[0]

    def fail(message: str):
        raise CifError(f"{path} (data_{block.name}): {message}")

    cell_values = [_number(block, tag) for tag in _CELL_ITEMS]
    missing = [tag for tag, v in zip(_CELL_ITEMS, cell_values, strict=True) if v is None]
    if missing:
        fail(f"no cell: {', '.join(missing)} missing or not a number")
    if min(cell_values) <= 0:
        fail("the cell lengths and angles must be positive")
    try:
        structure = gemmi.make_small_structure_from_block(block)
    except (ValueError, RuntimeError) as exc:
        fail(" ".join(str(exc).split()))
    group = structure.spacegroup
    if group is None:
        fail("no space group (_space_group_name_H-M_alt, _space_group_name_Hall or symmetry "
             "operations) that gemmi recognises")  # fmt: skip
    sites = []
    for site in structure.get_all_unit_cell_sites():
        if site.element.name == "X":
            fail(f"site {site.label}: no element (give _atom_site_type_symbol)")
        if not 0 < site.occ <= 1:
            fail(f"site {site.label}: occupancy {site.occ:g} is not in (0, 1]")
        xyz = tuple(float(x) % 1.0 for x in (site.fract.x, site.fract.y, site.fract.z))
        sites.append((site.element.name, xyz, float(site.occ)))
    if not sites:
        fail("no atom sites")
    rotations = []
    for op in group.operations().sym_ops:
        rotation = tuple(tuple(x // op.DEN for x in row) for row in op.rot)
        if rotation not in rotations:
            rotations.append(rotation)
    cell = Cell(*cell_values)
    v0 = cell.volume
    comments = [f"data_{block.name}, space group {group.xhm()} (No. {group.number})"]
    formula = block.find_value("_chemical_formula_sum")
    if formula:
        comments.append(f"formula {gemmi.cif.as_string(formula)}")
    ambient = _number(block, "_diffrn_ambient_pressure")  # kPa
    if ambient is not None and ambient / _KPA_PER_GPA > 0.1:
        comments.append(
            f"the file's cell was measured at {ambient / _KPA_PER_GPA:g} GPa; it is used as "
            "the 0-GPa cell (V0)"
        )
    in_file = {
        key: _number(block, f"_xrdphase_eos_{key}") for key in ("K0", "K0_prime")
    }  # fmt: skip
    k0 = k0 if k0 is not None else in_file["K0"]
    k0p = k0p if k0p is not None else in_file["K0_prime"]
    if form is None:
        value = block.find_value("_xrdphase_eos_form")
        form = gemmi.cif.as_string(value).lower() if value else "bm3"
    if form not in EOS_FORMS:
        fail(f"unknown equation of state {form!r}; known: {', '.join(EOS_FORMS)}")
    scales = {}
    if k0 is not None:
        if not k0 > 0:
            fail(f"K0 must be a positive bulk modulus in GPa, got {k0:g}")
        k0p = 4.0 if k0p is None else k0p
        note = f"V0 from the cell in {path.name}; K0, K0′ not from a published scale here"
        scales["CIF"] = EquationOfState("CIF", form, v0, k0, k0p, f"CIF file {path.name}", note)
    elif k0p is not None:
        fail("K0′ was given without K0: the equation of state needs both")
    return Phase(
        name=path.stem,
        structure=f"CIF ({group.xhm()})",
        symmetry=group.crystal_system_str().upper(),
        scales=scales,
        default_scale="CIF" if scales else "",
        shape=Cell(1.0, cell.b / cell.a, cell.c / cell.a, cell.alpha, cell.beta, cell.gamma),
        sites=tuple(sites),
        source=str(path),
        comments=tuple(comments),
        rotations=tuple(rotations),
        v0=v0,
    )
