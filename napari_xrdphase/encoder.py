"""``Encoder``: a ConvSC network plus the preprocessing and settings it was trained with.

An encoder is stored as ONE safetensors file: the weights as tensors and the JSON config in the
file's metadata under ``"napari_xrdphase"``. Loading never unpickles anything, so opening a model
file from someone else cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write_bytes
from .models import ConvSC, count_parameters
from .preprocess import iter_prepared_chunks, prepare_curves, stack_axis_in, window_coverage
from .stack import SpectraStack
from .training_check import PretrainingWarning, TrainingCheck

__all__ = [
    "ARCHITECTURE",
    "METADATA_KEY",
    "Encoder",
    "ModelError",
    "builtin_encoder_path",
    "resolve_device",
]

ARCHITECTURE = "ConvSC"
METADATA_KEY = "napari_xrdphase"
# safetensors has no checksum; ours catches damaged weights, which would otherwise load silently
CHECKSUM_KEY = "napari_xrdphase_sha256"
FORMAT_VERSION = 1
# forward passes on CPU run in sub-batches of this many curves: larger activations fall out of
# cache, and fresh allocations of more than a few MB are page-faulted in again on every use
# (2 threads of an EPYC, 1024 points: ConvSC.infer 68 µs per curve at 32, 79 at 64, 89 at 16;
# the eager forward 113 µs at 32, 189 at 256)
CPU_SUB_BATCH = 32
# the first call with at least this many curves builds an encoder's ONNX Runtime session
ORT_MIN_CURVES = 256
_HYPERPARAMETERS = (
    "conv_filters",
    "channels",
    "pool_length",
    "feature_dim",
    "num_heads",
    "bn_splits",
)


class ModelError(ValueError):
    """A model file or device that cannot be used, with a message that says why."""


# --- devices -------------------------------------------------------------------------------------
_threads_expected = torch.get_num_threads()


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_all_cpu_cores() -> int:
    """Give torch every core this process may use, unless the user chose a thread count."""
    global _threads_expected
    chosen_by_user = any(
        os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_NUM_THREADS")
    ) or (torch.get_num_threads() != _threads_expected)
    if not chosen_by_user:
        torch.set_num_threads(_available_cores())
        _threads_expected = torch.get_num_threads()
    return torch.get_num_threads()


def _why_no_cuda() -> str:
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return "torch was built without CUDA (a CPU-only build of PyTorch is installed)"
    return (
        f"torch was built with CUDA {torch.version.cuda} but found no usable GPU "
        "(no NVIDIA GPU, or its driver is missing or too old)"
    )


def resolve_device(device: str | torch.device = "auto") -> tuple[torch.device, str]:
    """Return the torch device for ``"auto"``, ``"cpu"``, ``"cuda[:n]"`` or ``"mps"`` and a reason in words."""
    text = str(device).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0), f"CUDA GPU: {torch.cuda.get_device_name(0)}"
        reason = f"CPU with {_use_all_cpu_cores()} threads; CUDA not available: {_why_no_cuda()}"
        return torch.device("cpu"), reason
    try:
        resolved = torch.device(text)
    except (RuntimeError, ValueError):
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cpu":
        return resolved, f"CPU with {_use_all_cpu_cores()} threads (requested)"
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} was requested but CUDA is not available: {_why_no_cuda()}"
            )
        index = 0 if resolved.index is None else resolved.index
        count = torch.cuda.device_count()
        if index >= count:
            raise ModelError(
                f"device {device!r} was requested but only {count} CUDA device(s) exist"
            )
        return torch.device("cuda", index), f"CUDA GPU {index}: {torch.cuda.get_device_name(index)}"
    if resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ModelError(f"device {device!r} was requested but Apple MPS is not available here")
        return resolved, "Apple MPS GPU (requested)"
    raise ModelError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")


# --- files ---------------------------------------------------------------------------------------
def builtin_encoder_path() -> Path:
    """Return where the encoder shipped with the package is stored."""
    return Path(__file__).parent / "models_data" / "builtin_encoder.safetensors"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, torch.device)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Return the SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# Edge-padding a fifth of the window cost an untrained encoder 23 points of FeO precision on an
# independent simulator's suite (docs/benchmarks.md): warn well before half the window is missing.
MIN_WINDOW_COVERAGE = 0.9


def _check_coverage(name: str, axis: np.ndarray, axis_range: Sequence[float], prep: dict) -> None:
    """Refuse a series outside the encoder's window; warn when it covers little of it."""
    coverage = window_coverage(axis, axis_range)
    lo, hi = sorted(axis_range)
    window = f"{prep.get('axis_kind') or 'axis'} {lo:.4g}–{hi:.4g} {prep.get('axis_unit') or ''}"
    seen = f"{float(np.min(axis)):.4g}–{float(np.max(axis)):.4g}"
    if coverage == 0:
        raise ValueError(
            f"{name}: its curves ({seen}) lie outside this encoder's window ({window.strip()}); "
            "pretrain an encoder on series like it"
        )
    if coverage < MIN_WINDOW_COVERAGE:
        warnings.warn(
            f"{name}: its curves ({seen}) cover only {100 * coverage:.0f} % of this encoder's "
            f"window ({window.strip()}); the rest is filled with edge values, so expect poorer "
            "results: pretrain an encoder on these series",
            UserWarning,
            stacklevel=4,
        )


