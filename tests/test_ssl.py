"""Tests of the self-supervised objectives on plain tensors and tiny modules."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from napari_xrdphase import ssl  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_encoder(dim: int = 8) -> nn.Module:
    """A small encoder for curves of any length ≥ 4 (pieces are shorter than curves)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, -1)),
        nn.Conv1d(1, 4, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(4),
        nn.Flatten(),
        nn.Linear(16, dim),
    )


# --- inter-sample --------------------------------------------------------------------------------
def test_inter_pairs_have_shape_k_k_minus_1_b_and_half_positive():
    k, b, d = 4, 5, 3
    features = torch.randn(k, b, d)
    pairs, targets = ssl.inter_sample_pairs(features)
    assert pairs.shape == (k * (k - 1) * b, 2 * d)
    assert targets.shape == (k * (k - 1) * b,)
    assert targets.sum().item() == k * (k - 1) * b / 2


def test_inter_positives_match_curves_and_negatives_never_pair_a_curve_with_itself():
    k, b = 4, 5
    # feature = (copy index, curve index) so pairs can be decoded
    features = torch.stack(
        [torch.stack([torch.tensor([float(i), float(n)]) for n in range(b)]) for i in range(k)]
    )
    pairs, targets = ssl.inter_sample_pairs(features)
    left_curve, right_curve = pairs[:, 1], pairs[:, 3]
    positive = targets == 1
    assert torch.equal(left_curve[positive], right_curve[positive])
    assert not torch.any(left_curve[~positive] == right_curve[~positive])
    # the shift changes from one block pair to the next: 1, 2, 3, 4, 1, 2 for B = 5
    shifts = ((right_curve[~positive] - left_curve[~positive]) % b).reshape(-1, b)[:, 0]
    # roll(f, s)[n] = f[n - s], so the partner of curve n is n - s
    assert ((-shifts) % b).tolist() == [1, 2, 3, 4, 1, 2]


def test_inter_pairs_need_two_copies_and_two_curves():
    with pytest.raises(ValueError, match="2 augmented copies"):
        ssl.inter_sample_pairs(torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match="2 curves"):
        ssl.inter_sample_pairs(torch.randn(3, 1, 3))


