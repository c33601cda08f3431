"""The session's labelling assistants: suggested curves and phases proposed without labels.

A mixin of ``XRDSession`` (``_session.py``), so that ``xrd.suggest()``, ``xrd.next_suggestion()``,
``xrd.propose_phases()``, ``xrd.rename_segment(...)``, ``xrd.merge_segments(...)`` and
``xrd.segments_to_labels(...)`` are methods of the console object. They call the same public
functions as ``xrdphase suggest`` and ``xrdphase segment`` (``suggest.suggest_curves``,
``segment.propose_phases``); suggestions use the embeddings of ``FeatureCache`` (computed once
per series and encoder), segments embed the strain-aligned curves. No Qt here: layers are napari layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._layer_data import METADATA_KEY
from ..stack import StackError

if TYPE_CHECKING:
    from ..classify import FeatureCache
    from ..segment import SeriesSegments
    from ..suggest import Suggestion

ROLE_SUGGESTED = "suggested"
SUGGESTED_COLOR = "#ffff00"  # yellow stars: unlike the labelled curves' discs in class colours
SUGGESTED_SYMBOL = "star"


class LabellingAssist:
    """Suggestions and proposed phases, as methods of the session (see the module docstring)."""

    def _init_assist(self) -> None:
        self._cache: FeatureCache | None = None
        self.suggestions: list[Suggestion] = []  # best first, answered ones included
        self._focus = -1  # the suggestion next_suggestion showed last
        self.segments: dict[str, SeriesSegments] = {}
        # what the phase strip shows: "classification" (the classifier) or "segments"
        self.showing = "classification"

    # --- embeddings -----------------------------------------------------------------------------
    @property
    def feature_cache(self) -> FeatureCache:
        """The embeddings of the open series by the encoder in use, each computed once.

        A new encoder starts a new cache; series no longer open are dropped from it.
        """
        from ..classify import FeatureCache

        encoder = self.encoder
        if self._cache is None or self._cache.encoder is not encoder:
            self._cache = FeatureCache(encoder)
        self._cache.keep_only(self.stacks)
        return self._cache

    def _phase_mask(self):
        """The ``PhaseMask`` of the lines to remove before embedding (the Phases dock's choice,
        else what the encoder was pretrained without), or None: the cached embeddings serve."""
        from ..phases.masking import resolve_mask

        return resolve_mask(self.chosen_ignore_phases(), self.encoder)

    def _open_stacks(self) -> list:
        stacks = self.stacks
        if not stacks:
            raise StackError("no diffraction series is open; open one first")
        names = [s.name for s in stacks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise StackError(
                f"several open series are named {', '.join(twice)}; close one (labels name "
                "series by name)"
            )
        return stacks

    # --- suggestions ----------------------------------------------------------------------------
    def compute_suggestions(self, n: int = 5, seed: int = 0) -> list[Suggestion]:
        """Return the ``n`` curves worth labelling next, best first (no layers: thread-safe).

        ``suggest.suggest_curves`` on every open series with the current labels (or none) and
        the encoder in use, as ``xrdphase suggest`` does.
        """
        from ..suggest import suggest_curves

        stacks = self._open_stacks()
        names = {s.name for s in stacks}
        labels = {name: rows for name, rows in self.labels.items() if name in names}
        mask = self._phase_mask()
        cache = self.feature_cache
        embeddings = None if mask is not None else {s.name: cache.embeddings(s) for s in stacks}
        return suggest_curves(
            self.encoder, stacks, labels, n, seed=seed, embeddings=embeddings, cache=cache,
            ignore_phases=mask,
        )  # fmt: skip

    def apply_suggestions(self, found: Sequence[Suggestion]) -> list[Suggestion]:
        """Keep ``found`` as the session's suggestions and mark them on the image; return them."""
        self.suggestions = list(found)
        self._focus = -1
        for layer in self.series_layers:
            self._refresh_suggestion_points(layer)
        self.viewer.layers.selection.active = self.current_layer
        self._emit("labels_changed")
        return self.suggestions

    def suggest(self, n: int = 5, seed: int = 0) -> list[Suggestion]:
        """Propose the ``n`` curves to label next, mark them on the image (stars numbered by rank); return them.

        Each row of the result says where the curve is (``dataset``, ``index``, ``variable``)
        and, with labels of two classes or more, its predicted class, confidence and novelty.
        Labelling a suggested curve removes its star.
        """
        return self.apply_suggestions(self.compute_suggestions(n, seed))

    def unanswered_suggestions(self) -> list[Suggestion]:
        """The suggestions whose curves are not labelled yet, best first."""
        labels = self.labels
        return [s for s in self.suggestions if s.index not in labels.get(s.dataset, {})]

    def next_suggestion(self) -> Suggestion | None:
        """Centre the view on the next unanswered suggestion (after the last one shown); return it.

        Its series becomes the current one and the selected layer, so that a number key and a
        click label it. None when every suggestion is answered.
        """
        open_ = [self.compute_stack(layer).name for layer in self.series_layers]
        labels = self.labels
        count = len(self.suggestions)
        for step in range(1, count + 1):
            k = (self._focus + step) % count
            s = self.suggestions[k]
            if s.dataset in open_ and s.index not in labels.get(s.dataset, {}):
                self._focus = k
                layer = self.series_layer(s.dataset)
                self.current_layer = layer
                self.viewer.layers.selection.active = layer
                x0, x1 = self._x_extent(layer)
                # napari ≥ 0.9 keeps the camera on viewer.scene (viewer.camera is deprecated)
                camera = getattr(self.viewer, "scene", self.viewer).camera
                camera.center = (self._row_to_world(layer, s.index), (x0 + x1) / 2)
                return s
        return None

    def _refresh_suggestion_points(self, layer: Any) -> None:
        """Mark the unanswered suggestions of a series: a star left of its label dots, numbered by rank."""
        stack = self.compute_stack(layer)
        labelled = self._labels.get(stack.name, {})
        shown = [
            (rank, s)
            for rank, s in enumerate(self.suggestions, start=1)
            if s.dataset == stack.name and s.index not in labelled and s.index < stack.n_curves
        ]
        old = self._role_layer(layer, ROLE_SUGGESTED)
        if old is None and not shown:
            return
        dots_x, size = self._point_geometry(layer)
        x = dots_x - 1.5 * size
        coords = np.array(
            [[self._row_to_world(layer, s.index), x] for _, s in shown], dtype=float
        ).reshape(-1, 2)
        features = {"rank": [r for r, _ in shown], "row": [s.index for _, s in shown]}
        if old is not None:
            self.viewer.layers.remove(old)  # like the boundaries: rebuilt, never refilled
        points = self.viewer.add_points(
            coords,
            name=f"{layer.name} {ROLE_SUGGESTED}",
            features=features,
            symbol=SUGGESTED_SYMBOL,
            face_color=SUGGESTED_COLOR,
            border_color="black",
            border_width=0.1,
            size=1.6 * size,  # napari's star fills less of its size than a disc
            text={
                "string": "{rank}", "color": SUGGESTED_COLOR, "size": 11, "anchor": "center",
                "translation": [0.0, -1.1 * size],
            },
            metadata={METADATA_KEY: {"role": ROLE_SUGGESTED, "series": stack.name}},
        )  # fmt: skip
        points.editable = False
        if self.viewer.layers.selection.active is points:
            self.viewer.layers.selection.active = layer

    def _describe_assist(self, name: str, row: int) -> list[str]:
        """Status-bar notes: ``suggested #2`` on an unanswered suggestion, ``segment S1``."""
        notes = []
        if row not in self._labels.get(name, {}):
            for rank, s in enumerate(self.suggestions, start=1):
                if s.dataset == name and s.index == row:
                    notes.append(f"suggested #{rank}")
        segments = self.segments.get(name)
        if self.showing == "segments" and segments is not None and row < len(segments.labels):
            notes.append(f"segment {segments.labels[row]}")
        return notes

    # --- phases proposed without labels ---------------------------------------------------------
    def compute_segments(self, **options: Any) -> list[SeriesSegments]:
        """Return ``segment.propose_phases`` of every open series (no layers: thread-safe)."""
        from ..segment import propose_phases

        # not the cached embeddings: propose_phases embeds the strain-aligned curves (without
        # the lines the Phases dock ignores)
        return propose_phases(
            self.encoder, self._open_stacks(), ignore_phases=self._phase_mask(), **options
        )

    def apply_segments(self, found: Iterable[SeriesSegments]) -> dict[str, SeriesSegments]:
        """Show segments on the phase strips (S1, S2, ... and their boundaries); return them."""
        self.segments = {seg.name: seg for seg in found}
        self._segments_changed()
        return self.segments

    def propose_phases(self, **options: Any) -> dict[str, SeriesSegments]:
        """Cut every open series at its change points, without labels, and show the segments; return them.

        Segments of all series that look alike share a name (S1, S2, ...; ``segment.propose_phases``,
        ``options`` as there). Name them with ``rename_segment``, join them with
        ``merge_segments``, then ``segments_to_labels`` turns them into labels to classify with.
        """
        return self.apply_segments(self.compute_segments(**options))

    def segment_names(self) -> list[str]:
        """The segment names, in order of first appearance (series in layer order)."""
        names: dict[str, None] = {}
        for seg in self.segments.values():
            names.update(dict.fromkeys(str(v) for v in seg.labels))
        return list(names)

    def _check_segment(self, name: str) -> str:
        if name not in self.segment_names():
            if not self.segments:
                raise StackError("no segments yet: propose phases first (xrd.propose_phases())")
            raise StackError(f"there is no segment {name!r}; segments: {self.segment_names()}")
        return name

    def rename_segment(self, old: str, new: str) -> None:
        """Give segment ``old`` the name ``new`` in every series (an existing name: they merge)."""
        self.merge_segments([old], new)

    def merge_segments(self, names: Sequence[str], new: str) -> None:
        """Make segments ``names`` one segment called ``new`` in every series."""
        if isinstance(names, str):
            names = [names]
        old = {self._check_segment(str(n)) for n in names}
        new = str(new).strip()
        if not new:
            raise StackError("a segment name cannot be empty")
        for seg in self.segments.values():
            labels = np.where(np.isin(seg.labels, list(old)), new, seg.labels).astype(str)
            seg.labels = labels
            seg.breaks = [int(k) for k in np.flatnonzero(labels[1:] != labels[:-1]) + 1]
        self._segments_changed()

    def segments_to_labels(self, every: int | None = None) -> int:
        """Label curves of every segment with its name; return how many.

        Each run of curves of one segment loses a tenth of its length at each end (at least one
        curve, none from a run of 3 or fewer): curves near a proposed boundary are the least
        sure. Of the rest, ``every=k`` labels every k-th curve from the first; ``every=None``
        labels three, at a quarter, the middle and three quarters of it (one for a run of 1 or
        2 curves). Existing labels stay.
        """
        if not self.segments:
            raise StackError("no segments yet: propose phases first (xrd.propose_phases())")
        if every is not None and (isinstance(every, bool) or int(every) != every or every < 1):
            raise StackError(f"every must be a whole number ≥ 1, got {every}")
        added = 0
        for layer in self.series_layers:
            stack = self.compute_stack(layer)
            seg = self.segments.get(stack.name)
            if seg is None:
                continue
            target = self._labels.setdefault(stack.name, {})
            starts = [0, *seg.breaks]
            stops = [*seg.breaks, len(seg.labels)]
            for start, stop in zip(starts, stops, strict=True):
                for row in _segment_rows(start, stop, every):
                    if row not in target:
                        target[row] = self._add_class(str(seg.labels[start]))
                        added += 1
        self._labels_changed(None)
        if self.showing == "segments":
            for layer in self.series_layers:  # the strip takes the classes' colours now
                if self.compute_stack(layer).name in self.segments:
                    self._show_segments(layer)
        return added

    def _segments_changed(self) -> None:
        self.showing = "segments"
        for layer in self.series_layers:
            if self.compute_stack(layer).name in self.segments:
                self._show_segments(layer)
        self.viewer.layers.selection.active = self.current_layer
        self._emit("classified")

    def _show_segments(self, layer: Any) -> None:
        """Draw a series' segments as its phase strip with their boundaries (no confidence)."""
        from ..boundaries import find_boundaries

        stack = self.compute_stack(layer)
        seg = self.segments[stack.name]
        names = self.segment_names()
        onehot = (seg.labels[:, None] == np.asarray(names)[None, :]).astype(float)
        found = find_boundaries(
            np.asarray(stack.variable, dtype=float), seg.labels, onehot, names,
            unit=stack.variable_unit,
        )  # fmt: skip
        self._draw_strips(layer, seg.labels, names, None, None, found)

    def segments_summary(self) -> str:
        """Return the segments of every series as text (``SeriesSegments.describe``)."""
        lines = ["phases proposed without labels (change points along each series):", ""]
        for layer in self.series_layers:
            stack = self.compute_stack(layer)
            if stack.name in self.segments:
                lines += self.segments[stack.name].describe(stack)
        lines += [
            "",
            "name them: xrd.rename_segment('S1', 'bcc'), xrd.merge_segments(['S2', 'S3'], 'hcp');",
            "then xrd.segments_to_labels() labels a few curves of each, and Classify.",
        ]
        return "\n".join(lines)


def _segment_rows(start: int, stop: int, every: int | None) -> list[int]:
    """The rows of the run [start, stop) that ``segments_to_labels`` labels."""
    length = stop - start
    trim = 0 if length <= 3 else max(1, length // 10)
    first, last = start + trim, stop - trim  # [first, last)
    if every is not None:
        return list(range(first, last, int(every)))
    if last - first <= 2:
        return [(first + last - 1) // 2]
    span = last - 1 - first
    return sorted({first + round(f * span) for f in (0.25, 0.5, 0.75)})
