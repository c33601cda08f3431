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

__all__ = [
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

    @property
    def minimum_length(self) -> int:
        """Shortest curve the convolutions accept."""
        return 60

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        # ReLU after max-pooling equals max-pooling after ReLU (ReLU is monotonic) on half the data
        h = F.relu(F.max_pool1d(_conv_bn(self.conv1, self.bn1, x), 2))
        h = F.relu(F.max_pool1d(_conv_bn(self.conv2, self.bn2, h), 2))
        h = self.embedding(self.pool(h))  # (B, C, D)
        tokens = h.transpose(1, 2)  # (B, D, C): D positions of C channels
        spatial, _ = self.spatial_attention(tokens, tokens, tokens, need_weights=False)
        fused = (h + spatial.transpose(1, 2)) + self.channel_attention(h)
        fused = self.fuse_norm(fused)
        return F.relu(_conv_bn(self.reduce_conv, self.reduce_bn, fused)).flatten(1)  # (B, D)


def _conv_bn(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Return ``bn(conv(x))``; with running statistics the batch norm is folded into the conv.

    Folding saves a full pass over the largest activation (B × 64 × L/2), which is
    memory-bound and took about a fifth of the CPU inference time.
    """
    if bn.training or bn.running_mean is None:
        return bn(conv(x))
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    bias = shift if conv.bias is None else conv.bias * scale + shift
    weight = conv.weight * scale.view(-1, 1, 1)
    return F.conv1d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


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
