"""Safety limits for reading files from untrusted sources, and the byte budget that enforces them.

A Keras file is data: its arrays are at most about as large as the file (Keras stores them
uncompressed). A file that declares much more than it holds (an archive member that inflates
1000x, an HDF5 dataset with a huge shape and no data written, the same dataset hard-linked a
thousand times) is refused before anything is inflated or allocated:

* an archive member may inflate to at most ``max(64 MiB, 50 x archive size)`` bytes, checked on
  its declared size before reading and again, chunk by chunk, while inflating;
* the arrays read from one file may total at most ``max(64 MiB, 50 x file size)`` bytes,
  checked on each dataset's declared shape and dtype before it is read;
* one array may hold at most :data:`MAX_ARRAY_BYTES` (2 GiB) and have at most
  :data:`MAX_ARRAY_RANK` axes;
* models may nest at most :data:`MAX_MODEL_DEPTH` deep; an archive may list at most
  :data:`MAX_ARCHIVE_MEMBERS` members.

The constants are module attributes; raise them (``jaxlstm._src.readers.limits.MAX_ARRAY_BYTES =
...``) for a trusted file that legitimately exceeds them.
"""

from __future__ import annotations

import os

from jaxlstm._src.errors import UnsafeFileError

MiB = 1 << 20
GiB = 1 << 30

MIN_BUDGET_BYTES = 64 * MiB
EXPANSION_RATIO = 50
MAX_ARRAY_BYTES = 2 * GiB
MAX_ARRAY_RANK = 8
MAX_MODEL_DEPTH = 32
MAX_ARCHIVE_MEMBERS = 10_000


def budget_bytes(file_size: int) -> int:
    """What a file of ``file_size`` bytes may inflate to: ``max(64 MiB, 50 x file_size)``."""
    return max(MIN_BUDGET_BYTES, EXPANSION_RATIO * int(file_size))


def human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


class Budget:
    """The bytes still allowed to be read (inflated, allocated) from one file."""

    def __init__(self, path: str, file_size: int | None = None):
        self.path = path
        if file_size is None:
            file_size = os.path.getsize(path)
        self.file_size = int(file_size)
        self.limit = budget_bytes(self.file_size)
        self.used = 0

    def take(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be read for ``what``, or refuse."""
        if nbytes > MAX_ARRAY_BYTES:
            raise UnsafeFileError(
                f"{self.path}: {what} declares {human(nbytes)} ({nbytes} bytes), over the "
                f"{human(MAX_ARRAY_BYTES)} limit for one array; refusing to read it (the file is "
                "damaged or hostile)."
            )
        if self.used + nbytes > self.limit:
            raise UnsafeFileError(
                f"{self.path}: {what} declares {human(nbytes)} ({nbytes} bytes); with the "
                f"{human(self.used)} already read that exceeds what a {human(self.file_size)} "
                f"file may hold ({human(self.limit)} = max(64 MiB, {EXPANSION_RATIO}x the file "
                "size)); refusing to read it (the file is damaged or hostile)."
            )
        self.used += nbytes
