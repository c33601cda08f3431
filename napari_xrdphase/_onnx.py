"""ONNX Runtime forward pass of a ConvSC on CPU: the folded inference graph, exported once per encoder.

``ConvSC.infer`` folds the batch norms, the adaptive pool and the embedding Linear into plain
matrices (``models._FoldedConvSC``); the same folded graph, written with standard operators,
exports to ONNX (the eager ``forward`` does not: ONNX has no adaptive pooling to sizes that do
not divide the input) and runs in ONNX Runtime's CPU kernels. ``Encoder.embed`` uses it when
``onnxruntime`` is importable, unless ``XRDPHASE_ONNX=0`` or ``Encoder.onnx_runtime = False``.
"""

from __future__ import annotations

import io
import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: environment variable: "0" (or "off", "false", "no") turns the ONNX Runtime path off
ENV_SWITCH = "XRDPHASE_ONNX"
# curves per ONNX Runtime call: larger batches amortise the call, smaller ones stay in cache
ORT_SUB_BATCH = 64


def onnx_runtime_enabled() -> bool:
    """Return whether the ONNX Runtime path may be used: importable and not turned off."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class FoldedGraph(nn.Module):
    """The folded ConvSC of ``models._fast_forward`` for curves of one length, in exportable operators."""

    def __init__(self, folded: Any, length: int) -> None:
        super().__init__()
        matrix, _, _ = folded.pooled_linear(length)
        k1, stride = folded.kernel1, folded.stride1
        # conv1 then max-pooling by 2 is the max of conv1 at even and at odd output positions:
        # ONE convolution of twice the filters (each kernel, and it shifted by the stride) at
        # twice the stride, then an elementwise Max. ONNX Runtime's MaxPool over the 64-channel
        # conv1 output cost as much as the convolution after it.
        weight = folded.conv1[:k1].t()  # (filters, k1)
        pad = torch.zeros(weight.shape[0], stride)
        self.filters, self.stride = int(weight.shape[0]), 2 * stride
        self.register_buffer(
            "w1",
            torch.cat([torch.cat([weight, pad], 1), torch.cat([pad, weight], 1)]).unsqueeze(1),
        )
        self.register_buffer("b1", folded.conv1[k1].repeat(2).contiguous())
        self.register_buffer(
            "w2", torch.stack([t.t() for t in folded.conv2_taps], dim=2).contiguous()
        )
        self.register_buffer("b2", folded.bias2[:, 0].contiguous())
        self.register_buffer("pool_linear", matrix)
        self.dim = int(matrix.shape[1])
        self.register_buffer("linear_bias", folded.linear_bias)
        self.register_buffer("norm_weight", folded.norm_weight)
        self.register_buffer("norm_bias", folded.norm_bias)
        self.norm_eps = folded.norm_eps
        self.heads, self.width, self.channels = folded.heads, folded.head_dim, folded.channels
        self.register_buffer("in_weight", folded.in_weight)
        self.register_buffer("in_bias", folded.in_bias)
        self.register_buffer("out_weight", folded.out_weight)
        self.register_buffer("out_bias", folded.out_bias)
        eye = torch.eye(folded.channels)
        self.register_buffer("two_eye", 2.0 * eye)
        self.gamma = folded.gamma
        self.fuse_eps = folded.fuse_eps
        self.register_buffer("reduce_weight", folded.reduce_weight[None, None, :])
        self.register_buffer("reduce_scale", folded.reduce_scale)
        self.register_buffer("reduce_shift", folded.reduce_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pairs = F.conv1d(x.unsqueeze(1), self.w1, self.b1, stride=self.stride)
        h = F.relu(pairs.reshape(-1, 2, self.filters, pairs.shape[-1]).amax(1))
        h = F.relu(F.max_pool1d(F.conv1d(h, self.w2, self.b2), 2))  # (B, C, P2)
        e = torch.matmul(h, self.pool_linear) + self.linear_bias  # (B, C, D)
        d = self.dim
        h = F.layer_norm(e, (d,), self.norm_weight, self.norm_bias, self.norm_eps)
        qkv = (torch.matmul(self.in_weight, h) + self.in_bias).reshape(
            -1, self.heads, 3, self.width, d
        )
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, heads, width, D)
        attention = torch.softmax(torch.matmul(q.transpose(2, 3), k), -1)  # (B, heads, D, D)
        spatial = torch.matmul(v, attention.transpose(2, 3)).reshape(-1, self.channels, d)
        mix = torch.softmax(-torch.matmul(h, h.transpose(1, 2)), -1) * self.gamma + self.two_eye
        fused = torch.matmul(self.out_weight, spatial) + self.out_bias + torch.matmul(mix, h)
        normed = F.layer_norm(fused, (d,), eps=self.fuse_eps)
        out = torch.matmul(self.reduce_weight, normed)[:, 0]  # (B, D)
        return F.relu(out * self.reduce_scale + self.reduce_shift)


def _export(folded: Any, length: int) -> bytes:
    """Return the ONNX model (bytes) of ``FoldedGraph(folded, length)`` with a free batch size."""
    graph = FoldedGraph(folded, length).eval()
    example = torch.zeros(2, length)
    buffer = io.BytesIO()
    # the TorchScript exporter announces its own deprecation; the graph it writes is plain
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, (example,), buffer, input_names=["curves"], output_names=["features"],
            dynamic_axes={"curves": {0: "batch"}, "features": {0: "batch"}}, opset_version=17,
            dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


class OrtForward:
    """An ONNX Runtime session of one encoder's folded graph for one curve length.

    ``threads`` blocks of curves run at once, each in one ONNX Runtime thread: the graph's
    operators are too small for ONNX Runtime's own intra-operator threads to pay (on 2 cores,
    2 such threads were no faster than 1), while blocks of curves are independent. Without an
    OpenMP barrier, a core taken by another job slows the pass instead of stalling it.
    """

    def __init__(self, folded: Any, length: int, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.folded, self.length, self.threads = folded, int(length), max(int(threads), 1)
        self.session = ort.InferenceSession(
            _export(folded, length), options, providers=["CPUExecutionProvider"]
        )
        self._pool = None
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="xrdphase-ort")
            weakref.finalize(self, self._pool.shutdown, wait=False)

    def __call__(self, curves: np.ndarray, sub_batch: int = ORT_SUB_BATCH) -> np.ndarray:
        """Return (B, D) float32 features of (B, length) float32 curves."""
        curves = np.ascontiguousarray(curves, dtype=np.float32)
        n = curves.shape[0]
        if self._pool is None or n < 2 * sub_batch:
            return self._run(curves, sub_batch)
        blocks = np.array_split(curves, self.threads)
        return np.concatenate(list(self._pool.map(lambda b: self._run(b, sub_batch), blocks)))

    def _run(self, curves: np.ndarray, sub_batch: int) -> np.ndarray:
        parts = [
            self.session.run(None, {"curves": curves[i : i + sub_batch]})[0]
            for i in range(0, curves.shape[0], sub_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
