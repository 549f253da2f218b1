"""``jaxlstm finetune --config FILE``: a fine-tuning run described in YAML (see ``configs/``).

The config is plain data checked against the keys and values below; a bad one fails before any
work with an error naming the key and the allowed values."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from jaxlstm._src.errors import JaxLSTMError


class ConfigError(JaxLSTMError, ValueError):
    """A fine-tuning config with a missing, unknown or invalid key."""


OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential")
TOP_KEYS = {
    "model",
    "data",
    "train_layers",
    "optimizer",
    "loss",
    "metrics",
    "epochs",
    "batch_size",
    "seed",
    "devices",
    "output",
}
DATA_KEYS = {"series", "window", "scale", "train", "val"}
OPT_KEYS = {"name", "learning_rate", "schedule", "clip_norm"}
OUT_KEYS = {"dir", "model", "checkpoints", "metrics", "plot"}


def resolve_path(value: str, base: Path) -> Path:
    """``package:NAME`` is a file shipped in ``jaxlstm/data``; other paths are relative to the
    config file's folder."""
    if value.startswith("package:"):
        return Path(str(resources.files("jaxlstm") / "data" / value.removeprefix("package:")))
    path = Path(value)
    return path if path.is_absolute() else base / path


def _need(cfg: dict, key: str, kind, where: str, choices=None):
    if key not in cfg:
        raise ConfigError(f"{where}: missing key {key!r}.")
    value = cfg[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(
            f"{where}: {key!r} is {value!r}; expected {getattr(kind, '__name__', kind)}."
        )
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: {key!r} is {value!r}; allowed values: {list(choices)}.")
    return value


def _unknown(cfg: dict, allowed: set, where: str):
    extra = sorted(set(cfg) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; allowed keys: {sorted(allowed)}.")


def load_config(path: str | os.PathLike) -> dict:
    """Parse and validate a fine-tuning YAML config; returns it with defaults filled in."""
    import yaml

    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the config ({err}).") from None
    where = str(path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, found {type(cfg).__name__}.")
    _unknown(cfg, TOP_KEYS, where)
    _need(cfg, "model", str, where)
    data = _need(cfg, "data", dict, where)
    _unknown(data, DATA_KEYS, f"{where}: data")
    _need(data, "series", str, f"{where}: data")
    if _need(data, "window", int, f"{where}: data") < 1:
        raise ConfigError(f"{where}: data: 'window' must be at least 1.")
    for split in ("train", "val"):
        rng = data.get(split)
        if split == "train" or rng is not None:
            if not (
                isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int) for v in rng)
            ):
                raise ConfigError(f"{where}: data: {split!r} is {rng!r}; expected [start, stop].")
    opt = cfg.setdefault("optimizer", {"name": "adam", "learning_rate": 1e-3})
    _unknown(opt, OPT_KEYS, f"{where}: optimizer")
    _need(opt, "name", str, f"{where}: optimizer", OPTIMIZERS)
    opt.setdefault("schedule", "constant")
    _need(opt, "schedule", str, f"{where}: optimizer", SCHEDULES)
    for key, default in (("epochs", 10), ("batch_size", 32), ("seed", 0), ("devices", 1)):
        cfg.setdefault(key, default)
        if _need(cfg, key, int, where) < (0 if key == "seed" else 1):
            raise ConfigError(f"{where}: {key!r} must be positive.")
    out = cfg.setdefault("output", {})
    _unknown(out, OUT_KEYS, f"{where}: output")
    cfg["_base"] = str(path.parent)
    return cfg


def read_series(path: Path) -> np.ndarray:
    """The last column of a CSV with a header line; ``#`` lines are comments."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("#")]
        return np.array([float(ln.rsplit(",", 1)[-1]) for ln in lines[1:]])
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the series ({err}).") from None


def series_windows(series: np.ndarray, window: int, start: int, stop: int):
    part = series[start:stop]
    if len(part) <= window:
        raise ConfigError(f"data range [{start}, {stop}] is not longer than window={window}.")
    x = np.stack([part[i : i + window] for i in range(len(part) - window)])[..., None]
    return x.astype("float32"), part[window:, None].astype("float32")


def _optimizer(opt: dict, total_steps: int):
    import optax

    lr = float(opt.get("learning_rate", 1e-3))
    schedule = {
        "constant": lambda: lr,
        "cosine": lambda: optax.cosine_decay_schedule(lr, max(total_steps, 1)),
        "exponential": lambda: optax.exponential_decay(lr, max(total_steps, 1), 0.1),
    }[opt["schedule"]]()
    return {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}[
        opt["name"]
    ](schedule)


def run_finetune(config_path, out_dir=None, epochs=None, print_fn=print) -> dict:
    """Run a config: load, measure, fine-tune, measure again, write model/checkpoints/log/plot."""
    import jax

    from jaxlstm._src.models.graph import load_keras
    from jaxlstm._src.save import save_keras
    from jaxlstm._src.train.fit import Data, evaluate, fit

    cfg = load_config(config_path)
    base = Path(cfg["_base"])
    if epochs is not None:
        cfg["epochs"] = epochs
    data = cfg["data"]
    raw = read_series(resolve_path(data["series"], base))
    series = (raw / float(data.get("scale", 1.0))).astype("float32")
    train = Data(*series_windows(series, data["window"], *data["train"]))
    val = Data(*series_windows(series, data["window"], *data["val"])) if data.get("val") else None
    model = load_keras(resolve_path(cfg["model"], base))
    if cfg.get("train_layers"):
        unknown = sorted(set(cfg["train_layers"]) - set(model.layers))
        if unknown:
            raise ConfigError(
                f"{config_path}: train_layers names {unknown}, which the model does "
                f"not have; its layers: {sorted(model.layers)}."
            )
    freeze = [n for n in model.layers if cfg.get("train_layers") and n not in cfg["train_layers"]]
    out = Path(out_dir or resolve_path(cfg["output"].get("dir", "runs/finetune"), Path.cwd()))
    out.mkdir(parents=True, exist_ok=True)
    metrics = cfg.get("metrics", [])
    check = val or train
    before = evaluate(model, check, loss=cfg.get("loss", "mse"), metrics=metrics)
    mesh = None
    if cfg["devices"] > 1:
        if len(jax.devices()) < cfg["devices"]:
            raise ConfigError(
                f"{config_path}: devices={cfg['devices']} but only "
                f"{len(jax.devices())} are present."
            )
        mesh = jax.sharding.Mesh(np.array(jax.devices()[: cfg["devices"]]), ("data",))
    steps = cfg["epochs"] * max(len(train) // cfg["batch_size"], 1)
    history = fit(
        model,
        train,
        val,
        loss=cfg.get("loss", "mse"),
        metrics=metrics,
        optimizer=_optimizer(cfg["optimizer"], steps),
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
        freeze=freeze,
        clip_norm=cfg["optimizer"].get("clip_norm"),
        mesh=mesh,
        log_path=out / cfg["output"].get("metrics", "metrics.jsonl"),
        checkpoint_dir=out / cfg["output"].get("checkpoints", "checkpoints"),
    )
    after = evaluate(model, check, loss=cfg.get("loss", "mse"), metrics=metrics)
    model_path = out / cfg["output"].get("model", "finetuned.keras")
    save_keras(model, model_path)
    plot_path = out / cfg["output"].get("plot", "loss.png")
    _plot(history, plot_path)
    scale = float(data.get("scale", 1.0))
    print_fn(
        f"{'validation' if val else 'training'} loss: {before['loss']:.6f} before, "
        f"{after['loss']:.6f} after fine-tuning (RMSE {np.sqrt(before['loss']) * scale:.1f} -> "
        f"{np.sqrt(after['loss']) * scale:.1f} in the series' units)"
    )
    print_fn(
        f"wrote {model_path}, {plot_path}, {out / cfg['output'].get('metrics', 'metrics.jsonl')}"
    )
    return {
        "before": before,
        "after": after,
        "history": history,
        "model_path": model_path,
        "plot_path": plot_path,
    }


def _plot(history, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = history.column("epoch")
    ax.plot(epochs, history.column("loss"), label="train loss")
    if history.column("val_loss"):
        ax.plot(epochs, history.column("val_loss"), label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
