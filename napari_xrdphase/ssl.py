"""Self-supervised objectives of Sun et al., Sci. Rep. 13, 9370 (2023), on plain tensors.

Four objectives train the ConvSC encoder without labels:

- inter-sample relational reasoning: are two augmented curves views of the same curve?
- intra-sample relational reasoning: how far apart were two pieces cut from one curve?
- external-variable reasoning (the paper's new head): which fifth of its series, in acquisition
  order, does a curve come from?
- MoCo v2: contrast a query view against a momentum-encoded key view and a queue of past keys.

Every objective is a function or module that takes tensors and modules, so each can be tested
on its own; :class:`SelfSupervisedModel` combines them as a method of :data:`METHODS` prescribes.
Augmentation happens outside this module: the model receives already-augmented views.

Fixes relative to the reference code (github.com/sunyue-xfel/Self-Supv-Relational-Reasoning-
Learning-and-Contrastive-Learning-Methods_Spectra-Classification):

- the intra and external heads return logits; the reference put a ``Softmax`` in front of
  ``CrossEntropyLoss``, which applies log-softmax again and flattens the gradients;
- the MoCo queue is written with wrapping (modular) indices, so any batch size and any dataset
  size work; the reference dropped MoCo's ``queue % batch == 0`` assertion and only worked
  because its batches tiled the queue exactly.

As in the reference: the relational and external heads see the L2-normalised projection (not
the 128-d backbone output), the key encoder is updated before the keys are computed, both key
batches are enqueued (2B keys per step), and the inter-sample shift counter runs 1, 2, ..., B−1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .augment import PHYSICS_PIPELINE

RELATIONAL_OBJECTIVES = ("inter", "intra", "external")
INITS = ("reference", "positive_final_bn")
BATCHINGS = ("random", "series")


# --- methods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodSpec:
    """Which objectives a pretraining method combines, and how MoCo is weighted.

    ``moco_weight`` is ``None`` when the weight is the ``c`` given to ``pretrain`` (SpecRRMoco),
    ``0.0`` when MoCo is not trained, and ``math.inf`` when MoCo is trained alone.
    ``head_hidden`` is the hidden width of the inter- and intra-sample relation heads.

    The remaining fields are defaults of ``pretrain`` for methods beyond the paper (``None``:
    the paper's setting): ``augmentations`` the pipeline (steps as for ``make_augmentation``),
    ``lr`` the base learning rate, ``temperature`` MoCo's temperature, ``init`` how the
    backbone's weights start (``"reference"``: N(0, 0.05) as the reference code;
    ``"positive_final_bn"``: the same, but the last batch-norm scale set to +1, so the final ReLU
    starts with half of its outputs alive and no gradient-free dead embedding), ``batches`` how
    an epoch's curves are cut into batches (``"random"``: any curves together, the paper;
    ``"series"``: mostly curves of one series, see ``training.series_grouped_order``),
    ``spread_weight`` the weight of :func:`spread_loss` on the relational features (0: not
    used, the paper), which keeps them from collapsing onto a few directions.
    """

    objectives: tuple[str, ...]
    moco_weight: float | None
    description: str
    head_hidden: int = 64
    augmentations: tuple | None = None
    lr: float | None = None
    temperature: float | None = None
    init: str = "reference"
    batches: str = "random"
    spread_weight: float = 0.0

    def __post_init__(self) -> None:
        unknown = [name for name in self.objectives if name not in RELATIONAL_OBJECTIVES]
        if unknown:
            raise ValueError(
                f"unknown objectives {unknown}; use some of {', '.join(RELATIONAL_OBJECTIVES)}"
            )
        if self.moco_weight is not None and not self.moco_weight >= 0:
            raise ValueError("moco_weight must be None, a number >= 0 or math.inf")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; use one of {', '.join(INITS)}")
        if not self.spread_weight >= 0:
            raise ValueError("spread_weight must be >= 0")
        if self.batches not in BATCHINGS:
            raise ValueError(f"unknown batches {self.batches!r}; use one of {', '.join(BATCHINGS)}")
        if not self.objectives and self.moco_weight is not None and self.moco_weight != math.inf:
            raise ValueError(
                "a method without relational objectives trains MoCo alone: use moco_weight=math.inf"
            )

    def effective_moco_weight(self, c: float) -> float:
        """Return the weight of the MoCo loss when ``pretrain`` was given ``c``."""
        return float(c) if self.moco_weight is None else float(self.moco_weight)


# The four methods of the paper. New variants can be added by name, e.g.
# METHODS["external_only"] = MethodSpec(("external",), 0.0, "...").
METHODS: dict[str, MethodSpec] = {
    "specrrmoco": MethodSpec(
        ("inter", "intra", "external"),
        None,
        "SpecRRMoco: inter + intra + external-variable relational reasoning + c·MoCo v2",
    ),
    "specrr": MethodSpec(
        ("inter", "intra", "external"),
        0.0,
        "SpecRR: inter + intra + external-variable relational reasoning (c = 0)",
    ),
    "specmoco": MethodSpec((), math.inf, "SpecMoco: MoCo v2 alone (c = ∞)"),
    # SelfTime's own relation heads have 256 hidden units
    "specselftime": MethodSpec(
        ("inter", "intra"),
        0.0,
        "SpecSelfTime: inter + intra relational reasoning (SelfTime)",
        head_hidden=256,
    ),
    # beyond the paper (see docs and benchmarks/ablation.py for the ablation)
    "xrdphase": MethodSpec(
        ("inter", "intra", "external"),
        0.0,
        "xrdphase (default): SpecRR's three relational objectives with physics augmentations "
        "(uniform d-spacing strain, axis offset, extra calibrant/medium lines, texture, mild "
        "magnitude warp, Poisson noise at a random exposure) instead of the paper's angle warp, "
        "which distorts the relative peak positions that identify a phase; batches filled "
        "mostly from one series, so that the inter-sample negatives are other pressures of the "
        "same sample rather than other series (trivially told apart by their geometry); a "
        "variance-covariance term (spread_weight 1) that keeps the features from collapsing "
        "onto a few directions, which the relational tasks alone allow. No "
        "MoCo: with these augmentations c = 1 collapsed on 2 of 7 runs and c = 0.01 or 0.1 did "
        "no better (docs/benchmarks.md)",
        augmentations=PHYSICS_PIPELINE,
        batches="series",
        spread_weight=1.0,
    ),
}


def get_method(name: str) -> MethodSpec:
    """Return the registered method ``name``; ValueError listing the known ones otherwise."""
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[key]


# --- inter-sample relational reasoning -------------------------------------------------------
def inter_sample_pairs(features: Tensor) -> tuple[Tensor, Tensor]:
    """Return (K(K−1)·B, 2D) relation pairs of (K, B, D) features and their 0/1 targets.

    For every pair of augmentation blocks i < j, the positives are ``cat(f_i, f_j)`` (two views of
    the same curves) and the negatives ``cat(f_i, roll(f_j, s))``; the shift s runs through
    1, 2, ..., B−1, 1, ... from one block pair to the next, so no negative pairs a curve with
    itself and different pairs mismatch different partners.
    """
    if features.ndim != 3:
        raise ValueError(f"features must be (K, B, D), got shape {tuple(features.shape)}")
    k, b, _ = features.shape
    if k < 2:
        raise ValueError(f"inter-sample reasoning needs at least 2 augmented copies, got {k}")
    if b < 2:
        raise ValueError(f"inter-sample reasoning needs at least 2 curves per batch, got {b}")
    pairs, targets = [], []
    shift = 1
    for i in range(k):
        for j in range(i + 1, k):
            pairs.append(torch.cat([features[i], features[j]], dim=1))
            pairs.append(torch.cat([features[i], torch.roll(features[j], shift, dims=0)], dim=1))
            targets.append(features.new_ones(b))
            targets.append(features.new_zeros(b))
            shift = shift % (b - 1) + 1
    return torch.cat(pairs), torch.cat(targets).float()


def inter_sample_loss(head: nn.Module, features: Tensor) -> Tensor:
    """Return the BCE-with-logits loss of ``head`` on the inter-sample pairs of (K, B, D) features."""
    pairs, targets = inter_sample_pairs(features)
    logits = head(pairs).reshape(-1)
    return F.binary_cross_entropy_with_logits(logits.float(), targets)


# --- spread of the features ------------------------------------------------------------------
def spread_loss(features: Tensor) -> Tensor:
    """Return VICReg's variance and covariance terms on (K, B, D) unit features, per view block.

    The features are scaled by √D, so that unit vectors spread evenly over the sphere have a
    standard deviation of 1 in every dimension; a dimension whose standard deviation over the
    B curves falls below 1 costs ``1 − std`` (averaged over dimensions), and correlated
    dimensions cost the sum of squared off-diagonal covariances / D (Bardes et al., ICLR 2022).
    Each block of K is one augmented view of the batch, so views of one curve never count as
    spread.
    """
    if features.ndim != 3 or features.shape[1] < 2:
        raise ValueError(f"features must be (K, B ≥ 2, D), got shape {tuple(features.shape)}")
    k, b, d = features.shape
    z = features.float() * math.sqrt(d)
    centred = z - z.mean(dim=1, keepdim=True)
    variance = centred.pow(2).sum(dim=1) / (b - 1)  # (K, D)
    variance_term = F.relu(1.0 - torch.sqrt(variance + 1e-4)).mean()
    covariance = centred.transpose(1, 2) @ centred / (b - 1)  # (K, D, D)
    off_diagonal = covariance.pow(2).sum() - torch.diagonal(covariance, dim1=1, dim2=2).pow(2).sum()
    return variance_term + off_diagonal / (k * d)


# --- intra-sample relational reasoning -------------------------------------------------------
def piece_length(input_length: int, piece_size: float) -> int:
    """Return the number of points of an intra-sample piece (``int(piece_size · L)``)."""
    if not 0 < piece_size < 1:
        raise ValueError(
            f"piece_size must be between 0 and 1 (a fraction of the curve), got {piece_size}"
        )
    width = int(piece_size * input_length)
    if width < 1 or width >= input_length:
        raise ValueError(
            f"piece_size {piece_size} gives pieces of {width} of {input_length} points"
        )
    return width


def piece_distance_labels(
    start1: Tensor, start2: Tensor, input_length: int, n_classes: int
) -> Tensor:
    """Return ``min(floor(|s1 − s2| / (L / (2C))), C − 1)``: the distance class of two pieces."""
    distance = (start1.long() - start2.long()).abs()
    # integer form of floor(d / (L / 2C)), exact for every L
    return torch.clamp((distance * 2 * n_classes) // input_length, max=n_classes - 1)


def cut_piece_pairs(
    curves: Tensor, piece_size: float, n_classes: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Return two pieces of every curve of (N, L) ``curves`` at random starts, and their labels.

    Each piece has ``int(piece_size · L)`` points and starts uniformly in [0, L − W); the label is
    :func:`piece_distance_labels` of the two starts. Random numbers come from ``generator``
    (a CPU generator; the indices move to the curves' device).
    """
    n, length = curves.shape
    width = piece_length(length, piece_size)
    starts = torch.randint(0, length - width, (2, n), generator=generator)
    labels = piece_distance_labels(starts[0], starts[1], length, n_classes)
    offsets = torch.arange(width)
    index = (starts[:, :, None] + offsets).to(curves.device)
    piece1 = torch.gather(curves, 1, index[0])
    piece2 = torch.gather(curves, 1, index[1])
    return piece1, piece2, labels.to(curves.device)


