"""Keras's vocabulary (``jaxlstm._src.vocabulary``): the one parser of the ``keras_version`` a file
carries, and every default decided by it, against what each Keras release does."""

import pytest

from jaxlstm._src import vocabulary as v

# (version as written, major, tf.keras wrote it, GRU reset_after default, recurrent activation
# default, what a config's "hard_sigmoid" means)
VERSIONS = [
    ("1", 1, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),  # Keras 1 writes none
    ("1.2.2", 1, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("2.0.8", 2, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("2.2.4", 2, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("2.2.4-tf", 2, True, True, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("2.3.1", 2, False, True, "sigmoid", "hard_sigmoid_keras2"),
    ("2.4.0", 2, True, True, "sigmoid", "hard_sigmoid_keras2"),
    ("2.21.0", 2, True, True, "sigmoid", "hard_sigmoid_keras2"),
    ("3.0.0", 3, False, True, "sigmoid", "hard_sigmoid"),
    ("3.15.1", 3, False, True, "sigmoid", "hard_sigmoid"),
]


@pytest.mark.parametrize("version,major,tf_keras,reset_after,recurrent,hard", VERSIONS)
def test_each_keras_version_gets_its_own_defaults(
    version, major, tf_keras, reset_after, recurrent, hard
):
    assert v.keras_major(version) == major
    assert v.is_tf_keras(version) is tf_keras
    assert v.carried_state_wins(version) is tf_keras
    assert v.default_reset_after(version) is reset_after
    assert v.default_recurrent_activation(version) == recurrent
    assert v.resolve_activation_name("hard_sigmoid", version) == hard
    assert v.resolve_activation_name("Tanh", version) == "tanh"


def test_versions_are_compared_as_numbers_not_text():
    assert v.keras_version_tuple("2.10.0") > v.keras_version_tuple("2.4.0")
    assert v.keras_version_tuple("2.2.4-tf") == (2, 2, 4)
    assert v.default_recurrent_activation("2.10.0") == "sigmoid"  # not "2.10" < "2.3"


@pytest.mark.parametrize("bad", ["2.4.0; rm -rf /", "x" * 65, "2.4\n0"])
def test_a_version_keras_never_writes_is_refused(bad):
    with pytest.raises(
        v.KerasFileError, match="is not a Keras version number; the file is damaged"
    ):
        v.clean_version(bad, "model.h5")
