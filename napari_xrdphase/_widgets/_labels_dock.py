"""Labels dock: classes, number keys and clicks that label curves, label files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, SpinBox

from ._plot import Confirm, ask_save_path, ask_yes_no, export_file, report_errors
from ._session import get_session

if TYPE_CHECKING:
    import napari

N_CLASS_KEYS = 9
HELP = (
    "Keys 1–9 choose the class. Click a curve (row) of the image to label it; "
    "Alt+click removes its label. Drag to pan as usual. Label a few curves of every "
    "phase, spread over its pressure range, not only the clearest ones. Suggest marks the "
    "curves worth labelling next (yellow stars, numbered); N (or Next suggestion) centres "
    "the view on the next one."
)
NEXT_SUGGESTION_KEY = "n"


class LabelsDock(Container):
    """Label curves of the current series with a few classes.

    ``confirm(message) -> bool`` answers the dock's yes/no questions (replace labels that were
    not exported, replace an existing file); by default a dialog asks the user.
    """

    def __init__(self, viewer: napari.viewer.Viewer, confirm: Confirm | None = None) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.session = get_session(viewer)
        self._confirm = confirm
        self._updating = False
        self._bound_layers: set[int] = set()

        self.current_class = ComboBox(label="class", choices=self._class_choices)
        self.class_name = LineEdit(label="name", tooltip="a class name, to add or to rename to")
        self.add_button = PushButton(text="Add class")
        self.rename_button = PushButton(text="Rename class")
        self.remove_button = PushButton(text="Remove class")
        self.click_labels = CheckBox(text="Click on the image labels a curve", value=True)
        self.counts = Label(label="labelled", value="")
        self.help = Label(value=HELP)
        self.help.native.setWordWrap(True)
        self.suggest_button = PushButton(text="Suggest curves to label")
        self.suggest_n = SpinBox(value=5, min=1, max=100, tooltip="how many curves to suggest")
        self.next_button = PushButton(text="Next suggestion")
        self.clear_button = PushButton(text="Clear labels of this series")
        self.import_button = PushButton(text="Import labels…")
        self.export_button = PushButton(text="Export labels…")
        class_buttons = Container(
            layout="horizontal", labels=False,
            widgets=[self.add_button, self.rename_button, self.remove_button],
        )  # fmt: skip
        file_buttons = Container(
            layout="horizontal", labels=False, widgets=[self.import_button, self.export_button]
        )
        suggest_buttons = Container(
            layout="horizontal", labels=False,
            widgets=[self.suggest_button, self.suggest_n, self.next_button],
        )  # fmt: skip
        for box in (class_buttons, file_buttons, suggest_buttons):
            box.margins = (0, 0, 0, 0)
        self.extend(
            [self.current_class, self.class_name, class_buttons, self.click_labels, self.counts,
             self.help, suggest_buttons, self.clear_button, file_buttons]
        )  # fmt: skip
        self.suggest_worker = None

        self.current_class.changed.connect(self._on_class_chosen)
        self.add_button.clicked.connect(self.add_class)
        self.rename_button.clicked.connect(self.rename_class)
        self.remove_button.clicked.connect(self.remove_class)
        self.clear_button.clicked.connect(self.clear_labels)
        self.suggest_button.clicked.connect(self.start_suggestion)
        self.next_button.clicked.connect(self.next_suggestion)
        self.import_button.clicked.connect(self._ask_import)
        self.export_button.clicked.connect(self._ask_export)
        self.session.events.labels_changed.connect(self.refresh)
        self.session.events.series_changed.connect(self._bind_keys)
        viewer.mouse_drag_callbacks.append(self._on_click)
        self._bind_keys()
        self.refresh()

    # --- classes --------------------------------------------------------------------------------
    def _class_choices(self, widget: Any = None) -> list[tuple[str, str]]:
        return [(f"{k + 1}  {c}", c) for k, c in enumerate(self.session.classes)]

    def refresh(self) -> None:
        """Show the session's classes, current class and label counts."""
        self._updating = True
        try:
            self.current_class.reset_choices()
            if self.session.current_class in self.session.classes:
                self.current_class.value = self.session.current_class
        finally:
            self._updating = False
        counts = self.session.label_counts()
        total = sum(counts.values())
        self.counts.value = "  ".join(f"{c}: {n}" for c, n in counts.items()) + f"  (total {total})"

    def _on_class_chosen(self, cls: str | None) -> None:
        if not self._updating and cls:
            self.session.current_class = cls

    def choose_class(self, number: int) -> None:
        """Make class ``number`` (1-based, as on the keyboard) the current class."""
        classes = self.session.classes
        if 1 <= number <= len(classes):
            self.session.current_class = classes[number - 1]

    def add_class(self) -> None:
        """Add the class typed in the name field."""
        with report_errors("Add class"):
            self.session.add_class(self.class_name.value)
            self.session.current_class = self.class_name.value.strip()
            self.class_name.value = ""

    def rename_class(self) -> None:
        """Rename the current class to the name typed in the name field."""
        with report_errors("Rename class"):
            self.session.rename_class(self.session.current_class, self.class_name.value)
            self.class_name.value = ""

    def remove_class(self) -> None:
        """Remove the current class (when no curve is labelled with it)."""
        with report_errors("Remove class"):
            self.session.remove_class(self.session.current_class)

    # --- keys and clicks ------------------------------------------------------------------------
    def _bind_keys(self) -> None:
        # number keys on the series layers and their label points, as napari-feature-classifier
        # does: the active layer's bindings win over napari's own layer-mode keys
        layers = list(self.session.series_layers)
        for layer in list(layers):
            points = self.session.labels_layer(layer)
            if points is not None:
                layers.append(points)
        for layer in layers:
            if id(layer) in self._bound_layers:
                continue
            for number in range(1, N_CLASS_KEYS + 1):
                layer.bind_key(str(number), self._key_handler(number), overwrite=True)
            layer.bind_key(
                NEXT_SUGGESTION_KEY, lambda _layer: self.next_suggestion(), overwrite=True
            )
            self._bound_layers.add(id(layer))

    def _key_handler(self, number: int):
        def choose(layer: Any) -> None:
            self.choose_class(number)

        choose.__name__ = f"choose_class_{number}"
        return choose

    def _on_click(self, viewer: Any, event: Any):
        if not self.click_labels.value or event.button != 1:
            return
        active = viewer.layers.selection.active
        if active is None or active not in self.session.series_layers:
            return
        position = event.position
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            self.label_at(active, position, remove="Alt" in _modifier_names(event))

    def label_at(self, layer: Any, world_position: Any, remove: bool = False) -> int | None:
        """Label (or unlabel) the row of ``layer`` at a world position; return the row or None."""
        row, col = layer.world_to_data(world_position)[-2:]
        row, col = round(row), round(col)
        n_rows, n_cols = layer.data.shape[-2:]
        if not (0 <= row < n_rows and 0 <= col < n_cols):
            return None
        with report_errors("Label curve"):
            if remove:
                self.session.unlabel(row, series=layer)
            else:
                self.session.label(row, self.session.current_class, series=layer)
            self._bind_keys()
            return row
        return None

    # --- suggestions ----------------------------------------------------------------------------
    def suggest(self) -> None:
        """Suggest curves now, in the GUI thread, and centre on the first (errors: notifications)."""
        with report_errors("Suggest"):
            self.session.suggest(n=self.suggest_n.value)
            self.next_suggestion()

    def start_suggestion(self):
        """Suggest curves in a worker thread; return the worker (the stars appear when it returns)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.suggest_worker is not None:
            return self.suggest_worker
        _ = self.session.encoder  # loads the built-in one (or warns) in the GUI thread
        self.suggest_button.enabled = False
        worker = create_worker(self.session.compute_suggestions, n=self.suggest_n.value)

        def on_returned(found: Any) -> None:
            with report_errors("Suggest"):
                self.session.apply_suggestions(found)
                self.next_suggestion()

        def on_finished() -> None:
            self.suggest_worker = None
            self.suggest_button.enabled = True

        worker.returned.connect(on_returned)
        worker.errored.connect(lambda exc: show_error(f"Suggest: {exc}"))
        worker.finished.connect(on_finished)
        self.suggest_worker = worker
        worker.start()
        return worker

    def next_suggestion(self) -> None:
        """Centre the view on the next suggested curve not labelled yet."""
        from napari.utils.notifications import show_info

        with report_errors("Next suggestion"):
            if self.session.next_suggestion() is None:
                show_info("no suggested curve left to label: Suggest proposes more")
            self._bind_keys()

    # --- files ----------------------------------------------------------------------------------
    def confirm(self, message: str) -> bool:
        """Ask the user (before labels not exported or a file are replaced); True for yes."""
        if self._confirm is not None:
            return bool(self._confirm(message))
        return ask_yes_no(self.native, "Labels", message)

    def clear_labels(self) -> None:
        """Remove the labels of the current series (asks first when they were not exported)."""
        with report_errors("Clear labels"):
            self.session.clear_labels(confirm=self.confirm)

    def import_labels(self, path: str | Path) -> None:
        """Replace the labels by those of a CSV file (asks first when they were not exported)."""
        with report_errors(f"Import {Path(path).name}"):
            self.session.import_labels(path, confirm=self.confirm)
            self._bind_keys()

    def export_labels(self, path: str | Path) -> Path | None:
        """Write the labels as a ``dataset,index,label`` CSV file; return it (None if not written).

        An existing file is replaced only when ``confirm`` says yes; an input (a series' source,
        an imported labels file, the model file) never is.
        """
        return export_file(
            f"Export {Path(path).name}", path, self.session.export_labels,
            self.session.check_output, self.confirm,
        )  # fmt: skip

    def _ask_import(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native, "Import labels", "", "Labels (*.csv);;All files (*)"
        )
        if path:
            self.import_labels(path)

    def _ask_export(self) -> None:
        path = ask_save_path(self.native, "Export labels", "labels.csv", "Labels (*.csv)")
        if path:
            self.export_labels(path)


def _modifier_names(event: Any) -> set[str]:
    return {getattr(m, "name", str(m)) for m in getattr(event, "modifiers", ())}
