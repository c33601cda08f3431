"""The built-in pressure markers and pressure media, with their published equations of state.

Every scale is a 300 K isotherm (no thermal pressure): use these at room temperature. V0 is per
conventional unit cell in Å³. ``note`` says where a parameter set was cross-checked and where
it was not; the tests compare every scale that pytheos also carries against pytheos.
"""

from __future__ import annotations

import math

from .eos import EquationOfState
from .phase import Cell, Phase

FEI2007 = "Fei Y. et al. (2007) PNAS 104, 9182–9186, doi:10.1073/pnas.0609013104"
DEWAELE2004 = (
    "Dewaele A., Loubeyre P., Mezouar M. (2004) Phys. Rev. B 70, 094112, "
    "doi:10.1103/PhysRevB.70.094112"
)
DOROGOKUPETS2007 = "Dorogokupets P. I., Dewaele A. (2007) High Press. Res. 27, 431–446"
UNCHECKED = "not yet cross-checked against a second source (pytheos does not carry this scale)"
SAME_AS_PYTHEOS = "same V0, K0, K0′ as pytheos 0.0.2"

_FCC = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))
_BCC = ((0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
_HCP = ((1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75))
_CUBE = Cell(1.0, 1.0, 1.0)


def _fcc(element):
    return tuple((element, xyz) for xyz in _FCC)


def _bcc(element):
    return tuple((element, xyz) for xyz in _BCC)


def _b1(cation, anion):
    return _fcc(cation) + tuple((anion, (x + 0.5, y, z)) for x, y, z in _FCC)


def _b2(cation, anion):
    return ((cation, (0.0, 0.0, 0.0)), (anion, (0.5, 0.5, 0.5)))


def _scales(*items: EquationOfState) -> dict[str, EquationOfState]:
    return {eos.name: eos for eos in items}


def _cubic(name, structure, sites, scales, default):
    return Phase(name, structure, "CUBIC", _scales(*scales), default, _CUBE, sites)


def _v(name, form, v0, k0, k0p, reference, note=""):
    return EquationOfState(name, form, v0, k0, k0p, reference, note)


_RE_C_OVER_A = 4.4576 / 2.7609  # Re at ambient conditions, kept under pressure

PHASES: dict[str, Phase] = {
    phase.name: phase
    for phase in [
        _cubic("Au", "fcc", _fcc("Au"), [
            _v("Fei2007", "vinet", 4.0786**3, 167.0, 6.00, FEI2007, SAME_AS_PYTHEOS),
            _v("Fei2007-BM3", "bm3", 4.0786**3, 167.0, 5.77, FEI2007, SAME_AS_PYTHEOS),
            _v("Dewaele2004", "vinet", 4 * 16.962, 167.0, 6.00, DEWAELE2004, UNCHECKED),
            _v("Anderson1989", "bm3", 4.0786**3, 166.65, 5.4823,
               "Anderson O. L., Isaak D. G., Yamamoto S. (1989) J. Appl. Phys. 65, 1534–1543",
               "K0, K0′ as in the gold JCPDS files users share; " + UNCHECKED),
        ], "Fei2007"),
        _cubic("Pt", "fcc", _fcc("Pt"), [
            _v("Fei2007", "vinet", 3.9231**3, 277.0, 5.08, FEI2007, SAME_AS_PYTHEOS),
            _v("Fei2007-BM3", "bm3", 3.9231**3, 277.0, 4.95, FEI2007, SAME_AS_PYTHEOS),
            _v("Dewaele2004", "vinet", 4 * 15.095, 277.0, 5.08, DEWAELE2004, UNCHECKED),
            _v("Holmes1989", "vinet", 3.9231**3, 266.0, 5.81,
               "Holmes N. C., Moriarty J. A., Gathers G. R., Nellis W. J. (1989) "
               "J. Appl. Phys. 66, 2962–2967", SAME_AS_PYTHEOS),
        ], "Fei2007"),
        _cubic("Cu", "fcc", _fcc("Cu"), [
            _v("Dewaele2004", "vinet", 4 * 11.802, 133.2, 5.36, DEWAELE2004, UNCHECKED),
        ], "Dewaele2004"),
        _cubic("Ag", "fcc", _fcc("Ag"), [
            _v("Dewaele2008", "vinet", 4.0857**3, 101.0, 6.15,
               "Dewaele A., Torrent M., Loubeyre P., Mezouar M. (2008) Phys. Rev. B 78, 104102",
               UNCHECKED),
        ], "Dewaele2008"),
        _cubic("W", "bcc", _bcc("W"), [
            _v("Dewaele2004", "vinet", 2 * 15.862, 295.2, 4.32, DEWAELE2004, UNCHECKED),
        ], "Dewaele2004"),
        _cubic("Mo", "bcc", _bcc("Mo"), [
            _v("Huang2016", "vinet", 3.1470**3, 260.0, 4.21,
               "Huang X. et al. (2016) Sci. Rep. 6, 19923", UNCHECKED),
        ], "Huang2016"),
        _cubic("Ta", "bcc", _bcc("Ta"), [
            _v("Dewaele2004", "vinet", 2 * 18.04, 194.0, 3.52, DEWAELE2004, UNCHECKED),
        ], "Dewaele2004"),
        Phase("Re", "hcp", "HEXAGONAL", _scales(
            _v("Anzellini2014", "vinet",
               math.sqrt(3) / 2 * 2.7609**2 * 4.4576, 352.6, 4.56,
               "Anzellini S. et al. (2014) J. Appl. Phys. 115, 043511", UNCHECKED),
        ), "Anzellini2014", Cell(1.0, 1.0, _RE_C_OVER_A, 90.0, 90.0, 120.0),
            tuple(("Re", xyz) for xyz in _HCP)),
        _cubic("MgO", "B1 (rock salt)", _b1("Mg", "O"), [
            _v("Tange2009", "vinet", 74.698, 160.63, 4.367,
               "Tange Y., Nishihara Y., Tsuchiya T. (2009) J. Geophys. Res. 114, B03208",
               SAME_AS_PYTHEOS),
            _v("Speziale2001", "bm3", 74.698, 160.2, 3.99,
               "Speziale S. et al. (2001) J. Geophys. Res. 106, 515–528", SAME_AS_PYTHEOS),
            _v("Zha2000", "bm3", 74.698, 160.2, 4.03,
               "Zha C.-S., Mao H.-K., Hemley R. J. (2000) PNAS 97, 13494–13499",
               SAME_AS_PYTHEOS),
        ], "Tange2009"),
        _cubic("NaCl-B1", "B1 (rock salt)", _b1("Na", "Cl"), [
            _v("Dorogokupets2007", "vinet", 179.44, 23.83, 5.09, DOROGOKUPETS2007,
               SAME_AS_PYTHEOS),
        ], "Dorogokupets2007"),
        _cubic("NaCl-B2", "B2 (CsCl)", _b2("Na", "Cl"), [
            _v("Fei2007", "vinet", 41.35, 26.86, 5.25, FEI2007, SAME_AS_PYTHEOS),
            _v("Fei2007-BM3", "bm3", 41.35, 30.69, 4.33, FEI2007, SAME_AS_PYTHEOS),
            _v("Dorogokupets2007", "vinet", 40.73302331777446, 29.72, 5.14, DOROGOKUPETS2007,
               SAME_AS_PYTHEOS),
        ], "Fei2007"),
        _cubic("KCl-B2", "B2 (CsCl)", _b2("K", "Cl"), [
            _v("Dewaele2012", "vinet", 54.5, 17.2, 5.89,
               "Dewaele A. et al. (2012) Phys. Rev. B 85, 214105", UNCHECKED),
        ], "Dewaele2012"),
        _cubic("Ne", "fcc", _fcc("Ne"), [
            _v("Fei2007", "vinet", 88.967, 1.16, 8.23, FEI2007, SAME_AS_PYTHEOS),
            _v("Fei2007-BM3", "bm3", 88.967, 1.43, 8.02, FEI2007, SAME_AS_PYTHEOS),
            _v("Dewaele2008", "vinet", 4 * 22.234, 1.070, 8.40,
               "Dewaele A. et al. (2008) Phys. Rev. B 77, 094106", UNCHECKED),
        ], "Fei2007"),
        _cubic("Ar", "fcc", _fcc("Ar"), [
            _v("Ross1986", "vinet", 4 * 22.56 / 0.602214076, 2.86, 7.2,
               "Ross M., Mao H. K., Bell P. M., Xu J. A. (1986) J. Chem. Phys. 85, 1028–1033",
               UNCHECKED),
        ], "Ross1986"),
    ]
}  # fmt: skip
