"""Array ownership for streaming state that may be a row of a larger array."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

__all__ = ["own"]

ArrayT = TypeVar("ArrayT", bound=np.ndarray[Any, Any])


def own(a: ArrayT) -> ArrayT:
    """``a``, or a copy of it if it is a view into a larger array (streams analysed together
    keep rows of shared arrays; a copy lets the shared array go)."""
    return a if a.base is None else a.copy()
