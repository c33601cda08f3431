"""CIF phases (napari_xrdphase.phases.cif): cell, atoms, lines and EOS from small CIFs."""

from __future__ import annotations

import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.phases import CifError, PhaseError, get_phase, read_cif

_CELL = """_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma {gamma}
"""
_SITES = """loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_U_iso_or_equiv
"""

AU = (
    "data_gold\n_chemical_formula_sum Au\n"
    + _CELL.format(a="4.0786(1)", b="4.0786(1)", c="4.0786(1)", gamma=90)
    + "_space_group_name_H-M_alt 'F m -3 m'\n_space_group_IT_number 225\n"
    + _SITES
    + "Au1 Au 0 0 0 1 0.006\n"
)
NACL = (
    "data_halite\n"
    + _CELL.format(a=5.6402, b=5.6402, c=5.6402, gamma=90)
    + "_symmetry_space_group_name_H-M 'F m -3 m'\n"
    + _SITES
    + "Na1 Na1+ 0 0 0 1 .\nCl1 Cl1- 0.5 0.5 0.5 1 .\n"
)
RE = (
    "data_rhenium\n"
    + _CELL.format(a=2.7609, b=2.7609, c=4.4576, gamma=120)
    + "_symmetry_space_group_name_H-M 'P 63/m m c'\n"
    + _SITES
    + "Re1 Re 0.33333 0.66667 0.25 1 ?\n"
)
# CsCl type given by its Hall symbol only
NACL_B2 = (
    "data_b2\n"
    + _CELL.format(a=3.4575, b=3.4575, c=3.4575, gamma=90)
    + "_space_group_name_Hall '-P 4 2 3'\n"
    + _SITES
    + "Na1 Na 0 0 0 1 .\nCl1 Cl 0.5 0.5 0.5 1 .\n"
)
# rutile: tetragonal, where (100) and (001) differ and are both extinct
RUTILE = (
    "data_rutile\n"
    + _CELL.format(a=4.5937, b=4.5937, c=2.9587, gamma=90)
    + "_space_group_name_H-M_alt 'P 42/m n m'\n"
    + _SITES
    + "Ti1 Ti 0 0 0 1 .\nO1 O 0.3048 0.3048 0 1 .\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "builtin"), [(AU, "Au"), (NACL, "NaCl-B1"), (RE, "Re"), (NACL_B2, "NaCl-B2")]
)
def test_cif_lines_at_zero_pressure_match_the_builtin_phase(tmp_path, text, builtin):
    phase = read_cif(_write(tmp_path, f"{builtin}.cif", text))
    reference = get_phase(builtin)
    # the same cell at 0 GPa: compare the CIF's lines with the built-in's at its own V0
    scale = (phase.v0 / reference.scale().v0) ** (1 / 3)
    mine = phase.reflections(0.0, d_min=0.9 * scale, wavelength=0.3344)
    theirs = reference.reflections(0.0, d_min=0.9, wavelength=0.3344)
    assert len(mine) == len(theirs) > 3
    by_hkl = sorted(theirs, key=lambda r: r.hkl)
    for line, ref in zip(sorted(mine, key=lambda r: r.hkl), by_hkl, strict=True):
        assert line.hkl == ref.hkl
        assert line.d == pytest.approx(ref.d * scale, rel=2e-5)
        assert line.multiplicity == ref.multiplicity
        assert line.intensity == pytest.approx(ref.intensity, abs=2.0)


def test_gold_cif_reads_cell_atoms_and_space_group(tmp_path):
    phase = get_phase(_write(tmp_path, "gold.cif", AU))
    assert phase.name == "gold" and phase.symmetry == "CUBIC"
    assert "F m -3 m" in phase.structure
    assert phase.cell().a == pytest.approx(4.0786)
    assert sorted(site[1] for site in phase.sites) == [
        (0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0),
    ]  # fmt: skip
    hkl = [r.hkl for r in phase.reflections(d_min=1.0)]
    assert hkl == [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2), (4, 0, 0)]
    assert phase.scales == {}


def test_tetragonal_rutile_groups_lines_by_its_own_point_group(tmp_path):
    phase = read_cif(_write(tmp_path, "rutile.cif", RUTILE))
    lines = {r.hkl: r for r in phase.reflections(d_min=1.3)}
    assert phase.symmetry == "TETRAGONAL"
    assert (1, 0, 0) not in lines and (0, 0, 1) not in lines  # P4_2/mnm extinctions
    assert lines[(1, 1, 0)].intensity == 100.0
    assert {hkl: lines[hkl].multiplicity for hkl in [(1, 1, 0), (1, 0, 1), (2, 0, 0), (0, 0, 2)]
            } == {(1, 1, 0): 4, (1, 0, 1): 8, (2, 0, 0): 4, (0, 0, 2): 2}  # fmt: skip
    assert lines[(0, 0, 2)].d == pytest.approx(2.9587 / 2)
    assert lines[(2, 0, 0)].d == pytest.approx(4.5937 / 2)


