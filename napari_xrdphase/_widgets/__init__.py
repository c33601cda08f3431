"""napari docks and the console session object (the only Qt code of the package)."""

from ._session import XRDSession, get_session

__all__ = ["XRDSession", "get_session"]
