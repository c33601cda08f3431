"""The paper's evaluation protocol on a suite of series (Sun et al. 2023, Table 2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

PRETRAIN_SERIES = ("D1", "D4", "D8", "D9")
LABELLED_SERIES = ("D1", "D4", "D5", "D8", "D9")
GROUPS = {"Fe": ("D1", "D2", "D3", "D4", "D5", "D6", "D7"), "FeO": ("D8", "D9")}


def sample_labels(
    truth: Mapping[str, np.ndarray],
    n_labels: int = 42,
    series: Sequence[str] = LABELLED_SERIES,
    seed: int = 0,
) -> dict[str, dict[int, str]]:
    """Return ``n_labels`` labelled curves drawn from ``series``, spread by size and class.

    Each series gets a share proportional to its curve count, and within a series every class
    present gets at least one labelled curve, the rest proportional to the class sizes.
    """
    rng = np.random.default_rng(seed)
    sizes = np.array([len(truth[name]) for name in series], dtype=float)
    shares = np.floor(n_labels * sizes / sizes.sum()).astype(int)
    for i in np.argsort(-(n_labels * sizes / sizes.sum() - shares))[: n_labels - shares.sum()]:
        shares[i] += 1
    labels: dict[str, dict[int, str]] = {}
    for name, share in zip(series, shares, strict=True):
        y = np.asarray(truth[name])
        classes, counts = np.unique(y, return_counts=True)
        per_class = np.ones(classes.size, dtype=int)
        extra = share - per_class.sum()
        if extra > 0:
            wanted = extra * counts / counts.sum()
            per_class += np.floor(wanted).astype(int)
            for i in np.argsort(-(wanted - np.floor(wanted)))[: share - per_class.sum()]:
                per_class[i] += 1
        chosen: dict[int, str] = {}
        for cls, k in zip(classes, per_class, strict=True):
            rows = np.flatnonzero(y == cls)
            for row in rng.choice(rows, size=min(k, rows.size), replace=False):
                chosen[int(row)] = str(cls)
        labels[name] = dict(sorted(chosen.items()))
    return labels


def far_labels(
    truth: Mapping[str, np.ndarray],
    series: Sequence[str] = LABELLED_SERIES,
    per_class: int = 3,
) -> dict[str, dict[int, str]]:
    """Return ``per_class`` labels per phase and series, on the curves farthest from the others.

    As a beamline scientist labels: curves that are clearly one phase, away from every
    transition (the first curves of the starting phase, the last of the final one, the middle
    of a coexistence range), not a random draw that also lands next to the boundaries. Within
    a phase, a curve's distance is the number of rows to the nearest curve of another phase;
    ties go to the earlier row. The unlabelled curves then lie at pressures, and lattice
    strains, that no labelled curve of their phase had.
    """
    labels: dict[str, dict[int, str]] = {}
    for name in series:
        y = np.asarray(truth[name])
        rows = np.arange(y.size)
        chosen: dict[int, str] = {}
        for cls in np.unique(y):
            own, others = rows[y == cls], rows[y != cls]
            if others.size:
                distance = np.abs(own[:, None] - others[None, :]).min(axis=1)
            else:
                distance = np.zeros(own.size, dtype=np.int64)
            for row in own[np.argsort(-distance, kind="stable")[:per_class]]:
                chosen[int(row)] = str(cls)
        labels[name] = dict(sorted(chosen.items()))
    return labels


def unlabelled_rows(truth: Mapping[str, np.ndarray], labels: Mapping[str, Mapping[int, str]]):
    """Return {series: row indices not labelled} — every curve the classifier did not see."""
    return {
        name: np.setdiff1d(np.arange(len(y)), list(labels.get(name, {})))
        for name, y in truth.items()
    }


def weighted_scores(
    truth: Mapping[str, np.ndarray],
    predicted: Mapping[str, np.ndarray],
    rows: Mapping[str, np.ndarray],
) -> dict[str, dict[str, float]]:
    """Return weighted precision/recall per series and averaged per material group."""
    from sklearn.metrics import precision_score, recall_score

    per_series = {}
    for name, idx in rows.items():
        y, p = np.asarray(truth[name])[idx], np.asarray(predicted[name])[idx]
        per_series[name] = {
            "precision": float(precision_score(y, p, average="weighted", zero_division=0)),
            "recall": float(recall_score(y, p, average="weighted", zero_division=0)),
        }
    groups = {}
    for group, names in GROUPS.items():
        present = [per_series[n] for n in names if n in per_series]
        if present:
            groups[group] = {
                k: float(np.mean([s[k] for s in present])) for k in ("precision", "recall")
            }
    return {"series": per_series, "groups": groups}


def prepared_curves(suite) -> dict[str, np.ndarray]:
    """Return {series: (N, 1024) prepared curves} — the raw, normalised input of the baselines.

    On the grid pretraining would use (``common_window`` of the whole suite: q wherever the
    wavelengths are known), so that the baselines compare the curves as the encoders do.
    """
    from napari_xrdphase.preprocess import common_window, prepare_stack

    window = common_window([s.stack for s in suite])
    return {s.stack.name: prepare_stack(s.stack, 1024, **window) for s in suite}


def _labelled(prepared, labels):
    x = np.concatenate([prepared[name][sorted(rows)] for name, rows in labels.items()])
    y = np.concatenate([[rows[i] for i in sorted(rows)] for rows in labels.values()])
    return x, y


def _logistic(seed):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=seed)


def product_labels(suite, labels, classes, proba, ordered: bool = True) -> dict[str, np.ndarray]:
    """Return {series: labels} from per-curve probabilities as the product makes them.

    In phase order along the ramp (``boundaries.phase_labels`` with the labelled curves' order,
    ``classify.labelled_phase_order``), labelled curves as labelled; ``ordered=False``: the most
    probable class of each curve.
    """
    from napari_xrdphase.boundaries import phase_labels
    from napari_xrdphase.classify import check_labels, labelled_phase_order

    stacks = [s.stack for s in suite]
    order = labelled_phase_order(check_labels(stacks, labels))[0] if ordered else None
    classes = [str(c) for c in classes]
    return {
        s.name: phase_labels(s.variable, proba[s.name], classes, order, labels.get(s.name))
        for s in stacks
    }


def _model_labels(model, suite, labels, features, ordered: bool) -> dict[str, np.ndarray]:
    proba = {name: model.predict_proba(data) for name, data in features.items()}
    return product_labels(suite, labels, model.classes_, proba, ordered)


def raw_logistic_predictions(suite, labels, seed, prepared=None, ordered=True):
    """Return the labels of L2 logistic regression on the raw, prepared curves (baseline).

    Turned into labels as the product does (``product_labels``; ``ordered=False``: per curve).
    """
    from sklearn.preprocessing import StandardScaler

    prepared = prepared_curves(suite) if prepared is None else prepared
    x, y = _labelled(prepared, labels)
    scaler = StandardScaler().fit(x)
    model = _logistic(seed)
    model.fit(scaler.transform(x), y)
    features = {name: scaler.transform(data) for name, data in prepared.items()}
    return _model_labels(model, suite, labels, features, ordered)


def raw_knn_predictions(suite, labels, seed=0, prepared=None, n_neighbors=1, ordered=True):
    """Return the labels of k-nearest neighbours (Euclidean) on the raw, prepared curves.

    The curves are compared as prepared (each scaled to [0, 1]), without per-point
    standardisation, which would blow up the noise of the flat background. ``seed`` is unused
    (k-NN is deterministic); it is there for the same call signature as the other baselines.
    """
    from sklearn.neighbors import KNeighborsClassifier

    prepared = prepared_curves(suite) if prepared is None else prepared
    x, y = _labelled(prepared, labels)
    model = KNeighborsClassifier(n_neighbors=min(n_neighbors, len(y))).fit(x, y)
    return _model_labels(model, suite, labels, prepared, ordered)


def raw_pca_logistic_predictions(
    suite, labels, seed, prepared=None, n_components=32, fit_series=PRETRAIN_SERIES, ordered=True
):
    """Return the labels of logistic regression on PCA scores of the raw, prepared curves.

    The PCA is fitted without labels on every curve of ``fit_series`` (the pretraining series of
    the self-supervised methods, so it sees the same unlabelled data); its scores are
    standardised on the labelled curves and probed like ``raw_logistic_predictions``.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    prepared = prepared_curves(suite) if prepared is None else prepared
    unlabelled = np.concatenate([prepared[name] for name in fit_series if name in prepared])
    pca = PCA(n_components=min(n_components, *unlabelled.shape), random_state=seed)
    pca.fit(unlabelled)
    scores = {name: pca.transform(data) for name, data in prepared.items()}
    x, y = _labelled(scores, labels)
    scaler = StandardScaler().fit(x)
    model = _logistic(seed)
    model.fit(scaler.transform(x), y)
    features = {name: scaler.transform(data) for name, data in scores.items()}
    return _model_labels(model, suite, labels, features, ordered)


# name in the benchmark tables: function(suite, labels, seed, prepared=None, ordered=True) -> labels
RAW_BASELINES = {
    "raw_logistic": raw_logistic_predictions,
    "raw_knn": raw_knn_predictions,
    "raw_pca_logistic": raw_pca_logistic_predictions,
}
