"""TrainConfig: YAML/TOML loading, --set overrides, type checks and clear errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from kocscope.training import training_args
from kocscope.training.training_args import (
    CalibrationConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    SplitConfig,
    ThresholdConfig,
    TrainConfig,
    TrainingConfig,
    config_from_dict,
    load_config,
    parse_override,
    portable_paths,
)

SECTIONS = (
    TrainConfig,
    DataConfig,
    SplitConfig,
    ModelConfig,
    TrainingConfig,
    CalibrationConfig,
    ThresholdConfig,
)

YAML = """
data:
  train: data/train.jsonl
  validation: data/val.jsonl
  label_column: label
  positive_label: 1
  group_columns: topic
model:
  kind: transformer
  settings:
    max_length: 128
training:
  lr: 3e-5
  epochs: 2
output: runs/out
"""

TOML = """
output = "runs/out"

[data]
train = "data/train.jsonl"
validation = "data/val.jsonl"
label_column = "label"
positive_label = 1
group_columns = ["topic"]

[model]
kind = "transformer"
settings = { max_length = 128 }

[training]
lr = 3e-5
epochs = 2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_and_toml_give_the_same_config(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, "a.yaml", YAML))
    b = load_config(write(tmp_path, "b.toml", TOML))
    assert a == b
    assert a.training.lr == pytest.approx(3e-5)  # PyYAML reads "3e-5" as a string; it is coerced
    assert a.data.positive_label == 1
    assert a.data.group_columns == ["topic"]
    assert a.model.settings == {"max_length": 128}


def test_yaml_yes_no_label_values_stay_strings(tmp_path: Path) -> None:
    # YAML 1.1 would turn these into booleans, and no row labelled "yes" would ever match
    path = write(
        tmp_path, "a.yaml", "data:\n  train: t.jsonl\n  positive_label: yes\n  negative_label: no\n"
    )
    config = load_config(path)
    assert (config.data.positive_label, config.data.negative_label) == ("yes", "no")


def test_relative_paths_are_read_from_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "a.yaml", YAML))
    folder = (tmp_path / "configs").resolve()
    assert config.data.train == [str(folder / "data" / "train.jsonl")]
    assert config.data.validation == [str(folder / "data" / "val.jsonl")]
    assert config.output == str(folder / "runs" / "out")
    went_on = load_config(write(tmp_path, "a.yaml", YAML), ["training.init_from=runs/base/model"])
    assert went_on.training.init_from == str(Path.cwd() / "runs" / "base" / "model")  # --set: from cwd
    saved = load_config(write(tmp_path, "a.yaml", YAML.replace("  epochs: 2\n", "  epochs: 2\n  init_from: base\n")))
    assert saved.training.init_from == str(folder / "base")
    shipped = load_config(write(tmp_path, "a.yaml", YAML.replace("  epochs: 2\n", "  epochs: 2\n  init_from: default\n")))
    assert shipped.training.init_from == "default"  # the model inside the package, not a folder


def test_overrides_set_dotted_keys_with_yaml_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(
        write(tmp_path, "a.yaml", YAML),
        [
            "training.lr=1e-4",
            "training.epochs=5",
            "training.max_steps=",  # empty: back to None
            "data.positive_label=yes",
            "data.negative_label=no",
            "model.settings.lora_r=16",
            "model.settings.lora_targets=[query, value]",
            "data.train=other.jsonl",
            "threshold.rule=precision",
        ],
    )
    assert config.training.lr == pytest.approx(1e-4)
    assert config.training.epochs == 5
    assert config.training.max_steps is None
    assert (config.data.positive_label, config.data.negative_label) == ("yes", "no")
    assert config.model.settings == {
        "max_length": 128,
        "lora_r": 16,
        "lora_targets": ["query", "value"],
    }
    assert config.data.train == [
        str(tmp_path.resolve() / "other.jsonl")
    ]  # --set paths: relative to the cwd
    assert config.threshold.rule == "precision"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "training.foo=1",
            "unknown key 'training.foo'; valid keys in training: epochs, batch_size",
        ),
        ("trainin.lr=1", "unknown key 'trainin'; valid keys: data, split, model, training"),
        ("training.lr=abc", "training.lr must be a number, got 'abc'"),
        ("training.epochs=1.5", "training.epochs must be a whole number, got 1.5"),
        ("training.device=tpu", "training.device must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
        ("training.lr.x=1", "'training.lr' is a value, not a section"),
        ("noequals", "expected KEY=VALUE"),
        ("training.epochs=0", "training.epochs must be greater than 0"),
        ("split.val_fraction=1.5", "split.val_fraction must be between 0 and 1"),
        ("training.warmup=2", "training.warmup is a fraction"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "a.yaml", YAML), [override])
    assert message in str(err.value)