def default_config(model: ConvSC, input_length: int = 1024) -> dict[str, Any]:
    """Return the config of an encoder built from ``model`` with no training recorded."""
    from . import __version__

    return {
        "format": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "hyperparameters": dict(model.hyperparameters),
        "input_length": int(input_length),
        "preprocessing": {
            "resample": "linear, equally spaced over the axis range",
            "scaling": "min-max per curve to [0, 1]",
            "axis_range": None,
            "axis_kind": None,
            "axis_unit": None,
        },
        "method": None,
        "training": {},
        "version": __version__,
        "data": {},
    }


def _parse_hyperparameters(config: dict[str, Any], path: Path) -> dict[str, int]:
    raw = config.get("hyperparameters", {})
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: the model config has no valid 'hyperparameters'")
    unknown = sorted(set(raw) - set(_HYPERPARAMETERS))
    if unknown:
        raise ModelError(
            f"{path}: unknown ConvSC hyper-parameters {unknown}; is it from a newer version?"
        )
    parsed = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(
                f"{path}: hyper-parameter {name} = {value!r} is not a positive integer"
            )
        parsed[name] = value
    return parsed


def _shape_differences(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]
) -> list[str]:
    problems = [f"missing {name}" for name in sorted(set(expected) - set(found))]
    problems += [f"unexpected {name}" for name in sorted(set(found) - set(expected))]
    problems += [
        f"{name}: {list(found[name])} instead of {list(shape)}"
        for name, shape in expected.items()
        if name in found and tuple(found[name]) != tuple(shape)
    ]
    return problems


