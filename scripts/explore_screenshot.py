"""Screenshot of the Encoder and Explore docks on the Fe sample (docs/images/explore.png).

Run under a display: ``xvfb-run -a python scripts/explore_screenshot.py [OUT.png]``.
"""

import sys
import time

import napari
from qtpy.QtWidgets import QApplication

from napari_xrdphase._widgets._encoder_dock import EncoderDock
from napari_xrdphase._widgets._explore_dock import ExploreDock

viewer = napari.Viewer(show=True)
viewer.window.resize(1500, 900)
viewer.open_sample("napari-xrdphase", "fe_compression")
enc = EncoderDock(viewer)
viewer.window.add_dock_widget(enc, name="Encoder")
dock = ExploreDock(viewer)
viewer.window.add_dock_widget(dock, name="Explore")
worker = dock.compute()
t = time.time()
while time.time() - t < 90:
    QApplication.processEvents()
    time.sleep(0.05)
    if worker is not None and not worker.is_running and time.time() - t > 2:
        break
for _ in range(20):
    QApplication.processEvents()
    time.sleep(0.05)
viewer.screenshot(
    sys.argv[1] if len(sys.argv) > 1 else "docs/images/explore.png", canvas_only=False, flash=False
)
viewer.close()
