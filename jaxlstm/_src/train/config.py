"""The fine-tuning config (``jaxlstm finetune --config FILE|NAME``): a YAML file checked whole
against a pydantic schema before anything is loaded. Every error names the file, the key, the
value received and what is allowed. Paths are relative to the config's folder; ``package:NAME``
is a file shipped in ``jaxlstm/data``. Configs shipped in ``configs/`` (``jaxlstm/configs`` in
the wheel) can be named without a path (``airline_finetune``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jaxlstm._src.errors import JaxLSTMError


class ConfigError(JaxLSTMError, ValueError):
    """A fine-tuning config with a missing, unknown or invalid key, or a file it names that
    does not exist."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


PositiveInt = Annotated[int, Field(ge=1)]
Range = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]


class SeriesData(_Strict):
    """One column of a CSV file, cut into windows that predict the next value."""

    kind: Literal["series"]
    series: str = Field(description="CSV file; '#' lines are comments, the first line a header")
    column: str | None = Field(None, description="the column (default: the last one)")
    window: PositiveInt
    scale: float = 1.0
    train: Range
    val: Range | None = None


class ArraySplit(_Strict):
    """Arrays of one split: keys of an ``.npz`` ``file``, or ``.npy`` paths when ``file`` is
    omitted. ``inputs``: one per model input; ``targets``: one per output."""

    file: str | None = None
    inputs: Annotated[list[str], Field(min_length=1)]
    targets: Annotated[list[str], Field(min_length=1)]
    sample_weight: str | None = None


class ArrayData(_Strict):
    kind: Literal["arrays"]
    train: ArraySplit
    val: ArraySplit | None = None
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None


class TableSplit(_Strict):
    """Columns of a CSV table (a header line names them): ``inputs`` make one model input
    ``(rows, len(inputs))``, or with ``window`` sequences ``(rows - window, window, features)``
    whose target is the row after each window."""

    file: str
    inputs: Annotated[list[str], Field(min_length=1)]
    targets: Annotated[list[str], Field(min_length=1)]
    window: PositiveInt | None = None


class TableData(_Strict):
    kind: Literal["table"]
    train: TableSplit
    val: TableSplit | None = None
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None


class Optimizer(_Strict):
    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    schedule: Literal["constant", "cosine", "exponential"] = "constant"
    decay_epochs: PositiveInt | None = Field(
        None, description="the schedule's horizon in epochs (default: epochs)"
    )
    clip_norm: Annotated[float, Field(gt=0.0)] | None = None


class EarlyStoppingConfig(_Strict):
    """Keras's EarlyStopping options (``fit``'s keyword arguments of the same names)."""

    monitor: str = "val_loss"
    patience: Annotated[int, Field(ge=0)] | None = None
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False


class Output(_Strict):
    dir: str = "runs/finetune"
    model: str = "finetuned.keras"
    checkpoints: str = "checkpoints"
    metrics: str = "metrics.jsonl"
    plot: str | None = "loss.png"


class FinetuneConfig(_Strict):
    model: str
    data: Annotated[SeriesData | ArrayData | TableData, Field(discriminator="kind")]
    train_layers: list[str] | None = Field(None, description="the layers that train (all: omit)")
    optimizer: Optimizer = Optimizer()
    loss: str | None = Field(None, description="default: the model file's compile_config")
    metrics: list[str] | None = None
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    seed: Annotated[int, Field(ge=0)] = 0
    devices: PositiveInt = 1
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    output: Output = Output()

    @model_validator(mode="after")
    def _val_or_split(self):
        data = self.data
        if getattr(data, "validation_split", None) is not None and data.val is not None:
            raise ValueError("data: give val or validation_split, not both")
        return self


def _key(loc) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p in _DATA_KINDS))


_DATA_KINDS = {"series", "arrays", "table"}


