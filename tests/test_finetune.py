"""`jaxlstm finetune` on the shipped configs, end to end; configs validated whole before any
work; shipped configs found by name; resume only when asked; more kinds of data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxlstm._src.cli import main
from jaxlstm._src.train.config import ConfigError, find_config, load_config, shipped_configs
from jaxlstm._src.train.run import run_finetune
from jaxlstm.train import CheckpointError

ROOT = Path(__file__).parent.parent
AIRLINE = find_config("airline_finetune")
QUIET = {"print_fn": lambda *a: None, "progress": False}


def test_configs_are_shipped_once_and_found_by_name():
    assert shipped_configs() == ["airline_finetune", "text_classifier_finetune"]
    # one copy of each YAML, at the top level where users look (the wheel maps it into the
    # package as jaxlstm/configs: test_package checks the wheel)
    assert AIRLINE == ROOT / "configs" / "airline_finetune.yaml"
    assert find_config("airline_finetune.yaml") == AIRLINE
    assert not (ROOT / "jaxlstm" / "configs").exists()
    assert not list((ROOT / "jaxlstm" / "data").glob("*.yaml"))
    with pytest.raises(
        ConfigError,
        match=r"'nope' is neither a file nor a config shipped.*"
        r"\['airline_finetune', 'text_classifier_finetune'\]",
    ):
        find_config("nope")


def test_shipped_airline_config_runs_keeps_its_best_epoch_and_round_trips(tmp_path):
    result = run_finetune("airline_finetune", tmp_path, epochs=6, **QUIET)
    history = result["history"]
    assert result["after"]["loss"] < result["before"]["loss"]
    assert history.restored_best
    assert result["after"]["loss"] == pytest.approx(min(history.column("val_loss")), rel=1e-5)
    for name in ("airline_finetuned.keras", "loss.png", "metrics.jsonl", "checkpoints"):
        assert (tmp_path / name).exists(), name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and "val_mae" in rows[-1] and "learning_rate" in rows[-1]
    assert rows[-1]["learning_rate"] < rows[0]["learning_rate"]  # the cosine schedule, logged
    keras = pytest.importorskip("keras")
    import jaxlstm

    tuned = jaxlstm.load_keras(tmp_path / "airline_finetuned.keras")
    x = np.linspace(0.2, 0.8, 24, dtype="float32").reshape(2, 12, 1)
    back = keras.saving.load_model(tmp_path / "airline_finetuned.keras", compile=False)
    np.testing.assert_allclose(np.asarray(back(x, training=False)), np.asarray(tuned(x)), atol=1e-5)


def test_shipped_text_classifier_config_improves_with_losses_from_the_file(tmp_path):
    result = run_finetune("text_classifier_finetune", tmp_path, epochs=4, **QUIET)
    assert set(result["before"]) == {"loss", "accuracy"}  # from the file's compile_config
    assert result["after"]["accuracy"] > result["before"]["accuracy"]
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,loss,accuracy,val_loss")


def test_resume_is_refused_without_the_flag_and_continues_with_it(tmp_path, capsys):
    cfg = yaml.safe_load(AIRLINE.read_text())
    cfg["model"] = str(ROOT / "jaxlstm" / "data" / "airline_forecaster.keras")
    cfg["data"]["series"] = str(ROOT / "jaxlstm" / "data" / "airline_passengers.csv")
    cfg["optimizer"]["decay_epochs"] = 3  # the cosine horizon, fixed across the resume
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    run_finetune(config, out, epochs=2, **QUIET)
    args = ["finetune", "--config", str(config), "--out", str(out), "--epochs", "3"]
    assert main(args) == 2
    assert "pass resume=True (jaxlstm finetune --resume)" in capsys.readouterr().err
    result = run_finetune(config, out, epochs=3, resume=True, **QUIET)
    assert [r["epoch"] for r in result["history"].epochs] == [1, 2, 3]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    with pytest.raises(CheckpointError, match=r"written for optimizer_config=.*'decay_epochs': 3"):
        run_finetune(AIRLINE, out, epochs=5, resume=True, **QUIET)  # another cosine horizon


def _edited(tmp_path, edit) -> Path:
    cfg = yaml.safe_load(AIRLINE.read_text())
    cfg["model"] = str(ROOT / "jaxlstm" / "data" / "airline_forecaster.keras")
    cfg["data"]["series"] = str(ROOT / "jaxlstm" / "data" / "airline_passengers.csv")
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "edit,match",
    [
        (
            lambda c: c["optimizer"].update(name="adagrad"),
            r"optimizer\.name: 'adagrad' is not allowed: Input should be 'adam', 'adamw', 'sgd' or",
        ),
        (
            lambda c: c.update(colour="red"),
            r"colour: unknown key \(value 'red'\); allowed keys: \['batch_size', 'data', 'devices'",
        ),
        (
            lambda c: c["early_stopping"].update(patiense=3),
            r"early_stopping\.patiense: unknown key \(value 3\); allowed keys: \['min_delta'",
        ),
        (lambda c: c.pop("model"), r"model: missing key"),
        (lambda c: c["data"].update(train=[1]), r"data\.train: \[1\] is not allowed: List should"),
        (lambda c: c.update(epochs=0), r"epochs: 0 is not allowed: Input should be greater than"),
        (lambda c: c["data"].update(kind="images"), r"data: kind is 'images'; allowed kinds"),
        (
            lambda c: c.update(model="missing.keras"),
            r"model: 'missing.keras' \(.*missing.keras\) does not exist",
        ),
    ],
)
def test_bad_configs_name_file_key_value_and_what_is_allowed(tmp_path, edit, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(_edited(tmp_path, edit))
    assert str(tmp_path / "bad.yaml") in str(info.value)


def test_every_error_of_a_config_is_reported_at_once(tmp_path):
    def edit(c):
        c.update(epochs=-1, batch_size="big")
        c["optimizer"]["schedule"] = "linear"

    with pytest.raises(ConfigError) as info:
        load_config(_edited(tmp_path, edit))
    assert all(k in str(info.value) for k in ("epochs:", "batch_size:", "optimizer.schedule:"))


def test_arrays_npy_and_table_data_sources(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12, 1)).astype("float32")
    y = x[:, -1, :] * 0.5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    model = ROOT / "jaxlstm" / "data" / "airline_forecaster.keras"
    base = {
        "model": str(model),
        "loss": "mse",
        "epochs": 1,
        "batch_size": 8,
        "output": {"dir": "out", "plot": None},
    }
    (tmp_path / "npy.yaml").write_text(
        yaml.safe_dump(
            {
                **base,
                "data": {
                    "kind": "arrays",
                    "train": {"inputs": ["x.npy"], "targets": ["y.npy"]},
                    "validation_split": 0.25,
                },
            }
        )
    )
    result = run_finetune(tmp_path / "npy.yaml", **QUIET)
    assert (tmp_path / "out" / "finetuned.keras").exists()  # output relative to the config
    assert len(result["history"].epochs) == 1 and "val_loss" in result["history"].epochs[0]
    rows = ["a,b,target"] + [f"{i / 50},{(i % 7) / 7},{i / 100}" for i in range(60)]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    cfg = {
        **base,
        "data": {
            "kind": "table",
            "train": {"file": "table.csv", "inputs": ["a"], "targets": ["target"], "window": 12},
        },
    }
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(cfg))
    result = run_finetune(tmp_path / "table.yaml", tmp_path / "t", **QUIET)
    assert result["history"].epochs[0]["loss"] > 0
    cfg["data"]["train"]["inputs"] = ["c"]
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(
        ConfigError, match=r"column 'c' is not in .*table.csv; its columns: \['a', 'b', 'target'\]"
    ):
        run_finetune(tmp_path / "table.yaml", tmp_path / "t2", **QUIET)


def test_cli_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: x.keras\n")
    assert main(["finetune", "--config", str(path)]) == 2
    assert "data: missing key" in capsys.readouterr().err
