"""Training settings: one YAML/TOML file a data scientist edits, plus ``--set`` overrides.

The file mirrors :class:`TrainConfig` section by section (``data``, ``split``,
``model``, ``training``, ``calibration``, ``threshold``, ``output``); every key is
optional except where the data must be named. Relative paths inside a config
file are read relative to that file's folder, so a config works from any
working directory; paths given by ``--set`` are relative to the working
directory, like any other command-line path. Values are checked and coerced
here, so a typo fails before a long training starts, naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = [
    "CalibrationConfig",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "SplitConfig",
    "ThresholdConfig",
    "TrainConfig",
    "TrainingConfig",
    "component_config",
    "config_from_dict",
    "load_config",
    "parse_override",
]


INIT_FROM_DEFAULT = "default"  # training.init_from: the model shipped inside the package


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message names the key."""


@dataclass
class DataConfig:
    """Where the labelled posts are and what their columns mean."""

    train: list[str] = field(default_factory=list)  # JSONL / CSV / Parquet files, concatenated
    validation: list[str] = field(default_factory=list)  # files; without them a stratified split of train is held out
    # stack only: validation files for the combiners and the stack's own figures, never shown to its
    # components (not in their training, early stopping or calibration), e.g. posts by other writers
    combiner_validation: list[str] = field(default_factory=list)
    dataset: str | None = None  # a `datasets` folder (save_to_disk), or a hub name (needs network)
    dataset_split: str = "train"
    dataset_validation_split: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    positive_label: Any = "promotion"  # the value(s) meaning `promotion` ("yes", 1, [1, "promotion"] ...)
    negative_label: Any = None  # value(s) meaning `genuine`; None: the one other value in the column
    seeding_column: str | None = None  # 0-4 grades; rows without one do not train that head
    seeding_grades: list[str] = field(default_factory=list)  # JSONL {"id", "seeding"} files joined by post id
    id_column: str | None = None  # None: `id` when present, else ids are generated
    group_columns: list[str] = field(default_factory=list)  # evaluation slices, e.g. topic
    encoding: str = "utf-8"


@dataclass
class SplitConfig:
    """How validation rows are held out when no validation file is given."""

    val_fraction: float = 0.1
    seed: int = 13


@dataclass
class ModelConfig:
    """Which model kind to train; ``settings`` go to that class's ``__init__``.

    ``kind: stack`` (see kocscope.training.stacking) also needs ``components``:
    name -> {kind: lexical|transformer, settings: {...}, training: {...}, train: [...],
    train_extra: [...]}, where ``training`` overrides keys of the ``training`` section for
    that component, ``train`` replaces ``data.train`` for it (e.g. a transformer that goes
    on from a trained model with new posts only) and ``train_extra`` lists training files
    that component alone also learns from;
    ``settings`` then holds the combiners' (C, language_features, cv_folds, seed, seeding_combiner).
    """

    kind: Literal["lexical", "transformer", "stack"] = "lexical"
    settings: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    """The optimisation recipe. The transformer loop uses all of it; a lexical fit only
    class_imbalance, max_train_rows, threads and seed."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of all optimizer steps spent warming up linearly
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    class_imbalance: Literal["weights", "sampling", "none"] = "weights"
    seeding_weight: float = 0.5  # weight of the seeding loss next to the promotion loss
    seeding_loss: Literal["mse", "bce"] = "mse"
    early_stopping_metric: Literal["pr_auc", "loss"] = "pr_auc"
    early_stopping_patience: int = 2  # evaluations without improvement; 0 turns it off
    eval_every_steps: int | None = None  # None: evaluate once per epoch
    checkpoint_every_steps: int | None = None  # besides every evaluation; for --resume
    max_train_rows: int | None = None  # stratified subsample of the training rows
    max_steps: int | None = None  # cap on optimizer steps; the lr schedule then ends there
    threads: int | None = None  # None: the number of physical cores
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # recompute encoder activations during backward (a fine-tuned encoder only): the
    # default recipe's 32 x 512-token steps then fit in 8 GB on a CPU, at about 1.6x the time
    gradient_checkpointing: bool = False
    # finetune=heads: embed each text once with the frozen encoder and train the
    # heads on the cache (None = do so whenever the encoder is frozen)
    cache_embeddings: bool | None = None
    # a transformer to go on training instead of starting from the bare base encoder (new data
    # for a trained model): its bundle folder, a stack bundle holding one transformer, or
    # "default" (the shipped model); model settings left out take its base encoder and
    # fine-tuning shape, and settings that conflict with them are refused
    init_from: str | None = None
    seed: int = 13


@dataclass
class CalibrationConfig:
    """How validation logits become probabilities (see kocscope.models.base)."""

    method: Literal["platt", "temperature"] = "platt"


@dataclass
class ThresholdConfig:
    """How the `promotion` decision threshold is chosen on validation data."""

    rule: Literal["f1", "precision"] = "f1"
    target_precision: float = 0.9


@dataclass
class TrainConfig:
    """Everything one training run needs; saved with the model it produced."""

    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        return config_from_dict(raw)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the resolved config as JSON, atomically."""
        from kocscope.html import write_page  # the project's atomic text writer

        return write_page(
            path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        )


