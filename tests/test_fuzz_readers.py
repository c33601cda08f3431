"""Property-based tests and fuzzing of every reader: hostile input gives a ReaderError, never worse.

The contract of ``load_stack``: it returns a correct SpectraStack or raises ``ReaderError`` (a
ValueError naming the path) — never another exception type, never a hang, never silent garbage
(every valid stack written by ``save_stack`` reads back equal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_xrdphase.io import ReaderError, load_stack, save_stack
from napari_xrdphase.stack import AXIS_UNITS, SpectraStack

SECONDS_PER_READ = 60  # a read of these small files takes milliseconds; a minute means a hang
# XRDPHASE_FUZZ_EXAMPLES=2000 for a long fuzzing run; the default keeps the file under ~20 s
FUZZ = settings(
    max_examples=int(os.environ.get("XRDPHASE_FUZZ_EXAMPLES", "40")),
    database=None,  # no .hypothesis folder in the repository
    deadline=None,  # our own alarm below is the deadline, and it stops a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class ReaderHang(Exception):
    """load_stack ran longer than SECONDS_PER_READ."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def stop(_signum, _frame):
        raise ReaderHang(f"load_stack took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_or_refuse(path: Path, **kwargs) -> SpectraStack | None:
    """Return the stack at ``path``, or None after a ReaderError naming it; anything else fails."""
    with warnings.catch_warnings(), time_limit(SECONDS_PER_READ):
        warnings.simplefilter("ignore")
        try:
            stack = load_stack(path, **kwargs)
        except ReaderError as exc:
            assert str(path) in str(exc), f"the message does not name {path}: {exc}"
            return None
    assert isinstance(stack, SpectraStack)
    assert np.all(np.isfinite(stack.curves()))  # NaN or inf never reach a stack
    return stack


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


AXIS = np.linspace(5.0, 25.0, 16)
GOOD_CURVE = "\n".join(f"{x:.6f} {100 + 10 * np.sin(x):.6f}" for x in AXIS)


def small_stack(seed: int = 0, n_curves: int = 4) -> SpectraStack:
    rng = np.random.default_rng(seed)
    return SpectraStack(
        intensities=rng.normal(100.0, 30.0, (n_curves, AXIS.size)).astype(np.float32),
        axis=AXIS,
        variable=np.linspace(0.5, 30.0, n_curves),
        variable_name="pressure",
        variable_unit="GPa",
        name="run",
        wavelength=0.4133,
        metadata={"beamline": "P02.2"},
    )


# --- round trips: every valid stack reads back equal ------------------------------------------------
AXES = [(kind, unit) for kind, units in AXIS_UNITS.items() for unit in units]
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
names = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)
# an xy folder stores the variable as a metadata.csv header "name (unit)": a name that itself
# ends in "(...)" or a unit suffix ("_GPa") is ambiguous there, so those get plain words
plain_words = st.from_regex(r"[A-Za-z][A-Za-z ]{0,10}[A-Za-z]", fullmatch=True)


@st.composite
def valid_stacks(draw, plain: bool) -> SpectraStack:
    n_curves = draw(st.integers(2, 5))
    n_points = draw(st.integers(8, 24))
    start = draw(st.floats(-50, 50))
    steps = draw(hnp.arrays(np.float64, n_points - 1, elements=st.floats(1e-3, 5.0)))
    axis = start + np.concatenate([[0.0], np.cumsum(steps)])
    if not np.all(np.diff(axis) > 0):  # rounding swallowed a step
        axis = start + np.arange(n_points, dtype=np.float64)
    kind, unit = draw(st.sampled_from(AXES))
    text = plain_words if plain else names
    has_variable = draw(st.booleans())
    return SpectraStack(
        # negative and huge values too: background-subtracted data can be negative
        intensities=draw(hnp.arrays(np.float32, (n_curves, n_points), elements=finite32)),
        axis=axis,
        axis_kind=kind,
        axis_unit=unit,
        variable=draw(
            hnp.arrays(np.float64, n_curves, elements=st.floats(-1e12, 1e12, allow_nan=False))
        )
        if has_variable
        else None,
        variable_name=draw(text) if has_variable else "index",
        variable_unit=draw(st.sampled_from(["", "GPa", "K", "s"])) if has_variable else "",
        name="series",
        sources=draw(st.lists(names, min_size=n_curves, max_size=n_curves)),
        # readers take a wavelength only within 0.005–20 Å (an X-ray one), so stay inside
        wavelength=draw(st.none() | st.floats(0.01, 19.0)),
        metadata=draw(st.dictionaries(names, st.integers() | names, max_size=3)),
    )


