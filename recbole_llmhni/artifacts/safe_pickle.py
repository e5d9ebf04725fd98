"""Load RLMRec-style pickles without letting them run code.

A pickle can name any importable callable and have it called while loading, so a pickle
from the internet is a program. RLMRec's data files only need a handful of numpy / scipy
classes (sparse matrices, arrays, dtypes) and plain containers, so :func:`safe_load` admits
exactly those and refuses everything else with an error that names the file and the class.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Union

__all__ = ["UnsafePickleError", "safe_load", "ALLOWED_GLOBALS"]

# (module, name) pairs a RLMRec pickle may reference. numpy moved ``numpy.core`` to
# ``numpy._core`` in 2.0; pickles written by either spelling are admitted.
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
ALLOWED_GLOBALS: frozenset = frozenset(
    [(m, "_reconstruct") for m in _NUMPY_CORE]
    + [(m, "scalar") for m in _NUMPY_CORE]
    + [(m, "_frombuffer") for m in _NUMPY_NUMERIC]
    + [
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
    ]
    + [
        (module, cls)
        for cls in ("coo_matrix", "csr_matrix", "csc_matrix", "dok_matrix", "lil_matrix")
        for module in (
            "scipy.sparse",
            f"scipy.sparse.{cls.split('_')[0]}",
            f"scipy.sparse._{cls.split('_')[0]}",
        )
    ]
    + [
        (module, cls)
        for cls in ("coo_array", "csr_array", "csc_array")
        for module in ("scipy.sparse", f"scipy.sparse._{cls.split('_')[0]}")
    ]
    # numpy scalar/dtype classes referenced by dtype pickles in numpy >= 1.25
    + [("numpy.dtypes", f"{k}DType") for k in ("Float64", "Float32", "Int64", "Int32", "Bool", "Str", "Object")]
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a class or function that is not on the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._source}: refuses to load '{module}.{name}'. Only numpy arrays, scipy "
                "sparse matrices and plain containers are allowed in RLMRec data files. If you "
                "trust this file, convert it yourself to .npy / .npz and pass that instead."
            )
        return super().find_class(module, name)


def safe_load(path: Union[str, Path]) -> Any:
    """Unpickle ``path`` admitting only :data:`ALLOWED_GLOBALS`.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the pickle names a class or callable outside the allow-list.
        pickle.UnpicklingError: the file is not a readable pickle (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open("rb") as fh:
        try:
            return _RestrictedUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated, wrong format, ...
            raise pickle.UnpicklingError(
                f"{path}: not a readable pickle ({type(exc).__name__}: {exc}). "
                "Check that the file is complete and in RLMRec's format."
            ) from None
