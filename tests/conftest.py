import os

# Keras 3 (a test tool only) runs on the JAX backend, so the live parity tests need no TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax

# Parity is checked at full float32 matmul precision, for Keras and for us alike.
jax.config.update("jax_default_matmul_precision", "highest")