def assert_same_series(read: SpectraStack, written: SpectraStack, *, keeps_sources: bool) -> None:
    np.testing.assert_array_equal(read.curves(), written.curves())
    np.testing.assert_array_equal(read.axis, written.axis)
    np.testing.assert_array_equal(read.variable, written.variable)
    assert (read.axis_kind, read.axis_unit) == (written.axis_kind, written.axis_unit)
    assert (read.variable_name, read.variable_unit) == (
        written.variable_name,
        written.variable_unit,
    )
    assert read.wavelength == written.wavelength
    if keeps_sources:
        assert read.sources == written.sources
        assert {k: v for k, v in read.metadata.items() if k != "format"} == {
            k: v for k, v in written.metadata.items() if k != "format"
        }


@FUZZ
@given(stack=valid_stacks(plain=False), suffix=st.sampled_from([".nxs", ".h5", ".npz"]))
def test_any_valid_stack_round_trips_through_nexus_and_npz(stack, suffix):
    with scratch() as folder:
        path = save_stack(stack, folder / f"series{suffix}")
        read = read_or_refuse(path)
        assert read is not None
        assert_same_series(read, stack, keeps_sources=True)


@FUZZ
@given(stack=valid_stacks(plain=True))
def test_any_valid_stack_round_trips_through_an_xy_folder(stack):
    with scratch() as folder:
        path = save_stack(stack, folder / "series", format="xy")
        read = read_or_refuse(path)
        assert read is not None
        assert_same_series(read, stack, keeps_sources=False)


def test_negative_counts_are_kept_as_they_are_in_every_format(tmp_path):
    stack = small_stack().replace(intensities=small_stack().curves() - 150.0)
    assert (stack.curves() < 0).any()
    for target in (tmp_path / "neg.nxs", tmp_path / "neg.npz", tmp_path / "neg"):
        read = read_or_refuse(save_stack(stack, target))
        assert read is not None
        np.testing.assert_array_equal(read.curves(), stack.curves())


# --- truncated and bit-rotten container files -------------------------------------------------------
@pytest.fixture(scope="module")
def valid_container_bytes() -> dict[str, bytes]:
    """The bytes of one valid NeXus file and one valid .npz of the same series."""
    with scratch() as folder:
        return {
            suffix: save_stack(small_stack(), folder / f"run{suffix}").read_bytes()
            for suffix in (".nxs", ".npz")
        }


@FUZZ
@given(suffix=st.sampled_from([".nxs", ".npz"]), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_a_container_file_cut_at_any_offset_is_refused_or_read_correctly(
    valid_container_bytes, suffix, cut
):
    data = valid_container_bytes[suffix]
    with scratch() as folder:
        path = folder / f"cut{suffix}"
        path.write_bytes(data[: int(cut * len(data))])
        read = read_or_refuse(path)
        if read is not None:  # what is left of the file is enough: then it must be right
            np.testing.assert_array_equal(read.curves(), small_stack().curves())


@FUZZ
@given(
    suffix=st.sampled_from([".nxs", ".npz"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=8),
)
def test_a_container_file_with_flipped_bytes_is_refused_or_read(
    valid_container_bytes, suffix, flips
):
    data = bytearray(valid_container_bytes[suffix])
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    with scratch() as folder:
        path = folder / f"rot{suffix}"
        path.write_bytes(bytes(data))
        read_or_refuse(path)


# --- text folders: junk, hostile and malformed curves ------------------------------------------------
numbers = st.sampled_from(["1.5", "-3", "0", "nan", "inf", "-inf", "1e999", "2e-310", "7", "x"])
data_lines = st.lists(st.lists(numbers, min_size=0, max_size=4), max_size=30).map(
    lambda rows: "\n".join(" ".join(r) for r in rows)
)
text_files = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    data_lines.map(str.encode),
    st.tuples(st.text(max_size=80), data_lines).map(lambda p: f"{p[0]}\n{p[1]}".encode()),
    st.just(GOOD_CURVE.encode()),
)


@FUZZ
@given(
    suffix=st.sampled_from([".xy", ".xye", ".chi", ".dat"]),
    contents=st.lists(text_files, min_size=1, max_size=4),
    metadata=st.none() | st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
)
def test_a_folder_of_junk_curves_and_metadata_is_refused_or_read(suffix, contents, metadata):
    with scratch() as root:
        folder = root / "junk"
        folder.mkdir()
        for i, content in enumerate(contents):
            (folder / f"f_{i}{suffix}").write_bytes(content)
        if metadata is not None:
            (folder / "metadata.csv").write_bytes(metadata)
        read_or_refuse(folder)


@FUZZ
@given(
    header=st.sampled_from(["file,", "file;", "file\t", "file,pressure ("]),
    cells=st.lists(st.text(max_size=30), max_size=6),
    rows=st.lists(st.lists(st.text(max_size=10), max_size=4), max_size=5),
)
def test_metadata_csv_junk_is_refused_or_read(header, cells, rows):
    with scratch() as root:
        folder = root / "run"
        folder.mkdir()
        for i in range(3):
            (folder / f"f_{i}.xy").write_text(GOOD_CURVE)
        lines = [header + ",".join(cells)] + [
            ",".join([f"f_{i}.xy", *r]) for i, r in enumerate(rows)
        ]
        (folder / "metadata.csv").write_text("\n".join(lines), encoding="utf-8", errors="replace")
        read_or_refuse(folder)


def write_good_folder(folder: Path, n: int = 3, suffix: str = ".xy") -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"f_{i}{suffix}").write_text(GOOD_CURVE)
    return folder