def _allowed(loc) -> list[str]:
    """The keys allowed where an unknown key ``loc`` was found."""
    model: type[BaseModel] | None = FinetuneConfig
    for part in loc[:-1]:
        if model is None:
            return []
        if part in _DATA_KINDS:
            model = {"series": SeriesData, "arrays": ArrayData, "table": TableData}[part]
            continue
        ann = model.model_fields.get(str(part))
        if ann is None:
            return []
        model = _model_of(ann.annotation)
    return sorted(model.model_fields) if model else []


def _model_of(annotation):
    import typing

    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        for inner in typing.get_args(arg):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _explain(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = _key(e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"{key}: unknown key (value {e['input']!r}); allowed keys: {_allowed(e['loc'])}"
            )
        elif e["type"] == "missing":
            lines.append(f"{key}: missing key")
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            got = e["input"].get("kind") if isinstance(e["input"], dict) else e["input"]
            lines.append(f"{key}: kind is {got!r}; allowed kinds: {sorted(_DATA_KINDS)}")
        else:
            lines.append(f"{key}: {e['input']!r} is not allowed: {e['msg']}")
    return f"{path}: invalid fine-tuning config:\n  " + "\n  ".join(lines)


def _shipped_folder() -> Path:
    """The shipped configs, one copy: the repository's top-level ``configs/``, which the wheel
    carries as ``jaxlstm/configs`` (pyproject's ``package-dir``)."""
    installed = Path(str(resources.files("jaxlstm") / "configs"))
    if any(installed.glob("*.yaml")):  # an installed wheel, or an editable install's mapping
        return installed
    return Path(str(resources.files("jaxlstm"))).parent / "configs"  # a source checkout


SHIPPED = _shipped_folder()


def shipped_configs() -> list[str]:
    """The names of the configs shipped in the package (``jaxlstm finetune --config NAME``)."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml")) if SHIPPED.is_dir() else []


def find_config(value: str | os.PathLike) -> Path:
    """A config file: an existing path, else the shipped config of that name (``.yaml``
    optional); otherwise an error listing the shipped ones."""
    path = Path(value)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and (SHIPPED / f"{name}.yaml").is_file():
        return SHIPPED / f"{name}.yaml"
    raise ConfigError(
        f"config {os.fspath(value)!r} is neither a file nor a config shipped with jaxlstm; "
        f"shipped configs: {shipped_configs()} (name one, or give a path to a YAML file)."
    )


def resolve_path(value: str, base: Path) -> Path:
    """``package:NAME`` is a file shipped in ``jaxlstm/data``; other relative paths are
    relative to ``base`` (the config's folder)."""
    if value.startswith("package:"):
        return Path(str(resources.files("jaxlstm") / "data" / value.removeprefix("package:")))
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _files(cfg: FinetuneConfig):
    """``(key, value)`` of every input file the config names."""
    yield "model", cfg.model
    data = cfg.data
    if isinstance(data, SeriesData):
        yield "data.series", data.series
        return
    for split in ("train", "val"):
        part = getattr(data, split)
        if part is None:
            continue
        if isinstance(part, TableSplit) or part.file is not None:
            yield f"data.{split}.file", part.file
        else:
            for group in ("inputs", "targets"):
                for i, value in enumerate(getattr(part, group)):
                    yield f"data.{split}.{group}[{i}]", value
            if part.sample_weight is not None:
                yield f"data.{split}.sample_weight", part.sample_weight


def load_config(path: str | os.PathLike) -> tuple[FinetuneConfig, Path]:
    """Parse and validate a fine-tuning YAML config (every key, and that the files it names
    exist); returns it and the folder its paths are relative to."""
    import yaml

    path = find_config(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the config ({err}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, found {type(raw).__name__}.")
    try:
        cfg = FinetuneConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(path, err)) from None
    base = path.parent
    missing = [
        f"{key}: {value!r} ({resolve_path(value, base)}) does not exist"
        for key, value in _files(cfg)
        if not resolve_path(value, base).is_file()
    ]
    if missing:
        raise ConfigError(
            f"{path}: the config names files that do not exist (paths are relative to the "
            "config's folder; package:NAME is a file shipped in jaxlstm/data):\n  "
            + "\n  ".join(missing)
        )
    return cfg, base