# --- the encoder ---------------------------------------------------------------------------------
class Encoder:
    """A ConvSC network (kept in eval mode) with the preprocessing and settings it was trained with."""

    #: run CPU forward passes through ``ConvSC.infer`` (folded weights, same features to float
    #: rounding, ~3× faster); False runs the plain eager ``forward`` (a baseline for benchmarks)
    fast_inference: bool = True
    #: run those CPU forward passes through ONNX Runtime (``_onnx``; the same folded graph,
    #: several times faster on CPU) when ``onnxruntime`` is importable and ``XRDPHASE_ONNX`` is
    #: not "0"; False keeps them in PyTorch. A call of at least ``ORT_MIN_CURVES`` curves builds
    #: the session (an export of about a second); from then on every call uses it
    onnx_runtime: bool = True

    def __init__(self, model: ConvSC, config: dict[str, Any] | None = None) -> None:
        if not isinstance(model, ConvSC):
            raise TypeError(f"Encoder wraps a ConvSC model, got {type(model).__name__}")
        self.model = model.eval()
        base = default_config(model)
        if config:
            base.update(config)
            base["architecture"] = ARCHITECTURE
            base["hyperparameters"] = dict(model.hyperparameters)
        self.config: dict[str, Any] = base
        self._ort: Any = None  # the cached ONNX Runtime session (``_onnx.OrtForward``)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def random(
        cls, seed: int = 0, input_length: int = 1024, window: dict[str, Any] | None = None
    ) -> Encoder:
        """Return an untrained encoder with the reference initialisation (a baseline).

        ``window`` (``preprocess.common_window``) fixes the grid it embeds on, as pretraining
        does; without it each series is read on its own axis range.
        """
        model = ConvSC(seed=seed)
        # The reference init draws batch-norm scales from N(0, 0.05), so the last one is
        # negative half the time; with the fresh running statistics of an untrained model the
        # final ReLU then zeroes every feature (seed 0 does). Training fixes the sign; for an
        # untrained baseline we flip it so the features say something.
        with torch.no_grad():
            model.reduce_bn.weight.abs_()
        config = default_config(model, input_length)
        config["preprocessing"].update(window or {})
        config["method"] = "random-init"
        config["training"] = {"seed": int(seed)}
        return cls(model, config)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Encoder:
        """Return the encoder stored in a napari-xrdphase safetensors file (nothing is unpickled)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = handle.metadata() or {}
                config = cls._parse_config(metadata, path)
                hyperparameters = _parse_hyperparameters(config, path)
                expected = cls._expected_shapes(hyperparameters, path)
                names = handle.keys()  # a safetensors handle is not iterable
                found = {name: tuple(handle.get_slice(name).get_shape()) for name in names}
                problems = _shape_differences(expected, found)
                if problems:
                    shown = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
                    raise ModelError(
                        f"{path}: the weights do not fit a ConvSC encoder with {hyperparameters or 'default'} "
                        f"hyper-parameters ({shown})"
                    )
                tensors = {name: handle.get_tensor(name) for name in expected}
                checksum = metadata.get(CHECKSUM_KEY)
        except ModelError:
            raise
        except Exception as exc:  # safetensors raises its own error types, OSError or ValueError
            raise ModelError(
                f"{path}: not a readable napari-xrdphase model file (safetensors): {exc}"
            ) from None
        if checksum != _weights_digest(tensors):
            raise ModelError(
                f"{path}: the weights are damaged (their checksum does not match the one stored "
                "when the file was written); use another copy of the file"
            )
        model = ConvSC(**hyperparameters)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path}: the weights do not fit a ConvSC encoder: {exc}") from None
        encoder = cls(model, config)
        check = encoder.training_check
        if check is not None and not check.learned:
            warnings.warn(
                f"{path}: " + " ".join(f.message for f in check.problems),
                PretrainingWarning,
                stacklevel=2,
            )
        return encoder.to(device)

    @staticmethod
    def _parse_config(metadata: dict[str, str], path: Path) -> dict[str, Any]:
        if METADATA_KEY not in metadata:
            raise ModelError(
                f"{path}: a safetensors file, but not a napari-xrdphase encoder "
                f"(no {METADATA_KEY!r} entry in its metadata)"
            )
        try:
            config = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise ModelError(
                f"{path}: the model config in the metadata is not valid JSON ({exc})"
            ) from None
        if not isinstance(config, dict):
            raise ModelError(f"{path}: the model config in the metadata is not a JSON object")
        architecture = config.get("architecture")
        if architecture != ARCHITECTURE:
            raise ModelError(
                f"{path}: holds a {architecture!r} model; this version of napari-xrdphase "
                f"reads {ARCHITECTURE} encoders"
            )
        fmt = config.get("format", FORMAT_VERSION)
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise ModelError(
                f"{path}: written in model format {fmt!r} by a newer napari-xrdphase "
                f"({config.get('version', '?')}); please update napari-xrdphase"
            )
        length = config.get("input_length", 1024)
        if isinstance(length, bool) or not isinstance(length, int) or length < 60:
            raise ModelError(f"{path}: input_length {length!r} is not an integer ≥ 60")
        return config

    @staticmethod
    def _expected_shapes(hyperparameters: dict[str, int], path: Path) -> dict[str, tuple[int, ...]]:
        # built on the meta device: no memory is allocated however large the stated sizes
        try:
            with torch.device("meta"):
                skeleton = ConvSC(**hyperparameters)
        except Exception as exc:
            raise ModelError(
                f"{path}: invalid ConvSC hyper-parameters {hyperparameters}: {exc}"
            ) from None
        return {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}

    @classmethod
    def builtin(cls, device: str | torch.device = "cpu") -> Encoder:
        """Return the encoder shipped with the package."""
        path = builtin_encoder_path()
        if not path.is_file():
            raise ModelError(
                f"the built-in encoder is missing ({path}). Reinstall napari-xrdphase, or pretrain "
                "an encoder on your own series (napari_xrdphase.pretrain or `xrdphase pretrain`) "
                "and load it with Encoder.load(path); Encoder.random() gives an untrained baseline."
            )
        return cls.load(path, device)

    # --- properties ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Device holding the weights."""
        return next(self.model.parameters()).device

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters of the network."""
        return count_parameters(self.model)

    @property
    def input_length(self) -> int:
        """Number of points every curve is resampled to."""
        return int(self.config["input_length"])

    @property
    def training_check(self) -> TrainingCheck | None:
        """The end-of-training check of a pretrained encoder (``training_check.TrainingCheck``).

        None for encoders without one: the built-in and random ones, and files written before
        the check existed.
        """
        return TrainingCheck.from_dict(self.config.get("training_check"))

    @property
    def feature_dim(self) -> int:
        """Length of an embedding."""
        return self.model.feature_dim

    @property
    def cpu_backend(self) -> str:
        """What runs CPU forward passes: ``"onnxruntime"``, ``"torch-folded"`` or ``"torch-eager"``."""
        from . import _onnx

        if not self.fast_inference:
            return "torch-eager"
        return (
            "onnxruntime" if self.onnx_runtime and _onnx.onnx_runtime_enabled() else "torch-folded"
        )

    def __repr__(self) -> str:
        method = self.config.get("method") or "untrained"
        return (
            f"Encoder({ARCHITECTURE}, {self.n_parameters} parameters, method={method}, "
            f"input_length={self.input_length}, device={self.device})"
        )

    def to(self, device: str | torch.device) -> Encoder:
        """Move the weights to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ...) and return self."""
        resolved, _ = resolve_device(device)
        self.model.to(resolved)
        return self

    # --- embedding -------------------------------------------------------------------------
    def _prepared_batches(
        self, data: SpectraStack | np.ndarray, batch_size: int, axis: np.ndarray | None
    ) -> Iterator[np.ndarray]:
        prep = self.config.get("preprocessing", {}) or {}
        axis_range = prep.get("axis_range")
        axis_range = tuple(axis_range) if axis_range is not None else None
        if isinstance(data, SpectraStack):
            # the window is given in the training data's axis kind and unit (q in 1/Å whenever
            # the training series had wavelengths); without a window, each series' own axis
            kind, unit = (
                (prep.get("axis_kind"), prep.get("axis_unit")) if axis_range else (None, None)
            )
            if axis_range is not None:
                _check_coverage(data.name, stack_axis_in(data, kind, unit), axis_range, prep)
            chunks = iter_prepared_chunks(
                data, self.input_length, axis_range, batch_size, axis_kind=kind, axis_unit=unit
            )
            for _, block in chunks:
                yield block
            return
        curves = np.asarray(data)
        if curves.ndim == 1:
            curves = curves[np.newaxis]
        if curves.ndim != 2:
            raise ValueError(
                f"embed expects a SpectraStack or (curves × points) array, got shape {curves.shape}"
            )
        source_axis = np.arange(curves.shape[1], dtype=np.float64) if axis is None else axis
        for start in range(0, curves.shape[0], batch_size):
            block = curves[start : start + batch_size]
            yield prepare_curves(
                block, source_axis, self.input_length, axis_range if axis is not None else None
            )

    def embed(
        self,
        data: SpectraStack | np.ndarray,
        batch_size: int = 4096,
        device: str | torch.device | None = None,
        axis: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return (N, 128) float32 embeddings of a stack or of a (N, L) array of curves.

        Curves are prepared as in training (resampled to ``input_length`` points, scaled to
        [0, 1] each) in chunks of ``batch_size``. ``device`` moves the encoder first (None keeps
        it where it is). An array is taken as equally spaced points unless ``axis`` is given.
        On CUDA the forward pass runs in bfloat16 (float16 where bf16 is unsupported); on CPU
        through ``ConvSC.infer`` (see ``fast_inference``).
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if device is not None:
            self.to(device)
        target = self.device
        if target.type == "cpu":
            _use_all_cpu_cores()
        self.model.eval()
        outputs: list[np.ndarray] = []
        with torch.inference_mode():
            for block in self._prepared_batches(data, int(batch_size), axis):
                x = torch.from_numpy(block).to(target, non_blocking=True)
                outputs.append(self._forward(x))
        if not outputs:
            return np.empty((0, self.feature_dim), dtype=np.float32)
        return np.concatenate(outputs, axis=0)

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        if x.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                return self.model(x).float().cpu().numpy()
        if (
            x.device.type == "cpu"
            and self.fast_inference
            and self.model.fast_inference_blocker(x) is None
        ):
            ort = self._ort_session(x)
            if ort is not None:
                return ort(x.reshape(x.shape[0], -1).numpy())
            return self.model.infer(x, CPU_SUB_BATCH).numpy()
        step = CPU_SUB_BATCH if x.device.type == "cpu" else x.shape[0]
        parts = [
            self.model(x[i : i + step]).float().cpu().numpy() for i in range(0, x.shape[0], step)
        ]
        return np.concatenate(parts, axis=0)

    def _ort_session(self, x: torch.Tensor) -> Any:
        """Return the ONNX Runtime forward pass for ``x``'s curve length, or None to stay in PyTorch."""
        from . import _onnx

        if not (self.onnx_runtime and _onnx.onnx_runtime_enabled()):
            return None
        folded = self.model._folded_for_inference()  # rebuilt whenever the weights change
        length, threads = int(x.shape[-1]), torch.get_num_threads()
        ort = self._ort
        if ort is not None and (ort.folded, ort.length, ort.threads) == (folded, length, threads):
            return ort
        if x.shape[0] < ORT_MIN_CURVES:
            return None
        try:
            self._ort = _onnx.OrtForward(folded, length, threads)
        except Exception as exc:  # an onnx/onnxruntime that cannot export or load this graph
            warnings.warn(
                f"ONNX Runtime is not used for this encoder ({type(exc).__name__}: {exc}); "
                "the PyTorch forward pass runs instead",
                UserWarning,
                stacklevel=4,
            )
            self.onnx_runtime = False
            return None
        return self._ort

    # --- saving ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and config to ONE safetensors file, atomically; return its path."""
        from safetensors.torch import save as safetensors_bytes

        path = Path(path)
        try:
            text = json.dumps(self.config, default=_json_default, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"{path}: the encoder config cannot be stored as JSON: {exc}"
            ) from None
        tensors = {
            name: t.detach().to("cpu").contiguous().clone()
            for name, t in self.model.state_dict().items()
        }
        metadata = {METADATA_KEY: text, CHECKSUM_KEY: _weights_digest(tensors)}
        payload = safetensors_bytes(tensors, metadata=metadata)
        if not path.parent.is_dir():
            raise ModelError(f"{path}: the folder {path.parent} does not exist")
        try:
            atomic_write_bytes(path, payload)
        except OSError as exc:
            raise ModelError(f"{path}: cannot write the model file: {exc}") from None
        return path
