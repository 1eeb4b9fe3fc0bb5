"""TrainConfig: YAML/TOML loading, --set overrides, type checks and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kocscope.training.training_args import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    load_config,
    portable_paths,
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
