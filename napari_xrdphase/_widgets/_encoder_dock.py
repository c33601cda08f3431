"""The Encoder dock: choose the encoder (built-in, a file, or pretrained here) and save it.

Pretraining runs in a napari ``thread_worker`` generator: the training loop itself runs in a
thread the generator starts, and every step's progress dict comes back to the generator through
a queue and is yielded to the GUI thread, which moves napari's progress bar (one yield = one
step) and the loss label. Cancel sets an event that ``should_stop`` polls before every step, so
training stops within one step and the encoder as of the last completed step is kept.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox

from ..defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_INIT,
    DEFAULT_METHOD,
    DEFAULT_MOCO_WEIGHT,
    FINETUNE_MAX_EPOCHS,
    METHOD_NAMES,
)
from ._plot import Confirm, ask_save_path, ask_yes_no, export_file
from ._session import get_session

if TYPE_CHECKING:
    import napari

    from ..encoder import Encoder

DEVICES = ("auto", "cpu", "cuda")
MODEL_FILE_FILTER = "napari-xrdphase encoder (*.safetensors);;All files (*)"
_TRAINING_DONE = object()


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def pretraining_steps(
    session: Any, settings: dict[str, Any], stop: threading.Event
) -> Generator[dict[str, Any], None, Encoder]:
    """Yield the progress dict of every training step; return the pretrained encoder.

    ``session.pretrain`` runs in a thread started here (it is one blocking call); its progress
    callback puts each step's dict in a queue that this generator yields from, so a napari
    generator worker can pass them to the GUI thread. Setting ``stop`` ends training within
    one step. Closing the generator early sets ``stop`` and waits for the training thread.
    """
    updates: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            outcome["encoder"] = session.pretrain(
                **settings, progress=updates.put, should_stop=stop.is_set, notify=False
            )
        except BaseException as exc:  # handed to the generator, raised in the worker
            outcome["error"] = exc
        finally:
            updates.put(_TRAINING_DONE)

    thread = threading.Thread(target=train, name="xrdphase-pretraining", daemon=True)
    thread.start()
    try:
        while (update := updates.get()) is not _TRAINING_DONE:
            yield update
    finally:
        if thread.is_alive():  # closed before training ended (worker quit, viewer closed)
            stop.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["encoder"]


def describe_step(update: dict[str, Any]) -> str:
    """Return a one-line description of a training step's progress dict."""
    parts = ", ".join(f"{name} {value:.3g}" for name, value in update.get("losses", {}).items())
    return (
        f"epoch {update['epoch']}/{update['epochs']} · step {update['step']}/"
        f"{update['total_steps']} · loss {update['loss']:.4g}" + (f" ({parts})" if parts else "")
    )


