"""The ConvSC encoder of Sun et al. (2023) and the heads used by the self-supervised objectives.

Every module takes a ``seed`` and builds its weights inside ``torch.random.fork_rng``, so
constructing a model never changes the global random state and the same seed gives the same
weights. Weights follow the reference code: convolution and linear weights and batch-norm
scales drawn from N(0, 0.05); biases and LayerNorm keep PyTorch's defaults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.05
# ConvSC.infer runs this many curves at a time on CPU: every intermediate then stays in cache
# and below the size where each fresh allocation is page-faulted in again (2 threads of an EPYC:
# 68 µs per curve at 32, 79 at 64, 89 at 16)
FAST_SUB_BATCH = 32

__all__ = [
    "FAST_SUB_BATCH",
    "ChannelAttention",
    "ConvSC",
    "ExternalVariableHead",
    "InterRelationHead",
    "IntraRelationHead",
    "ProjectionHead",
    "SplitBatchNorm1d",
    "count_parameters",
    "seeded",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the CPU random state seeded by ``seed`` and restore it afterwards."""
    # devices=[] keeps CUDA RNGs untouched (and avoids initialising CUDA just to build a model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def count_parameters(module: nn.Module) -> int:
    """Return the number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _init_reference(module: nn.Module, std: float = INIT_STD) -> None:
    """Draw conv/linear weights and batch-norm scales from N(0, std), as the reference code does."""
    for sub in module.modules():
        is_weighted = isinstance(sub, (nn.Conv1d, nn.Linear))
        is_scaled_norm = isinstance(sub, nn.BatchNorm1d) and sub.weight is not None
        if is_weighted or is_scaled_norm:
            nn.init.normal_(sub.weight, 0.0, std)


class SplitBatchNorm1d(nn.BatchNorm1d):
    """Batch norm whose training statistics are computed separately on ``num_splits`` groups.

    MoCo's single-GPU substitute for shuffle-BN: groups are interleaved samples
    (``x[s::num_splits]``); running statistics are the average over groups, and evaluation uses
    them like a plain ``BatchNorm1d``. A batch that does not divide by ``num_splits`` is split
    into groups of unequal size (sizes differ by at most one); too small a batch uses fewer groups.
    """

    def __init__(self, num_features: int, num_splits: int = 1, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        if int(num_splits) < 1:
            raise ValueError(f"num_splits must be ≥ 1, got {num_splits}")
        self.num_splits = int(num_splits)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"

    def _groups_for(self, x: torch.Tensor) -> int:
        n = x.shape[0]
        # each group needs more than one value per channel for a batch variance
        per_group_min = 2 if x.dim() == 2 else 1
        return max(1, min(self.num_splits, n // per_group_min))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(x)
        groups = self._groups_for(x)
        if groups == 1:
            return super().forward(x)
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = 0.1 if self.momentum is None else self.momentum
        if self.momentum is None and self.num_batches_tracked is not None:
            momentum = 1.0 / float(self.num_batches_tracked)
        n, c = x.shape[0], x.shape[1]
        if n % groups == 0:
            return self._forward_even(x, groups, n, c, momentum)
        return self._forward_uneven(x, groups, momentum)

    def _forward_even(
        self, x: torch.Tensor, groups: int, n: int, c: int, momentum: float
    ) -> torch.Tensor:
        # (n, c, ...) -> (n / groups, groups * c, ...): row r holds samples r*groups ... r*groups + groups - 1,
        # so channel block s collects samples with index % groups == s
        rest = x.shape[2:]
        folded = x.reshape(n // groups, groups * c, *rest)
        if self.track_running_stats:
            mean = self.running_mean.repeat(groups)
            var = self.running_var.repeat(groups)
        else:
            mean = var = None
        weight = self.weight.repeat(groups) if self.weight is not None else None
        bias = self.bias.repeat(groups) if self.bias is not None else None
        out = F.batch_norm(folded, mean, var, weight, bias, True, momentum, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(mean.view(groups, c).mean(dim=0))
                self.running_var.copy_(var.view(groups, c).mean(dim=0))
        return out.reshape(x.shape)

    def _forward_uneven(self, x: torch.Tensor, groups: int, momentum: float) -> torch.Tensor:
        out = torch.empty_like(x)
        means, variances = [], []
        for s in range(groups):
            if self.track_running_stats:
                mean, var = self.running_mean.clone(), self.running_var.clone()
            else:
                mean = var = None
            out[s::groups] = F.batch_norm(
                x[s::groups], mean, var, self.weight, self.bias, True, momentum, self.eps
            )
            means.append(mean)
            variances.append(var)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(torch.stack(means).mean(dim=0))
                self.running_var.copy_(torch.stack(variances).mean(dim=0))
        return out


class ChannelAttention(nn.Module):
    """DANet channel-attention module: ``γ · softmax(rowmax(XXᵀ) − XXᵀ) X + X``, γ starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # energies are sums over all positions (hundreds); bf16/fp16 rounding of them would
        # visibly change the softmax, and this block is cheap, so it always runs in float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            x32 = x.float()
            energy = torch.bmm(x32, x32.transpose(1, 2))  # (B, C, C)
            energy = energy.amax(dim=-1, keepdim=True) - energy
            attention = torch.softmax(energy, dim=-1)
            out = self.gamma * torch.bmm(attention, x32) + x32
        return out.to(x.dtype)


