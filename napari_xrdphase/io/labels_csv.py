"""The labels CSV (``dataset,index,label``): reader and writer."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .._files import atomic_write, decode_text
from ._common import LABEL_COLUMNS, ReaderError


def read_labels_csv(path: str | os.PathLike[str]) -> dict[str, dict[int, str]]:
    """Return the labels of a ``dataset,index,label`` CSV as ``{dataset: {index: label}}``."""
    p = Path(path).expanduser()
    try:
        text = decode_text(p.read_bytes())[0]
    except FileNotFoundError as exc:
        raise ReaderError(f"{p}: no such labels file") from exc
    except OSError as exc:
        raise ReaderError(f"{p}: cannot read the labels file ({exc})") from exc
    if "\x00" in text:
        raise ReaderError(
            f"{p}: not a labels CSV (binary data); give the CSV with columns "
            f"{','.join(LABEL_COLUMNS)}"
        )
    try:
        table = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise ReaderError(
            f"{p}: not a labels CSV ({exc}); give the CSV with columns {','.join(LABEL_COLUMNS)}"
        ) from None
    if not table:
        raise ReaderError(
            f"{p}: the labels file is empty; it needs columns {','.join(LABEL_COLUMNS)}"
        )
    header = [h.strip().lower() for h in table[0]]
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise ReaderError(
            f"{p}: missing column(s) {', '.join(missing)}; a labels file has columns "
            f"{','.join(LABEL_COLUMNS)} (found: {_shortened(','.join(header))})"
        )
    col = {c: header.index(c) for c in LABEL_COLUMNS}
    labels: dict[str, dict[int, str]] = {}
    first_seen: dict[tuple[str, int], int] = {}
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ReaderError(
                f"{p} line {number}: {len(row)} cells, but the header has {len(header)}"
            )
        dataset, index_text, label = (row[col[c]].strip() for c in LABEL_COLUMNS)
        if not dataset:
            raise ReaderError(f"{p} line {number}: empty dataset name")
        try:
            index = int(index_text)
        except ValueError:
            raise ReaderError(
                f"{p} line {number}: index {index_text!r} is not an integer"
            ) from None
        if index < 0:
            raise ReaderError(
                f"{p} line {number}: index {index} is negative; indices are 0-based rows"
            )
        if not label:
            raise ReaderError(f"{p} line {number}: empty label for {dataset}[{index}]")
        previous = labels.setdefault(dataset, {}).get(index)
        if previous is not None and previous != label:
            raise ReaderError(
                f"{p} line {number}: {dataset}[{index}] is labelled {label!r} here but "
                f"{previous!r} on line {first_seen[(dataset, index)]}"
            )
        labels[dataset][index] = label
        first_seen.setdefault((dataset, index), number)
    return labels


def write_labels_csv(
    path: str | os.PathLike[str],
    rows: Mapping[str, Mapping[int, str]] | Iterable[tuple[str, int, str]],
) -> Path:
    """Write labels (``{dataset: {index: label}}`` or ``(dataset, index, label)`` rows) as CSV; return the path."""
    if isinstance(rows, Mapping):
        items = [
            (dataset, index, label)
            for dataset, by_index in rows.items()
            for index, label in sorted(by_index.items())
        ]
    else:
        items = list(rows)
    checked = []
    for dataset, index, label in items:
        if not str(dataset).strip():
            raise ValueError(f"empty dataset name in label row {(dataset, index, label)}")
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"index {index!r} of {dataset} is not a 0-based integer row")
        if not str(label).strip():
            raise ValueError(f"empty label for {dataset}[{index}]")
        checked.append((str(dataset), int(index), str(label).strip()))

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(LABEL_COLUMNS)
            writer.writerows(checked)

    return atomic_write(Path(path).expanduser(), write)


def _shortened(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (a binary file's first "line" can be huge)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