@pytest.mark.parametrize(
    "hostile_header",
    [
        "#" + "wavelength " * 1_000_000,  # 11 MB: was quadratic in the wavelength search
        "# 2th_deg" + " (" * 500_000,
        "#" + "x" * 5_000_000,
    ],
    ids=["many-wavelength-words", "many-brackets", "one-long-line"],
)
def test_a_huge_header_line_is_read_quickly(tmp_path, hostile_header):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        (folder / f"f_{i}.xy").write_text(hostile_header + "\n" + GOOD_CURVE)
    read = read_or_refuse(folder)
    assert read is not None and read.n_points == AXIS.size


def test_a_metadata_csv_header_that_made_the_unit_pattern_backtrack_is_read_quickly(tmp_path):
    folder = write_good_folder(tmp_path / "run")
    header = "pressure (" + " " * 50_000 + "x"
    rows = "\n".join(f"f_{i}.xy,{i}" for i in range(3))
    (folder / "metadata.csv").write_text(f"file,{header}\n{rows}\n")
    read = read_or_refuse(folder)
    assert read is not None
    np.testing.assert_array_equal(read.variable, [0.0, 1.0, 2.0])


def test_a_metadata_csv_cell_over_the_csv_field_limit_is_a_reader_error(tmp_path):
    folder = write_good_folder(tmp_path / "run")
    (folder / "metadata.csv").write_text(
        "file,pressure\nf_0.xy," + "1" * 200_000 + "\nf_1.xy,2\nf_2.xy,3\n"
    )
    with pytest.raises(ReaderError, match=r"metadata\.csv: not a readable CSV file"):
        load_stack(folder)


@pytest.mark.parametrize("count", ["²", "9" * 5000])
def test_a_chi_point_count_that_is_no_plain_number_is_a_header_line(tmp_path, count):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        (folder / f"f_{i}.chi").write_text(
            f"title\n2-Theta Angle (Degrees)\nI\n{count}\n{GOOD_CURVE}"
        )
    read = read_or_refuse(folder)
    assert read is not None and read.n_points == AXIS.size


def test_symlink_loops_in_a_folder_are_skipped(tmp_path):
    folder = write_good_folder(tmp_path / "run")
    os.symlink("loop_a.xy", folder / "loop_b.xy")
    os.symlink("loop_b.xy", folder / "loop_a.xy")
    os.symlink("self.xy", folder / "self.xy")
    read = read_or_refuse(folder)
    assert read is not None and read.n_curves == 3
    os.symlink("series", tmp_path / "series")
    assert read_or_refuse(tmp_path / "series") is None


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "stream.npz"
    os.mkfifo(fifo)
    with pytest.raises(ReaderError, match="not a regular file"), time_limit(SECONDS_PER_READ):
        load_stack(fifo)


def test_non_utf8_file_names_and_contents_load(tmp_path):
    folder = tmp_path.joinpath(os.fsdecode(b"run_\xff\xfe"))
    folder.mkdir()
    for i in range(3):
        name = os.fsdecode(b"f_%d_\xe9.xy" % i)
        folder.joinpath(name).write_bytes(b"# \xff\xfe latin-1 title \xe9\n" + GOOD_CURVE.encode())
    read = read_or_refuse(folder)
    assert read is not None and read.n_curves == 3


def test_empty_files_are_refused(tmp_path):
    for name in ("empty.nxs", "empty.npz", "empty.h5"):
        (tmp_path / name).write_bytes(b"")
        assert read_or_refuse(tmp_path / name) is None
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(2):
        (folder / f"f_{i}.xy").write_bytes(b"")
    assert read_or_refuse(folder) is None


