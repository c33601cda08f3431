"""Readers and writers: text folders, HDF5/NeXus, Dioptas batch files, .npz, labels CSV."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_xrdphase.io import (
    ReaderError,
    can_read,
    load_stack,
    read_labels_csv,
    save_nexus,
    save_stack,
    write_labels_csv,
)
from napari_xrdphase.stack import SpectraStack

DIOPTAS_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "dioptas_p02_lambda"
    / "testasapo1_1009_00002_proc.nxs"
)

AXIS = np.linspace(5.0, 25.0, 40)


def curve(i: int, axis: np.ndarray = AXIS) -> np.ndarray:
    """A distinct, positive curve for row ``i``."""
    return (100.0 + 10.0 * i + np.sin(axis + i)).astype(np.float64)


def write_xy(path: Path, axis: np.ndarray, values: np.ndarray, header: str = "# 2th_deg I") -> Path:
    lines = [header] if header else []
    lines += [f"{x:.10g} {y:.10g}" for x, y in zip(axis, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_folder(
    folder: Path, n: int = 3, suffix: str = ".xy", header: str = "# 2th_deg I"
) -> Path:
    folder.mkdir()
    for i in range(n):
        write_xy(folder / f"scan_{i}{suffix}", AXIS, curve(i), header)
    return folder


def write_nexus_by_hand(
    path: Path,
    intensity: np.ndarray,
    axes: list[str],
    datasets: dict[str, tuple[np.ndarray, str | None]],
    with_default: bool = True,
    indices: dict[str, int] | None = None,
) -> Path:
    with h5py.File(path, "w") as h5:
        entry = h5.create_group("scan")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("integrated")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "counts"
        if axes:
            data.attrs["axes"] = axes
        for name, dim in (indices or {}).items():
            data.attrs[f"{name}_indices"] = dim
        data["counts"] = intensity
        for name, (values, units) in datasets.items():
            ds = data.create_dataset(name, data=values)
            if units:
                ds.attrs["units"] = units
        if with_default:
            h5.attrs["default"] = "scan"
            entry.attrs["default"] = "integrated"
    return path


def make_stack(
    kind: str = "2theta", unit: str = "deg", wavelength: float | None = 0.4133
) -> SpectraStack:
    axis = {"2theta": AXIS, "q": np.linspace(10.0, 60.0, 40), "d": np.linspace(4.0, 1.0, 40)}[kind]
    return SpectraStack(
        intensities=np.stack([curve(i, axis) for i in range(12)]).astype(np.float32),
        axis=axis,
        axis_kind=kind,
        axis_unit=unit,
        variable=np.linspace(0.5, 42.0, 12),
        variable_name="pressure",
        variable_unit="GPa",
        name="fe_run3",
        sources=[f"frame_{i}" for i in range(12)],
        wavelength=wavelength,
        metadata={"beamline": "P02.2", "exposure_s": 1.5},
    )


# --- text folders ----------------------------------------------------------------------------------
def test_xy_folder_with_unpadded_numbers_loads_in_natural_order_with_metadata_pressure(tmp_path):
    folder = tmp_path / "fe_compression"
    folder.mkdir()
    for i in range(1, 13):
        write_xy(folder / f"f_{i}.xy", AXIS, curve(i))
    rows = [f"f_{i}.xy,{i * 1.5:g},sample A" for i in range(1, 13)]
    random.Random(0).shuffle(rows)  # the CSV order must not matter
    (folder / "metadata.csv").write_text("file,pressure_GPa,comment\n" + "\n".join(rows) + "\n")

    stack = load_stack(folder)

    assert stack.sources == [f"f_{i}.xy" for i in range(1, 13)]
    assert stack.name == "fe_compression"
    np.testing.assert_allclose(stack.intensities, [curve(i) for i in range(1, 13)], rtol=1e-6)
    np.testing.assert_allclose(stack.axis, AXIS)
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, [i * 1.5 for i in range(1, 13)])
    assert stack.metadata["metadata_csv"]["comment"][0] == "sample A"


def test_metadata_csv_pressure_column_is_the_variable_unless_another_is_named(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    (folder / "metadata.csv").write_text(
        "file,sample,temperature (K),pressure_GPa\n"
        "scan_0.xy,Fe,300,1.0\nscan_1.xy,Fe,310,2.0\nscan_2.xy,Fe,320,3.5\n"
    )

    by_default = load_stack(folder)
    by_name = load_stack(folder, variable="pressure")
    by_full_header = load_stack(folder, variable="pressure_GPa")
    temperature = load_stack(folder, variable="temperature")

    for stack in (by_default, by_name, by_full_header):
        assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
        np.testing.assert_allclose(stack.variable, [1.0, 2.0, 3.5])
    assert (temperature.variable_name, temperature.variable_unit) == ("temperature", "K")
    np.testing.assert_allclose(temperature.variable, [300, 310, 320])


def test_metadata_csv_without_a_pressure_takes_the_first_numeric_column(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    (folder / "metadata.csv").write_text(
        "file,sample,temperature (K),time_s\n"
        "scan_0.xy,Fe,300,1.0\nscan_1.xy,Fe,310,2.0\nscan_2.xy,Fe,320,3.5\n"
    )
    stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")
    np.testing.assert_allclose(stack.variable, [300, 310, 320])


def test_chi_folder_with_fit2d_headers_reads_the_axis_from_the_label(tmp_path):
    for n, (label, expected) in enumerate(
        (
            ("2-Theta Angle (Degrees)", ("2theta", "deg")),
            ("Q (1/nm)", ("q", "1/nm")),
            ("Q (Inverse Angstrom)", ("q", "1/A")),
        )
    ):
        folder = tmp_path / f"chi_{n}"
        folder.mkdir()
        for i in range(2, 12):  # unpadded 2..11: natural order puts 2 before 10
            lines = [f"fit2d integration {i}", label, "Intensity", f"{AXIS.size:8d}"]
            lines += [f"  {x:.6E}  {y:.6E}" for x, y in zip(AXIS, curve(i), strict=True)]
            (folder / f"cell_{i}.chi").write_text("\n".join(lines) + "\n")

        stack = load_stack(folder)

        assert (stack.axis_kind, stack.axis_unit) == expected, label
        assert stack.sources[:2] == ["cell_2.chi", "cell_3.chi"]
        assert stack.sources[-1] == "cell_11.chi"
        np.testing.assert_allclose(stack.intensities[0], curve(2), rtol=1e-6)


def test_chi_file_shorter_than_its_header_says_is_reported_as_truncated(tmp_path):
    folder = tmp_path / "chi"
    folder.mkdir()
    for i in range(2):
        lines = ["title", "2-Theta Angle (Degrees)", "Intensity", "50"]
        lines += [f"{x} {y}" for x, y in zip(AXIS, curve(i), strict=True)]
        (folder / f"c_{i}.chi").write_text("\n".join(lines))
    with pytest.raises(
        ReaderError, match=r"c_0\.chi: the header says 50 points but the file holds 40"
    ):
        load_stack(folder)


def test_xye_with_three_columns_and_comments_reads_x_and_intensity(tmp_path):
    folder = tmp_path / "xye"
    folder.mkdir()
    for i in range(3):
        rows = [f"{x:.8f} {y:.8f} {np.sqrt(y):.4f}" for x, y in zip(AXIS, curve(i), strict=True)]
        rows.insert(10, "! a GSAS-style comment inside the data")
        rows[20] += "  # an inline comment"
        (folder / f"p{i}.xye").write_text("\n".join(rows))

    stack = load_stack(folder)

    assert stack.intensities.shape == (3, AXIS.size)
    np.testing.assert_allclose(stack.intensities[2], curve(2), rtol=1e-6)
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")  # no header: the default


def test_dat_with_non_numeric_header_lines_reads_data_axis_and_wavelength(tmp_path):
    folder = tmp_path / "dat"
    folder.mkdir()
    for i in range(3):
        header = ["Sample: FeO, run 7", "Wavelength = 0.4133 A", "TwoTheta, Intensity"]
        rows = [f"{x:.8f}, {y:.8f}" for x, y in zip(AXIS, curve(i), strict=True)]
        (folder / f"frame{i}.dat").write_text("\n".join(header + rows))

    stack = load_stack(folder)

    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert stack.wavelength == pytest.approx(0.4133)
    np.testing.assert_allclose(stack.intensities[1], curve(1), rtol=1e-6)
    assert stack.variable_name == "index"
    np.testing.assert_array_equal(stack.variable, [0, 1, 2])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("#  q_A^-1   I   sigma", ("q", "1/A")),
        ("#  q_nm^-1  I", ("q", "1/nm")),
        ("# 2th_rad I", ("2theta", "rad")),
        ("# d_A I", ("d", "A")),
        ("# q (1/nm)  intensity", ("q", "1/nm")),
        ("Q (Inverse Nanometres)   Intensity", ("q", "1/nm")),
        ("# d-spacing (Å)  I", ("d", "A")),
        ("# 2θ / °  counts", ("2theta", "deg")),
        ("", ("2theta", "deg")),
    ],
)
def test_axis_kind_and_unit_come_from_the_column_header(tmp_path, header, expected):
    folder = write_folder(tmp_path / "h", header=header)
    stack = load_stack(folder)
    assert (stack.axis_kind, stack.axis_unit) == expected


def test_pyfai_header_gives_axis_and_wavelength_in_metres(tmp_path):
    folder = write_folder(
        tmp_path / "pyfai",
        header="# == pyFAI calibration ==\n# Distance Sample to Detector: 0.309 m\n"
        "# Wavelength: 4.836e-11 m\n# Mask applied: True\n#  q_nm^-1  I",
    )
    stack = load_stack(folder)
    assert (stack.axis_kind, stack.axis_unit) == ("q", "1/nm")
    assert stack.wavelength == pytest.approx(0.4836)


def test_curves_on_different_grids_are_resampled_onto_the_first_with_a_warning(tmp_path):
    folder = tmp_path / "grids"
    folder.mkdir()
    write_xy(folder / "a_1.xy", AXIS, 2.0 * AXIS)
    write_xy(folder / "a_2.xy", AXIS, 3.0 * AXIS)
    finer = np.linspace(4.0, 26.0, 77)
    write_xy(folder / "a_3.xy", finer, 5.0 * finer)

    with pytest.warns(UserWarning, match=r"1 of 3 curves are on a different x grid than a_1\.xy"):
        stack = load_stack(folder)

    np.testing.assert_allclose(stack.axis, AXIS)
    np.testing.assert_allclose(stack.intensities[2], 5.0 * AXIS, rtol=1e-6)  # linear: exact


# --- files as other programs write them -----------------------------------------------------------
def write_metadata(folder: Path, text: str, encoding: str = "utf-8") -> None:
    """Write metadata.csv as bytes in ``encoding``, with the line ends Windows programs use."""
    (folder / "metadata.csv").write_bytes(text.replace("\n", "\r\n").encode(encoding))


def test_a_byte_order_mark_does_not_swallow_the_first_point_of_a_headerless_file(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    axis = np.linspace(5.0, 54.0, 50)
    for i in range(3):
        text = "\n".join(f"{x:g} {100 + i + x:g}" for x in axis) + "\n"
        (folder / f"f_{i}.xy").write_bytes(text.encode("utf-8-sig"))  # "\ufeff5 105\n..."
    assert (folder / "f_0.xy").read_bytes().startswith(b"\xef\xbb\xbf5 105\n")

    stack = load_stack(folder)

    assert stack.n_points == 50
    np.testing.assert_allclose(stack.axis, axis)
    np.testing.assert_allclose(stack.intensities[2], 102 + axis, rtol=1e-6)


def test_a_byte_order_mark_before_a_header_and_in_metadata_csv_is_ignored(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        text = "# q_nm^-1 I\n" + "\n".join(f"{x:g} {i + x:g}" for x in AXIS)
        (folder / f"f_{i}.xy").write_bytes(text.encode("utf-8-sig"))
    write_metadata(folder, "file,pressure (GPa)\nf_0.xy,1.5\nf_1.xy,2.5\n", "utf-8-sig")

    stack = load_stack(folder)

    assert (stack.axis_kind, stack.axis_unit) == ("q", "1/nm")
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, [1.5, 2.5])


def test_utf16_files_as_excel_unicode_text_writes_them_are_read(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        text = "2theta\tI\n" + "\n".join(f"{x:g}\t{i + x:g}" for x in AXIS)
        (folder / f"f_{i}.dat").write_bytes(text.encode("utf-16"))  # BOM + UTF-16 LE
    write_metadata(folder, "file\ttemperature (°C)\nf_0.dat\t25\nf_1.dat\t30\n", "utf-16")

    stack = load_stack(folder)

    assert stack.n_points == AXIS.size
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "°C")
    np.testing.assert_allclose(stack.variable, [25, 30])
    assert stack.metadata["metadata_csv_encoding"] == "utf-16"


def test_metadata_csv_saved_by_excel_in_cp1252_is_read(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(
        folder,
        "file,temperature (°C),beam (µm),pressure_GPa\nscan_0.xy,25,3,1.5\nscan_1.xy,30,3,2.5\n",
        "cp1252",
    )
    assert "°".encode("cp1252") in (folder / "metadata.csv").read_bytes()

    stack = load_stack(folder)
    hot = load_stack(folder, variable="temperature")

    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    assert (hot.variable_name, hot.variable_unit) == ("temperature", "°C")
    assert stack.metadata["metadata_csv"]["beam (µm)"] == [3.0, 3.0]
    assert stack.metadata["metadata_csv_encoding"] == "cp1252"


def test_curve_headers_in_cp1252_or_latin1_are_read(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    data = "\n".join(f"{float(x)!r} {100 + float(x)!r}" for x in AXIS).encode()
    # cp1252 "µ" and "°"; and 0x81, which cp1252 leaves undefined, so Latin-1 reads that file
    (folder / "f_0.xy").write_bytes(b"# beam 3 \xb5m, 25 \xb0C\n# Wavelength: 0.4133 A\n" + data)
    (folder / "f_1.xy").write_bytes(b"# odd byte \x81\n# 2th_deg I\n" + data)

    stack = load_stack(folder)

    assert stack.n_points == AXIS.size
    assert stack.wavelength == pytest.approx(0.4133)
    np.testing.assert_allclose(stack.axis, AXIS)


@pytest.mark.parametrize(
    ("row", "x", "y"),
    [
        ("{x},5\t{y}", 0.5, 0.0),  # "10,5<tab>1000": was x=10, y=5, and 1000 dropped
        ("{x},5;{y},25", 0.5, 0.25),
        ("{x},5 {y},25 3,1", 0.5, 0.25),
        ("{x}.5,{y}.25", 0.5, 0.25),  # comma-separated stays comma-separated
        ("{x}.5, {y}.25", 0.5, 0.25),
    ],
)
def test_curves_with_decimal_commas_are_read_as_such(tmp_path, row, x, y):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        lines = [row.format(x=10 + k, y=1000 + 7 * k + i) for k in range(20)]
        (folder / f"f_{i}.xy").write_text("\n".join(lines) + "\n")
    stack = load_stack(folder)
    np.testing.assert_allclose(stack.axis, np.arange(10, 30) + x)
    np.testing.assert_allclose(stack.intensities[1], 1001 + 7 * np.arange(20) + y, rtol=1e-6)


def test_european_excel_csv_with_semicolons_and_decimal_commas_keeps_the_pressure(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    write_metadata(
        folder,
        "file;T (°C);pressure (GPa)\nscan_0.xy;25,0;12,5\nscan_1.xy;25,5;13,75\n"
        "scan_2.xy;26,0;15\n",
        "cp1252",
    )

    stack = load_stack(folder)

    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, [12.5, 13.75, 15.0])
    np.testing.assert_allclose(stack.metadata["metadata_csv"]["T (°C)"], [25.0, 25.5, 26.0])


def test_a_comma_in_a_header_does_not_hide_the_semicolon_separator(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "file;P (GPa, ruby)\nscan_0.xy;1,5\nscan_1.xy;2,5\n")
    stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == ("P", "GPa, ruby")
    np.testing.assert_allclose(stack.variable, [1.5, 2.5])


def test_tab_separated_decimal_commas_and_an_excel_sep_line_are_read(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "file\tpressure_GPa\nscan_0.xy\t1,5\nscan_1.xy\t2,25\n")
    np.testing.assert_allclose(load_stack(folder).variable, [1.5, 2.25])
    write_metadata(folder, "sep=;\nfile;pressure_GPa\nscan_0.xy;1,5\nscan_1.xy;x\n")
    with pytest.raises(ReaderError, match=r"metadata\.csv line 4: column 'pressure_GPa'.*'x'"):
        load_stack(folder)


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["12.5", "~13"], r"line 3: column 'pressure' is named like a pressure .*'~13' is not"),
        (["12.5 GPa", "13 kbar"], r"line 3: .*'13 kbar' is in kbar, but line 2 is in GPa"),
        (["0", "12.5 GPa"], r"line 3: .*'12.5 GPa' is in GPa, but line 2 is in no unit"),
        (['"12,5"', '"13,5"'], r"line 2: .*'12,5' has a decimal comma, read only in ';' or tab"),
    ],
)
def test_a_pressure_column_that_cannot_be_read_is_an_error_naming_line_and_cell(
    tmp_path, cells, message
):
    folder = write_folder(tmp_path / "run", n=2)
    rows = "".join(f"scan_{i}.xy,{c},{300 + 10 * i}\n" for i, c in enumerate(cells))
    write_metadata(folder, "file,pressure,temperature_K\n" + rows)
    with pytest.raises(ReaderError, match=r"metadata\.csv " + message):
        load_stack(folder)
    # naming another column reads the folder; naming the bad one says why it is not numeric
    np.testing.assert_allclose(load_stack(folder, variable="temperature").variable, [300, 310])
    with pytest.raises(ReaderError, match=r"column 'pressure' is not numeric \(line"):
        load_stack(folder, variable="pressure")


def test_a_pressure_column_without_numbers_warns_and_a_pressure_medium_is_text(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(
        folder,
        "file,pressure medium,frame,temperature (K)\nscan_0.xy,4:1 ME,1,300\nscan_1.xy,Ne,2,310\n",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")

    write_metadata(folder, "file,pressure,frame\nscan_0.xy,n/a,1\nscan_1.xy,n/a,2\n")
    with pytest.warns(UserWarning, match=r"column 'pressure' holds no numbers.*'frame'"):
        stack = load_stack(folder)
    np.testing.assert_allclose(stack.variable, [1, 2])


def test_variable_index_reads_a_folder_whose_pressure_column_cannot_be_read(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    write_metadata(
        folder, "file,pressure_GPa,sample\nscan_0.xy,1.5,Fe\nscan_1.xy,~2,Fe\nscan_2.xy,3,Fe\n"
    )
    with pytest.raises(
        ReaderError, match=r'line 3: .*or variable="index" \(--variable index\) for the acq'
    ):
        load_stack(folder)
    with pytest.raises(ReaderError, match=r"no column 'volume' .*--variable index"):
        load_stack(folder, variable="volume")

    stack = load_stack(folder, variable="index")

    assert (stack.variable_name, stack.variable_unit) == ("index", "")
    np.testing.assert_array_equal(stack.variable, np.arange(3))
    # metadata.csv still gives the file list and the other columns
    assert stack.sources == ["scan_0.xy", "scan_1.xy", "scan_2.xy"]
    assert stack.metadata["metadata_csv"]["pressure_GPa"] == ["1.5", "~2", "3"]
    assert stack.metadata["metadata_csv"]["sample"] == ["Fe", "Fe", "Fe"]


def test_variable_index_ignores_a_good_pressure_column_and_needs_no_metadata_csv(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    write_metadata(folder, "file,pressure_GPa\nscan_0.xy,1.5\nscan_1.xy,2.5\nscan_2.xy,3.5\n")
    stack = load_stack(folder, variable="index")
    assert (stack.variable_name, stack.variable_unit) == ("index", "")
    np.testing.assert_array_equal(stack.variable, [0, 1, 2])
    assert stack.metadata["metadata_csv"]["pressure_GPa"] == [1.5, 2.5, 3.5]

    bare = write_folder(tmp_path / "bare", n=2)
    np.testing.assert_array_equal(load_stack(bare, variable="index").variable, [0, 1])


@pytest.mark.parametrize(
    ("header", "cells", "name", "unit"),
    [
        ("pressure", ["12.50 GPa", "13.00 GPa"], "pressure", "GPa"),
        ("P", ["12.5GPa", "13GPa"], "P", "GPa"),
        ("pressure (GPa)", ["12.5 GPa", "13 gpa"], "pressure", "GPa"),
        ("T", ["300 K", "320K"], "T", "K"),
    ],
)
def test_units_written_in_the_cells_become_the_variable_unit(tmp_path, header, cells, name, unit):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, f"file,{header}\nscan_0.xy,{cells[0]}\nscan_1.xy,{cells[1]}\n")
    stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == (name, unit)
    np.testing.assert_allclose(stack.variable, [12.5, 13.0] if unit == "GPa" else [300, 320])


def test_a_unit_in_the_cells_that_contradicts_the_header_is_an_error(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "file,pressure (GPa)\nscan_0.xy,12 MPa\nscan_1.xy,13 MPa\n")
    with pytest.raises(ReaderError, match=r"line 2: .*'12 MPa' is in MPa, but the header says GPa"):
        load_stack(folder)


def test_a_pressure_column_is_chosen_over_a_frame_number_before_it(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    write_metadata(
        folder,
        "frame,file,exposure_s,P_ruby (GPa)\n1,scan_0.xy,1,0.5\n2,scan_1.xy,1,3.2\n3,scan_2.xy,1,7\n",
    )
    stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == ("P_ruby", "GPa")
    np.testing.assert_allclose(stack.variable, [0.5, 3.2, 7.0])


@pytest.mark.parametrize("counter", ["frame", "index", "image number", "#", "n", "Frame No."])
def test_a_frame_number_column_is_not_chosen_over_a_physical_quantity(tmp_path, counter):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, f"file,{counter},temperature_K\nscan_0.xy,7,300\nscan_1.xy,8,310\n")
    stack = load_stack(folder)
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")
    # alone, a frame number is still the variable (as before)
    write_metadata(folder, f"file,{counter}\nscan_0.xy,7\nscan_1.xy,8\n")
    np.testing.assert_allclose(load_stack(folder).variable, [7, 8])


@pytest.mark.parametrize("column", ["filename", "file_name", "File Name", "image", "Name"])
def test_file_name_column_aliases_are_accepted(tmp_path, column):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, f"{column},pressure_GPa\nscan_1.xy,2\nscan_0.xy,1\n")
    stack = load_stack(folder)
    np.testing.assert_allclose(stack.variable, [1, 2])
    assert column not in stack.metadata["metadata_csv"]


def test_a_name_column_of_sample_names_beside_a_file_column_is_data(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "name,file,pressure_GPa\nFe,scan_0.xy,1\nFe,scan_1.xy,2\n")
    stack = load_stack(folder)
    assert stack.metadata["metadata_csv"]["name"] == ["Fe", "Fe"]
    np.testing.assert_allclose(stack.variable, [1, 2])


@pytest.mark.parametrize(
    "names",
    [
        ["f_00001.tif", "f_00002.tif", "f_00003.tif"],  # Dioptas: f_00001.tif -> f_00001.xy
        ["f_00001.cbf.gz", "f_00002.cbf.gz", "f_00003.cbf.gz"],
        ["f_00001.h5", "f_00002.h5", "f_00003.h5"],
        ["f_00001", "f_00002", "f_00003"],
        [r"C:\beamtime\raw\f_00001.tif", r"C:\beamtime\raw\f_00002.tif", "/raw/f_00003.tif"],
    ],
)
def test_raw_image_names_match_the_integrated_curves_by_stem(tmp_path, names):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(1, 4):
        write_xy(folder / f"f_{i:05d}.xy", AXIS, curve(i))
    rows = "".join(f"{n},{p}\n" for n, p in zip(names, [3.0, 1.0, 2.0], strict=True))
    write_metadata(folder, "image,pressure (GPa)\n" + rows)
    stack = load_stack(folder)
    assert stack.sources == ["f_00001.xy", "f_00002.xy", "f_00003.xy"]
    np.testing.assert_allclose(stack.variable, [3.0, 1.0, 2.0])


def test_unmatched_ambiguous_and_doubled_names_are_refused_by_line(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "image,pressure\nscan_0.tif,1\nscan_7.tif,2\nscan_1.tif,3\n")
    with pytest.raises(
        ReaderError,
        match=r"metadata\.csv: names files that are not in the folder \(column 'image'\): scan_7",
    ):
        load_stack(folder)
    write_metadata(folder, "file,pressure\nscan_0.tif,1\nscan_0.cbf,2\nscan_1.xy,3\n")
    with pytest.raises(
        ReaderError, match=r"line 3: scan_0\.cbf and scan_0\.tif \(line 2\) both name scan_0\.xy"
    ):
        load_stack(folder)
    write_metadata(folder, "file,pressure\nscan_0.xy,1\nscan_0.xy,2\nscan_1.xy,3\n")
    with pytest.raises(ReaderError, match=r"line 3: scan_0\.xy is listed twice"):
        load_stack(folder)
    write_xy(folder / "scan_1.XY", AXIS, curve(5))  # on a case-sensitive file system
    write_metadata(folder, "file,pressure\nscan_0.xy,1\nscan_1,2\nscan_1.XY,3\n")
    with pytest.raises(ReaderError, match=r"line 3: 'scan_1' is ambiguous: .*scan_1\.XY"):
        load_stack(folder)


def test_live_metadata_lookup_reads_the_csv_like_load_stack(tmp_path):
    from napari_xrdphase.io.metadata_csv import _read_metadata_csv_partial

    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(
        folder, "image;pressure (GPa)\nscan_0.tif;12,5 GPa\nscan_9.tif;13 GPa\n", "cp1252"
    )
    csv_path = folder / "metadata.csv"
    # scan_1.xy is not listed yet, scan_9.tif names a curve still to come: both fine while live
    values = _read_metadata_csv_partial(csv_path, ["scan_0.xy", "scan_1.xy"], "pressure")
    assert values == {"scan_0.xy": 12.5}
    values = _read_metadata_csv_partial(csv_path, ["scan_0.xy", "scan_9.xy"], "pressure")
    assert values == {"scan_0.xy": 12.5, "scan_9.xy": 13.0}
    # every other check is batch mode's, and names the line
    write_metadata(folder, "file,pressure\nscan_0.xy,1\nscan_5.xy,2\nscan_0.xy,3\n")
    with pytest.raises(ReaderError, match=r"line 4: scan_0\.xy is listed twice"):
        _read_metadata_csv_partial(csv_path, ["scan_0.xy"], "pressure")
    write_metadata(folder, "file,pressure\nscan_0.xy,1\nscan_5.xy,2 GPa\n")
    with pytest.raises(ReaderError, match=r"line 3: '2 GPa' is in GPa, but line 2 is in no unit"):
        _read_metadata_csv_partial(csv_path, ["scan_0.xy"], "pressure")
    write_metadata(folder, "file,pressure\nscan_0.xy,\nscan_5.xy,2\n")
    with pytest.raises(ReaderError, match=r"line 2: no finite value of 'pressure'"):
        _read_metadata_csv_partial(csv_path, ["scan_0.xy"], "pressure")


def test_a_repeated_header_line_in_metadata_csv_is_named(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_metadata(folder, "file,pressure\nscan_0.xy,1\nfile,pressure\nscan_1.xy,2\n")
    with pytest.raises(ReaderError, match=r"metadata\.csv line 3: repeats the header line"):
        load_stack(folder)


def test_containers_name_each_curve_by_file_and_row(tmp_path):
    stack = SpectraStack(np.array([curve(i) for i in range(3)]), AXIS, name="scan")
    for suffix in (".h5", ".npz"):
        path = tmp_path / f"run{suffix}"
        save_stack(stack, path)
        if suffix == ".h5":  # a file written by another program: no per-curve names
            with h5py.File(path, "a") as h5:
                names = []
                h5.visit(names.append)
                for name in [n for n in names if n.endswith("sources")]:
                    del h5[name]
        else:
            arrays = dict(np.load(path))
            del arrays["names"]
            np.savez(path, **arrays)
        assert load_stack(path).sources == [f"run{suffix}[{i}]" for i in range(3)]


# --- errors ----------------------------------------------------------------------------------------
def test_nonexistent_path_is_named(tmp_path):
    with pytest.raises(ReaderError, match=r"nothing_here: no such file or folder"):
        load_stack(tmp_path / "nothing_here")


def test_empty_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReaderError, match=r"empty: the folder is empty"):
        load_stack(tmp_path / "empty")


def test_folder_without_curve_files_lists_the_supported_suffixes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(ReaderError, match=r"notes: no curve files in the folder \(looked for \.xy"):
        load_stack(folder)


def test_file_without_numeric_columns_is_named(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    (folder / "scan_2.xy").write_text("# 2th_deg I\nno numbers here\nnone at all\n")
    with pytest.raises(ReaderError, match=r"scan_2\.xy: no numeric columns found"):
        load_stack(folder)


def test_ragged_columns_name_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    lines = (folder / "scan_1.xy").read_text().splitlines()
    lines[5] += " 7.0"  # line 6 of the file
    (folder / "scan_1.xy").write_text("\n".join(lines))
    with pytest.raises(
        ReaderError, match=r"scan_1\.xy line 6: 3 columns, but the lines above have 2"
    ):
        load_stack(folder)


def test_text_in_the_data_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    lines = (folder / "scan_0.xy").read_text().splitlines()
    lines[3] = "12.5 abc"
    (folder / "scan_0.xy").write_text("\n".join(lines))
    with pytest.raises(ReaderError, match=r"scan_0\.xy line 4: cannot read '12\.5 abc' as numbers"):
        load_stack(folder)


def test_metadata_csv_naming_absent_files_lists_them(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    (folder / "metadata.csv").write_text(
        "file,pressure_GPa\nscan_0.xy,1\nscan_1.xy,2\nscan_7.xy,3\nscan_9.xy,4\n"
    )
    with pytest.raises(
        ReaderError,
        match=r"metadata\.csv: names files that are not in the folder: scan_7\.xy, scan_9\.xy",
    ):
        load_stack(folder)


def test_metadata_csv_missing_files_lists_them(tmp_path):
    folder = write_folder(tmp_path / "run", n=3)
    (folder / "metadata.csv").write_text("file,pressure_GPa\nscan_0.xy,1\n")
    with pytest.raises(
        ReaderError, match=r"metadata\.csv: does not list these curve files: scan_1\.xy, scan_2\.xy"
    ):
        load_stack(folder)


def test_metadata_csv_without_file_column_or_with_blank_variable_is_reported(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    (folder / "metadata.csv").write_text("sample,pressure_GPa\nscan_0.xy,1\nscan_1.xy,2\n")
    with pytest.raises(ReaderError, match=r"metadata\.csv: no 'file' column"):
        load_stack(folder)
    (folder / "metadata.csv").write_text("file,pressure_GPa\nscan_0.xy,1\nscan_1.xy,\n")
    with pytest.raises(
        ReaderError, match=r"metadata\.csv line 3: no finite value of 'pressure_GPa'"
    ):
        load_stack(folder)
    with pytest.raises(ReaderError, match=r"no column 'temperature'"):
        load_stack(folder, variable="temperature")


def test_folder_with_one_curve_says_a_series_needs_two(tmp_path):
    folder = write_folder(tmp_path / "single", n=1)
    with pytest.raises(ReaderError, match=r"single: a series needs at least 2 curves"):
        load_stack(folder)


def test_single_text_file_says_load_the_folder(tmp_path):
    path = write_xy(tmp_path / "one.xy", AXIS, curve(0))
    with pytest.raises(
        ReaderError, match=r"one\.xy: a single \.xy file holds one curve.*load the folder"
    ):
        load_stack(path)


def test_non_monotonic_axis_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    axis = AXIS.copy()
    axis[10] = axis[8]
    write_xy(folder / "scan_1.xy", axis, curve(1))
    with pytest.raises(
        ReaderError, match=r"scan_1\.xy line 12: the x axis is not strictly monotonic"
    ):
        load_stack(folder)


def test_nan_intensity_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    values = curve(0)
    values[4] = np.nan
    write_xy(folder / "scan_0.xy", AXIS, values)
    with pytest.raises(ReaderError, match=r"scan_0\.xy line 6: intensity is nan"):
        load_stack(folder)


def test_folder_mixing_formats_is_refused(tmp_path):
    folder = write_folder(tmp_path / "mixed", n=2)
    write_xy(folder / "scan_0.chi", AXIS, curve(0))
    with pytest.raises(
        ReaderError, match=r"mixed: the folder mixes curve formats \(1 \.chi, 2 \.xy\)"
    ):
        load_stack(folder)


def test_files_disagreeing_on_the_axis_are_named(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    write_xy(folder / "scan_1.xy", AXIS, curve(1), header="# q_A^-1 I")
    with pytest.raises(ReaderError, match=r"scan_0\.xy is 2theta \(deg\), scan_1\.xy is q \(1/A\)"):
        load_stack(folder)


def test_unsupported_extension_is_named(tmp_path):
    path = tmp_path / "image.tif"
    path.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(ReaderError, match=r"image\.tif: unsupported file type '\.tif'"):
        load_stack(path)


def test_can_read_accepts_curve_folders_and_container_files_only(tmp_path):
    folder = write_folder(tmp_path / "run", n=2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    nxs = tmp_path / "a.nxs"
    nxs.write_bytes(b"")
    assert can_read(folder)
    assert can_read(nxs)
    assert not can_read(other)
    assert not can_read(folder / "scan_0.xy")
    assert not can_read(tmp_path / "missing.h5")


# --- HDF5 / NeXus ----------------------------------------------------------------------------------
def test_nexus_with_pressure_and_two_theta_axes_reads_variable_units_and_wavelength(tmp_path):
    intensity = np.stack([curve(i) for i in range(5)])
    path = write_nexus_by_hand(
        tmp_path / "cell.nxs",
        intensity,
        ["pressure", "two_theta"],
        {"pressure": (np.array([1.0, 3, 5, 7, 9]), "GPa"), "two_theta": (AXIS, "degrees")},
    )
    with h5py.File(path, "a") as h5:
        mono = h5.create_group("scan/instrument/monochromator")
        mono.create_dataset("wavelength", data=0.02905).attrs["units"] = "nm"

    stack = load_stack(path)

    assert stack.name == "cell"
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, [1, 3, 5, 7, 9])
    np.testing.assert_allclose(stack.intensities, intensity, rtol=1e-6)
    assert stack.wavelength == pytest.approx(0.2905)
    assert not stack.is_lazy


def test_nexus_q_axis_in_inverse_nm_with_dot_for_the_curve_dimension(tmp_path):
    q = np.linspace(10.0, 50.0, 40)
    path = write_nexus_by_hand(
        tmp_path / "q.h5", np.stack([curve(i, q) for i in range(3)]), [".", "q"], {"q": (q, "1/nm")}
    )
    stack = load_stack(path)
    assert (stack.axis_kind, stack.axis_unit) == ("q", "1/nm")
    assert stack.variable_name == "index"
    np.testing.assert_allclose(stack.axis, q)


def test_nexus_axes_from_indices_attributes_and_first_nxdata_without_default(tmp_path):
    path = write_nexus_by_hand(
        tmp_path / "idx.hdf5",
        np.stack([curve(i) for i in range(4)]),
        [],
        {"temperature": (np.array([300.0, 350, 400, 450]), "K"), "tth": (AXIS, None)},
        with_default=False,
        indices={"temperature": 0, "tth": 1},
    )
    stack = load_stack(path)
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")
    np.testing.assert_allclose(stack.variable, [300, 350, 400, 450])


def test_nexus_variable_can_be_chosen_by_dataset_name(tmp_path):
    path = write_nexus_by_hand(
        tmp_path / "two_vars.nxs",
        np.stack([curve(i) for i in range(3)]),
        ["pressure", "two_theta"],
        {
            "pressure": (np.array([1.0, 2, 3]), "GPa"),
            "temperature": (np.array([300.0, 600, 900]), "K"),
            "two_theta": (AXIS, "deg"),
        },
    )
    stack = load_stack(path, variable="temperature")
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")
    np.testing.assert_allclose(stack.variable, [300, 600, 900])
    with pytest.raises(ReaderError, match=r"two_vars\.nxs: no 1D numeric dataset 'volume'"):
        load_stack(path, variable="volume")


def test_nexus_signal_stored_points_by_curves_is_transposed(tmp_path):
    intensity = np.stack([curve(i) for i in range(3)])
    path = write_nexus_by_hand(
        tmp_path / "t.nxs",
        intensity.T,
        ["two_theta", "pressure"],
        {"two_theta": (AXIS, "deg"), "pressure": (np.array([1.0, 2, 3]), "GPa")},
    )
    stack = load_stack(path)
    np.testing.assert_allclose(stack.intensities, intensity, rtol=1e-6)
    np.testing.assert_allclose(stack.variable, [1, 2, 3])


def test_large_signal_stays_lazy_on_disk_with_correct_values(tmp_path):
    intensity = np.stack([curve(i) for i in range(6)]).astype(np.float32)
    path = write_nexus_by_hand(
        tmp_path / "big.nxs", intensity, [".", "two_theta"], {"two_theta": (AXIS, "deg")}
    )
    stack = load_stack(path, lazy_threshold_bytes=64)

    assert isinstance(stack.intensities, h5py.Dataset)
    assert stack.is_lazy and stack.intensities.file.mode == "r"
    np.testing.assert_array_equal(stack.curves(), intensity)
    np.testing.assert_array_equal(stack.curves([4, 1, 4]), intensity[[4, 1, 4]])
    assert not load_stack(path).is_lazy


def test_hdf5_with_only_1d_signal_says_it_needs_2d_data(tmp_path):
    path = tmp_path / "one.nxs"
    with h5py.File(path, "w") as h5:
        data = h5.create_group("entry/data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "I"
        data["I"] = curve(0)
    with pytest.raises(
        ReaderError, match=r"one\.nxs: no 2D data .*has a 1D signal of shape \(40,\)"
    ):
        load_stack(path)


def test_hdf5_without_nxdata_points_at_its_2d_datasets(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as h5:
        h5["images/stack"] = np.zeros((3, 40))
    with pytest.raises(ReaderError, match=r"plain\.h5: no 2D data .*/images/stack \(3, 40\)"):
        load_stack(path)


def test_truncated_hdf5_file_is_reported_as_corrupt(tmp_path):
    full = write_nexus_by_hand(
        tmp_path / "full.nxs",
        np.stack([curve(i) for i in range(50)]),
        [".", "two_theta"],
        {"two_theta": (AXIS, "deg")},
    )
    truncated = tmp_path / "cut.nxs"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ReaderError, match=r"cut\.nxs: .*truncated or corrupt"):
        load_stack(truncated)


def test_nxs_file_that_is_not_hdf5_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "fake.nxs"
    path.write_text("this is not HDF5")
    with pytest.raises(ReaderError, match=r"fake\.nxs: the file is not a valid HDF5 file"):
        load_stack(path)


def test_nan_in_a_nexus_signal_is_an_error_naming_the_file(tmp_path):
    intensity = np.stack([curve(i) for i in range(3)])
    intensity[1, 5] = np.inf
    path = write_nexus_by_hand(
        tmp_path / "bad.nxs", intensity, [".", "two_theta"], {"two_theta": (AXIS, "deg")}
    )
    with pytest.raises(
        ReaderError, match=r"bad\.nxs: .*1 intensity values are NaN or inf \(curves \[1\]\)"
    ):
        load_stack(path)


def test_non_monotonic_nexus_axis_is_an_error_naming_the_file(tmp_path):
    axis = AXIS.copy()
    axis[[3, 4]] = axis[[4, 3]]
    path = write_nexus_by_hand(
        tmp_path / "swap.nxs",
        np.stack([curve(i) for i in range(3)]),
        [".", "two_theta"],
        {"two_theta": (axis, "deg")},
    )
    with pytest.raises(ReaderError, match=r"swap\.nxs: .*not strictly monotonic"):
        load_stack(path)


# --- Dioptas batch files ----------------------------------------------------------------------------
def write_dioptas_like(path: Path, data: np.ndarray, binning: np.ndarray) -> Path:
    """The layout Dioptas' BatchModel.save_proc_data writes."""
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "processed"
        entry = h5.create_group("processed")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "result"
        result = entry.create_group("result")
        result.attrs["NX_class"] = "NXdata"
        result.attrs["signal"] = "data"
        result.attrs["axes"] = [".", "binning"]
        process = entry.create_group("process")
        process.attrs["NX_class"] = "NXprocess"
        process["cal_file"] = "C:\\beamtime\\cal\\ceo2.poni"
        process["int_method"] = "csr"
        process["int_unit"] = "2th_deg"
        process["num_points"] = binning.size
        result["data"] = data
        result["binning"] = binning
        result["binning"].attrs["unit"] = "deg"
        result["binning"].attrs["long_name"] = "two_theta (degrees)"
        process["pos_map"] = np.array([[i // 2, i % 2] for i in range(data.shape[0])])
        process["file_map"] = np.arange(0, data.shape[0] + 1, 2)
        files = [f"C:\\beamtime\\raw\\img_{k:05d}.nxs" for k in range((data.shape[0] + 1) // 2)]
        process.create_dataset("files", data=files, dtype=h5py.string_dtype())
    return path


def test_dioptas_nan_bins_are_masked_to_zero_listed_and_warned(tmp_path):
    data = np.stack([curve(i) for i in range(4)]).astype(np.float32)
    data[:, :5] = np.nan  # bins no pixel reached, in every frame
    data[2, 20] = np.nan
    (tmp_path / "ceo2.poni").write_text("poni_version: 2\nWavelength: 2.9e-11\n")
    path = write_dioptas_like(tmp_path / "batch.nxs", data, AXIS)

    with pytest.warns(
        UserWarning,
        match=r"batch\.nxs: .*Dioptas fill value 0.*5 of the 40 points of the axis hold it on every curve \(no detector",
    ):
        stack = load_stack(path)

    assert np.isfinite(stack.intensities).all()
    assert (stack.intensities[:, :5] == 0).all() and stack.intensities[2, 20] == 0
    np.testing.assert_allclose(stack.intensities[3, 5:], curve(3)[5:], rtol=1e-6)
    assert stack.metadata["empty_bins"] == [0, 1, 2, 3, 4]
    assert stack.metadata["fill_value"] == 0.0
    assert stack.sources == [
        "img_00000.nxs[0]",
        "img_00000.nxs[1]",
        "img_00001.nxs[0]",
        "img_00001.nxs[1]",
    ]
    assert stack.wavelength == pytest.approx(0.29)  # from the .poni found next to the file
    assert stack.metadata["format"] == "dioptas-batch"

    with pytest.warns(UserWarning, match="Dioptas fill value"):
        lazy = load_stack(path, lazy_threshold_bytes=16)
    assert lazy.is_lazy
    np.testing.assert_array_equal(lazy.curves(), stack.intensities)


def test_dioptas_file_without_fill_loads_silently(tmp_path):
    data = np.stack([curve(i) for i in range(4)])
    path = write_dioptas_like(tmp_path / "clean.nxs", data, AXIS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stack = load_stack(path)
    assert "fill_value" not in stack.metadata
    assert stack.wavelength is None
    assert stack.metadata["dioptas"]["cal_file"] == "C:\\beamtime\\cal\\ceo2.poni"


@pytest.fixture
def dioptas_file() -> Path:
    if not DIOPTAS_FILE.is_file():
        pytest.skip(f"real Dioptas file not available at {DIOPTAS_FILE}")
    return DIOPTAS_FILE


def test_real_dioptas_batch_file_loads_with_its_fill_value_masked(dioptas_file):
    with pytest.warns(
        UserWarning, match=r"75\.\d% of the intensities are the Dioptas fill value 0\.1"
    ):
        stack = load_stack(dioptas_file)

    assert stack.intensities.shape == (50, 4038)
    assert stack.name == "testasapo1_1009_00002_proc"
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert stack.axis[0] == pytest.approx(9.693, abs=5e-4)
    assert stack.axis[-1] == pytest.approx(26.040, abs=5e-4)
    np.testing.assert_allclose(np.diff(stack.axis), 0.0040495, rtol=1e-3)
    assert stack.intensities.min() == pytest.approx(0.1)
    assert stack.intensities.max() == pytest.approx(92.849, abs=1e-3)
    assert stack.metadata["fill_value"] == pytest.approx(0.1)
    assert len(stack.metadata["empty_bins"]) == 2627
    real = stack.intensities[stack.intensities != np.float32(0.1)]
    assert 40_000 < real.size < 60_000 and np.median(real) > 1.0
    assert stack.sources[0] == "testasapo1_1009_00002_m1_part00000.nxs[0]"
    assert stack.sources[-1] == "testasapo1_1009_00002_m1_part00004.nxs[9]"
    assert stack.metadata["dioptas"]["int_unit"] == "2th_deg"
    if (dioptas_file.parent / "L2.poni").is_file():
        assert stack.wavelength == pytest.approx(0.4836)


def test_real_dioptas_batch_file_can_stay_lazy(dioptas_file):
    with pytest.warns(UserWarning, match="Dioptas fill value"):
        lazy = load_stack(dioptas_file, lazy_threshold_bytes=1024)
    assert isinstance(lazy.intensities, h5py.Dataset)
    assert lazy.metadata["fill_value"] == pytest.approx(0.1)
    with h5py.File(dioptas_file, "r") as h5:
        expected = h5["processed/result/data"][[0, 25, 49]]
    np.testing.assert_array_equal(lazy.curves([0, 25, 49]), expected)


# --- npz -------------------------------------------------------------------------------------------
def test_npz_with_q_unit_pressure_names_and_wavelength(tmp_path):
    q = np.linspace(1.0, 5.0, 40)
    path = tmp_path / "run.npz"
    np.savez(
        path,
        intensity=np.stack([curve(i, q) for i in range(3)]),
        q=q,
        q_unit="1/nm",
        pressure=np.array([2.0, 4.0, 8.0]),
        wavelength=0.3738,
        names=np.array(["a.tif", "b.tif", "c.tif"]),
    )
    stack = load_stack(path)
    assert (stack.axis_kind, stack.axis_unit) == ("q", "1/nm")
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, [2, 4, 8])
    assert stack.sources == ["a.tif", "b.tif", "c.tif"]
    assert stack.wavelength == pytest.approx(0.3738)
    assert stack.name == "run"


def test_npz_q_defaults_to_inverse_angstrom_and_other_variable_is_found(tmp_path):
    q = np.linspace(1.0, 5.0, 40)
    path = tmp_path / "heat.npz"
    np.savez(
        path,
        intensity=np.stack([curve(i, q) for i in range(3)]),
        q=q,
        temperature=np.array([300.0, 500, 700]),
        temperature_unit="K",
    )
    stack = load_stack(path)
    assert (stack.axis_kind, stack.axis_unit) == ("q", "1/A")
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")


def test_npz_with_python_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(
        path,
        intensity=np.stack([curve(i) for i in range(3)]),
        two_theta=AXIS,
        names=np.array([{"evil": 1}, 2, 3], dtype=object),
    )
    with pytest.raises(
        ReaderError,
        match=r"pickled\.npz: the archive holds Python objects, which are never unpickled",
    ):
        load_stack(path)


def test_npz_stored_points_by_curves_is_transposed(tmp_path):
    intensity = np.stack([curve(i) for i in range(3)])
    path = tmp_path / "columns.npz"
    np.savez(path, intensity=intensity.T, two_theta=AXIS, pressure=np.array([1.0, 2, 3]))
    stack = load_stack(path)
    assert stack.n_curves == 3 and stack.n_points == AXIS.size
    np.testing.assert_allclose(stack.intensities, intensity)
    np.testing.assert_allclose(stack.variable, [1.0, 2, 3])


def test_npz_errors_name_the_file(tmp_path):
    path = tmp_path / "no_axis.npz"
    np.savez(path, intensity=np.ones((3, 40)))
    with pytest.raises(ReaderError, match=r"no_axis\.npz: no axis array"):
        load_stack(path)
    path = tmp_path / "flat.npz"
    np.savez(path, intensity=np.ones(40), two_theta=AXIS)
    with pytest.raises(
        ReaderError, match=r"flat\.npz: 'intensity' has shape \(40,\); it must be 2D"
    ):
        load_stack(path)
    broken = tmp_path / "broken.npz"
    broken.write_bytes((tmp_path / "flat.npz").read_bytes()[:200])
    with pytest.raises(ReaderError, match=r"broken\.npz: cannot read the \.npz archive"):
        load_stack(broken)


# --- writers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nxs", ".npz", ""])
@pytest.mark.parametrize(("kind", "unit"), [("2theta", "deg"), ("q", "1/nm"), ("d", "A")])
def test_every_writer_round_trips_through_load_stack(tmp_path, suffix, kind, unit):
    stack = make_stack(kind, unit)
    path = save_stack(stack, tmp_path / f"{stack.name}{suffix}")

    loaded = load_stack(path)

    np.testing.assert_array_equal(loaded.intensities, stack.intensities)
    np.testing.assert_array_equal(loaded.axis, stack.axis)
    assert (loaded.axis_kind, loaded.axis_unit) == (kind, unit)
    assert (loaded.variable_name, loaded.variable_unit) == ("pressure", "GPa")
    np.testing.assert_array_equal(loaded.variable, stack.variable)
    assert loaded.name == stack.name
    assert loaded.wavelength == stack.wavelength
    if suffix:
        assert loaded.sources == stack.sources
        assert loaded.metadata["beamline"] == "P02.2"
    else:
        assert loaded.sources == [f"fe_run3_{i}.xy" for i in range(12)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_index_variable_and_missing_wavelength_round_trip(tmp_path):
    stack = SpectraStack(np.stack([curve(i) for i in range(3)]), AXIS, name="plain")
    for fmt, target in (("nexus", "plain.h5"), ("npz", "plain.npz"), ("xy", "plain")):
        loaded = load_stack(save_stack(stack, tmp_path / target, fmt))
        assert loaded.variable_name == "index" and loaded.variable_unit == ""
        np.testing.assert_array_equal(loaded.variable, [0, 1, 2])
        assert loaded.wavelength is None


@pytest.mark.parametrize(("write", "name"), [(save_nexus, "run.nxs"), (save_stack, "run.npz")])
def test_variable_index_replaces_the_stored_pressure_of_nexus_and_npz(tmp_path, write, name):
    stack = make_stack()
    path = write(stack, tmp_path / name)
    loaded = load_stack(path, variable="index")
    assert (loaded.variable_name, loaded.variable_unit) == ("index", "")
    np.testing.assert_array_equal(loaded.variable, np.arange(12))
    assert loaded.sources == stack.sources
    np.testing.assert_array_equal(loaded.intensities, stack.intensities)


def test_variable_index_reads_an_npz_whose_pressure_is_not_a_1d_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, intensity=np.stack([curve(i) for i in range(3)]), two_theta=AXIS,
             pressure=np.ones((3, 2)))  # fmt: skip
    with pytest.raises(ReaderError, match=r"'pressure' is not a 1D numeric .*--variable index"):
        load_stack(path)
    np.testing.assert_array_equal(load_stack(path, variable="index").variable, [0, 1, 2])


def test_nexus_writer_layout_follows_nexus_conventions(tmp_path):
    path = save_nexus(make_stack("q", "1/A"), tmp_path / "out.nxs")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["default"] == "entry"
        data = h5["entry/data"]
        assert data.attrs["NX_class"] == "NXdata" and data.attrs["signal"] == "intensity"
        assert list(data.attrs["axes"]) == ["pressure", "q"]
        assert data.attrs["q_indices"] == 1 and data.attrs["pressure_indices"] == 0
        assert data["q"].attrs["units"] == "1/angstrom"
        assert data["pressure"].attrs["units"] == "GPa"
        assert h5["entry/instrument/monochromator/wavelength"][()] == pytest.approx(0.4133)
        assert '"exposure_s": 1.5' in h5["entry"].attrs["xrdphase_metadata"]


def test_nexus_writer_replaces_an_existing_file_and_streams_a_lazy_stack(tmp_path):
    source = save_nexus(make_stack(), tmp_path / "source.nxs")
    lazy = load_stack(source, lazy_threshold_bytes=1)
    target = tmp_path / "target.nxs"
    target.write_text("old content")

    save_stack(lazy, target)

    np.testing.assert_array_equal(load_stack(target).intensities, make_stack().intensities)


def test_xy_writer_refuses_a_non_empty_folder_and_unknown_formats(tmp_path):
    folder = write_folder(tmp_path / "taken", n=2)
    with pytest.raises(FileExistsError, match="taken"):
        save_stack(make_stack(), folder)
    with pytest.raises(ValueError, match=r"cannot tell the format from the suffix '\.tif'"):
        save_stack(make_stack(), tmp_path / "x.tif")
    with pytest.raises(ValueError, match=r"unknown format 'cif'"):
        save_stack(make_stack(), tmp_path / "x", format="cif")


# --- labels CSV --------------------------------------------------------------------------------------
def test_labels_csv_round_trips_from_mapping_and_from_rows(tmp_path):
    labels = {"fe_run3": {0: "before", 5: "during", 11: "after"}, "feo": {2: "after"}}
    path = write_labels_csv(tmp_path / "labels.csv", labels)
    assert path.read_text().splitlines()[:2] == ["dataset,index,label", "fe_run3,0,before"]
    assert read_labels_csv(path) == labels

    rows = [("feo", 2, "after"), ("fe_run3", 11, "after"), ("fe_run3", 0, "before")]
    write_labels_csv(tmp_path / "rows.csv", rows)
    assert read_labels_csv(tmp_path / "rows.csv") == {
        "feo": {2: "after"},
        "fe_run3": {11: "after", 0: "before"},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("dataset,label\nfe,before\n", r"missing column\(s\) index"),
        ("dataset,index,label\nfe,1.5,before\n", r"line 2: index '1\.5' is not an integer"),
        ("dataset,index,label\nfe,0,before\nfe,1,  \n", r"line 3: empty label for fe\[1\]"),
        ("dataset,index,label\nfe,-1,before\n", r"line 2: index -1 is negative"),
        (
            "dataset,index,label\nfe,3,before\nfe,3,after\n",
            r"line 3: fe\[3\] is labelled 'after' here but 'before' on line 2",
        ),
    ],
)
def test_bad_labels_csv_names_file_line_and_problem(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(ReaderError, match=rf"labels\.csv.*{message}"):
        read_labels_csv(path)


def test_missing_labels_file_and_bad_rows_to_write_are_reported(tmp_path):
    with pytest.raises(ReaderError, match=r"nope\.csv: no such labels file"):
        read_labels_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"empty label for fe\[2\]"):
        write_labels_csv(tmp_path / "x.csv", [("fe", 2, " ")])
    with pytest.raises(ValueError, match=r"index '2' of fe is not a 0-based integer row"):
        write_labels_csv(tmp_path / "x.csv", [("fe", "2", "after")])
    assert not (tmp_path / "x.csv").exists()


def test_npz_that_inflates_beyond_memory_is_refused_before_reading(tmp_path, monkeypatch):
    import napari_xrdphase.io.npz as io_module

    stack = SpectraStack(np.ones((4, 40)), AXIS, name="small")
    path = save_stack(stack, tmp_path / "small.npz")
    monkeypatch.setattr(io_module, "_memory_bytes", lambda: 1000)  # a tiny machine
    with pytest.raises(ReaderError, match=r"small\.npz: the archive inflates to .* HDF5/NeXus"):
        load_stack(path)
    monkeypatch.undo()
    assert load_stack(path).n_curves == 4


def test_xy_folder_round_trip_is_not_fooled_by_a_name_that_looks_like_header_data(tmp_path):
    stack = SpectraStack(np.ones((3, 40)) + np.arange(40), AXIS, name="q_wavelength1")
    folder = save_stack(stack, tmp_path / "q_wavelength1", format="xy")
    again = load_stack(folder)
    assert again.wavelength is None
    assert (again.axis_kind, again.axis_unit) == ("2theta", "deg")
    np.testing.assert_allclose(again.curves(), stack.curves())


def test_a_folder_given_as_dot_is_named_after_the_folder_it_means(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "fe_run")
    monkeypatch.chdir(folder)
    assert load_stack(".").name == "fe_run"
    (folder / "sub").mkdir()
    assert load_stack(folder / "sub" / "..").name == "fe_run"


def test_files_of_one_folder_that_disagree_on_the_wavelength_are_refused(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i, wavelength in enumerate(["2.9e-11 m", "0.29 A", "0.290001 A"]):
        header = f"# Wavelength: {wavelength}\n#  2th_deg  I"
        write_xy(folder / f"f_{i}.xy", AXIS, curve(i), header)
    assert load_stack(folder).wavelength == pytest.approx(0.29)  # rounding is no conflict
    write_xy(folder / "f_3.xy", AXIS, curve(3), "# Wavelength: 3.1e-11 m\n#  2th_deg  I")
    with pytest.raises(ReaderError, match=r"disagree on the wavelength: f_0.xy says 0.29 Å, f_3"):
        load_stack(folder)


def _old_style_nexus(path: Path, intensity, two_theta, pressure, style: str) -> Path:
    """NeXus as older writers made it: the signal marked ``signal=1``, axes on the dataset."""
    with h5py.File(path, "w") as h5:
        data = h5.create_group("entry").create_group("data")
        data.attrs["NX_class"] = "NXdata"
        signal = data.create_dataset("I", data=intensity)
        signal.attrs["signal"] = 1
        data.create_dataset("two_theta", data=two_theta).attrs["units"] = "degrees"
        data.create_dataset("pressure", data=pressure).attrs["units"] = "GPa"
        if style == "signal axes":
            signal.attrs["axes"] = "pressure:two_theta"
        elif style == "axis numbers":
            data["pressure"].attrs["axis"] = 1
            data["two_theta"].attrs["axis"] = 2
        elif style == "one name":  # one axis named for a 2D signal: it fits dimension 1
            data.attrs["axes"] = "two_theta"
    return path


@pytest.mark.parametrize("style", ["signal axes", "axis numbers", "one name"])
def test_older_nexus_axis_conventions_are_read(tmp_path, style):
    intensity = np.stack([curve(i) for i in range(6)])
    pressure = np.linspace(1.0, 11.0, 6)
    stack = load_stack(_old_style_nexus(tmp_path / "old.h5", intensity, AXIS, pressure, style))
    np.testing.assert_allclose(stack.axis, AXIS)
    np.testing.assert_allclose(stack.intensities, intensity, rtol=1e-6)
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    if style != "one name":
        assert stack.variable_name == "pressure" and stack.variable_unit == "GPa"
        np.testing.assert_allclose(stack.variable, pressure)


def test_a_header_stating_only_the_photon_energy_gives_the_wavelength(tmp_path):
    folder = tmp_path / "energy"
    folder.mkdir()
    for i in range(3):
        header = "# Energy: 42.753 keV\n# energy resolution 1e-4\n#  2th_deg  I"
        write_xy(
            folder / f"f_{i}.xy", AXIS, curve(i), header if i else header.replace("keV", "KeV")
        )
    assert load_stack(folder).wavelength == pytest.approx(12.398419843 / 42.753)
    (folder / "f_0.xy").write_text(
        (folder / "f_0.xy").read_text().replace("42.753 KeV", "42753 eV")
    )
    assert load_stack(folder).wavelength == pytest.approx(12.398419843 / 42.753)
    for i in range(3):  # an energy without a unit is not taken for one
        text = (folder / f"f_{i}.xy").read_text().replace(" keV", "").replace(" KeV", "")
        (folder / f"f_{i}.xy").write_text(text.replace("42753 eV", "42753"))
    assert load_stack(folder).wavelength is None


# --- the predictions CSV ---------------------------------------------------------------------------
def test_predictions_csv_column_names_never_repeat():
    from napari_xrdphase.io.predictions_csv import predictions_header

    fixed = ["dataset", "index", "source"]
    assert predictions_header("pressure", ["a", "b"]) == [
        *fixed, "pressure", "label", "skipped", "p_a", "p_b"
    ]  # fmt: skip
    assert predictions_header("index", ["a", "b"])[3] == "index_variable"
    assert predictions_header("Label", ["a", "b"])[3] == "Label_variable"
    assert predictions_header("p_a", ["a", "b"])[3] == "p_a_variable"
    assert predictions_header("", ["a", "b"])[3] == "variable"
    # classes that differ only in case (a classifier file from elsewhere): p_Fe, p_fe_2
    assert predictions_header("T", ["Fe", "fe", "skipped"])[6:] == ["p_Fe", "p_fe_2", "p_skipped"]
    for variable in ("index", "source", "skipped", "p_fe_2", "dataset"):
        header = predictions_header(variable, ["Fe", "fe"])
        assert len({h.casefold() for h in header}) == len(header)


def test_predictions_csv_of_an_index_series_keeps_every_column(tmp_path):
    import csv

    from napari_xrdphase.io import write_predictions_csv

    folder = write_folder(tmp_path / "run", n=3)
    stack = load_stack(folder)
    assert stack.variable_name == "index"
    path = write_predictions_csv(
        tmp_path / "pred.csv",
        [(stack, ["a", "a", "b"], np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]))],
        ["a", "b"],
    )
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "dataset", "index", "source", "index_variable", "label", "skipped", "p_a", "p_b"
    ]  # fmt: skip
    assert [(r["index"], r["source"], r["index_variable"]) for r in rows] == [
        ("0", "scan_0.xy", "0"), ("1", "scan_1.xy", "1"), ("2", "scan_2.xy", "2")
    ]  # fmt: skip
    assert rows[2]["label"] == "b" and rows[2]["p_b"] == "0.700000" and rows[2]["skipped"] == ""
