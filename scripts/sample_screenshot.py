"""Save a screenshot of the Fe sample series in napari (the README's picture).

Run under a display (e.g. ``xvfb-run -a python scripts/sample_screenshot.py``).
"""

import sys

import napari


def main(out: str = "docs/images/sample_fe.png") -> None:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1100, 720)
    viewer.open_sample("napari-xrdphase", "fe_compression")
    viewer.reset_view()
    viewer.scale_bar.visible = False
    viewer.screenshot(out, canvas_only=False, flash=False)
    viewer.close()
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
