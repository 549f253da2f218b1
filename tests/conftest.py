import ctypes
import gc
import os
import sys

# Keras 3 (a test tool only) runs on the JAX backend, so the live parity tests need no TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import pytest
from hypothesis import settings

# Hypothesis: the default run draws the same cases every time (a red CI is the change's doing);
# the slow tier (-m slow) explores new random cases on every run. HYPOTHESIS_PROFILE picks one.
settings.register_profile("default", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None)


def pytest_configure(config):
    markexpr = config.getoption("markexpr", "") or ""
    slow_tier = "slow" in markexpr and "not slow" not in markexpr
    settings.load_profile(
        os.environ.get("HYPOTHESIS_PROFILE", "explore" if slow_tier else "default")
    )


# Parity is checked at full float32 matmul precision, for Keras and for us alike.
jax.config.update("jax_default_matmul_precision", "highest")

try:  # glibc: hand freed heap pages back to the system
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


@pytest.fixture(autouse=True, scope="module")
def _release_memory_after_each_module():
    """One process runs every test file: compiled programs and Keras's global state from one
    file are dropped before the next, so the suite's peak memory is that of its largest file,
    not the sum of them all."""
    yield
    jax.clear_caches()
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
