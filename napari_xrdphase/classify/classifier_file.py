"""The classifier's file format: safetensors tensors with JSON metadata and a checksum."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write_bytes
from .classifier import Classifier, ClassifierError, Embedder, FitSummary

FILE_FORMAT = "napari-xrdphase classifier"


FILE_VERSION = 1


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    # safetensors layout: 8-byte little-endian header length, then a JSON header
    if len(data) < 8:
        raise ValueError(f"file has {len(data)} bytes")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a mapping")
    return metadata


def _tensor_checksum(tensors: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _config_json(encoder: Any) -> str:
    config = getattr(encoder, "config", None)
    if not isinstance(config, Mapping):
        return ""
    return json.dumps(config, sort_keys=True, default=str)


def save_classifier(classifier: Classifier, path: str | os.PathLike) -> Path:
    """Write ``classifier`` to a safetensors file (atomically) and return its path.

    The encoder is not included: save it separately and pass it to ``Classifier.load``.
    """
    from safetensors.numpy import save as safetensors_bytes

    path = Path(path)
    tensors = {
        "weight": np.ascontiguousarray(classifier.weight),
        "bias": np.ascontiguousarray(classifier.bias),
        "mean": np.ascontiguousarray(classifier.mean),
        "scale": np.ascontiguousarray(classifier.scale),
    }
    if classifier.has_novelty:  # the labelled curves' embeddings (files before novelty: none)
        tensors["reference"] = np.ascontiguousarray(classifier.reference)
    metadata = {
        "format": FILE_FORMAT,
        "version": str(FILE_VERSION),
        "classes": json.dumps(list(classifier.classes)),
        "phase_order": json.dumps(
            None if classifier.phase_order is None else list(classifier.phase_order)
        ),
        "summary": json.dumps(classifier.summary.as_dict()),
        "encoder_config": _config_json(classifier.encoder),
        "sha256": _tensor_checksum(tensors),
    }
    if classifier.has_novelty:
        metadata["novelty_scale"] = repr(float(classifier.novelty_scale))
    data = safetensors_bytes(tensors, metadata=metadata)
    atomic_write_bytes(path, data)
    return path


def load_classifier(path: str | os.PathLike, encoder: Embedder) -> Classifier:
    """Return the classifier saved at ``path``, embedding through ``encoder``."""
    from safetensors.numpy import load as load_safetensors

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClassifierError(f"cannot read classifier file {path}: {exc}") from exc
    try:
        metadata = _safetensors_metadata(data)
        tensors = load_safetensors(data)
    except Exception as exc:
        raise ClassifierError(
            f"{path} is not a readable classifier file (corrupt or truncated?): {exc}; "
            "train the classifier again and save it"
        ) from exc
    if metadata.get("format") != FILE_FORMAT:
        raise ClassifierError(f"{path} is not a napari-xrdphase classifier file")
    if metadata.get("version") != str(FILE_VERSION):
        raise ClassifierError(
            f"{path} has classifier file version {metadata.get('version')}; "
            f"this napari-xrdphase reads version {FILE_VERSION}"
        )
    if metadata.get("sha256") != _tensor_checksum(tensors):
        raise ClassifierError(
            f"{path}: classifier weights do not match their checksum (the file is corrupt); "
            "train the classifier again and save it"
        )
    try:
        classes = json.loads(metadata["classes"])
        phase_order = json.loads(metadata.get("phase_order", "null"))  # older files: none
        if phase_order is not None and not (
            isinstance(phase_order, list) and all(isinstance(c, str) for c in phase_order)
        ):
            raise ValueError(f"phase_order is {phase_order!r}")
        summary_fields = json.loads(metadata["summary"])
        summary_fields["classes"] = tuple(summary_fields["classes"])
        summary_fields["notes"] = tuple(summary_fields["notes"])  # ignored_phases: a dict
        summary = FitSummary(**summary_fields)
        arrays = [tensors[name] for name in ("weight", "bias", "mean", "scale")]
        reference = tensors.get("reference")  # older files: no novelty
        scale_text = metadata.get("novelty_scale")
        novelty_scale = None if scale_text is None else float(scale_text)
        if reference is not None and not (
            novelty_scale is not None and np.isfinite(novelty_scale) and novelty_scale > 0
        ):
            raise ValueError(f"novelty_scale is {scale_text!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ClassifierError(f"{path}: classifier file is incomplete ({exc})") from exc
    if not all(np.all(np.isfinite(a)) for a in arrays) or not np.all(arrays[3] > 0):
        raise ClassifierError(f"{path}: classifier weights contain NaN, inf or zero scales")
    saved_config, current_config = metadata.get("encoder_config", ""), _config_json(encoder)
    if saved_config and current_config and saved_config != current_config:
        warnings.warn(
            f"{path} was trained on embeddings of an encoder with another configuration; "
            "its predictions are meaningless unless the encoders match",
            UserWarning,
            stacklevel=2,
        )
    try:
        return Classifier(
            encoder, classes, *arrays, summary=summary, phase_order=phase_order,
            reference=reference, novelty_scale=novelty_scale,
        )  # fmt: skip
    except ClassifierError as exc:
        raise ClassifierError(f"{path}: {exc}") from exc
