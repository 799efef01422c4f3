"""Keywords of the public API that were renamed: the old name still works, with a ``DeprecationWarning``.

The one rule for a renamed keyword, so every function treats it alike: the old name's value is used and warned
about; giving both names is a :class:`~deepfake_detect.core.exceptions.ConfigError`.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     renamed_keyword("explain_dir", "out/", "explain", None)
'out/'
>>> str(caught[0].message)
'explain_dir= is deprecated and will be removed: use explain= (the same value)'
>>> renamed_keyword("explain_dir", None, "explain", "cams/")  # the new name alone: no warning
'cams/'
"""

from __future__ import annotations

import warnings
from typing import Any

from deepfake_detect.core.exceptions import ConfigError

__all__ = ["renamed_keyword"]


def renamed_keyword(
    old: str, old_value: Any, new: str, new_value: Any, *, default: Any = None, stacklevel: int = 2
) -> Any:
    """The value of keyword ``new``, given under its deprecated name ``old`` or under its own.

    Parameters
    ----------
    old, new : str
        The keyword's old and new names.
    old_value : object
        What the caller passed as ``old``; None: not given.
    new_value : object
        What the caller passed as ``new``.
    default : object
        ``new``'s default: a ``new_value`` equal to it counts as not given.
    stacklevel : int
        Where the warning points, counted from the caller as :func:`warnings.warn` counts it: 2 for the caller's
        caller, the user's line when the caller is the function the user called.

    Returns
    -------
    object
        ``old_value`` when it was given (with a ``DeprecationWarning``), else ``new_value``.

    Raises
    ------
    ConfigError
        When both were given, with different values.
    """
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise ConfigError(f"give {new}= only: {old}= is its deprecated old name")
    warnings.warn(
        f"{old}= is deprecated and will be removed: use {new}= (the same value)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    return old_value