# --- loading ------------------------------------------------------------------


_YAML_TAG = "tag:yaml.org,2002:"
# YAML 1.2 core-schema scalars (PyYAML implements 1.1): a config written to the 1.2 spec, or
# copied from a JSON/TOML one, must mean the same thing here
_YAML12_RESOLVERS = (  # (type, pattern, first characters); int before float, so 10 stays an int
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        (
            r"^(?:[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
)
_YAML11_ONLY = {_YAML_TAG + t for t in ("bool", "int", "float", "timestamp", "value")}


def _yaml_loads(text: str) -> Any:
    """YAML with 1.2 scalars, as people write them: yes/no/on/off stay strings (label values like
    "yes" must survive), 3e-5 is a number, 010 is 10, and 1:30, 1_000, 0b1 and 2024-01-01 stay
    strings (1.1 read them as 90, 1000, 1 and a date). A key given twice in one mapping is
    refused: the later value would silently win, which hides a pasted-in second section."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _YAML_TAG + "merge":
                    continue  # complex keys are refused by PyYAML itself; << merges are overrides
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (lines {seen[key]} and {line}); "
                        "give each key once, merging the two", None
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

        def construct_yaml12_int(self, node: Any) -> int:
            text = self.construct_scalar(node)
            try:
                base = {"0x": 16, "0o": 8}.get(text[:2], 10)
                return int(text[2:] if base != 10 else text, base)
            except ValueError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{text!r} is not a whole number", node.start_mark
                ) from None

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for name, pattern, first in _YAML12_RESOLVERS:
        Loader.add_implicit_resolver(_YAML_TAG + name, re.compile(pattern), list(first))
    Loader.add_constructor(_YAML_TAG + "int", Loader.construct_yaml12_int)
    return yaml.load(text, Loader=Loader)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: Windows editors' BOM is no content
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror or exc}") from None
    try:
        if suffix in (".yaml", ".yml"):
            raw = _yaml_loads(text)
        elif suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text, object_pairs_hook=_json_object)
        else:
            raise ConfigError(
                f"{path}: unknown config format {suffix!r}; use .yaml, .yml, .toml or .json"
            )
    except ConfigError:
        raise
    except Exception as exc:  # the parsers' own messages carry line and column
        raise ConfigError(f"{path}: cannot parse config: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping of sections, got {type(raw).__name__}"
        )
    return raw


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that refuses a repeated key: json keeps the last one silently."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice in one object; give each key once")
        out[key] = value
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``training.lr=3e-5`` -> (["training", "lr"], "3e-5"); the value as a YAML scalar."""
    import yaml

    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. training.lr=3e-5"
        )
    try:
        parsed = _yaml_loads(value) if value.strip() else None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an explicit tag, e.g. !!float abc
        raise ConfigError(f"--set {item!r}: cannot parse the value: {exc}") from exc
    return key.split("."), parsed


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Read a YAML/TOML/JSON config (or start from defaults) and apply ``--set`` overrides."""
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        raw = _read_file(file)
        base_dir = file.resolve().parent
        source = str(file)
    else:
        source = "config"
    raw = _resolve_paths(_check_keys(raw, TrainConfig, source), base_dir)
    for item in overrides:
        keys, value = parse_override(item)
        _set_dotted(raw, keys, value, f"--set {item!r}")
    return config_from_dict(_resolve_paths(raw, Path.cwd()), source=source)


def config_from_dict(raw: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """Build and check a TrainConfig from nested plain data (unknown keys are errors)."""
    config = _build(TrainConfig, _check_keys(raw, TrainConfig, source), source)
    _validate(config, source)
    return config


# --- schema walking -------------------------------------------------------------


def _section_type(cls: type, name: str) -> Any:
    return get_type_hints(cls)[name]


def _valid_keys(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _check_keys(raw: Mapping[str, Any], cls: type, where: str, prefix: str = "") -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}"
        )
    valid = _valid_keys(cls)
    unknown = [k for k in raw if k not in valid]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {', '.join(repr(prefix + str(k)) for k in unknown)}; "
            f"valid keys{' in ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}"
        )
    out: dict[str, Any] = {}
    hints = get_type_hints(cls)
    for key, value in raw.items():
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and value is not None:
            value = _check_keys(value, sub, where, f"{prefix}{key}.")
        out[key] = value
    return out


def _set_dotted(raw: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    """Set a dotted key, checking each part against the schema (free-form dicts excepted)."""
    cls: Any = TrainConfig
    node = raw
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if cls is not None:
            valid = _valid_keys(cls)
            if key not in valid:
                path = ".".join(keys[:depth])
                raise ConfigError(
                    f"{where}: unknown key {'.'.join(keys[: depth + 1])!r}; "
                    f"valid keys{' in ' + path if path else ''}: {', '.join(valid)}"
                )
            sub = _section_type(cls, key)
            next_cls = sub if dataclasses.is_dataclass(sub) else None
            if not last and next_cls is None and _unwrap(sub)[0] is not dict:
                raise ConfigError(
                    f"{where}: {'.'.join(keys[: depth + 1])!r} is a value, not a section"
                )
        else:
            next_cls = None
        if last:
            if cls is not None and next_cls is None:
                value = _coerce(value, _section_type(cls, key), ".".join(keys), where)
            node[key] = value
            return
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(keys[: depth + 1])!r} is not a section")
        node, cls = child, next_cls


def _unwrap(tp: Any) -> tuple[Any, tuple[Any, ...], bool]:
    """(origin, args, optional) with Optional[X] reduced to X."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        rest = tuple(a for a in args if a is not type(None))
        optional = len(rest) < len(args)
        if len(rest) == 1:
            inner = _unwrap(rest[0])
            return inner[0], inner[1], optional or inner[2]
        return Union, rest, optional
    return (origin or tp), args, False


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` converted to type ``tp``, with NaN and infinity refused anywhere inside it
    (settings dicts and label lists included): every comparison with NaN is false, so no range
    check would catch one, and training would run on it."""
    value = _convert(value, tp, key, where)
    _refuse_non_finite(value, key, where)
    return value


def _refuse_non_finite(value: Any, key: str, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _refuse_non_finite(v, f"{key}.{k}", where)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _refuse_non_finite(v, f"{key}[{i}]", where)


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    origin, args, optional = _unwrap(tp)
    if value is None:
        if optional or origin is Any:
            return None
        raise ConfigError(f"{where}: {key} must not be empty")
    if origin is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}"
            )
        return value
    if origin is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if origin is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}: {key} must be a whole number, got {value!r}")
        return int(value)
    if origin is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        try:
            # PyYAML reads 3e-5 (no dot) as a string; accept it as the number it means
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
    if origin is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: {key} must be a single value, got {value!r}")
        return str(value)
    if origin is list:
        items = value if isinstance(value, list) else [value]
        return [
            _coerce(v, args[0] if args else Any, f"{key}[{i}]", where) for i, v in enumerate(items)
        ]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a mapping of settings, got {value!r}")
        return dict(value)
    raise ConfigError(f"{where}: {key}: unsupported setting type {tp!r}")  # pragma: no cover


def _build(cls: type, raw: Mapping[str, Any], where: str, prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name, where)
    return cls(**kwargs)


_FILE_KEYS = ("train", "validation", "combiner_validation", "seeding_grades")


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make relative data paths absolute against ``base_dir`` (the config file's folder)."""
    data = raw.get("data")
    if isinstance(data, dict):
        data = dict(data)
        for key in _FILE_KEYS:
            value = data.get(key)
            if isinstance(value, str):
                data[key] = [_absolute(value, base_dir)]
            elif isinstance(value, list):
                data[key] = [_absolute(v, base_dir) if isinstance(v, str) else v for v in value]
        dataset = data.get("dataset")
        if isinstance(dataset, str) and (base_dir / dataset).exists():
            data["dataset"] = str((base_dir / dataset).resolve())
        raw = {**raw, "data": data}
    model = raw.get("model")
    if isinstance(model, dict):
        model = dict(model)
        if "settings" in model:
            model["settings"] = _resolve_encoder(model["settings"], base_dir)
        if isinstance(model.get("components"), dict):
            model["components"] = {
                name: _resolve_component(spec, base_dir) for name, spec in model["components"].items()
            }
        raw = {**raw, "model": model}
    if isinstance(raw.get("training"), dict):
        raw = {**raw, "training": _resolve_init(raw["training"], base_dir)}
    if isinstance(raw.get("output"), str):
        raw = {**raw, "output": _absolute(raw["output"], base_dir)}
    return raw


def _resolve_component(spec: Any, base_dir: Path) -> Any:
    """A stack component's local encoder folder and ``train`` / ``train_extra`` files, made absolute."""
    if not isinstance(spec, dict):
        return spec
    spec = dict(spec)
    if "settings" in spec:
        spec["settings"] = _resolve_encoder(spec["settings"], base_dir)
    if isinstance(spec.get("training"), dict):
        spec["training"] = _resolve_init(spec["training"], base_dir)
    for key in ("train", "train_extra"):
        files = spec.get(key)
        if isinstance(files, str):
            spec[key] = [_absolute(files, base_dir)]
        elif isinstance(files, list):
            spec[key] = [_absolute(v, base_dir) if isinstance(v, str) else v for v in files]
    return spec


def _resolve_init(training: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """A relative ``init_from`` bundle folder made absolute; ``default`` names the shipped model."""
    value = training.get("init_from")
    if isinstance(value, str) and value != INIT_FROM_DEFAULT:
        return {**training, "init_from": _absolute(value, base_dir)}
    return training


def _resolve_encoder(settings: Any, base_dir: Path) -> Any:
    """A relative local ``base_encoder`` folder in model settings, made absolute."""
    if not isinstance(settings, dict):
        return settings
    encoder = settings.get("base_encoder")
    if isinstance(encoder, str) and ":" not in encoder and (base_dir / encoder).is_dir():
        return {**settings, "base_encoder": str((base_dir / encoder).resolve())}
    return settings


def portable_paths(record: Any, base_dir: Path | None = None) -> Any:
    """``record`` with absolute paths near ``base_dir`` (default: the working folder) made
    relative to it: a bundle's record of its run travels to other machines, whose folders differ.

    A path counts as near when it shares its first folder with ``base_dir`` (``/work/shared``
    beside ``/work/main``); others, such as ``/tmp``, stay absolute.
    """
    base = (base_dir or Path.cwd()).resolve()
    if isinstance(record, dict):
        return {k: portable_paths(v, base) for k, v in record.items()}
    if isinstance(record, list):
        return [portable_paths(v, base) for v in record]
    if isinstance(record, str):
        path = Path(record)
        if path.is_absolute() and path.parts[:2] == base.parts[:2] and path.exists():
            return Path(os.path.relpath(path, base)).as_posix()
    return record


def _absolute(value: str, base_dir: Path) -> str:
    if value == "-":
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


_SEED_MAX = 2**32 - 1  # numpy and scikit-learn refuse seeds outside [0, 2**32 - 1]


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _SEED_MAX


def _check_seed(value: Any, key: str, where: str) -> None:
    """Refuse a seed numpy or scikit-learn would refuse, before training rather than in it."""
    if not _is_seed(value):
        raise ConfigError(
            f"{where}: {key} must be a whole number from 0 to {_SEED_MAX}, got {value!r}"
        )


def _validate(config: TrainConfig, where: str) -> None:
    data, split, training = config.data, config.split, config.training
    _check_seed(split.seed, "split.seed", where)
    _check_seed(training.seed, "training.seed", where)
    if "seed" in config.model.settings:  # the lexical model's, or a stack's combiners'
        _check_seed(config.model.settings["seed"], "model.settings.seed", where)
    if not data.train and not data.dataset:
        raise ConfigError(f"{where}: name the training data: data.train (files) or data.dataset")
    if data.train and data.dataset:
        raise ConfigError(f"{where}: give either data.train or data.dataset, not both")
    if data.dataset_validation_split and data.validation:
        raise ConfigError(
            f"{where}: give either data.validation or data.dataset_validation_split, not both"
        )
    if data.combiner_validation and config.model.kind != "stack":
        raise ConfigError(
            f"{where}: data.combiner_validation is only read for model.kind: stack, not {config.model.kind}"
        )
    def as_set(value: Any) -> set[str]:
        return {str(v) for v in (value if isinstance(value, (list, tuple)) else [value])}

    if data.negative_label is not None and as_set(data.negative_label) & as_set(data.positive_label):
        raise ConfigError(
            f"{where}: data.negative_label and data.positive_label share a value "
            f"({sorted(as_set(data.negative_label) & as_set(data.positive_label))})"
        )
    if not 0.0 < split.val_fraction < 1.0:
        raise ConfigError(
            f"{where}: split.val_fraction must be between 0 and 1 (exclusive), got {split.val_fraction}"
        )
    positive = {
        "training.epochs": training.epochs,
        "training.batch_size": training.batch_size,
        "training.lr": training.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}: {key} must be greater than 0, got {value}")
    for key in (
        "max_train_rows",
        "max_steps",
        "threads",
        "eval_every_steps",
        "checkpoint_every_steps",
    ):
        value = getattr(training, key)
        if value is not None and value <= 0:
            raise ConfigError(
                f"{where}: training.{key} must be greater than 0 (or left out), got {value}"
            )
    for key in ("weight_decay", "grad_clip", "seeding_weight", "early_stopping_patience"):
        if getattr(training, key) < 0:
            raise ConfigError(
                f"{where}: training.{key} must not be negative, got {getattr(training, key)}"
            )
    if training.init_from is not None and config.model.kind == "lexical":
        raise ConfigError(
            f"{where}: training.init_from continues a transformer's training; a lexical model is "
            "refitted from its data in one step (in a stack, set it under "
            "model.components.<transformer>.training)"
        )
    if not 0.0 <= training.warmup < 1.0:
        raise ConfigError(
            f"{where}: training.warmup is a fraction of the steps in [0, 1), got {training.warmup}"
        )
    if not 0.0 < config.threshold.target_precision <= 1.0:
        raise ConfigError(
            f"{where}: threshold.target_precision must be in (0, 1], got {config.threshold.target_precision}"
        )
    _validate_components(config, where)


# the combiner settings of model.kind: stack -> (check, what it must be)
_STACK_SETTINGS = {
    "C": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf"), "a number > 0"),
    "language_features": (lambda v: isinstance(v, bool), "true or false"),
    "cv_folds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "a whole number >= 2"),
    "seed": (_is_seed, f"a whole number from 0 to {_SEED_MAX}"),
    "seeding_combiner": (lambda v: isinstance(v, bool), "true or false"),
}
_COMPONENT_KEYS = ("kind", "settings", "training", "train", "train_extra")


def _validate_components(config: TrainConfig, where: str) -> None:
    """model.components: only for a stack, each a known non-stack kind with checked training overrides.

    The overrides are coerced in place, so ``training: {lr: 3e-5}`` reaches the
    trainer as a number; model settings are checked by the model class when the
    stack starts, before any component trains.
    """
    model = config.model
    if model.kind != "stack":
        if model.components:
            raise ConfigError(f"{where}: model.components is only read for model.kind: stack, not {model.kind}")
        return
    if not model.components:
        raise ConfigError(
            f"{where}: model.kind stack needs model.components, e.g. "
            "{lexical: {kind: lexical}, transformer: {kind: transformer, settings: {finetune: heads}}}"
        )
    for key, value in model.settings.items():
        if key not in _STACK_SETTINGS:
            raise ConfigError(
                f"{where}: model.settings.{key} is not a stack setting; valid: {', '.join(_STACK_SETTINGS)} "
                "(component settings go under model.components.<name>.settings)"
            )
        check, wanted = _STACK_SETTINGS[key]
        if not check(value):
            raise ConfigError(f"{where}: model.settings.{key} must be {wanted}, got {value!r}")
    from kocscope.models.stacking import COMPONENT_KINDS, check_component_name

    valid_training = _valid_keys(TrainingConfig)
    hints = get_type_hints(TrainingConfig)
    for name, spec in model.components.items():
        at = f"model.components.{name}"
        problem = check_component_name(name)
        if problem:
            raise ConfigError(f"{where}: {at}: {problem}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: {at} must be a mapping with kind, settings and training, got {spec!r}")
        unknown = [k for k in spec if k not in _COMPONENT_KEYS]
        if unknown:
            raise ConfigError(f"{where}: {at}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(_COMPONENT_KEYS)}")
        if spec.get("kind") not in COMPONENT_KINDS:
            raise ConfigError(f"{where}: {at}.kind must be one of {', '.join(COMPONENT_KINDS)}, got {spec.get('kind')!r}")
        for section in ("settings", "training"):
            if not isinstance(spec.get(section) or {}, Mapping):
                raise ConfigError(f"{where}: {at}.{section} must be a mapping, got {spec.get(section)!r}")
        overrides = dict(spec.get("training") or {})
        for key, value in overrides.items():
            if key not in valid_training:
                raise ConfigError(f"{where}: {at}.training: unknown key {key!r}; valid keys: {', '.join(valid_training)}")
            overrides[key] = _coerce(value, hints[key], f"{at}.training.{key}", where)
        if "seed" in overrides:
            _check_seed(overrides["seed"], f"{at}.training.seed", where)
        if "seed" in (spec.get("settings") or {}):
            _check_seed(spec["settings"]["seed"], f"{at}.settings.seed", where)
        files = {}
        for key in ("train", "train_extra"):
            given = spec.get(key) or []
            if not isinstance(given, list) or not all(isinstance(f, str) and f for f in given):
                raise ConfigError(f"{where}: {at}.{key} must be a list of files, got {spec.get(key)!r}")
            if given and not config.data.train:
                raise ConfigError(f"{where}: {at}.{key} stands for data.train files; this config reads data.dataset")
            if given:
                files[key] = list(given)
        model.components[name] = {
            "kind": spec["kind"],
            "settings": dict(spec.get("settings") or {}),
            "training": overrides,
            **files,
        }
        component_config(config, name, where)  # the merged recipe must itself be valid


def component_config(config: TrainConfig, name: str, where: str = "config") -> TrainConfig:
    """The TrainConfig that trains stack component ``name``: the stack's data (its own
    ``train`` files in place of data.train, if given, plus its ``train_extra``), split,
    calibration and threshold, the component's model, the training section with its
    overrides, and output ``<output>/components/<name>``."""
    spec = config.model.components[name]
    raw = config.to_dict()
    raw["model"] = {"kind": spec["kind"], "settings": dict(spec.get("settings") or {})}
    raw["data"] = {
        **raw["data"],
        "train": [*spec.get("train", raw["data"]["train"]), *spec.get("train_extra", [])],
        "combiner_validation": [],  # the combiners' rows alone
    }
    raw["training"] = {**raw["training"], **(spec.get("training") or {})}
    raw["output"] = str(Path(config.output) / "components" / name) if config.output else None
    return config_from_dict(raw, source=f"{where}: model.components.{name}")
