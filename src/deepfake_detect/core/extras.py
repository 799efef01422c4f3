"""Optional dependencies (the package's extras), imported only by the features that need them.

Ray and MLflow are heavy and most users never need them: ``pip install 'deepfake-detect[ray]'`` and
``[mlflow]`` add them. A feature asks for its module through :func:`import_extra`, so a missing extra is one
line that says what to install, not an ``ImportError`` traceback.

Examples
--------
>>> import_extra("json", "ray", "a doctest").__name__
'json'
>>> import_extra("no_such_module_here", "ray", "scan --ray")
Traceback (most recent call last):
...
deepfake_detect.core.exceptions.MissingExtraError: scan --ray needs the optional 'ray' dependencies: pip install 'deepfake-detect[ray]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from deepfake_detect.core.exceptions import MissingExtraError

__all__ = ["EXTRAS", "import_extra"]

# Each extra's name in pyproject.toml and what it provides.
EXTRAS = {
    "ray": "Ray Data batch scanning (includes parquet's pyarrow)",
    "parquet": "Parquet output of a local scan (pyarrow)",
    "mlflow": "MLflow experiment tracking",
}


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, which the optional ``extra`` provides, for ``feature``.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"ray"`` or ``"pyarrow.parquet"``.
    extra : str
        The extra that installs it: a key of :data:`EXTRAS`.
    feature : str
        What the user asked for, as they asked for it (``"scan --ray"``, ``"tracking=mlflow"``).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        When the module cannot be imported, with the one line that says what to install.

    Examples
    --------
    >>> import_extra("json", "mlflow", "a doctest").dumps([1])
    '[1]'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{feature} needs the optional '{extra}' dependencies: pip install 'deepfake-detect[{extra}]'"
        ) from None
