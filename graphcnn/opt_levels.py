"""The default opt level, named once for the front door (gc.compile, gc.optimize), the pass
pipeline and the AOT export, none of which need to import another for it."""
from __future__ import annotations

DEFAULT_OPT_LEVEL = 2  # the fastest level that is exact for every target