def test_unknown_key_in_file_lists_valid_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path, "bad.yaml", YAML.replace("  epochs: 2", "  epochs: 2\n  learning_rate: 0.1")
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert (
        str(path) in text
        and "'training.learning_rate'" in text
        and "lr" in text
        and "warmup" in text
    )


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config format '.ini'"):
        load_config(write(tmp_path, "a.ini", "x=1"))
    with pytest.raises(ConfigError, match="cannot parse config"):
        load_config(write(tmp_path, "broken.yaml", "data: [unclosed"))
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(write(tmp_path, "list.yaml", "- 1\n- 2\n"))


def test_data_must_be_named_once() -> None:
    with pytest.raises(ConfigError, match="name the training data"):
        config_from_dict({})
    with pytest.raises(ConfigError, match="either data.train or data.dataset"):
        config_from_dict({"data": {"train": ["a.jsonl"], "dataset": "ds"}})
    with pytest.raises(ConfigError, match="negative_label and data.positive_label share a value"):
        config_from_dict(
            {"data": {"train": ["a.jsonl"], "positive_label": 1, "negative_label": "1"}}
        )


def test_saved_config_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "a.yaml", YAML), ["training.seed=7"])
    saved = config.save(tmp_path / "out" / "train_config.json")
    again = TrainConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
    assert again == config
    assert not list(saved.parent.glob(".*"))  # no temp file left behind


def test_portable_paths_shortens_only_nearby_existing_paths(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "shared").mkdir()
    data = tmp_path / "shared" / "train.jsonl"
    data.write_text("{}\n", encoding="utf-8")
    record = {
        "train": [str(data), "/no/such/file.jsonl"],
        "nested": {"output": str(tmp_path / "main"), "n": 3, "text": "not a path"},
    }
    out = portable_paths(record, tmp_path / "main")
    assert out == {
        "train": ["../shared/train.jsonl", "/no/such/file.jsonl"],
        "nested": {"output": ".", "n": 3, "text": "not a path"},
    }
    # a base in another top folder: nothing in common to be relative to
    assert portable_paths(record, Path("/")) == record


# --- seeds, non-finite numbers, encodings, duplicate keys, YAML 1.2 scalars, the example ----------

STACK = {
    "data": {"train": ["a.jsonl"]},
    "model": {
        "kind": "stack",
        "components": {"lexical": {"kind": "lexical"}, "tf": {"kind": "transformer"}},
    },
}


def stack_with(**component: object) -> dict:
    """STACK with keys merged into its lexical component."""
    components = {**STACK["model"]["components"], "lexical": {"kind": "lexical", **component}}
    return {**STACK, "model": {**STACK["model"], "components": components}}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("training.seed=-1", "training.seed"),
        ("split.seed=-1", "split.seed"),
        ("model.settings.seed=-1", "model.settings.seed"),
        ("training.seed=4294967296", "training.seed"),  # numpy's limit is 2**32 - 1
        ("model.settings.seed=abc", "model.settings.seed"),
    ],
)
def test_seeds_outside_numpys_range_are_refused(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key} must be a whole number from 0 to 4294967295"):
        load_config(write(tmp_path, "a.yaml", YAML), [override])


def test_seeds_at_the_ends_of_the_range_are_kept(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "a.yaml", YAML),
        ["training.seed=0", "split.seed=4294967295", "model.settings.seed=4294967295"],
    )
    assert (config.training.seed, config.split.seed) == (0, 2**32 - 1)
    assert config.model.settings["seed"] == 2**32 - 1


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({**STACK, "model": {**STACK["model"], "settings": {"seed": -1}}}, "model.settings.seed"),
        (stack_with(settings={"seed": -1}), "model.components.lexical.settings.seed"),
        (stack_with(training={"seed": -1}), "model.components.lexical.training.seed"),
    ],
)
def test_stack_seeds_are_checked_too(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key} must be a whole number from 0 to 4294967295"):
        config_from_dict(raw)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("training.lr=.nan", "training.lr"),
        ("training.lr=.inf", "training.lr"),
        ("training.lr=-.inf", "training.lr"),
        ("training.lr=nan", "training.lr"),  # a string that float() reads as NaN
        ("training.seeding_weight=.nan", "training.seeding_weight"),
        ("training.weight_decay=.nan", "training.weight_decay"),
        ("split.val_fraction=.nan", "split.val_fraction"),
        ("threshold.target_precision=.NaN", "threshold.target_precision"),
        ("model.settings.C=.inf", "model.settings.C"),  # inside a free-form settings dict
        ("data.positive_label=[1, .nan]", r"data.positive_label\[1\]"),
    ],
)
def test_nan_and_infinity_are_refused(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key} must be a finite number, got -?(nan|inf)"):
        load_config(write(tmp_path, "a.yaml", YAML), [override])


def test_nan_in_the_file_and_in_a_component_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", YAML.replace("  epochs: 2", "  epochs: 2\n  warmup: .nan"))
    with pytest.raises(ConfigError, match=r"a\.yaml: training\.warmup must be a finite number"):
        load_config(path)
    component = r"model\.components\.lexical\.training\.lr must be a finite number"
    with pytest.raises(ConfigError, match=component):
        config_from_dict(stack_with(training={"lr": float("nan")}))


