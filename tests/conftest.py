"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture
def one_torch_thread(monkeypatch):
    """Run torch on one thread and restore the setting afterwards.

    The tests train and fit tiny models; on a 2-core runner that also runs Xvfb and napari,
    torch's default thread pool makes such steps up to ~10–50× slower (an idle user machine is
    unaffected). The encoder module reads the thread count at import as its default, so it is
    imported first.
    """
    import torch

    import napari_xrdphase.encoder  # noqa: F401

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def series():
    """A simulated Fe compression series of 36 curves: before 0–11, during 12–17, after 18–35."""
    from napari_xrdphase.synth import simulate_series

    return simulate_series("Fe", 12, 6, 18, n_points=800, seed=4, name="Fe36")


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer (under Xvfb), closed after the test."""
    return make_napari_viewer()


@pytest.fixture
def errors(monkeypatch):
    """Messages of the error notifications the docks show (instead of raising)."""
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    return shown


@pytest.fixture
def session(make_napari_viewer, series):
    """The session of a real viewer showing ``series`` with its ground truth, a random encoder."""
    from napari_xrdphase._widgets._session import get_session
    from napari_xrdphase.encoder import Encoder

    session = get_session(make_napari_viewer())
    session.add_stack(series.stack, ground_truth=series.labels)
    session.set_encoder(Encoder.random(1), "random (test)")
    return session
