"""What the benchmark scripts share: their ``--out`` option and writing their results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_json_out_argument(parser: argparse.ArgumentParser, default: Path) -> None:
    """Add ``--out FILE.json`` (default ``default``, shown relative to the working folder)."""
    shown = default.relative_to(Path.cwd()) if default.is_relative_to(Path.cwd()) else default
    parser.add_argument(
        "--out", type=Path, default=default, help=f"JSON to write (default {shown})"
    )


def write_report(folder: str | Path, stem: str, data: Any, text: str) -> None:
    """Print ``text`` and write it to ``folder/stem.md`` beside ``data`` as ``folder/stem.json``."""
    print(text)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=1))
    (folder / f"{stem}.md").write_text(text)
