"""``jaxlstm finetune``: run a validated config (see ``config.py``): read the data, load the
model, measure, fine-tune with ``fit``, measure again, write the model, log and plot."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np

from jaxlstm._src.train.config import (
    SHIPPED,
    ConfigError,
    FinetuneConfig,
    SeriesData,
    TableData,
    load_config,
    resolve_path,
)

# ---- data sources ---------------------------------------------------------------------------


def _csv_columns(path: Path, where: str) -> dict[str, np.ndarray]:
    """The columns of a CSV table with a header line (``#`` lines are comments), by name."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("#")]
        rows = list(csv.reader(lines))
    except OSError as err:
        raise ConfigError(f"{where}: cannot read {path} ({err}).") from None
    if len(rows) < 2:
        raise ConfigError(f"{where}: {path} has no data rows under its header line.")
    header, body = rows[0], rows[1:]
    columns = {}
    for j, name in enumerate(header):
        try:
            columns[name.strip()] = np.array([float(r[j]) for r in body], np.float32)
        except (ValueError, IndexError):
            columns[name.strip()] = None  # not numeric: only an error if it is asked for
    return columns


def _pick(columns: dict, names: list[str], path, where: str) -> np.ndarray:
    for name in names:
        if name not in columns:
            raise ConfigError(
                f"{where}: column {name!r} is not in {path}; its columns: {list(columns)}."
            )
        if columns[name] is None:
            raise ConfigError(f"{where}: column {name!r} of {path} is not numeric.")
    return np.stack([columns[n] for n in names], axis=-1)


def series_windows(series: np.ndarray, window: int, start: int, stop: int, where: str):
    """Windows of ``window`` values ``(n, window, 1)`` and the value after each ``(n, 1)``."""
    part = series[start:stop]
    if len(part) <= window:
        raise ConfigError(
            f"{where}: the range [{start}, {stop}] holds {len(part)} values, not more than "
            f"window={window}; widen the range or shorten the window."
        )
    x = np.stack([part[i : i + window] for i in range(len(part) - window)])
    return x[..., None].astype("float32"), part[window:, None].astype("float32")


def _row_windows(x: np.ndarray, y: np.ndarray, window: int):
    n = len(x) - window
    return np.stack([x[i : i + window] for i in range(n)]), y[window:]


def read_data(cfg: FinetuneConfig, base: Path, where: str):
    """``(train, val, validation_split)``: :class:`Data` s (val may be None) from the config."""
    from jaxlstm._src.train.data import Data

    data = cfg.data
    if isinstance(data, SeriesData):
        path = resolve_path(data.series, base)
        columns = _csv_columns(path, f"{where}: data.series")
        name = data.column or list(columns)[-1]
        series = _pick(columns, [name], path, f"{where}: data.column")[:, 0] / data.scale
        train = Data(*series_windows(series, data.window, *data.train, f"{where}: data.train"))
        val = None
        if data.val is not None:
            val = Data(*series_windows(series, data.window, *data.val, f"{where}: data.val"))
        return train, val, None

    def split(part, key):
        if part is None:
            return None
        if isinstance(data, TableData):
            path = resolve_path(part.file, base)
            columns = _csv_columns(path, f"{where}: {key}.file")
            x = _pick(columns, part.inputs, path, f"{where}: {key}.inputs")
            y = _pick(columns, part.targets, path, f"{where}: {key}.targets")
            if part.window is not None:
                x, y = _row_windows(x, y, part.window)
            return Data(x, y)
        arrays = {}
        if part.file is not None:
            path = resolve_path(part.file, base)
            with np.load(path, allow_pickle=False) as npz:
                for group in ("inputs", "targets"):
                    for k in getattr(part, group):
                        if k not in npz.files:
                            raise ConfigError(
                                f"{where}: {key}.{group}: {k!r} is not an array of {path}; "
                                f"its arrays: {npz.files}."
                            )
                arrays = {k: npz[k] for k in npz.files}

            def get(k):
                if k not in arrays:
                    raise ConfigError(f"{where}: {key}: {k!r} is not an array of {path}.")
                return arrays[k]
        else:

            def get(k):
                return np.load(resolve_path(k, base), allow_pickle=False)

        sw = None if part.sample_weight is None else get(part.sample_weight)
        return Data([get(k) for k in part.inputs], [get(k) for k in part.targets], sw)

    return split(data.train, "data.train"), split(data.val, "data.val"), data.validation_split


def file_compile_config(path: Path) -> dict:
    """``loss`` and ``metrics`` of the model file's own compile config (Keras 3
    ``compile_config``, Keras 2 ``training_config``), when they are names; else ``{}``."""
    raw = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("config.json")
                if info.file_size < 64 << 20:
                    raw = json.loads(zf.read(info)).get("compile_config")
        else:
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get("training_config")
                if text is not None:
                    raw = json.loads(text.decode() if isinstance(text, bytes) else text)
    except (OSError, KeyError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    if isinstance(raw.get("loss"), str):
        out["loss"] = raw["loss"]
    metrics = raw.get("metrics")
    if isinstance(metrics, list) and all(isinstance(m, str) for m in metrics):
        out["metrics"] = metrics
    return out


# ---- the run --------------------------------------------------------------------------------


def _optimizer(opt, total_steps: int):
    import optax

    lr = opt.learning_rate
    steps = max(total_steps, 1)
    schedule = {
        "constant": lambda: lr,
        "cosine": lambda: optax.cosine_decay_schedule(lr, steps),
        "exponential": lambda: optax.exponential_decay(lr, steps, 0.1),
    }[opt.schedule]()
    make = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "rmsprop": optax.rmsprop}
    return optax.inject_hyperparams(make[opt.name])(learning_rate=schedule)


def run_finetune(
    config_path,
    out_dir=None,
    epochs=None,
    *,
    resume: bool = False,
    print_fn=print,
    progress: bool = True,
) -> dict:
    """Run a config (a path or a shipped config's name): load, measure, fine-tune, measure
    again, write the model, checkpoints, log and plot under ``output.dir`` (relative to the
    config) or ``out_dir``. ``resume`` continues the run in the checkpoint folder.

    Over several processes (after ``jaxlstm.train.initialize``) every process runs it with
    the same config and the same files; process 0 alone prints and writes the plot, the log
    and the model; the config's ``devices`` is then replaced by every process's devices."""
    import jax

    from jaxlstm._src.models.graph import load_keras
    from jaxlstm._src.save import save_keras
    from jaxlstm._src.train.distributed import is_multiprocess, is_primary
    from jaxlstm._src.train.fit import evaluate, fit

    if not is_primary():  # over several processes, process 0 alone prints and plots
        print_fn = _quiet
    cfg, base = load_config(config_path)
    where = str(config_path)
    if epochs is not None:
        cfg = cfg.model_copy(update={"epochs": int(epochs)})
    model_path = resolve_path(cfg.model, base)
    defaults = file_compile_config(model_path)
    loss = cfg.loss or defaults.get("loss")
    if loss is None:
        raise ConfigError(
            f"{where}: loss: missing, and {model_path.name} has no compile_config naming one; "
            "set loss: (e.g. mse, binary_crossentropy)."
        )
    metrics = cfg.metrics if cfg.metrics is not None else defaults.get("metrics", [])
    train, val, validation_split = read_data(cfg, base, where)
    if validation_split:
        train, val = train.split(validation_split)
    model = load_keras(model_path)
    if cfg.train_layers:
        known = list(model.layers)
        unknown = [n for n in cfg.train_layers if n not in known]
        if unknown:
            raise ConfigError(
                f"{where}: train_layers: {unknown} are not layers of {model_path.name}; "
                f"its layers: {known}."
            )
    top = list(model.layers) if hasattr(model, "layers") else []
    freeze = [n for n in top if cfg.train_layers and n not in cfg.train_layers]
    # Outputs are relative to the config's folder, except for a config shipped in the package
    # (read-only data): its outputs go under the current folder.
    out_base = Path.cwd() if base.resolve() == SHIPPED.resolve() else base
    out = Path(out_dir) if out_dir is not None else resolve_path(cfg.output.dir, out_base)
    out.mkdir(parents=True, exist_ok=True)
    check = val or train
    kw = dict(loss=loss, metrics=metrics, batch_size=cfg.batch_size)
    before = evaluate(model, check, **kw)
    mesh = None  # over several processes: fit's default, every process's devices
    if cfg.devices > 1 and not is_multiprocess():
        if len(jax.devices()) < cfg.devices:
            raise ConfigError(
                f"{where}: devices: {cfg.devices} but only {len(jax.devices())} are present."
            )
        mesh = jax.sharding.Mesh(np.array(jax.devices()[: cfg.devices]), ("data",))
    steps = -(-len(train) // cfg.batch_size)
    decay_epochs = cfg.optimizer.decay_epochs or cfg.epochs
    es = cfg.early_stopping
    history = fit(
        model,
        train,
        validation_data=val,
        optimizer=_optimizer(cfg.optimizer, decay_epochs * steps),
        epochs=cfg.epochs,
        seed=cfg.seed,
        freeze=freeze,
        clip_norm=cfg.optimizer.clip_norm,
        monitor=es.monitor,
        patience=es.patience,
        min_delta=es.min_delta,
        mode=es.mode,
        restore_best_weights=es.restore_best_weights,
        mesh=mesh,
        log_path=out / cfg.output.metrics,
        checkpoint_dir=out / cfg.output.checkpoints,
        resume=resume,
        progress=progress,
        run_settings={
            "optimizer_config": {**cfg.optimizer.model_dump(), "decay_epochs": decay_epochs},
            "data_config": cfg.data.model_dump(),
        },
        **kw,
    )
    after = evaluate(model, check, **kw)
    saved = out / cfg.output.model
    save_keras(model, saved)
    plot = None
    if cfg.output.plot and is_primary():
        plot = out / cfg.output.plot
        _plot(history, plot)
    which = "validation" if val is not None else "training"
    line = f"{which} loss: {before['loss']:.6f} before, {after['loss']:.6f} after fine-tuning"
    if isinstance(cfg.data, SeriesData) and loss in ("mse", "mean_squared_error"):
        scale = cfg.data.scale
        line += (
            f" (RMSE {np.sqrt(before['loss']) * scale:.1f} -> "
            f"{np.sqrt(after['loss']) * scale:.1f} in the series' units)"
        )
    extra = [f"{k} {before[k]:.4f} -> {after[k]:.4f}" for k in before if k != "loss"]
    print_fn(line + (f"; {', '.join(extra)}" if extra else ""))
    if history.restored_best:
        print_fn(f"kept the best epoch: {history.best_epoch} of {len(history.epochs)}")
    print_fn(f"wrote {', '.join(str(p) for p in (saved, plot, out / cfg.output.metrics) if p)}")
    return {
        "before": before,
        "after": after,
        "history": history,
        "model_path": saved,
        "plot_path": plot,
    }


def _quiet(*args, **kwargs) -> None:
    pass


def _plot(history, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = history.column("epoch")
    ax.plot(epochs, history.column("loss"), label="train loss")
    if history.column("val_loss"):
        ax.plot(epochs, history.column("val_loss"), label="validation loss")
    if history.best_epoch is not None:
        ax.axvline(history.best_epoch, color="grey", linestyle=":", label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