def intra_sample_loss(
    encode: Callable[[Tensor], Tensor],
    head: nn.Module,
    curves: Tensor,
    piece_size: float = 0.2,
    n_classes: int = 5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return the cross-entropy of ``head`` classifying the distance of two pieces of each curve.

    ``encode`` maps pieces (N, W) to features (N, D) (backbone then projection); the head sees
    ``cat(f_piece1, f_piece2)``. ``piece_size`` 0.2 is SelfTime's; the reference code's value is
    not published. With C classes the top class needs ``piece_size ≤ 0.6``.
    """
    piece1, piece2, labels = cut_piece_pairs(curves, piece_size, n_classes, generator)
    features = torch.cat([encode(piece1), encode(piece2)], dim=1)
    logits = head(features)
    return F.cross_entropy(logits.float(), labels)


# --- external-variable reasoning -------------------------------------------------------------
def series_bin_labels(n_curves: int, n_bins: int = 5) -> Tensor:
    """Return the bin (0..n_bins−1) of each curve when a series is cut into ``n_bins`` equal parts in acquisition order."""
    if n_curves < 1 or n_bins < 1:
        raise ValueError("n_curves and n_bins must be positive")
    return (torch.arange(n_curves) * n_bins) // n_curves


def external_variable_loss(head: nn.Module, features: Tensor, bin_labels: Tensor) -> Tensor:
    """Return the cross-entropy of ``head`` predicting each curve's bin, over every augmented copy.

    ``features`` is (K, B, D) (or (B, D)); ``bin_labels`` (B,) is repeated for each copy.
    """
    if features.ndim == 2:
        features = features[None]
    k, b, d = features.shape
    logits = head(features.reshape(k * b, d))
    return F.cross_entropy(logits.float(), bin_labels.long().repeat(k))


# --- MoCo v2 ---------------------------------------------------------------------------------
class MomentumContrast(nn.Module):
    """MoCo v2: a momentum key encoder and a queue of keys for one query encoder.

    The query encoder is passed to each call rather than held, so its parameters are
    registered (and optimised) only once, by whoever owns it. The key encoder is a copy that
    follows the query encoder by ``θ_k ← m·θ_k + (1 − m)·θ_q``; the queue holds the last
    ``queue_size`` keys as rows. Shuffle-BN is simulated on one device by shuffling the key batch
    before the key encoder, whose batch norms should be split (ConvSC's ``bn_splits``).
    """

    def __init__(
        self,
        query_encoder: nn.Module,
        queue_size: int,
        dim: int = 128,
        momentum: float = 0.99,
        temperature: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"the MoCo queue needs at least 1 key, got queue_size={queue_size}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.key_encoder = copy.deepcopy(query_encoder)
        for param in self.key_encoder.parameters():
            param.requires_grad_(False)
        queue = F.normalize(torch.randn(queue_size, dim, generator=generator), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # multi-process training sets this to gather every process's keys (in rank order), so
        # each process enqueues the same keys and the queues stay identical
        self.gather_keys: Callable[[Tensor], Tensor] | None = None

    @property
    def queue_size(self) -> int:
        """Number of keys the queue holds."""
        return int(self.queue.shape[0])

    @torch.no_grad()
    def momentum_update(self, query_encoder: nn.Module) -> None:
        """Move the key encoder's parameters towards the query encoder's by the momentum rule."""
        for param_k, param_q in zip(
            self.key_encoder.parameters(), query_encoder.parameters(), strict=True
        ):
            param_k.mul_(self.momentum).add_(param_q.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def encode_keys(self, views: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return L2-normalised keys of ``views``, encoded in a shuffled order (shuffle-BN)."""
        order = torch.randperm(views.shape[0], generator=generator).to(views.device)
        keys = self.key_encoder(views[order])
        restored = torch.empty_like(keys)
        restored[order] = keys
        return F.normalize(restored.float(), dim=1)

    def contrastive_loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """Return InfoNCE of (B, D) queries against their keys (positives) and the queue (negatives)."""
        queries = F.normalize(queries.float(), dim=1)
        positives = (queries * keys).sum(dim=1, keepdim=True)
        # a copy: the queue is overwritten in place before the backward pass
        negatives = queries @ self.queue.clone().t()
        logits = torch.cat([positives, negatives], dim=1) / self.temperature
        targets = torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device)
        return F.cross_entropy(logits, targets)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` into the queue at the pointer, wrapping around; advance the pointer."""
        n = keys.shape[0]
        size = self.queue_size
        ptr = int(self.queue_ptr)
        first = max(0, n - size)  # with more keys than slots only the last `size` survive
        positions = (ptr + torch.arange(first, n, device=self.queue.device)) % size
        self.queue[positions] = keys[first:].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def forward(
        self,
        query_encoder: nn.Module,
        view1: Tensor,
        view2: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Return the symmetric MoCo loss L(v1→v2) + L(v2→v1); update the key encoder, then enqueue both key batches."""
        self.momentum_update(query_encoder)
        query1, query2 = query_encoder(view1), query_encoder(view2)
        key1 = self.encode_keys(view1, generator)
        key2 = self.encode_keys(view2, generator)
        loss = self.contrastive_loss(query1, key2) + self.contrastive_loss(query2, key1)
        keys = torch.cat([key1, key2])
        if self.gather_keys is not None:
            keys = self.gather_keys(keys)
        self.enqueue(keys)
        return loss


# --- not forgetting a starting encoder ------------------------------------------------------
def anchor_loss(features: Tensor, reference: Tensor) -> Tensor:
    """Return ‖f − f₀‖² / ‖f₀‖², both averaged over the batch: how far features moved, relatively.

    ``reference`` are a frozen encoder's features of the same (augmented) curves. Scale-free, so
    one weight suits any encoder; 0 while the fine-tuned backbone still equals the frozen one.
    """
    features, reference = features.float(), reference.float()
    moved = (features - reference).pow(2).sum(dim=1).mean()
    return moved / reference.pow(2).sum(dim=1).mean().clamp_min(1e-12)


# --- the combined model ----------------------------------------------------------------------
class SelfSupervisedModel(nn.Module):
    """A backbone, its projection head and the heads and MoCo branch a method needs.

    ``losses`` returns each objective's loss and their combination
    ``L = L_inter + L_intra + L_external + w·L_moco`` (``L = L_moco`` when w = ∞).
    """

    def __init__(
        self,
        backbone: nn.Module,
        projection: nn.Module,
        method: MethodSpec,
        *,
        moco_weight: float,
        inter_head: nn.Module | None = None,
        intra_head: nn.Module | None = None,
        external_head: nn.Module | None = None,
        piece_size: float = 0.2,
        n_piece_classes: int = 5,
        queue_size: int = 0,
        feature_dim: int = 128,
        momentum: float = 0.99,
        temperature: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not moco_weight >= 0:
            raise ValueError(f"the MoCo weight c must be >= 0, got {moco_weight}")
        self.method = method
        self.moco_weight = float(moco_weight)
        self.piece_size = float(piece_size)
        self.n_piece_classes = int(n_piece_classes)
        self.backbone = backbone
        self.projection = projection
        self.query_encoder = nn.Sequential(backbone, projection)
        heads = {"inter": inter_head, "intra": intra_head, "external": external_head}
        for name in method.objectives:
            if heads[name] is None:
                raise ValueError(f"the {name} objective needs a {name}_head")
        self.inter_head = inter_head if "inter" in method.objectives else None
        self.intra_head = intra_head if "intra" in method.objectives else None
        self.external_head = external_head if "external" in method.objectives else None
        if not method.objectives and self.moco_weight == 0:
            raise ValueError("nothing to train: the method has no objective and a MoCo weight of 0")
        self.moco = (
            MomentumContrast(
                self.query_encoder, queue_size, feature_dim, momentum, temperature, generator
            )
            if self.moco_weight > 0
            else None
        )

    def set_anchor(self, anchor: nn.Module | None, weight: float) -> None:
        """Pull the backbone's features toward the frozen ``anchor`` network's (``anchor_loss``).

        ``anchor`` is kept outside the module's parameters and state (it is not trained, not
        saved and not checkpointed); None removes the term.
        """
        if anchor is not None:
            anchor.requires_grad_(False)
        self._anchor = (anchor, float(weight))

    @property
    def anchor(self) -> nn.Module | None:
        """The frozen network the backbone is pulled toward, or None."""
        return getattr(self, "_anchor", (None, 0.0))[0]

    @property
    def uses_relational(self) -> bool:
        """True when at least one relational objective is trained."""
        return bool(self.method.objectives) and self.moco_weight != math.inf

    @property
    def uses_moco(self) -> bool:
        """True when the MoCo branch is trained."""
        return self.moco is not None

    def embed(self, curves: Tensor) -> Tensor:
        """Return the L2-normalised projections of (N, L) curves (the relational features)."""
        return F.normalize(self.query_encoder(curves), dim=1)

    def losses(
        self,
        views: Tensor | None,
        bin_labels: Tensor | None = None,
        moco_views: tuple[Tensor, Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Return {objective: loss, "total": combined loss} for one batch.

        ``views`` (K, B, L) are K augmented copies of a batch (for the relational objectives),
        ``bin_labels`` (B,) the external-variable bins, ``moco_views`` two more augmented copies
        (for MoCo); ``generator`` draws the piece starts and the key shuffles.
        """
        out: dict[str, Tensor] = {}
        anchor, anchor_weight = getattr(self, "_anchor", (None, 0.0))
        anchored: Tensor | None = None  # the backbone's features of the curves the anchor sees
        if self.uses_moco:
            if moco_views is None:
                raise ValueError("this method trains MoCo: pass moco_views")
            out["moco"] = self.moco(self.query_encoder, moco_views[0], moco_views[1], generator)
        if self.uses_relational:
            if views is None:
                raise ValueError("this method trains relational heads: pass views (K, B, L)")
            k, b, length = views.shape
            flat = views.reshape(k * b, length)
            spread = self.method.spread_weight > 0
            if spread or "inter" in self.method.objectives or "external" in self.method.objectives:
                if anchor is None:
                    features = self.embed(flat).reshape(k, b, -1)
                else:
                    anchored = self.backbone(flat)
                    features = F.normalize(self.projection(anchored), dim=1).reshape(k, b, -1)
                if spread:
                    out["spread"] = spread_loss(features)
                if self.inter_head is not None:
                    out["inter"] = inter_sample_loss(self.inter_head, features)
                if self.external_head is not None:
                    if bin_labels is None:
                        raise ValueError("the external objective needs bin_labels")
                    out["external"] = external_variable_loss(
                        self.external_head, features, bin_labels
                    )
            if self.intra_head is not None:
                out["intra"] = intra_sample_loss(
                    self.embed,
                    self.intra_head,
                    flat,
                    self.piece_size,
                    self.n_piece_classes,
                    generator,
                )
        if anchor is not None:
            seen = flat if anchored is not None else moco_views[0]
            if anchored is None:
                anchored = self.backbone(seen)
            with torch.no_grad():
                reference = anchor(seen)
            out["anchor"] = anchor_loss(anchored, reference)
        if self.moco_weight == math.inf:
            out["total"] = out["moco"]
        else:
            terms = [out[name] for name in self.method.objectives]
            if "spread" in out:
                terms.append(self.method.spread_weight * out["spread"])
            if self.uses_moco:
                terms.append(self.moco_weight * out["moco"])
            out["total"] = torch.stack(terms).sum()
        if anchor is not None:
            out["total"] = out["total"] + anchor_weight * out["anchor"]
        return out