def test_occupancy_enters_the_structure_factor(tmp_path):
    half = AU.replace("Au1 Au 0 0 0 1 0.006", "Au1 Au 0 0 0 0.5 0.006\nAg1 Ag 0 0 0 0.5 .")
    phase = read_cif(_write(tmp_path, "auag.cif", half))
    assert sorted({site[2] for site in phase.sites}) == [0.5]
    assert [r.hkl for r in phase.reflections(d_min=1.0)] == [
        r.hkl for r in get_phase("Au").reflections(d_min=1.0)
    ]


def test_k0_and_k0p_give_the_builtin_gold_scale(tmp_path):
    path = _write(tmp_path, "gold.cif", AU)
    bm3 = read_cif(path, k0=167.0, k0p=5.77)
    reference = get_phase("Au")
    assert bm3.default_scale == "CIF" and bm3.scale().form == "bm3"
    assert bm3.scale().v0 == pytest.approx(reference.scale("Fei2007-BM3").v0, rel=1e-12)
    mine = bm3.reflections(30.0, d_min=1.0)
    theirs = reference.reflections(30.0, scale="Fei2007-BM3", d_min=1.0)
    assert [r.d for r in mine] == pytest.approx([r.d for r in theirs], rel=1e-9)
    assert mine[0].d < reference.reflections(0.0)[0].d
    vinet = read_cif(path, k0=167.0, k0p=6.0, form="vinet")
    assert vinet.cell(30.0).a == pytest.approx(reference.cell(30.0, "Fei2007").a, rel=1e-9)


def test_eos_items_in_the_file_and_call_overrides(tmp_path):
    text = AU + "_xrdphase_eos_K0 167.0\n_xrdphase_eos_K0_prime 6.0\n_xrdphase_eos_form vinet\n"
    path = _write(tmp_path, "gold_eos.cif", text)
    phase = get_phase(path)
    assert phase.cell(30.0).a == pytest.approx(get_phase("Au").cell(30.0).a, rel=1e-9)
    assert read_cif(path, k0=100.0).scale().k0 == 100.0
    assert read_cif(path, k0=100.0).scale().k0p == 6.0


def test_no_eos_means_lines_at_zero_pressure_only(tmp_path):
    phase = get_phase(str(_write(tmp_path, "gold.cif", AU)))
    assert phase.reflections(0.0)
    with pytest.raises(PhaseError, match=r"gold has no equation of state.*K0") as info:
        phase.reflections(30.0)
    assert "\n" not in str(info.value)
    with pytest.raises(CifError, match="K0′ was given without K0"):
        read_cif(tmp_path / "gold.cif", k0p=5.0)
    with pytest.raises(CifError, match="positive bulk modulus"):
        read_cif(tmp_path / "gold.cif", k0=-1.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (AU.replace("Au1 Au 0 0 0 1 0.006", "Au1 Au 0 0 0"), "line "),
        ("data_x\n_cell_length_a 4\n'unterminated\n", "line 3"),
        (AU.replace("_cell_angle_gamma 90\n", ""), "_cell_angle_gamma missing"),
        (AU.replace("'F m -3 m'", "'Q 9'"), "no space group"),
        ("data_x\n_cell_length_a 4\n", "no data block with atom sites"),
        (AU.replace("Au1 Au", "Q1 ?"), "site Q1: no element"),
    ],
)
def test_broken_cif_is_one_line_naming_the_file(tmp_path, text, fragment):
    path = _write(tmp_path, "broken.cif", text)
    with pytest.raises(CifError) as info:
        get_phase(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message
    assert isinstance(info.value, ValueError)


def test_missing_cif_and_the_phases_command(tmp_path, capsys):
    with pytest.raises(CifError, match=r"nothing\.cif: no such file"):
        get_phase(tmp_path / "nothing.cif")
    path = _write(tmp_path, "rhenium.cif", RE)
    main(["phases", str(path), "--lines", "0"])
    out = capsys.readouterr().out
    assert "rhenium  CIF (P 63/m m c)" in out and "no equation of state" in out
    assert "(101)" in out
