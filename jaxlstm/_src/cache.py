"""JAX's persistent compilation cache, as one opt-in call (the ``jaxlstm`` command uses it)."""

from __future__ import annotations

import os


def default_cache_dir() -> str:
    """``$JAXLSTM_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxlstm/xla`` (``~/.cache/jaxlstm/xla``)."""
    if os.environ.get("JAXLSTM_CACHE_DIR"):
        return os.environ["JAXLSTM_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxlstm", "xla")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Keep compiled XLA programs on disk, so that a new process running the same model on the
    same shapes loads its program instead of compiling it again.

    It switches on JAX's persistent compilation cache (``jax_compilation_cache_dir``) for every
    program, however quick to compile (JAX's own default keeps only those that took over a
    second). Entries are keyed by the program, the JAX/jaxlib version, the backend and its
    flags, so a stale entry is never used; delete the folder to reclaim the space. Call it
    before the first compilation of the process.

    Args:
      path: the cache folder (created if missing); default :func:`default_cache_dir`
        (``$JAXLSTM_CACHE_DIR``, else ``~/.cache/jaxlstm/xla``).

    Returns:
      The folder used, as a string.

    Example:
      >>> import jaxlstm
      >>> folder = jaxlstm.enable_compilation_cache()              # doctest: +SKIP
    """
    import jax

    folder = os.fspath(path) if path is not None else default_cache_dir()
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
