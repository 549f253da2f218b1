"""`jaxlstm finetune` on the shipped config, end to end, and config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxlstm._src.cli import main
from jaxlstm._src.train.config import ConfigError, load_config, run_finetune

CONFIG = Path(__file__).parent.parent / "configs" / "airline_finetune.yaml"


def test_shipped_config_runs_end_to_end(tmp_path):
    result = run_finetune(CONFIG, tmp_path, epochs=4, print_fn=lambda *a: None)
    assert result["after"]["loss"] < result["before"]["loss"]
    for name in ("airline_finetuned.keras", "loss.png", "metrics.jsonl", "checkpoints"):
        assert (tmp_path / name).exists(), name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and "val_mae" in rows[-1]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    keras = pytest.importorskip("keras")
    import jaxlstm

    tuned = jaxlstm.load_keras(tmp_path / "airline_finetuned.keras")
    x = np.linspace(0.2, 0.8, 24, dtype="float32").reshape(2, 12, 1)
    back = keras.saving.load_model(tmp_path / "airline_finetuned.keras", compile=False)
    np.testing.assert_allclose(np.asarray(back(x, training=False)), np.asarray(tuned(x)), atol=1e-5)


@pytest.mark.parametrize(
    "edit,match",
    [
        (
            lambda c: c["optimizer"].update(name="adagrad"),
            r"'name' is 'adagrad'; allowed values: \['adam'",
        ),
        (lambda c: c.update(colour="red"), r"unknown key\(s\) \['colour'\]; allowed keys"),
        (lambda c: c.pop("model"), "missing key 'model'"),
        (lambda c: c["data"].update(train=[1]), r"'train' is \[1\]; expected \[start, stop\]"),
        (lambda c: c.update(epochs=0), "'epochs' must be positive"),
        (
            lambda c: c["optimizer"].update(schedule="linear"),
            r"'schedule' is 'linear'; allowed values",
        ),
    ],
)
def test_bad_configs_name_the_key(tmp_path, edit, match):
    import yaml

    cfg = yaml.safe_load(CONFIG.read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_cli_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: x.keras\n")
    assert main(["finetune", "--config", str(path)]) == 2
    assert "missing key 'data'" in capsys.readouterr().err
