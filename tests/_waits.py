"""How long a test waits for a worker, a signal or a subprocess before calling it a hang.

Generous on purpose: a loaded 2-core CI machine may take minutes for what takes seconds on an
idle one, and a test must not fail because the machine is busy; only a real hang should.
"""

HANG_MS = 600_000  # qtbot waits
HANG_S = 600  # subprocess waits
