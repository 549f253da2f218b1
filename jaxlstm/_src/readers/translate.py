"""Which exceptions are a file's fault: the one rule by which jaxlstm reports an error from the
libraries that parse a file as a :class:`~jaxlstm.KerasFileError`.

An exception counts as the file's when the code that raised it parses bytes: h5py (and
libhdf5 under it), zipfile and its decompressors, json, numpy reading an array; or it is an
``OSError`` (I/O) or a ``UnicodeError`` (bytes that do not decode); never a ``MemoryError``
or ``RecursionError``. Anything raised by
jaxlstm's own code, by Flax or JAX, or by any other dependency is a bug, not damage, and
surfaces as itself: where our code reads a value from a file, it checks the value and raises
``KerasFileError`` itself.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from jaxlstm._src.errors import JaxLSTMError, KerasFileError

# Top-level modules whose code parses a file's bytes.
PARSERS = frozenset({"h5py", "zipfile", "zlib", "lzma", "_compression", "json", "numpy"})
_FILE_ERRORS = (OSError, EOFError, UnicodeError, zipfile.BadZipFile)
# Ours, or not the file's: deep nesting is reported by read_keras_file, memory is the machine's.
_NEVER = (JaxLSTMError, MemoryError, RecursionError)


def raised_by_parser(err: BaseException) -> bool:
    """Whether ``err`` is a parsing library's report on the file (see the module docstring)."""
    if not isinstance(err, Exception) or isinstance(err, _NEVER):
        return False
    if isinstance(err, _FILE_ERRORS):
        return True
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in PARSERS


@contextmanager
def parse_errors(message: Callable[[Exception], str]) -> Iterator[None]:
    """Inside the block, a parsing library's error becomes ``KerasFileError(message(err))``;
    jaxlstm's own errors and every other exception pass through unchanged."""
    try:
        yield
    except Exception as err:
        if not raised_by_parser(err):
            raise
        raise KerasFileError(message(err)) from None