class EncoderDock(Container):
    """Choose, pretrain and save the encoder the other docks use.

    ``confirm(message) -> bool`` answers whether Save may replace an existing file; by default
    a dialog asks the user.
    """

    def __init__(self, viewer: napari.viewer.Viewer, confirm: Confirm | None = None) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._session = get_session(viewer)
        self._confirm = confirm
        self._training = _TrainingState()
        self._progress_bar = None
        self._last_update: dict[str, Any] | None = None
        self._previous: tuple[Any, str] | None = None

        self.source_label = Label(label="Encoder", value="")
        self.use_builtin_button = PushButton(text="Use built-in")
        self.load_button = PushButton(text="Load…")
        self.save_button = PushButton(text="Save…")
        file_row = Container(
            widgets=[self.use_builtin_button, self.load_button, self.save_button],
            layout="horizontal",
            labels=False,
        )
        file_row.margins = (0, 0, 0, 0)
        self.method = ComboBox(label="Method", choices=METHOD_NAMES, value=DEFAULT_METHOD)
        # builtin: fine-tune the built-in encoder (Epochs is then a cap; the stopping rule ends
        # it earlier); random: from scratch, as in the paper
        self.init = ComboBox(label="Start from", choices=("builtin", "random"), value=DEFAULT_INIT)
        self.epochs = SpinBox(
            label="Epochs",
            value=FINETUNE_MAX_EPOCHS if DEFAULT_INIT == "builtin" else DEFAULT_EPOCHS,
            min=1,
            max=100_000,
        )
        self.c = FloatSpinBox(
            label="MoCo weight c", value=DEFAULT_MOCO_WEIGHT, min=0.0, max=1000.0, step=0.01
        )
        self.batch_size = SpinBox(
            label="Batch size", value=DEFAULT_BATCH_SIZE, min=2, max=1_000_000
        )
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.device = ComboBox(label="Device", choices=DEVICES, value="auto")
        self.device_label = Label(label="Runs on", value="")
        self.pretrain_button = PushButton(text="Pretrain")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        train_row = Container(
            widgets=[self.pretrain_button, self.cancel_button], layout="horizontal", labels=False
        )
        train_row.margins = (0, 0, 0, 0)
        self.loss_label = Label(label="Progress", value="")
        self.extend(
            [
                self.source_label,
                file_row,
                self.method,
                self.init,
                self.epochs,
                self.c,
                self.batch_size,
                self.seed,
                self.device,
                self.device_label,
                train_row,
                self.loss_label,
            ]
        )
        for label in (self.source_label, self.device_label, self.loss_label):
            label.native.setWordWrap(True)

        self.use_builtin_button.clicked.connect(self.use_builtin)
        self.load_button.clicked.connect(self._choose_file_to_load)
        self.save_button.clicked.connect(self._choose_file_to_save)
        self.pretrain_button.clicked.connect(self.start_pretraining)
        self.cancel_button.clicked.connect(self.cancel)
        self.method.changed.connect(self._update_c_enabled)
        self.init.changed.connect(self._update_epochs_default)
        self.device.changed.connect(self._update_device_label)
        self._session.events.encoder_changed.connect(self._update_source_label)
        # closing the viewer (or removing the dock) must not leave training running
        # (the handler holds the training state, not the dock, which may be half gone by then)
        training = self._training
        self.native.destroyed.connect(lambda *_: training.shut_down())
        self._update_c_enabled()
        self._update_device_label()
        self._update_source_label()

    # --- encoder choice ------------------------------------------------------------------------
    def use_builtin(self) -> None:
        """Use the encoder shipped with the package."""
        self._session.use_builtin()

    def load_encoder(self, path: str | Path) -> bool:
        """Use the encoder in ``path``; a file that is not one gives a notification; True if loaded."""
        from ..encoder import ModelError

        try:
            self._session.load_encoder(path)
        except ModelError as exc:
            _notify_error(str(exc))
            return False
        return True

    def confirm(self, message: str) -> bool:
        """Ask the user (before an existing file is replaced); True for yes."""
        if self._confirm is not None:
            return bool(self._confirm(message))
        return ask_yes_no(self.native, "Encoder", message)

    def save_encoder(self, path: str | Path) -> Path | None:
        """Write the current encoder to ``path`` (one safetensors file); return it (None if not).

        An existing file is replaced only when ``confirm`` says yes; an input (the model file in
        use, a series' source, a labels file) never is.
        """
        path = Path(path).expanduser()
        if not path.suffix:
            path = path.with_suffix(".safetensors")
        return export_file(
            "Save encoder", path, self._session.save_encoder, self._session.check_output,
            self.confirm,
        )  # fmt: skip

    def _choose_file_to_load(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.native, "Load an encoder", "", MODEL_FILE_FILTER)
        if path:
            self.load_encoder(path)

    def _choose_file_to_save(self) -> None:
        path = ask_save_path(
            self.native, "Save the encoder", "encoder.safetensors", MODEL_FILE_FILTER
        )
        if path:
            self.save_encoder(path)

    # --- settings ------------------------------------------------------------------------------
    def pretraining_settings(self) -> dict[str, Any]:
        """Return the dock's pretraining settings as keyword arguments of ``session.pretrain``."""
        return {
            "method": self.method.value,
            "init": self.init.value,
            "epochs": int(self.epochs.value),
            "batch_size": int(self.batch_size.value),
            "c": float(self.c.value),
            "seed": int(self.seed.value),
            "device": self.device.value,
        }

    def _update_epochs_default(self, *_: Any) -> None:
        # the cap of a fine-tuning, or the full length of a run from scratch
        self.epochs.value = FINETUNE_MAX_EPOCHS if self.init.value == "builtin" else DEFAULT_EPOCHS

    def _update_c_enabled(self, *_: Any) -> None:
        # only SpecRRMoco weighs MoCo by c; the others fix it (0 or MoCo alone)
        self.c.enabled = self.method.value == "specrrmoco"

    def _update_device_label(self, *_: Any) -> None:
        from ..encoder import ModelError, resolve_device

        try:
            device, reason = resolve_device(self.device.value)
        except ModelError as exc:
            self.device_label.value = f"unavailable: {exc}"
            return
        self.device_label.value = f"{device}: {reason}"

    def _update_source_label(self, *_: Any) -> None:
        # RuntimeError: the dock's Qt widget is gone (viewer closed while training ended)
        with contextlib.suppress(RuntimeError):
            # only describe: the session builds the built-in encoder lazily, not loaded here
            self.source_label.value = self._session.encoder_source

    # --- pretraining ---------------------------------------------------------------------------
    @property
    def is_training(self) -> bool:
        """True while a pretraining worker runs."""
        # not worker.is_running: that turns True only once the thread pool has started it
        return self._training.running

    @property
    def worker(self) -> Any:
        """The worker of the latest pretraining (None before the first)."""
        return self._training.worker

    def start_pretraining(self) -> Any:
        """Start pretraining on every open series in a worker; return the worker (None if refused)."""
        from napari.qt.threading import thread_worker

        from ..encoder import ModelError, resolve_device
        from ..training import batch_sizes

        if self.is_training:
            _notify_error("an encoder is being pretrained already; cancel it first")
            return None
        settings = self.pretraining_settings()
        stacks = self._session.stacks
        if not stacks:
            _notify_error(
                "no diffraction series is open; open one (or a sample: File → Open Sample → "
                "XRD Phase) before pretraining"
            )
            return None
        try:
            resolve_device(settings["device"])
        except ModelError as exc:
            _notify_error(str(exc))
            return None
        n_curves = sum(s.n_curves for s in stacks)
        total_steps = settings["epochs"] * len(batch_sizes(n_curves, settings["batch_size"]))
        # the session's current encoder without building the built-in one if none is set yet
        encoder = getattr(self._session, "_encoder", None)
        self._previous = (encoder, self._session.encoder_source)
        self._training.stop = stop = threading.Event()
        self._last_update = None
        create = thread_worker(
            pretraining_steps,
            progress={"total": total_steps, "desc": f"Pretraining {settings['method']}"},
            start_thread=False,
        )
        worker = create(self._session, settings, stop)
        self._progress_bar = getattr(worker, "pbar", None)
        worker.yielded.connect(self._on_step)
        worker.returned.connect(self._on_pretrained)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(stop.set)
        worker.finished.connect(self._on_finished)
        self._training.worker = worker
        self._set_training(True)
        self.loss_label.value = f"starting ({n_curves} curves, {total_steps} steps)…"
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop pretraining within one step; the encoder as of the last completed step is kept."""
        if self.is_training:
            self._training.stop.set()
            self.loss_label.value = "cancelling after this step…"

    def _set_training(self, running: bool) -> None:
        self._training.running = running
        self.pretrain_button.enabled = not running
        self.cancel_button.enabled = running
        for widget in (self.use_builtin_button, self.load_button, self.save_button):
            widget.enabled = not running

    def _on_step(self, update: dict[str, Any]) -> None:
        self._last_update = update
        if self._training.stop.is_set():
            return
        self.loss_label.value = describe_step(update)

    def _on_pretrained(self, encoder: Encoder) -> None:
        training = encoder.config.get("training", {})
        if not training.get("stopped_early"):
            self.loss_label.value = "done" + (
                f": {describe_step(self._last_update)}" if self._last_update else ""
            )
            self._report_check(encoder)
            return
        method = training.get("method", self.method.value)
        if not training.get("steps_completed"):
            previous, source = self._previous or (None, "")
            if previous is not None:
                self._session.set_encoder(previous, source)
            else:
                self._session.use_builtin()
            self.loss_label.value = "cancelled before the first step; the previous encoder is kept"
            return
        update = self._last_update or {}
        epoch = update.get("epoch", "?")
        where = f"epoch {epoch}, step {update.get('step', '?')}/{update.get('total_steps', '?')}"
        self._session.set_encoder(encoder, f"pretrained {method} (cancelled at epoch {epoch})")
        self.loss_label.value = f"cancelled at {where}; the encoder of that step is used"
        self._report_check(encoder)

    def _report_check(self, encoder: Encoder) -> None:
        """Add the end-of-training check to the info text; a warning notification if it found something."""
        comparison = encoder.config.get("builtin_comparison")
        if comparison:
            self.loss_label.value += (
                f"\ncompared with the built-in encoder: {comparison['message']}"
            )
        check = encoder.training_check
        if check is None:
            return
        self.loss_label.value += f"\ncheck: {check.summary()}"
        if check.findings:
            self.loss_label.value += "\nwarning: " + "\nwarning: ".join(check.messages)
            _notify_warning(check.warning())

    def _on_error(self, exc: BaseException) -> None:
        self.loss_label.value = "failed"
        _notify_error(f"pretraining failed: {exc}")

    def _on_finished(self) -> None:
        self._set_training(False)
        self._progress_bar = None

    def close_training(self, wait_ms: int = 10_000) -> None:
        """Stop a running pretraining (viewer closed, dock removed) and wait for it to end."""
        self._training.shut_down(wait_ms)


class _TrainingState:
    """The latest pretraining run: its worker, its stop flag and whether it still runs."""

    def __init__(self) -> None:
        self.worker: Any = None
        self.stop = threading.Event()
        self.running = False

    def shut_down(self, wait_ms: int = 10_000) -> None:
        """Ask training to stop and wait until its worker has returned."""
        self.stop.set()
        if self.worker is not None and self.running:
            # no worker.quit(): that would abandon the generator with its training thread still
            # running; with the flag set training ends within one step and the worker returns
            self.worker.await_workers(msecs=wait_ms)
