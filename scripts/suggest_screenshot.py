"""Screenshot of suggested curves on the Fe sample (docs/images/suggest.png).

The Labels and Classify docks; a few curves labelled from the simulator's ground truth,
classified (phase, confidence and novelty strips), then ``xrd.suggest(n=5)``: the yellow
stars numbered 1–5 left of the labelled curves' dots. Run under a display:
``xvfb-run -a python scripts/suggest_screenshot.py [OUT.png]`` (an existing file is kept).
"""

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_xrdphase._files import check_output_path
from napari_xrdphase._widgets._classify_dock import ClassifyDock
from napari_xrdphase._widgets._labels_dock import LabelsDock
from napari_xrdphase._widgets._session import get_session
from napari_xrdphase.cli import _close_notifications

out = check_output_path(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/suggest.png"))
viewer = napari.Viewer(show=True)
viewer.window.resize(1700, 1000)
viewer.open_sample("napari-xrdphase", "fe_compression")
session = get_session(viewer)
viewer.window.add_dock_widget(LabelsDock(viewer), name="Labels")
viewer.window.add_dock_widget(ClassifyDock(viewer), name="Classify")
# a sparse start: two curves per phase, so that the suggestions have something to fix
session.apply_ground_truth(0.03, seed=1)
session.classify()
found = session.suggest(n=5, seed=0)
for rank, s in enumerate(found, start=1):
    print(f"{rank}: {s}", file=sys.stderr)
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
_close_notifications(viewer)
viewer.reset_view()
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
viewer.screenshot(str(out), canvas_only=False, flash=False)
print(f"wrote {out}", file=sys.stderr)
viewer.close()
