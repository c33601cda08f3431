"""Known phases: built-in EOS tables, cells and powder lines at pressure, JCPDS files, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.phases import (
    PHASES,
    JcpdsError,
    PhaseError,
    builtin_phase_names,
    get_phase,
    read_jcpds,
)
from napari_xrdphase.phases.eos import bm3_pressure, vinet_pressure

ALL_SCALES = [(p.name, s) for p in PHASES.values() for s in p.scales]

# (phase, scale) -> (pytheos scale module, class) for the scales pytheos 0.0.2 carries
PYTHEOS_SCALES = {
    ("Au", "Fei2007"): ("gold", "Fei2007vinet"),
    ("Au", "Fei2007-BM3"): ("gold", "Fei2007bm3"),
    ("Pt", "Fei2007"): ("platinum", "Fei2007vinet"),
    ("Pt", "Fei2007-BM3"): ("platinum", "Fei2007bm3"),
    ("Pt", "Holmes1989"): ("platinum", "Holmes1989"),
    ("MgO", "Tange2009"): ("periclase", "Tange2009"),
    ("MgO", "Speziale2001"): ("periclase", "Speziale2001"),
    ("MgO", "Zha2000"): ("periclase", "Zha2000"),
    ("NaCl-B1", "Dorogokupets2007"): ("sodium_chloride", "Dorogokupets2007"),
    ("NaCl-B2", "Fei2007"): ("sodium_chloride_b2", "Fei2007vinet"),
    ("NaCl-B2", "Fei2007-BM3"): ("sodium_chloride_b2", "Fei2007bm3"),
    ("NaCl-B2", "Dorogokupets2007"): ("sodium_chloride_b2", "Dorogokupets2007"),
    ("Ne", "Fei2007"): ("neon", "Fei2007vinet"),
    ("Ne", "Fei2007-BM3"): ("neon", "Fei2007bm3"),
}


def _pytheos():
    pytest.importorskip("periodictable")
    return pytest.importorskip("pytheos")


def _hkls(phase, pressure=0.0, **kw):
    return {r.hkl: r for r in get_phase(phase).reflections(pressure, **kw)}


# --- equations of state ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("phase", "scale"), sorted(PYTHEOS_SCALES))
def test_scale_carried_by_pytheos_gives_the_same_v0_and_pressure(phase, scale):
    pytheos = _pytheos()
    module, cls = PYTHEOS_SCALES[(phase, scale)]
    reference = getattr(getattr(pytheos, module), cls)()
    eos = get_phase(phase).scale(scale)
    assert eos.v0 == pytest.approx(reference.params_st["v0"].n, rel=1e-4)
    assert eos.k0 == pytest.approx(reference.params_st["k0"].n, rel=1e-12)
    assert eos.k0p == pytest.approx(reference.params_st["k0p"].n, rel=1e-12)
    for ratio in (0.95, 0.8, 0.7):
        volume = ratio * reference.params_st["v0"].n
        expected = reference.cal_p(volume, 300.0).n  # 300 K: no thermal pressure
        assert eos.pressure(volume * eos.v0 / reference.params_st["v0"].n) == pytest.approx(
            expected, rel=1e-9
        )


@pytest.mark.parametrize(("phase", "scale"), ALL_SCALES)
def test_every_scale_matches_pytheos_formula_at_v_over_v0_0_8(phase, scale):
    pytheos = _pytheos()
    eos = get_phase(phase).scale(scale)
    function = {"vinet": pytheos.vinet_p, "bm3": pytheos.bm3_p}[eos.form]
    volume = 0.8 * eos.v0
    assert eos.pressure(volume) == pytest.approx(
        function(volume, eos.v0, eos.k0, eos.k0p), rel=1e-9
    )


def test_gold_default_scale_at_v_over_v0_0_8_without_pytheos():
    # Vinet written out: 3 K0 (1 - x) / x² exp(1.5 (K0' - 1)(1 - x)), x = (V/V0)^(1/3), with
    # Fei 2007's K0 = 167 GPa, K0' = 6.00; pytheos's Fei2007vinet gives 71.34 GPa here too
    x = 0.8 ** (1 / 3)
    expected = 3 * 167 * (1 - x) / x**2 * math.exp(1.5 * 5.0 * (1 - x))
    au = get_phase("Au")
    assert au.pressure(0.8 * au.scale().v0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(71.34, abs=0.01)


@pytest.mark.parametrize(("phase", "scale"), ALL_SCALES)
def test_v_p_v_round_trip_and_zero_pressure_at_v0(phase, scale):
    eos = get_phase(phase).scale(scale)
    assert eos.pressure(eos.v0) == pytest.approx(0.0, abs=1e-12)
    volumes = eos.v0 * np.array([1.02, 0.95, 0.8, 0.65, 0.5])
    assert eos.volume(eos.pressure(volumes)) == pytest.approx(volumes, rel=1e-10)
    for pressure in (0.5, 10.0, 100.0):
        assert eos.pressure(eos.volume(pressure)) == pytest.approx(pressure, rel=1e-10)


@pytest.mark.parametrize("function", [vinet_pressure, bm3_pressure])
def test_eos_slope_at_v0_is_the_bulk_modulus_and_its_derivative_is_k0p(function):
    v0, k0, k0p = 60.0, 250.0, 4.5
    h = 1e-4

    def bulk(v):  # K = -V dP/dV
        return (
            -v
            * (function(v * (1 + h), v0, k0, k0p) - function(v * (1 - h), v0, k0, k0p))
            / (2 * h * v)
        )

    assert bulk(v0) == pytest.approx(k0, rel=1e-6)
    # K' = dK/dP at P = 0
    dp = function(v0 * (1 - 1e-3), v0, k0, k0p)
    assert (bulk(v0 * (1 - 1e-3)) - bulk(v0)) / dp == pytest.approx(k0p, rel=2e-3)


def test_pressure_outside_the_eos_range_is_a_clear_error():
    with pytest.raises(ValueError, match="outside what this equation of state covers"):
        get_phase("Ne").volume(1e9)
    with pytest.raises(ValueError, match="outside"):
        get_phase("Au").volume(-500.0)


# --- cells, extinctions, intensities -----------------------------------------------------------


def test_gold_fcc_lines_present_and_absent_with_multiplicities():
    lines = _hkls("Au")
    for hkl in [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2)]:
        assert hkl in lines
    for hkl in [(1, 0, 0), (1, 1, 0), (2, 1, 0), (2, 1, 1)]:
        assert hkl not in lines
    assert [lines[h].multiplicity for h in [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1)]] == [
        8,
        6,
        12,
        24,
    ]
    assert max(lines.values(), key=lambda r: r.intensity).hkl == (1, 1, 1)
    assert lines[(1, 1, 1)].d == pytest.approx(4.0786 / math.sqrt(3), rel=1e-4)


def test_only_extinct_lines_above_d_min_gives_no_line_not_extinct_ones_at_100():
    # Pt (fcc, a = 3.92 Å): above 2.3 Å only (100) remains, and it is extinct
    assert get_phase("Pt").reflections(0.0, d_min=2.3) == []
    # one allowed line left: it is the strongest, at 100
    (line,) = get_phase("Pt").reflections(0.0, d_min=2.0)
    assert line.hkl == (1, 1, 1) and line.intensity == pytest.approx(100.0)
    # weak but allowed lines stay (rock salt odd lines: f_Na − f_Cl)
    assert (1, 1, 1) in [r.hkl for r in get_phase("NaCl-B1").reflections(0.0, d_min=2.5)]


def test_tungsten_bcc_has_h_plus_k_plus_l_even_only():
    lines = _hkls("W")
    assert {(1, 1, 0), (2, 0, 0), (2, 1, 1), (2, 2, 0), (3, 1, 0)} <= set(lines)
    assert all(sum(h) % 2 == 0 for h in lines)
    assert (1, 0, 0) not in lines and (1, 1, 1) not in lines


def test_rhenium_hcp_extinctions_and_multiplicities():
    lines = _hkls("Re")
    assert {(1, 0, 0), (0, 0, 2), (1, 0, 1), (1, 0, 2), (1, 1, 0)} <= set(lines)
    assert (0, 0, 1) not in lines and (0, 0, 3) not in lines
    assert (1, 1, 1) not in lines  # h - k = 3n with l odd
    for h, k, el in lines:
        assert not ((h - k) % 3 == 0 and el % 2 == 1)
    assert lines[(1, 0, 0)].multiplicity == 6
    assert lines[(0, 0, 2)].multiplicity == 2
    assert lines[(1, 0, 1)].multiplicity == 12
    assert max(lines.values(), key=lambda r: r.intensity).hkl == (1, 0, 1)


def test_rock_salt_is_fcc_with_weak_odd_lines():
    for name in ("NaCl-B1", "MgO"):
        lines = _hkls(name)
        assert all(len({x % 2 for x in h}) == 1 for h in lines)  # all even or all odd
        assert lines[(1, 1, 1)].intensity < lines[(2, 0, 0)].intensity / 3
        assert max(lines.values(), key=lambda r: r.intensity).hkl == (2, 0, 0)


def test_cscl_b2_is_primitive_with_strong_even_lines():
    lines = _hkls("NaCl-B2")
    assert {(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 0, 0), (2, 1, 0)} <= set(lines)
    assert max(lines.values(), key=lambda r: r.intensity).hkl == (1, 1, 0)
    assert lines[(1, 0, 0)].intensity < lines[(1, 1, 0)].intensity / 5


def test_d_spacings_shrink_by_the_cube_root_of_the_volume_ratio():
    for name in ("Au", "W", "Re", "MgO", "Ne"):
        phase = get_phase(name)
        ratio = (phase.volume(30.0) / phase.scale().v0) ** (1 / 3)
        zero, high = _hkls(name), _hkls(name, 30.0, d_min=0.5)
        for hkl, line in zero.items():
            assert high[hkl].d == pytest.approx(line.d * ratio, rel=1e-10)
        assert ratio < 1


def test_hcp_cell_keeps_c_over_a_and_inverts_to_pressure():
    re = get_phase("Re")
    cell0, cell = re.cell(0.0), re.cell(50.0)
    assert (cell0.a, cell0.c) == pytest.approx((2.7609, 4.4576), rel=1e-9)
    assert cell.c / cell.a == pytest.approx(cell0.c / cell0.a, rel=1e-12)
    assert cell.volume == pytest.approx(re.volume(50.0), rel=1e-12)
    assert re.pressure_from_lattice(cell.a, cell.c) == pytest.approx(50.0, rel=1e-9)
    au = get_phase("Au")
    assert au.pressure_from_lattice(au.cell(12.0).a) == pytest.approx(12.0, rel=1e-9)


def test_wavelength_gives_bragg_two_theta_and_drops_unreachable_lines():
    lines = get_phase("Pt").reflections(0.0, wavelength=1.5406, d_min=0.5)
    for line in lines:
        assert math.sin(math.radians(line.two_theta / 2)) == pytest.approx(
            1.5406 / (2 * line.d), rel=1e-9
        )
    assert min(line.d for line in lines) >= 1.5406 / 2
    assert max(line.intensity for line in lines) == pytest.approx(100.0)


def test_scales_by_name_and_default():
    pt = get_phase("pt")
    assert pt.default_scale == "Fei2007"
    holmes, fei = pt.scale("holmes1989"), pt.scale()
    assert holmes.pressure(0.8 * holmes.v0) != pytest.approx(fei.pressure(0.8 * fei.v0), rel=1e-3)
    assert pt.pressure(50.0, scale="Holmes1989") == holmes.pressure(50.0)
    with pytest.raises(PhaseError, match=r"Holmes1989.*default Fei2007"):
        pt.scale("Jamieson1982")


def test_unknown_phase_lists_the_known_ones():
    with pytest.raises(PhaseError) as info:
        get_phase("Unobtainium")
    message = str(info.value)
    assert "'Unobtainium'" in message
    for name in builtin_phase_names():
        assert name in message
    assert isinstance(info.value, ValueError)


def test_table_has_the_standard_markers_and_media_each_with_references():
    expected = {"Au", "Pt", "Cu", "Ag", "W", "Mo", "Ta", "Re", "MgO", "NaCl-B1", "NaCl-B2"}
    assert expected | {"KCl-B2", "Ne", "Ar"} <= set(builtin_phase_names())
    for phase in PHASES.values():
        assert phase.default_scale in phase.scales
        for eos in phase.scales.values():
            assert eos.reference and eos.form in ("vinet", "bm3")


# --- JCPDS files -------------------------------------------------------------------------------

GOLD_V4 = """VERSION:   4
COMMENT: Gold, Au (Anderson et al. 1989)
K0:       166.65
K0P:      5.4823
DK0DT:    -0.0
DK0PDT:   0.0
SYMMETRY: CUBIC
A:        4.0786
B:        4.0786
C:        4.0786
ALPHA:    90.0
BETA:     90.0
GAMMA:    90.0
VOLUME:   67.847
ALPHAT:   4.26e-05
DALPHADT: 0.0
DIHKL:    2.3548\t100\t1\t1\t1
DIHKL:    2.0393\t52\t2\t0\t0
DIHKL:    1.4420\t32\t2\t2\t0
DIHKL:    1.2298\t36\t3\t1\t1
"""

RHENIUM_V5 = """VERSION: 5
COMMENT: Re, rhenium, hcp
COMMENT: test file in PeakPo's version 5 keywords
K0: 352.6
K0P: 4.56
SYMMETRY: HEXAGONAL
A: 2.7609
C: 4.4576
THERMAL EXPANSION: 6.2e-6
DIHKL: 2.3910 25.0 1 0 0
DIHKL: 2.2288 25.0 0 0 2
DIHKL: 2.1070 100.0 1 0 1
DIHKL: 1.6303 17.0 1 0 2
DIHKL: 1.3804 20.0 1 1 0
"""


def test_jcpds_v4_gold_reads_as_bm3_with_v0_from_the_cell(tmp_path):
    path = tmp_path / "au_anderson.jcpds"
    path.write_text(GOLD_V4)
    phase = read_jcpds(path)
    assert phase.name == "au_anderson" and phase.symmetry == "CUBIC"
    eos = phase.scale()
    assert (eos.form, eos.k0, eos.k0p) == ("bm3", 166.65, 5.4823)
    assert eos.v0 == pytest.approx(4.0786**3, rel=1e-12)
    assert "Anderson" in eos.reference
    builtin = get_phase("Au").scale("Anderson1989")
    assert phase.pressure(0.85 * eos.v0) == pytest.approx(builtin.pressure(0.85 * eos.v0))
    zero = {r.hkl: r for r in phase.reflections()}
    assert zero[(1, 1, 1)].d == pytest.approx(2.3548, abs=1e-4)
    assert zero[(2, 0, 0)].intensity == 52 and zero[(1, 1, 1)].multiplicity is None
    ratio = (phase.volume(20.0) / eos.v0) ** (1 / 3)
    high = {r.hkl: r for r in phase.reflections(20.0)}
    assert high[(3, 1, 1)].d == pytest.approx(zero[(3, 1, 1)].d * ratio, rel=1e-12)
    assert get_phase(str(path)).name == "au_anderson"


def test_jcpds_v5_hexagonal_with_thermal_expansion_keyword(tmp_path):
    path = tmp_path / "re.jcpds"
    path.write_text(RHENIUM_V5)
    phase = read_jcpds(path)
    assert phase.symmetry == "HEXAGONAL" and len(phase.comments) == 2
    assert phase.scale().v0 == pytest.approx(get_phase("Re").scale().v0, rel=1e-12)
    lines = {r.hkl: r for r in phase.reflections(40.0)}
    builtin = _hkls("Re", 40.0, scale=None)
    # same cell, same EOS parameters but BM3 instead of Vinet: d agree to 0.1 %
    for hkl in [(1, 0, 0), (0, 0, 2), (1, 0, 1)]:
        assert lines[hkl].d == pytest.approx(builtin[hkl].d, rel=1e-3)
    cell = phase.cell(40.0)
    assert cell.c / cell.a == pytest.approx(4.4576 / 2.7609, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOLD_V4.replace("K0P:      5.4823", "K0P:      five"), 4, "K0P must be a number"),
        (GOLD_V4.replace("SYMMETRY: CUBIC", "SYMMETRY: CUBICAL"), 7, "unknown SYMMETRY"),
        (GOLD_V4.replace("DIHKL:    1.4420\t32\t2\t2\t0", "DIHKL: 1.442 32 2"), 19, "DIHKL"),
        ("VERSION: 3\nCOMMENT: old\n", 1, "version '3'"),
        ("Gold\n1 4.0786 166.65 5.48 1\n", 1, "expected 'KEYWORD: value'"),
    ],
)
def test_bad_jcpds_is_a_one_line_error_naming_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.jcpds"
    path.write_text(text)
    with pytest.raises(JcpdsError) as info:
        read_jcpds(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and f"line {line}:" in message and fragment in message
    assert isinstance(info.value, ValueError)


def test_jcpds_without_reflections_or_missing_file(tmp_path):
    path = tmp_path / "empty.jcpds"
    path.write_text("VERSION: 4\nK0: 100\nSYMMETRY: CUBIC\nA: 4.0\n")
    with pytest.raises(JcpdsError, match=r"empty\.jcpds: no DIHKL"):
        read_jcpds(path)
    with pytest.raises(JcpdsError, match="cannot read"):
        read_jcpds(tmp_path / "missing.jcpds")


# --- command line ------------------------------------------------------------------------------


def test_xrdphase_phases_lists_every_phase_scale_default_and_reference(capsys):
    assert main(["phases"]) == 0
    out = capsys.readouterr().out
    for phase in PHASES.values():
        assert f"\n{phase.name}  {phase.structure}" in out
        for name, eos in phase.scales.items():
            assert name in out and eos.reference in out
    assert "* Fei2007" in out and "  Holmes1989" in out
    assert "300 K" in out


def test_xrdphase_phases_with_lines_and_unknown_name(capsys):
    assert main(["phases", "W", "--lines", "10"]) == 0
    out = capsys.readouterr().out
    assert "(110)" in out and "(100) " not in out and "m = 12" in out
    assert main(["phases", "Kryptonite"]) == 2
    assert "unknown phase 'Kryptonite'" in capsys.readouterr().err


def test_without_gemmi_form_factors_fall_back_to_z_and_extinctions_hold(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gemmi", None)  # import gemmi now raises ImportError
    lines = _hkls("NaCl-B1")
    assert (1, 0, 0) not in lines and (1, 1, 1) in lines
    assert lines[(1, 1, 1)].intensity < lines[(2, 0, 0)].intensity / 3
    assert (1, 1, 0) in _hkls("W") and (1, 0, 0) not in _hkls("W")