def test_inter_loss_is_ln2_for_an_undecided_head():
    head = nn.Linear(6, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    loss = ssl.inter_sample_loss(head, torch.randn(3, 4, 3))
    assert loss.item() == pytest.approx(math.log(2))


# --- spread of the features ----------------------------------------------------------------------
def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def test_spread_loss_is_one_for_collapsed_features_and_small_for_spread_ones():
    g = torch.Generator().manual_seed(0)
    collapsed = unit(torch.ones(2, 64, 8))
    spread = unit(torch.randn(2, 4096, 8, generator=g))
    assert ssl.spread_loss(collapsed).item() == pytest.approx(0.99, abs=1e-3)
    assert ssl.spread_loss(spread).item() < 0.05
    # features on two of eight directions: the variance term sees six dead dimensions
    two_d = unit(torch.cat([torch.randn(1, 256, 2, generator=g), torch.zeros(1, 256, 6)], dim=2))
    assert ssl.spread_loss(two_d).item() > 0.6


def test_spread_loss_averages_blocks_so_views_of_one_curve_are_not_spread():
    g = torch.Generator().manual_seed(1)
    spread = unit(torch.randn(1, 32, 8, generator=g))
    collapsed = unit(torch.ones(1, 32, 8))
    both = torch.cat([spread, collapsed])
    expected = (ssl.spread_loss(spread) + ssl.spread_loss(collapsed)) / 2
    assert ssl.spread_loss(both).item() == pytest.approx(expected.item(), rel=1e-5)
    # K views of the same curves spread exactly as one view does
    assert ssl.spread_loss(spread.expand(3, -1, -1)).item() == pytest.approx(
        ssl.spread_loss(spread).item(), rel=1e-5
    )


def test_spread_loss_needs_k_b_d_features_with_two_curves():
    with pytest.raises(ValueError, match="K, B"):
        ssl.spread_loss(torch.ones(4, 8))
    with pytest.raises(ValueError, match="K, B"):
        ssl.spread_loss(torch.ones(2, 1, 8))


def test_spread_weight_must_not_be_negative():
    with pytest.raises(ValueError, match="spread_weight"):
        ssl.MethodSpec(("inter",), 0.0, "bad", spread_weight=-1.0)


# --- intra-sample --------------------------------------------------------------------------------
def test_piece_labels_follow_the_published_formula():
    length, classes = 1000, 5
    g = torch.Generator().manual_seed(1)
    s1 = torch.randint(0, 800, (500,), generator=g)
    s2 = torch.randint(0, 800, (500,), generator=g)
    labels = ssl.piece_distance_labels(s1, s2, length, classes)
    expected = [
        min(math.floor(abs(a - b) / (length / (2 * classes))), classes - 1)
        for a, b in zip(s1.tolist(), s2.tolist(), strict=True)
    ]
    assert labels.tolist() == expected
    assert set(labels.tolist()) == set(range(classes))


def test_piece_labels_at_class_edges():
    # L = 100, C = 5: classes are 10 points wide; 40 and more is the top class
    s2 = torch.zeros(6, dtype=torch.long)
    s1 = torch.tensor([0, 9, 10, 39, 40, 79])
    assert ssl.piece_distance_labels(s1, s2, 100, 5).tolist() == [0, 0, 1, 3, 4, 4]


def test_cut_piece_pairs_returns_slices_of_each_curve_and_their_labels():
    n, length = 6, 50
    curves = torch.arange(n * length, dtype=torch.float32).reshape(n, length)
    g = torch.Generator().manual_seed(0)
    p1, p2, labels = ssl.cut_piece_pairs(curves, 0.2, 5, g)
    width = int(0.2 * length)
    assert p1.shape == p2.shape == (n, width)
    assert labels.shape == (n,) and labels.dtype == torch.long
    s1 = (p1[:, 0] - curves[:, 0]).long()
    s2 = (p2[:, 0] - curves[:, 0]).long()
    assert torch.all(s1 >= 0) and torch.all(s1 < length - width)
    for i in range(n):
        assert torch.equal(p1[i], curves[i, s1[i] : s1[i] + width])
    assert torch.equal(labels, ssl.piece_distance_labels(s1, s2, length, 5))


def test_piece_size_must_be_a_fraction():
    with pytest.raises(ValueError, match="piece_size"):
        ssl.piece_length(100, 1.5)


def test_intra_loss_is_ln5_for_an_undecided_head():
    encoder = tiny_encoder(4)
    head = nn.Linear(8, 5)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    loss = ssl.intra_sample_loss(encoder, head, torch.rand(10, 40), 0.2, 5)
    assert loss.item() == pytest.approx(math.log(5))


# --- external variable ---------------------------------------------------------------------------
def test_series_bins_split_a_series_into_equal_parts_in_acquisition_order():
    assert ssl.series_bin_labels(10, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    labels = ssl.series_bin_labels(7, 5)
    assert labels.tolist() == sorted(labels.tolist())
    assert set(labels.tolist()) == set(range(5))
    assert ssl.series_bin_labels(2, 5).tolist() == [0, 2]


def test_external_loss_uses_every_augmented_copy():
    head = nn.Linear(3, 5)
    features = torch.randn(4, 6, 3)
    labels = torch.tensor([0, 1, 2, 3, 4, 4])
    loss = ssl.external_variable_loss(head, features, labels)
    manual = nn.functional.cross_entropy(head(features.reshape(24, 3)), labels.repeat(4))
    assert loss.item() == pytest.approx(manual.item())


# --- MoCo ----------------------------------------------------------------------------------------
def test_moco_queue_wraps_for_sizes_that_do_not_divide():
    moco = ssl.MomentumContrast(nn.Linear(2, 1), queue_size=10, dim=1)
    moco.queue.zero_()
    pointers = []
    for step in range(5):
        keys = torch.arange(3 * step + 1, 3 * step + 4, dtype=torch.float32)[:, None]
        moco.enqueue(keys)
        pointers.append(int(moco.queue_ptr))
    assert pointers == [3, 6, 9, 2, 5]
    # keys 1..15 written in order into 10 slots: slot i holds the last key k with (k-1) % 10 == i
    assert moco.queue[:, 0].tolist() == [11, 12, 13, 14, 15, 6, 7, 8, 9, 10]


def test_moco_queue_keeps_only_the_newest_keys_when_a_batch_exceeds_it():
    moco = ssl.MomentumContrast(nn.Linear(2, 1), queue_size=4, dim=1)
    moco.enqueue(torch.zeros(1, 1))
    moco.enqueue(torch.arange(1, 7, dtype=torch.float32)[:, None])  # 6 keys from slot 1
    # sequential writes from slot 1: 1→1, 2→2, 3→3, 4→0, 5→1, 6→2
    assert moco.queue[:, 0].tolist() == [4, 5, 6, 3]
    assert int(moco.queue_ptr) == (1 + 6) % 4


def test_key_encoder_follows_the_momentum_rule():
    query = nn.Linear(3, 2)
    moco = ssl.MomentumContrast(query, queue_size=5, dim=2, momentum=0.9)
    key_before = moco.key_encoder.weight.detach().clone()
    assert torch.equal(key_before, query.weight.detach())
    assert not moco.key_encoder.weight.requires_grad
    with torch.no_grad():
        query.weight.add_(1.0)
    moco.momentum_update(query)
    expected = 0.9 * key_before + 0.1 * query.weight.detach()
    assert torch.allclose(moco.key_encoder.weight, expected)


def test_contrastive_loss_is_cross_entropy_against_key_and_queue():
    moco = ssl.MomentumContrast(nn.Linear(2, 2), queue_size=3, dim=2, temperature=0.1)
    queries = nn.functional.normalize(torch.randn(4, 2), dim=1)
    keys = nn.functional.normalize(torch.randn(4, 2), dim=1)
    logits = torch.cat([(queries * keys).sum(1, keepdim=True), queries @ moco.queue.t()], 1) / 0.1
    manual = nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    assert moco.contrastive_loss(queries, keys).item() == pytest.approx(manual.item(), rel=1e-5)


def test_moco_forward_enqueues_both_key_batches_and_encodes_keys_in_original_order():
    torch.manual_seed(0)
    query = nn.Sequential(nn.Linear(6, 4))
    moco = ssl.MomentumContrast(query, queue_size=7, dim=4)
    view1, view2 = torch.randn(3, 6), torch.randn(3, 6)
    g = torch.Generator().manual_seed(0)
    loss = moco(query, view1, view2, g)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert int(moco.queue_ptr) == 6
    expected = nn.functional.normalize(moco.key_encoder(torch.cat([view1, view2])), dim=1)
    assert torch.allclose(moco.queue[:6], expected, atol=1e-6)


# --- methods and the combined model --------------------------------------------------------------
def test_registry_holds_the_four_paper_methods():
    assert {"specrrmoco", "specrr", "specmoco", "specselftime"} <= set(ssl.METHODS)
    assert ssl.METHODS["specrrmoco"].effective_moco_weight(0.01) == 0.01
    assert ssl.METHODS["specrr"].effective_moco_weight(0.01) == 0.0
    assert ssl.METHODS["specmoco"].effective_moco_weight(0.01) == math.inf
    assert ssl.METHODS["specselftime"].objectives == ("inter", "intra")


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="specrrmoco"):
        ssl.get_method("simclr")


def build_model(name: str, c: float = 0.01) -> ssl.SelfSupervisedModel:
    torch.manual_seed(0)
    dim = 8
    method = ssl.METHODS[name]
    return ssl.SelfSupervisedModel(
        tiny_encoder(dim),
        nn.Identity(),
        method,
        moco_weight=method.effective_moco_weight(c),
        # a relation must be computed from both halves of a pair: a linear head cannot
        inter_head=nn.Sequential(nn.Linear(2 * dim, 16), nn.LeakyReLU(), nn.Linear(16, 1)),
        intra_head=nn.Sequential(nn.Linear(2 * dim, 16), nn.LeakyReLU(), nn.Linear(16, 5)),
        external_head=nn.Linear(dim, 5),
        queue_size=10,
        feature_dim=dim,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("specrrmoco", {"inter", "intra", "external", "moco", "total"}),
        ("specrr", {"inter", "intra", "external", "total"}),
        ("specmoco", {"moco", "total"}),
        ("specselftime", {"inter", "intra", "total"}),
    ],
)
def test_each_method_computes_its_losses_and_their_combination(name, expected):
    model = build_model(name, c=0.5)
    batch, length, k = 6, 40, 3
    views = torch.rand(k, batch, length)
    moco_views = (torch.rand(batch, length), torch.rand(batch, length))
    bins = ssl.series_bin_labels(batch, 5)
    g = torch.Generator().manual_seed(0)
    losses = model.losses(views, bins, moco_views, g)
    assert set(losses) == expected
    if name == "specmoco":
        assert losses["total"] is losses["moco"]
    else:
        relational = sum(losses[n] for n in ssl.METHODS[name].objectives)
        moco = 0.5 * losses["moco"] if "moco" in losses else 0.0
        assert losses["total"].item() == pytest.approx((relational + moco).item(), rel=1e-6)
    losses["total"].backward()
    assert model.backbone[-1].weight.grad is not None