def test_a_config_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("data:\n  train: t.jsonl\n  positive_label: 推广\n".encode("gb18030"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: not UTF-8 text; save the config as UTF-8"
    # UTF-8 with the byte-order mark Windows editors write is fine, in every format
    for name, text in (
        ("bom.yaml", "data:\n  train: t.jsonl\n"),
        ("bom.json", '{"data": {"train": "t.jsonl"}}'),
    ):
        bom = tmp_path / name
        bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert load_config(bom).data.train == [str(tmp_path.resolve() / "t.jsonl")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.yaml",
            "data:\n  train: t.jsonl\ntraining:\n  seed: 1\ntraining:\n  epochs: 2\n",
            "key 'training' is given twice (lines 3 and 5)",
        ),
        (
            "a.yaml",
            "data:\n  train: t.jsonl\ntraining:\n  seed: 1\n  epochs: 2\n  seed: 2\n",
            "key 'seed' is given twice (lines 4 and 6)",
        ),
        (
            "a.json",
            '{"data": {"train": "t.jsonl"}, "training": {"seed": 1, "seed": 2}}',
            "key 'seed' is given twice",
        ),
        # TOML refuses both by itself
        ("a.toml", '[data]\ntrain = "t.jsonl"\n[training]\nseed = 1\nseed = 2\n', "line 5"),
        (
            "b.toml",
            '[data]\ntrain = "t.jsonl"\n[training]\nseed = 1\n[training]\nepochs = 2\n',
            "line 5",
        ),
    ],
)
def test_a_key_given_twice_is_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: cannot parse config") and message in str(err.value)


def test_yaml_merge_keys_still_override(tmp_path: Path) -> None:
    text = (
        "data: {train: t.jsonl}\nmodel:\n  kind: stack\n  settings: &combiner {C: 1.0, seed: 1}\n"
        "  components:\n    lexical: {kind: lexical, settings: {<<: *combiner, seed: 2}}\n"
    )
    config = load_config(write(tmp_path, "a.yaml", text))
    assert config.model.components["lexical"]["settings"] == {"C": 1.0, "seed": 2}


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("010", 10),  # YAML 1.1: octal 8
        ("0o10", 8),
        ("0x1F", 31),
        ("-12", -12),
        ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("1_000", "1_000"),  # YAML 1.1: 1000
        ("0b101", "0b101"),  # YAML 1.1: 5
        ("2024-01-01", "2024-01-01"),  # YAML 1.1: a date
        ("1.5", 1.5),
        ("3e-5", 3e-5),  # YAML 1.1 (PyYAML): a string
        ("yes", "yes"),  # YAML 1.1: true
        ("off", "off"),
        ("true", True),
        ("=", "="),  # YAML 1.1: the "value" type, which PyYAML cannot construct
    ],
)
def test_yaml_scalars_follow_yaml_1_2(tmp_path: Path, scalar: str, value: object) -> None:
    path = write(tmp_path, "a.yaml", f"data:\n  train: t.jsonl\n  positive_label: {scalar}\n")
    read = load_config(path).data.positive_label
    assert read == value and type(read) is type(value)
    assert parse_override(f"data.positive_label={scalar}")[1] == value  # --set reads them alike


def test_an_impossible_explicit_tag_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot parse the value"):
        load_config(write(tmp_path, "a.yaml", YAML), ["training.lr=!!float abc"])


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_config.yaml"


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^[ #]*([A-Za-z_]+):", text, re.MULTILINE))
    keys = {f.name for section in SECTIONS for f in dataclasses.fields(section)}
    keys |= {*training_args._COMPONENT_KEYS, *training_args._STACK_SETTINGS}
    assert keys - documented == set()
    for kind in ("lexical", "transformer", "stack"):
        assert re.search(rf"^ *#? *kind: {kind}\b", text, re.MULTILINE), kind


def test_example_config_loads_as_written_and_as_a_stack() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert load_config(EXAMPLE).model.kind == "lexical"
    # uncomment the documented stack and combiner_validation, in place of the lexical model
    lines = text.splitlines()
    start = lines.index("  # kind: stack")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("  #"))
    stack = [line.replace("  # ", "  ", 1) for line in lines[start:end]]
    model = lines.index("model:")
    lines[model + 1 : end] = stack
    lines = [
        line.replace("  # combiner_validation:", "  combiner_validation:") for line in lines
    ]
    as_stack = EXAMPLE.parent / ".stack-example.yaml"  # beside it: its relative paths resolve alike
    try:
        as_stack.write_text("\n".join(lines) + "\n", encoding="utf-8")
        config = load_config(as_stack)
    finally:
        as_stack.unlink(missing_ok=True)
    assert config.model.kind == "stack"
    assert set(config.model.components) == {"lexical", "transformer"}
    assert config.data.combiner_validation and config.model.settings["seed"] == 0
    transformer = config.model.components["transformer"]
    assert transformer["training"] == {"lr": pytest.approx(5e-4), "batch_size": 32}
    assert set(transformer) == {"kind", "settings", "training", "train"}
    assert config.model.components["lexical"]["train_extra"]
