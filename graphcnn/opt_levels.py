"""The opt levels, the default and their check, named once for the front door (gc.compile,
gc.optimize), the pass pipeline and the AOT export, none of which need to import another for it."""
from __future__ import annotations

from .errors import InvalidOptionError

DEFAULT_OPT_LEVEL = 2  # the fastest level that is exact for every target
OPT_LEVELS = (0, 1, 2, 3)  # what each runs: graphcnn.passes.pipeline


def check_opt_level(opt_level: object) -> int:
    """`opt_level` if it is one of OPT_LEVELS (an int, not a bool or a string), else an
    InvalidOptionError naming the valid levels."""
    if type(opt_level) is not int or opt_level not in OPT_LEVELS:
        raise InvalidOptionError(f"opt_level must be one of {OPT_LEVELS}, got {opt_level!r}")
    return opt_level