def test_the_spread_term_is_added_with_its_weight():
    spec = ssl.MethodSpec(("inter", "external"), 0.0, "spread", spread_weight=0.5)
    ssl.METHODS["_spread_test"] = spec
    try:
        model = build_model("_spread_test")
    finally:
        del ssl.METHODS["_spread_test"]
    views = torch.rand(3, 6, 40)
    losses = model.losses(views, ssl.series_bin_labels(6, 5))
    assert set(losses) == {"inter", "external", "spread", "total"}
    expected = losses["inter"] + losses["external"] + 0.5 * losses["spread"]
    assert losses["total"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_spread_term_spreads_a_collapsing_encoder():
    """Inter-sample reasoning alone tolerates a low-rank embedding; the spread term lifts it."""
    spec = ssl.MethodSpec(("inter",), 0.0, "spread", spread_weight=1.0)
    ssl.METHODS["_spread_test"] = spec
    try:
        model = build_model("_spread_test")
    finally:
        del ssl.METHODS["_spread_test"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    curves = peak_curves(32, seed=2)
    history = []
    for _ in range(60):
        views = torch.stack([curves * (1 + 0.05 * torch.rand(32, 1)) for _ in range(2)])
        losses = model.losses(views)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append(losses["spread"].item())
    assert sum(history[-5:]) / 5 < sum(history[:5]) / 5 - 0.1


def test_a_method_without_objectives_or_moco_is_rejected():
    spec = ssl.MethodSpec((), None, "nothing")
    with pytest.raises(ValueError, match="nothing to train"):
        ssl.SelfSupervisedModel(tiny_encoder(), nn.Identity(), spec, moco_weight=0.0)


def peak_curves(n: int, length: int = 64, seed: int = 0) -> torch.Tensor:
    """(n, length) curves of two Gaussian peaks at random positions."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(length, dtype=torch.float32)
    centres = 5 + torch.rand(n, 2, generator=g) * (length - 10)
    return torch.exp(-0.5 * ((grid - centres[..., None]) / 2.0) ** 2).sum(1)


def test_every_objective_is_learnable_with_a_tiny_encoder():
    torch.manual_seed(0)
    model = build_model("specrrmoco", c=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    curves = peak_curves(16)
    bins = ssl.series_bin_labels(16, 5)
    g = torch.Generator().manual_seed(0)

    def noisy(x):
        return x * (1 + 0.1 * torch.randn(x.shape[0], 1, generator=g)) + 0.02 * torch.randn(
            x.shape, generator=g
        )

    history = []
    for _ in range(100):
        views = torch.stack([noisy(curves) for _ in range(3)])
        losses = model.losses(views, bins, (noisy(curves), noisy(curves)), g)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    early = {k: sum(h[k] for h in history[5:15]) / 10 for k in history[0]}
    late = {k: sum(h[k] for h in history[-10:]) / 10 for k in history[0]}
    assert late["inter"] < 0.4 < 0.6 < early["inter"]
    for name in ("intra", "external", "moco"):
        assert late[name] < early[name] - 0.05, (name, early[name], late[name])


def test_torch_free_method_list_matches_the_registry():
    from napari_xrdphase.defaults import DEFAULT_METHOD, METHOD_NAMES, PAPER_METHODS

    assert set(METHOD_NAMES) == set(ssl.METHODS)
    assert DEFAULT_METHOD in ssl.METHODS
    assert set(PAPER_METHODS) == {"specrrmoco", "specrr", "specmoco", "specselftime"}