class ConvSC(nn.Module):
    """ConvSC without feed-forward: 1D convolutions, spatial and channel attention, (B, 128) ≥ 0.

    Accepts (B, L) or (B, 1, L) curves of any length L ≥ 60 (an adaptive pool brings the
    convolution output to ``pool_length`` positions).
    """

    def __init__(
        self,
        conv_filters: int = 64,
        channels: int = 16,
        pool_length: int = 236,
        feature_dim: int = 128,
        num_heads: int = 2,
        bn_splits: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.hyperparameters = {
            "conv_filters": int(conv_filters),
            "channels": int(channels),
            "pool_length": int(pool_length),
            "feature_dim": int(feature_dim),
            "num_heads": int(num_heads),
            "bn_splits": int(bn_splits),
        }
        self.feature_dim = int(feature_dim)
        with seeded(seed):
            self.conv1 = nn.Conv1d(1, conv_filters, kernel_size=5, stride=2)
            self.bn1 = SplitBatchNorm1d(conv_filters, bn_splits)
            self.conv2 = nn.Conv1d(conv_filters, channels, kernel_size=5)
            self.bn2 = SplitBatchNorm1d(channels, bn_splits)
            self.pool = nn.AdaptiveAvgPool1d(pool_length)
            self.embedding = nn.Sequential(
                nn.Linear(pool_length, feature_dim), nn.LayerNorm(feature_dim)
            )
            # attention over the feature_dim positions, each a token of `channels` values
            self.spatial_attention = nn.MultiheadAttention(channels, num_heads, batch_first=True)
            self.channel_attention = ChannelAttention()
            self.fuse_norm = nn.LayerNorm(feature_dim)
            self.reduce_conv = nn.Conv1d(channels, 1, kernel_size=1)
            self.reduce_bn = SplitBatchNorm1d(1, bn_splits)
            _init_reference(self)
        # folded inference weights (see ``infer``); a plain attribute, never in the state dict
        self._inference_cache: _InferenceCache | None = None

    @property
    def minimum_length(self) -> int:
        """Shortest curve the convolutions accept."""
        return 60

    def _as_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` as (B, 1, L) after checking its shape and length."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        elif x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(
                f"ConvSC expects (B, L) or (B, 1, L) curves, got shape {tuple(x.shape)}"
            )
        if x.shape[-1] < self.minimum_length:
            raise ValueError(
                f"curves of {x.shape[-1]} points are too short for ConvSC (need ≥ {self.minimum_length})"
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._as_curves(x)
        # ReLU after max-pooling equals max-pooling after ReLU (ReLU is monotonic) on half the data
        h = F.relu(F.max_pool1d(_conv_bn(self.conv1, self.bn1, x), 2))
        h = F.relu(F.max_pool1d(_conv_bn(self.conv2, self.bn2, h), 2))
        h = self.embedding(self.pool(h))  # (B, C, D)
        tokens = h.transpose(1, 2)  # (B, D, C): D positions of C channels
        spatial, _ = self.spatial_attention(tokens, tokens, tokens, need_weights=False)
        fused = (h + spatial.transpose(1, 2)) + self.channel_attention(h)
        fused = self.fuse_norm(fused)
        return F.relu(_conv_bn(self.reduce_conv, self.reduce_bn, fused)).flatten(1)  # (B, D)

    # --- inference fast path -----------------------------------------------------------------
    def fast_inference_blocker(self, x: torch.Tensor) -> str | None:
        """Return why :meth:`infer` would run the eager ``forward`` on ``x``, or None if it would not."""
        if any(module.training for module in self.modules()):
            return "the model is in training mode"
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return f"the input is {x.dtype} on {x.device.type}, the fast path is float32 on CPU"
        for tensor in self._inference_state():
            if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
                return "the weights are not float32 on CPU"
        if _cpu_autocast_enabled():
            return "CPU autocast is enabled"
        if torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        ):
            return "autograd is recording (use torch.inference_mode() or torch.no_grad())"
        if any(bn.running_mean is None for bn in (self.bn1, self.bn2, self.reduce_bn)):
            return "a batch norm has no running statistics"
        mha = self.spatial_attention
        if (
            not mha._qkv_same_embed_dim
            or mha.in_proj_bias is None
            or mha.out_proj.bias is None
            or mha.bias_k is not None
            or mha.add_zero_attn
            or not mha.batch_first
        ):
            return "the spatial attention is not the standard ConvSC one"
        if x.shape[0] == 0:
            return "the batch is empty"
        return None

    def infer(self, x: torch.Tensor, sub_batch: int = FAST_SUB_BATCH) -> torch.Tensor:
        """Return ``forward(x)`` (to float rounding, < 1e-5 here) by a faster inference-only route.

        For eval-mode float32 CPU calls without autograd: the batch norms are folded into the
        convolutions, adaptive pooling and the embedding Linear into ONE matrix per input length
        (both are linear maps), the attention scale into the query projection, the fuse
        LayerNorm's affine into the final 1×1 convolution; attention runs as batched matrix
        products with the heads laid out so that no copies are needed; curves go through in
        sub-batches of ``sub_batch`` with buffers reused between them. The folded weights are
        cached and recomputed whenever a weight or running statistic changes. Any other call
        (training mode, autograd recording, GPU, another dtype, autocast) runs ``forward``.
        """
        curves = self._as_curves(x)
        if self.fast_inference_blocker(curves) is not None:
            return self(x)
        if int(sub_batch) < 1:
            raise ValueError(f"sub_batch must be ≥ 1, got {sub_batch}")
        with torch.no_grad():
            folded = self._folded_for_inference()
            length = curves.shape[-1]
            pooled = folded.pooled_linear(length)
            curves = curves.reshape(curves.shape[0], length)
            out = torch.empty(curves.shape[0], self.feature_dim, dtype=torch.float32)
            workspace = _Workspace()
            step = int(sub_batch)
            for start in range(0, curves.shape[0], step):
                stop = min(start + step, curves.shape[0])
                _fast_forward(folded, pooled, curves[start:stop], workspace, out[start:stop])
        return out

    def _inference_state(self) -> list[torch.Tensor]:
        return [*self.parameters(), *(b for b in self.buffers() if b.is_floating_point())]

    def _folded_for_inference(self) -> _FoldedConvSC:
        """Return the cached folded weights, rebuilt if any weight or statistic has changed."""
        state = self._inference_state()
        cache = self._inference_cache
        if cache is None or not cache.matches(state):
            # keyed on the values themselves (not on tensor versions): an in-place change through
            # ``.data``, which bumps no version counter, still invalidates the cache
            cache = _InferenceCache([t.detach().clone() for t in state], _FoldedConvSC(self))
            self._inference_cache = cache
        return cache.folded


def _folded_conv_bn(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight, bias) of the one convolution equal to ``bn(conv(x))`` with running statistics."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return conv.weight * scale.view(-1, 1, 1), bias


def _conv_bn(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Return ``bn(conv(x))``; with running statistics the batch norm is folded into the conv.

    Folding saves a full pass over the largest activation (B × 64 × L/2), which is
    memory-bound and took about a fifth of the CPU inference time.
    """
    if bn.training or bn.running_mean is None:
        return bn(conv(x))
    weight, bias = _folded_conv_bn(conv, bn)
    return F.conv1d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


# --- inference fast path (ConvSC.infer) -----------------------------------------------------------
_MAX_CACHED_LENGTHS = 8


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _adaptive_avg_pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Return the (n_out, n_in) float64 matrix of ``AdaptiveAvgPool1d(n_out)`` on n_in points."""
    i = torch.arange(n_out, dtype=torch.int64)
    start = (i * n_in) // n_out
    end = -((-(i + 1) * n_in) // n_out)  # ceil, as PyTorch's adaptive pooling bins
    columns = torch.arange(n_in, dtype=torch.int64)
    inside = (columns >= start[:, None]) & (columns < end[:, None])
    return inside.to(torch.float64) / (end - start).to(torch.float64)[:, None]


class _Workspace:
    """Named float32 CPU buffers reused across the sub-batches of one ``infer`` call.

    Large fresh allocations are returned to the OS when freed and page-faulted in again on the
    next use, which cost more than the arithmetic on the attention scores.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], fill: float | None = None) -> torch.Tensor:
        size = 1
        for n in shape:
            size *= n
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=torch.float32)
            if fill is not None:
                buffer.fill_(fill)
            self._buffers[name] = buffer
        return buffer[:size].view(shape)


class _FoldedConvSC:
    """The eval-mode ConvSC weights rearranged for ``_fast_forward`` (float32, CPU)."""

    def __init__(self, model: ConvSC) -> None:
        with torch.no_grad():
            weight1, bias1 = _folded_conv_bn(model.conv1, model.bn1)
            self.kernel1 = int(model.conv1.kernel_size[0])
            self.stride1 = int(model.conv1.stride[0])
            self.filters = int(weight1.shape[0])
            # rows: the kernel taps, then the bias (the im2col matrix has a column of ones)
            self.conv1 = torch.cat([weight1[:, 0, :].t(), bias1[None]]).contiguous()
            weight2, bias2 = _folded_conv_bn(model.conv2, model.bn2)
            self.channels = int(weight2.shape[0])
            self.conv2_taps = [weight2[:, :, k].t().contiguous() for k in range(weight2.shape[2])]
            self.bias2 = bias2[:, None].contiguous()
            self.pool_length = int(
                model.pool.output_size[0]
                if isinstance(model.pool.output_size, tuple)
                else model.pool.output_size
            )
            self.linear_weight = model.embedding[0].weight.detach().to(torch.float64)
            self.linear_bias = model.embedding[0].bias.detach().clone()
            norm = model.embedding[1]
            self.norm_weight = norm.weight.detach().clone()
            self.norm_bias = norm.bias.detach().clone()
            self.norm_eps = float(norm.eps)
            mha = model.spatial_attention
            heads, width = int(mha.num_heads), int(mha.head_dim)
            self.heads, self.head_dim = heads, width
            in_weight = mha.in_proj_weight.detach().clone()
            in_bias = mha.in_proj_bias.detach().clone()
            in_weight[: self.channels] *= width**-0.5  # the attention scale, on the queries
            in_bias[: self.channels] *= width**-0.5
            # rows reordered (q|k|v, head, dim) -> (head, q|k|v, dim): the projection output
            # viewed as (B * heads, 3, head_dim, D) gives every head's q, k, v without copies
            order = (
                torch.arange(3 * self.channels).view(3, heads, width).transpose(0, 1).reshape(-1)
            )
            self.in_weight = in_weight[order].contiguous()
            self.in_bias = in_bias[order][:, None].contiguous()
            self.out_weight = mha.out_proj.weight.detach().clone()
            self.out_bias = mha.out_proj.bias.detach()[:, None].clone()
            self.gamma = float(model.channel_attention.gamma)
            fuse = model.fuse_norm
            self.fuse_eps = float(fuse.eps)
            weight_r, bias_r = _folded_conv_bn(model.reduce_conv, model.reduce_bn)
            reduce = weight_r[0, :, 0]
            # relu(w · LN(f) + b) = relu(g ⊙ (w · n) + (β Σw + b)) with n the plain normalised f
            self.reduce_weight = reduce.contiguous()
            self.reduce_scale = fuse.weight.detach().clone()
            self.reduce_shift = (fuse.bias * reduce.sum() + bias_r).contiguous()
        self._pooled: dict[int, tuple[torch.Tensor, int, int]] = {}

    def pooled_linear(self, length: int) -> tuple[torch.Tensor, int, int]:
        """Return (Pᵀ Wᵀ as (P2, D) matrix, P1, P2) for curves of ``length`` points."""
        entry = self._pooled.get(length)
        if entry is None:
            conv1_length = (length - self.kernel1) // self.stride1 + 1
            pooled1 = conv1_length // 2
            pooled2 = (pooled1 - len(self.conv2_taps) + 1) // 2
            pool = _adaptive_avg_pool_matrix(pooled2, self.pool_length)
            matrix = (self.linear_weight @ pool).t().to(torch.float32).contiguous()
            if len(self._pooled) >= _MAX_CACHED_LENGTHS:
                self._pooled.pop(next(iter(self._pooled)))
            entry = (matrix, pooled1, pooled2)
            self._pooled[length] = entry
        return entry


class _InferenceCache:
    def __init__(self, snapshot: list[torch.Tensor], folded: _FoldedConvSC) -> None:
        self.snapshot, self.folded = snapshot, folded

    def matches(self, state: list[torch.Tensor]) -> bool:
        return len(state) == len(self.snapshot) and all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
            for a, b in zip(state, self.snapshot, strict=True)
        )


def _fast_forward(
    w: _FoldedConvSC,
    pooled: tuple[torch.Tensor, int, int],
    x: torch.Tensor,
    ws: _Workspace,
    out: torch.Tensor,
) -> None:
    """Write the ConvSC features of the (B, L) curves ``x`` into ``out`` (B, D)."""
    matrix, p1, p2 = pooled
    b, c1, c = x.shape[0], w.filters, w.channels
    k1, taps = w.kernel1, w.conv2_taps
    l2 = p1 - len(taps) + 1
    # conv1 (+ bn + bias) as one matrix product on the im2col windows, channels last
    windows = ws.get("windows", (b, 2 * p1, k1 + 1), fill=1.0)
    windows[..., :k1].copy_(x.unfold(1, k1, w.stride1)[:, : 2 * p1])
    y1 = torch.mm(windows.view(-1, k1 + 1), w.conv1, out=ws.get("conv1", (b * 2 * p1, c1)))
    y1 = y1.view(b * p1, 2 * c1)  # the two positions of each max-pool window side by side
    h1 = torch.maximum(y1[:, :c1], y1[:, c1:], out=ws.get("pool1", (b * p1, c1)))
    h1 = h1.clamp_min_(0).view(b, p1, c1)
    # conv2: one batched product per tap on shifted (strided, uncopied) views, channels last
    y2 = torch.bmm(h1[:, :l2], taps[0].expand(b, c1, c), out=ws.get("conv2", (b, l2, c)))
    for k in range(1, len(taps)):
        y2.baddbmm_(h1[:, k : k + l2], taps[k].expand(b, c1, c))
    y2 = y2[:, : 2 * p2].reshape(b, p2, 2 * c)
    h2 = ws.get("pool2", (b, c, p2))  # channels first from here on
    torch.maximum(y2[..., :c], y2[..., c:], out=h2.transpose(1, 2))
    h2.add_(w.bias2).clamp_min_(0)
    # adaptive pool + Linear as one (P2, D) matrix, then the LayerNorm
    e = torch.addmm(w.linear_bias, h2.view(b * c, p2), matrix)
    d = e.shape[-1]
    h = F.layer_norm(e, (d,), w.norm_weight, w.norm_bias, w.norm_eps).view(b, c, d)
    # spatial attention over the D positions, heads as batch entries
    heads, width = w.heads, w.head_dim
    qkv = torch.baddbmm(w.in_bias.expand(b, 3 * c, d), w.in_weight.expand(b, 3 * c, c), h)
    qkv = qkv.view(b * heads, 3, width, d)
    scores = ws.get("scores", (b * heads, d, d))
    torch.bmm(qkv[:, 0].transpose(1, 2), qkv[:, 1], out=scores)
    attention = torch.softmax(scores, -1, out=ws.get("attention", (b * heads, d, d)))
    spatial = torch.bmm(qkv[:, 2], attention.transpose(1, 2)).view(b, c, d)
    # channel attention: softmax(rowmax(E) − E) = softmax(−E) (softmax ignores a row shift);
    # h + spatial + (γ A h + h) = out_proj(spatial) + (γ A + 2 I) h
    energy = torch.baddbmm(ws.get("energy", (b, c, c)), h, h.transpose(1, 2), beta=0, alpha=-1)
    mix = torch.softmax(energy, -1).mul_(w.gamma)
    mix.diagonal(dim1=1, dim2=2).add_(2.0)
    fused = torch.baddbmm(w.out_bias.expand(b, c, d), w.out_weight.expand(b, c, c), spatial)
    fused.baddbmm_(mix, h)
    normed = F.layer_norm(fused, (d,), eps=w.fuse_eps)
    torch.matmul(w.reduce_weight, normed, out=out)
    out.mul_(w.reduce_scale).add_(w.reduce_shift).clamp_min_(0)


class ProjectionHead(nn.Module):
    """Linear → ReLU → Linear, L2-normalised: the space of the contrastive and relational losses."""

    def __init__(self, feature_dim: int = 128, projection_dim: int = 128, seed: int = 0) -> None:
        super().__init__()
        with seeded(seed):
            self.net = nn.Sequential(
                nn.Linear(feature_dim, feature_dim),
                nn.ReLU(),
                nn.Linear(feature_dim, projection_dim),
            )
            _init_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


class IntraRelationHead(nn.Module):
    """Classifies the distance between two pieces of one curve into ``n_classes`` (logits)."""

    def __init__(
        self,
        feature_dim: int = 128,
        n_classes: int = 5,
        hidden_dim: int = 64,
        bn_splits: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        with seeded(seed):
            self.net = nn.Sequential(
                nn.Linear(2 * feature_dim, hidden_dim),
                SplitBatchNorm1d(hidden_dim, bn_splits),
                nn.LeakyReLU(),
                nn.Linear(hidden_dim, n_classes),
            )
            _init_reference(self)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair)


class InterRelationHead(IntraRelationHead):
    """Scores whether two concatenated features come from the same curve (one logit)."""

    def __init__(
        self, feature_dim: int = 128, hidden_dim: int = 64, bn_splits: int = 1, seed: int = 0
    ) -> None:
        super().__init__(feature_dim, 1, hidden_dim, bn_splits, seed)


class ExternalVariableHead(nn.Module):
    """Classifies a feature into one of ``n_bins`` bins of the external variable (logits)."""

    def __init__(self, feature_dim: int = 128, n_bins: int = 5, seed: int = 0) -> None:
        super().__init__()
        with seeded(seed):
            self.net = nn.Sequential(nn.LeakyReLU(), nn.Linear(feature_dim, n_bins))
            _init_reference(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
