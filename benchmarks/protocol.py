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


def raw_logistic_predictions(suite, labels, seed):
    """Return predictions of L2 logistic regression on the raw, prepared curves (baseline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from napari_xrdphase.preprocess import prepare_stack

    prepared = {s.stack.name: prepare_stack(s.stack) for s in suite}
    x = np.concatenate([prepared[name][sorted(rows)] for name, rows in labels.items()])
    y = np.concatenate([[rows[i] for i in sorted(rows)] for rows in labels.values()])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=seed)
    model.fit(scaler.transform(x), y)
    return {name: model.predict(scaler.transform(data)) for name, data in prepared.items()}
