"""The npe2 contributions in a real napari viewer (run under Xvfb)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_xrdphase import SpectraStack
from napari_xrdphase._layer_data import METADATA_KEY, stack_from_layer
from napari_xrdphase._reader import get_reader
from napari_xrdphase.io import save_stack


def write_xy_folder(folder: Path, n_curves=6, n_points=200):
    folder.mkdir()
    axis = np.linspace(6.0, 18.0, n_points)
    lines = ["file,pressure_GPa"]
    for i in range(n_curves):
        curve = 100 + 1000 * np.exp(-0.5 * ((axis - 10 - 0.1 * i) / 0.05) ** 2)
        name = f"run_{i + 1}.xy"  # unpadded frame numbers
        np.savetxt(folder / name, np.column_stack([axis, curve]), header="2th_deg I")
        lines.append(f"{name},{2.5 * i}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return axis


def test_manifest_validates_on_the_installed_package():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-xrdphase"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_root_manifest_is_a_link_to_the_package_manifest():
    root = Path(__file__).parents[1]
    assert (root / "napari.yaml").resolve() == (root / "napari_xrdphase" / "napari.yaml").resolve()


def test_reader_declines_paths_it_does_not_understand(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "missing.h5")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_reader(str(empty)) is None


def test_dropping_a_folder_opens_an_image_with_physical_axes(make_napari_viewer, tmp_path):
    axis = write_xy_folder(tmp_path / "beamtime")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "beamtime"), plugin="napari-xrdphase")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.data.shape == (6, 200)
    np.testing.assert_allclose(layer.scale[1], (axis[-1] - axis[0]) / 199)
    assert layer.scale[0] * 6 == pytest.approx(0.66 * 12.0)  # rows fill about 2/3 of the width
    np.testing.assert_allclose(layer.translate, [0.0, 6.0])
    assert tuple(layer.axis_labels) == ("curve", "2θ (deg)")
    stack = stack_from_layer(layer)
    assert stack.variable_name == "pressure" and stack.variable_unit == "GPa"
    np.testing.assert_allclose(stack.variable, 2.5 * np.arange(6))
    assert layer.gamma == 0.5  # sqrt display of counts by default
    # the peak shows up in world coordinates at 2θ ≈ 10°
    world_peak = layer.data_to_world((0, int(np.argmax(layer.data[0]))))[1]
    assert world_peak == pytest.approx(10.0, abs=0.07)


def test_nexus_file_opens_and_writer_round_trips(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(0)
    stack = SpectraStack(
        rng.random((4, 64)) + 1,
        np.linspace(0.5, 6.0, 64),
        axis_kind="q",
        axis_unit="1/A",
        variable=[1.0, 2.0, 3.0, 4.0],
        variable_name="pressure",
        variable_unit="GPa",
        name="qseries",
    )
    save_stack(stack, tmp_path / "qseries.nxs", format="nexus")
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "qseries.nxs"), plugin="napari-xrdphase")
    assert layer.data.shape == (4, 64)
    assert tuple(layer.axis_labels) == ("curve", "q (1/A)")
    out = tmp_path / "copy.nxs"
    layer.save(str(out), plugin="napari-xrdphase")
    from napari_xrdphase import load_stack

    again = load_stack(out)
    np.testing.assert_allclose(again.curves(), stack.curves())
    np.testing.assert_allclose(again.axis, stack.axis)
    assert again.axis_kind == "q"


@pytest.mark.parametrize("key", ["fe_compression", "feo_compression", "fe_decompression"])
def test_sample_data_opens_with_ground_truth(make_napari_viewer, key):
    viewer = make_napari_viewer()
    (layer,) = viewer.open_sample("napari-xrdphase", key)
    meta = layer.metadata[METADATA_KEY]
    truth = meta["ground_truth"]
    assert len(truth) == layer.data.shape[0] == 120
    assert set(truth) == {"before", "during", "after"}
    stack = meta["stack"]
    assert stack.variable_unit == "GPa"
    pressures = stack.variable
    if key == "fe_decompression":
        assert pressures[0] > pressures[-1]
    else:
        assert pressures[0] < pressures[-1]


def test_writer_never_writes_over_the_file_a_series_came_from(make_napari_viewer, tmp_path):
    import hashlib

    stack = SpectraStack(np.random.default_rng(1).random((3, 32)) + 1, np.linspace(5, 25, 32))
    source = save_stack(stack, tmp_path / "run.nxs", format="nexus")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(source), plugin="napari-xrdphase")
    with pytest.raises(PermissionError, match=r"run\.nxs is one of the inputs"):
        layer.save(str(source), plugin="napari-xrdphase")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    layer.save(str(tmp_path / "copy.nxs"), plugin="napari-xrdphase")  # elsewhere: written
    assert (tmp_path / "copy.nxs").is_file()