# --- npz: hostile entries ---------------------------------------------------------------------------
class UnpickleAlarm:
    """An object whose unpickling would be noticed."""

    unpickled = False

    def __setstate__(self, state):
        UnpickleAlarm.unpickled = True


def test_an_npz_with_object_arrays_is_refused_and_never_unpickled(tmp_path):
    path = tmp_path / "hostile.npz"
    np.savez(
        path,
        intensity=np.ones((3, 16)),
        two_theta=AXIS,
        names=np.array([UnpickleAlarm(), UnpickleAlarm(), UnpickleAlarm()], dtype=object),
    )
    with pytest.raises(ReaderError, match="never unpickled"):
        load_stack(path)
    assert not UnpickleAlarm.unpickled


npz_dtypes = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.int16,
        np.uint8,
        np.bool_,
        np.complex64,
        "<U3",
        "S3",
        "M8[s]",
        "m8[s]",
    ]
)


def npz_entries(shape):
    return npz_dtypes.flatmap(lambda dtype: hnp.arrays(dtype, shape))


@FUZZ
@given(
    intensity=npz_entries(hnp.array_shapes(max_dims=3, max_side=20)),
    axis=npz_entries(hnp.array_shapes(max_dims=2, max_side=20)),
    extras=st.dictionaries(
        st.sampled_from(["pressure", "variable", "wavelength", "names", "metadata_json", "q_unit"]),
        npz_entries(hnp.array_shapes(min_dims=0, max_dims=2, max_side=6)),
        max_size=4,
    ),
)
def test_an_npz_of_any_dtypes_and_shapes_is_refused_or_read(intensity, axis, extras):
    with scratch() as folder:
        path = folder / "any.npz"
        np.savez(path, intensity=intensity, two_theta=axis, **extras)
        read_or_refuse(path)


@pytest.mark.parametrize("metadata_json", ["[1, 2]", "[" * 100_000, '"text"', "{bad"])
def test_metadata_json_that_is_no_object_is_kept_as_text(tmp_path, metadata_json):
    path = tmp_path / "meta.npz"
    np.savez(path, intensity=np.ones((3, 16)), two_theta=AXIS, metadata_json=metadata_json)
    read = read_or_refuse(path)
    assert read is not None and read.metadata["metadata_json"] == metadata_json


# --- HDF5: hostile structure -------------------------------------------------------------------------
def nexus_by_hand(path: Path, edit) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = h5.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "intensity"
        data.attrs["axes"] = [".", "two_theta"]
        data["intensity"] = np.ones((3, AXIS.size))
        data["two_theta"] = AXIS
        edit(h5, entry, data)
    return path


def set_bad_utf8_signal(h5, entry, data):
    data.attrs.create("signal", b"\xff\xfe", dtype=h5py.string_dtype("utf-8"))


def set_complex_signal(h5, entry, data):
    del data["intensity"]
    data["intensity"] = np.ones((3, AXIS.size)) * (1 + 1j)


def set_soft_link_loop(h5, entry, data):
    h5["a"] = h5py.SoftLink("/b")
    h5["b"] = h5py.SoftLink("/a")
    h5.attrs["default"] = "a"


def set_external_signal(h5, entry, data):
    del data["intensity"]
    data["intensity"] = h5py.ExternalLink("/nonexistent/elsewhere.h5", "/x")


def set_junk_dioptas_process(h5, entry, data):
    data["binning"] = AXIS
    data.attrs["axes"] = [".", "binning"]
    process = entry.create_group("process")
    process["num_points"] = "many"
    process["int_unit"] = np.array([1, 2])
    process["pos_map"] = np.full((3, 2), np.nan)


def set_list_metadata(h5, entry, data):
    entry.attrs["xrdphase_metadata"] = "[1, 2]"


def set_nan_variable(h5, entry, data):
    data.attrs["axes"] = ["pressure", "two_theta"]
    data["pressure"] = [1.0, np.nan, 3.0]


@pytest.mark.parametrize(
    "edit",
    [
        set_bad_utf8_signal,
        set_complex_signal,
        set_soft_link_loop,
        set_external_signal,
        set_junk_dioptas_process,
        set_list_metadata,
        set_nan_variable,
    ],
)
def test_hostile_hdf5_structure_is_refused_or_read(tmp_path, edit):
    read = read_or_refuse(nexus_by_hand(tmp_path / "hostile.nxs", edit))
    if edit is set_complex_signal or edit is set_nan_variable:
        assert read is None  # would lose the imaginary part / is garbage
    if read is not None:
        np.testing.assert_array_equal(read.curves(), np.ones((3, AXIS.size), np.float32))
