"""A matplotlib canvas for docks whose colours follow the napari theme, and shared dock helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import napari

# what a user can cause: bad files, wrong rows, one class only... shown, never raised
USER_ERRORS = (ValueError, OSError, KeyError)

# a yes/no question to the user: the docks take one (tests answer it), else they ask with a dialog
Confirm = Callable[[str], bool]


@contextlib.contextmanager
def report_errors(action: str) -> Iterator[None]:
    """Show errors a user can cause inside the block as a napari error notification."""
    from napari.utils.notifications import show_error

    try:
        yield
    except USER_ERRORS as exc:
        show_error(f"{action}: {exc}")


def report_worker_error(action: str) -> Callable[[Exception], None]:
    """Return a worker's ``errored`` handler: a user's error as "action: ...", else named as a failure."""

    def report(exc: Exception) -> None:
        from napari.utils.notifications import show_error

        if isinstance(exc, USER_ERRORS):
            show_error(f"{action}: {exc}")
        else:
            show_error(f"{action} failed: {type(exc).__name__}: {exc}")

    return report


def ask_yes_no(parent: Any, title: str, message: str) -> bool:
    """Ask ``message`` in a modal Yes/No dialog; True for Yes."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, title, message)
    return answer == QMessageBox.StandardButton.Yes


def ask_save_path(parent: Any, caption: str, default_name: str, file_filter: str) -> str:
    """Return the path chosen in a Save dialog ("" when cancelled).

    The dialog does not ask about an existing file itself: the dock's export does, after
    refusing the files it must never replace (see ``export_file``).
    """
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(
        parent, caption, default_name, file_filter,
        options=QFileDialog.Option.DontConfirmOverwrite,
    )  # fmt: skip
    return path


def export_file(
    action: str,
    path: str | Path,
    write: Callable[..., Any],
    check: Callable[..., Path],
    confirm: Confirm,
) -> Path | None:
    """Write ``path`` with ``write(path, overwrite=...)`` for a dock; return what was written.

    ``check(path, overwrite=True)`` refuses what is never replaced (an input of the session, a
    folder); an existing file is replaced only when ``confirm`` says yes. A refusal or a
    failure is one error notification naming the file; a declined replacement writes nothing.
    """
    from napari.utils.notifications import show_info

    with report_errors(action):
        out = check(path, overwrite=True)
        overwrite = out.exists()
        if overwrite and not confirm(f"{out} exists. Replace it?"):
            show_info(f"kept {out}: nothing written")
            return None
        written = write(out, overwrite=overwrite)
        show_info(f"wrote {written}")
        return Path(written)
    return None


class ThemedPlot:
    """A matplotlib figure with one axes in a Qt canvas, coloured like the viewer's theme."""

    def __init__(self, viewer: napari.viewer.Viewer, height_inches: float = 2.4) -> None:
        self.viewer = viewer
        self.figure = Figure(figsize=(4.0, height_inches), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(72 * height_inches))
        self.axes = self.figure.add_subplot()
        self.apply_theme()
        viewer.events.theme.connect(self._on_theme)

    @property
    def native(self) -> FigureCanvasQTAgg:
        """The Qt widget to put in a dock."""
        return self.canvas

    def colors(self) -> dict[str, str]:
        """Return background, foreground (text, axes) and accent colours of the current theme."""
        from napari.utils.theme import get_theme

        theme = get_theme(self.viewer.theme)
        return {
            "background": _hex(theme.background),
            "foreground": _hex(theme.text),
            "accent": _hex(theme.highlight),
            "grid": _hex(theme.primary),
        }

    def apply_theme(self) -> None:
        """Recolour figure, axes, ticks and labels after a theme change."""
        colors = self.colors()
        self.figure.set_facecolor(colors["background"])
        ax = self.axes
        ax.set_facecolor(colors["background"])
        for spine in ax.spines.values():
            spine.set_color(colors["foreground"])
        ax.tick_params(colors=colors["foreground"], labelsize=8)
        ax.xaxis.label.set_color(colors["foreground"])
        ax.yaxis.label.set_color(colors["foreground"])
        ax.title.set_color(colors["foreground"])
        self.canvas.draw_idle()

    def _on_theme(self, event: Any = None) -> None:
        self.apply_theme()

    def clear(self) -> None:
        """Empty the axes, keeping the theme colours."""
        self.axes.clear()
        self.apply_theme()

    def draw(self) -> None:
        """Redraw when Qt is next idle."""
        self.canvas.draw_idle()


def _hex(color: Any) -> str:
    as_hex = getattr(color, "as_hex", None)
    return as_hex() if callable(as_hex) else str(color)
