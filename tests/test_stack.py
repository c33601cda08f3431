import numpy as np
import pytest

from napari_xrdphase.stack import SpectraStack, StackError, convert_axis, energy_kev_to_wavelength


def make_stack(n=5, m=50, **kw):
    rng = np.random.default_rng(0)
    return SpectraStack(rng.random((n, m)), np.linspace(5, 25, m), **kw)


def test_stack_defaults_variable_to_acquisition_index():
    stack = make_stack()
    assert stack.variable_name == "index"
    np.testing.assert_array_equal(stack.variable, np.arange(5))
    assert stack.intensities.dtype == np.float32
    assert stack.sources[2] == "series[2]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 1}, "at least 2 curves"),
        ({"variable": np.arange(4)}, "4 values of 'index' for 5 curves"),
        ({"axis_unit": "1/A"}, "does not fit a 2theta axis"),
        ({"axis_kind": "energy"}, "unknown axis kind"),
        ({"wavelength": -1.0}, "wavelength must be a positive"),
        ({"variable": [0, 1, np.nan, 3, 4], "variable_name": "pressure"}, "'pressure' is NaN"),
    ],
)
def test_invalid_stacks_are_rejected_with_a_reason(kwargs, message):
    n = kwargs.pop("n", 5)
    with pytest.raises(StackError, match=message):
        make_stack(n=n, **kwargs)


def test_non_monotonic_axis_names_the_point():
    axis = np.linspace(5, 25, 50)
    axis[20] = axis[18]
    with pytest.raises(StackError, match=r"not strictly monotonic .at point 20"):
        SpectraStack(np.ones((3, 50)), axis)


def test_nan_intensities_name_the_curves():
    data = np.ones((4, 20))
    data[2, 5] = np.inf
    with pytest.raises(StackError, match=r"1 intensity values are NaN or inf \(curves \[2\]"):
        SpectraStack(data, np.arange(20.0))


def test_two_theta_q_d_conversions_agree_with_bragg_law():
    wavelength = energy_kev_to_wavelength(25.6)
    assert wavelength == pytest.approx(0.48431, rel=1e-4)
    two_theta = np.array([10.0, 20.0])
    q = convert_axis(two_theta, "2theta", "deg", "q", "1/A", wavelength)
    np.testing.assert_allclose(q, 4 * np.pi * np.sin(np.radians(two_theta / 2)) / wavelength)
    d = convert_axis(two_theta, "2theta", "deg", "d", "A", wavelength)
    np.testing.assert_allclose(2 * d * np.sin(np.radians(two_theta / 2)), wavelength)
    np.testing.assert_allclose(convert_axis(q, "q", "1/A", "d", "A"), d)
    np.testing.assert_allclose(
        convert_axis(q * 10, "q", "1/nm", "2theta", "deg", wavelength), two_theta
    )


def test_conversion_between_angle_and_q_needs_wavelength():
    with pytest.raises(StackError, match="needs the X-ray wavelength"):
        convert_axis(np.array([10.0]), "2theta", "deg", "q")


def test_with_axis_d_reverses_axis_and_keeps_values():
    stack = make_stack(wavelength=0.4843)
    d_stack = stack.with_axis("d")
    assert d_stack.axis_kind == "d" and d_stack.axis_unit == "A"
    assert d_stack.axis[0] > d_stack.axis[-1]  # d falls as 2θ grows: still strictly monotonic
    np.testing.assert_array_equal(d_stack.intensities, stack.intensities)


def test_resampled_and_subset_keep_metadata():
    stack = make_stack(
        variable=np.linspace(0, 20, 5), variable_name="pressure", variable_unit="GPa"
    )
    sub = stack.subset([4, 1])
    np.testing.assert_array_equal(sub.variable, [20.0, 5.0])
    np.testing.assert_array_equal(sub.intensities[0], stack.intensities[4])
    assert sub.sources == ["series[4]", "series[1]"]
    fine = stack.resampled(np.linspace(5, 25, 99))
    np.testing.assert_allclose(fine.intensities[:, ::2], stack.intensities, atol=1e-6)
    assert fine.variable_label == "pressure (GPa)"


@pytest.mark.parametrize(
    ("kind", "unit"), [("2theta", "deg"), ("2theta", "rad"), ("q", "1/nm"), ("d", "A")]
)
def test_strained_divides_every_d_spacing_on_any_axis(kind, unit):
    wavelength = 0.4843
    stack = make_stack(wavelength=wavelength).with_axis(kind, unit)
    squeezed = stack.strained(0.02)
    d_before = convert_axis(stack.axis, kind, unit, "d", "A", wavelength)
    d_after = convert_axis(squeezed.axis, kind, unit, "d", "A", wavelength)
    np.testing.assert_allclose(d_after, d_before / 1.02, rtol=1e-12)
    np.testing.assert_array_equal(squeezed.intensities, stack.intensities)
    assert (squeezed.axis_kind, squeezed.axis_unit, squeezed.name) == (kind, unit, stack.name)
    np.testing.assert_allclose(squeezed.strained(1 / 1.02 - 1).axis, stack.axis, rtol=1e-12)


def test_strained_needs_no_wavelength_on_a_two_theta_axis():
    stack = make_stack()
    assert stack.wavelength is None
    stretched = stack.strained(-0.03)
    expected = 2 * np.degrees(np.arcsin(np.sin(np.radians(stack.axis) / 2) * 0.97))
    np.testing.assert_allclose(stretched.axis, expected)


def test_strained_refuses_impossible_strains():
    stack = SpectraStack(np.ones((2, 10)), np.linspace(100.0, 170.0, 10), name="wide")
    with pytest.raises(StackError, match="takes 2θ beyond 180°"):
        stack.strained(0.05)
    with pytest.raises(ValueError, match="above -1"):
        stack.strained(-1.0)
