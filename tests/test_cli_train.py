"""`kocscope train`, `evaluate` and `cv`: outputs, --set overrides, exit codes and help texts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_trainer import (
    assert_same_metrics,
    build_tiny_encoder,
    interrupt_at_training_batch,
    make_rows,
    write_corpus,
    write_jsonl,
)
from typer.testing import CliRunner

from kocscope.cli import app
from kocscope.models.bundle import read_bundle_config

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def write_config(folder: Path, encoder: str, **training: object) -> Path:
    write_corpus(folder / "data")
    config = {
        "data": {
            "train": "data/train.jsonl",
            "validation": "data/val.jsonl",
            "seeding_column": "grade",
            "group_columns": ["topic"],
        },
        "model": {
            "kind": "transformer",
            "settings": {"base_encoder": encoder, "max_length": 16, "lora_r": 2},
        },
        "training": {"epochs": 1, "batch_size": 8, "lr": "5e-3", "threads": 1, **training},
        "output": "run",
    }
    path = folder / "train_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_train_then_evaluate_then_cv(tmp_path: Path, tiny_encoder: str) -> None:
    config = write_config(tmp_path, tiny_encoder)
    out = tmp_path / "elsewhere"
    result = runner.invoke(
        app, ["train", "--config", str(config), "--set", "training.epochs=2", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "model:" in result.stdout and "f1" in result.stdout
    bundle = read_bundle_config(out / "model")
    assert bundle["train_config"]["training"]["epochs"] == 2
    assert bundle["train_config"]["output"] == str(out.resolve())
    assert not (tmp_path / "run").exists()  # --output won over the config's `output`

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            str(out / "model"),
            str(tmp_path / "data" / "val.jsonl"),
            "--seeding-column",
            "grade",
            "--group-column",
            "topic",
            "-o",
            str(tmp_path / "eval"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "len <200" in evaluated.stdout and "topic=" in evaluated.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert_same_metrics(metrics["metrics"], bundle["metrics"])  # the bundle reproduces its own
    assert (tmp_path / "eval" / "report.html").is_file() and (
        tmp_path / "eval" / "pr_curve.svg"
    ).is_file()

    as_json = runner.invoke(
        app, ["evaluate", str(out / "model"), str(tmp_path / "data" / "val.jsonl"), "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert_same_metrics(json.loads(as_json.stdout)["metrics"], bundle["metrics"])

    cv = runner.invoke(
        app, ["cv", "--config", str(config), "--folds", "2", "--set", "training.max_steps=2", "-q"]
    )
    assert cv.exit_code == 0, cv.output
    assert (
        "fold 1" in cv.stdout
        and "fold 2" in cv.stdout
        and "mean" in cv.stdout
        and "std" in cv.stdout
    )
    assert (tmp_path / "run" / "cv_results.json").is_file()


def test_usage_errors_exit_2(tmp_path: Path, tiny_encoder: str) -> None:
    config = write_config(tmp_path, tiny_encoder)
    unknown = runner.invoke(
        app, ["train", "--config", str(config), "--set", "training.learning_rate=1"]
    )
    assert unknown.exit_code == 2
    assert "unknown key 'training.learning_rate'" in unknown.stderr and "lr" in unknown.stderr
    missing = runner.invoke(app, ["train", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "config file not found" in missing.stderr
    bad_value = runner.invoke(app, ["cv", "--config", str(config), "--set", "training.device=tpu"])
    assert bad_value.exit_code == 2 and "training.device must be one of" in bad_value.stderr
    no_model = runner.invoke(
        app, ["evaluate", str(tmp_path / "nomodel"), str(tmp_path / "data" / "val.jsonl")]
    )
    assert no_model.exit_code == 2 and "no such model bundle folder" in no_model.stderr
    no_data = runner.invoke(
        app, ["train", "--config", str(config), "--set", "data.validation=missing.jsonl"]
    )
    assert no_data.exit_code == 2 and "no such labelled data file" in no_data.stderr


def test_data_errors_exit_1(tmp_path: Path, tiny_encoder: str) -> None:
    config = write_config(tmp_path, tiny_encoder)
    rows = make_rows(40, seed=1)
    rows[3]["label"] = "unsure"
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    mixed = runner.invoke(app, ["train", "--config", str(config), "-q"])
    assert mixed.exit_code == 1
    assert "column 'label' mixes 3 label values" in mixed.stderr and "'unsure': 1" in mixed.stderr
    assert not (tmp_path / "run").exists()
    folds = runner.invoke(
        app, ["cv", "--config", str(config), "--folds", "3", "--set", "data.negative_label=genuine"]
    )
    assert folds.exit_code == 1 and "'unsure': 1" in folds.stderr
    write_corpus(tmp_path / "data")
    too_many = runner.invoke(app, ["cv", "--config", str(config), "--folds", "30", "-q"])
    assert (
        too_many.exit_code == 1
        and "30-fold cross-validation needs at least 30 rows of each class" in too_many.stderr
    )


def test_evaluate_reports_bad_label_column(tmp_path: Path, tiny_encoder: str) -> None:
    config = write_config(tmp_path, tiny_encoder)
    assert runner.invoke(app, ["train", "--config", str(config), "-q"]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "run" / "model"),
            str(tmp_path / "data" / "val.jsonl"),
            "--label-column",
            "is_ad",
        ],
    )
    assert result.exit_code == 1
    assert "no column 'is_ad' (data.label_column); available columns:" in result.stderr


def test_interrupted_training_exits_130_and_resumes(
    tmp_path: Path,
    tiny_encoder: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, tiny_encoder, eval_every_steps=2)
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(patch, call=4)
        cut = runner.invoke(app, ["train", "--config", str(config), "-q"])
    assert cut.exit_code == 130 and "--resume" in cut.stderr
    resumed = runner.invoke(app, ["train", "--config", str(config), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed_from_step"] == 2


def test_evaluate_refuses_a_tampered_bundle(tmp_path: Path, tiny_encoder: str) -> None:
    config = write_config(tmp_path, tiny_encoder)
    assert runner.invoke(app, ["train", "--config", str(config), "-q"]).exit_code == 0
    with open(tmp_path / "run" / "model" / "adapter.safetensors", "ab") as fh:
        fh.write(b"\0")
    result = runner.invoke(
        app, ["evaluate", str(tmp_path / "run" / "model"), str(tmp_path / "data" / "val.jsonl")]
    )
    assert result.exit_code == 2 and "sha256 does not match" in result.stderr  # as score says it


@pytest.mark.parametrize("command", ["train", "evaluate", "cv"])
def test_help_teaches_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: kocscope " + command in " ".join(result.stdout.split())


def test_cli_import_stays_light() -> None:
    code = (
        "import sys, kocscope, kocscope.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'sklearn') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_bundle_records_paths_from_the_folder_training_ran_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle travels: its record of the run must not carry this machine's folders, while the
    run folder's own train_config.json (what --resume compares) keeps them whole."""
    write_corpus(tmp_path / "work" / "data")
    (tmp_path / "work" / "recipes").mkdir()
    config = tmp_path / "work" / "recipes" / "lexical.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"train": "../data/train.jsonl", "validation": "../data/val.jsonl", "seeding_column": "grade"},
                "model": {"kind": "lexical"},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path / "work")
    result = runner.invoke(app, ["train", "--config", "recipes/lexical.yaml", "-o", "runs/lex", "-q"])
    assert result.exit_code == 0, result.output
    bundle = read_bundle_config(tmp_path / "work" / "runs" / "lex" / "model")
    assert bundle["train_config"]["data"]["train"] == ["data/train.jsonl"]
    assert bundle["train_config"]["output"] == "runs/lex"
    assert str(tmp_path) not in json.dumps(bundle, ensure_ascii=False)
    card = (tmp_path / "work" / "runs" / "lex" / "model" / "README.md").read_text(encoding="utf-8")
    assert str(tmp_path) not in card and "as seen from the folder `kocscope train` ran in" in card
    saved = json.loads((tmp_path / "work" / "runs" / "lex" / "train_config.json").read_text(encoding="utf-8"))
    assert saved["data"]["train"] == [str((tmp_path / "work" / "data" / "train.jsonl").resolve())]


def test_an_interrupt_before_any_checkpoint_says_there_is_nothing_to_resume(
    tmp_path: Path, tiny_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, tiny_encoder, eval_every_steps=2, checkpoint_every_steps=50)
    with monkeypatch.context() as patch:
        interrupt_at_training_batch(patch, call=1)
        cut = runner.invoke(app, ["train", "--config", str(config), "-q"])
    assert cut.exit_code == 130 and "nothing was saved to go on from yet" in cut.stderr


def lexical_config(folder: Path, **data: object) -> Path:
    write_corpus(folder / "data")
    config = folder / "lexical.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"train": "data/train.jsonl", "validation": "data/val.jsonl", "seeding_column": "grade", **data},
                "model": {"kind": "lexical"},
                "output": "run",
            }
        ),
        encoding="utf-8",
    )
    return config


def test_a_run_that_did_not_finish_leaves_no_train_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train_result.json is the mark of a finished run: an interrupted rerun into the same
    folder must not leave the earlier run's mark beside its own half-written files."""
    import kocscope.training.report as report

    config = lexical_config(tmp_path)
    assert runner.invoke(app, ["train", "--config", str(config), "-q"]).exit_code == 0
    assert (tmp_path / "run" / "train_result.json").is_file()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)  # after the new model/ is in place
    cut = runner.invoke(app, ["train", "--config", str(config), "-q", "--set", "calibration.method=temperature"])
    assert cut.exit_code == 130
    assert read_bundle_config(tmp_path / "run" / "model")["calibration"]["method"] == "temperature"
    assert not (tmp_path / "run" / "train_result.json").exists()


def test_an_output_that_is_a_file_fails_before_any_work(tmp_path: Path) -> None:
    config = lexical_config(tmp_path)
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    for args in (["train", "--config", str(config), "-o", str(tmp_path / "afile")],
                 ["cv", "--config", str(config), "--folds", "2", "-o", str(tmp_path / "afile")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "is a file, not a folder" in result.output, result.output


def test_cv_takes_group_columns_that_only_validation_has_and_refuses_a_stack(tmp_path: Path) -> None:
    config = lexical_config(tmp_path, group_columns=["source"])
    rows = [json.loads(line) for line in (tmp_path / "data" / "val.jsonl").read_text(encoding="utf-8").splitlines()]
    write_jsonl(tmp_path / "data" / "val.jsonl", [{**r, "source": "forum"} for r in rows])
    assert runner.invoke(app, ["train", "--config", str(config), "-q"]).exit_code == 0
    result = runner.invoke(app, ["cv", "--config", str(config), "--folds", "2", "-q"])
    assert result.exit_code == 0, result.output
    stack = runner.invoke(app, ["cv", "--config", str(config), "--folds", "2", "-q", "--set", "model.kind=stack",
                                "--set", "model.components={lexical: {kind: lexical}}"])
    assert stack.exit_code == 2 and "cross-fitted validation metrics" in stack.output, stack.output


def test_evaluate_gives_back_the_training_report_intervals(tmp_path: Path) -> None:
    config = lexical_config(tmp_path)
    assert runner.invoke(app, ["train", "--config", str(config), "-q", "--set", "training.seed=13"]).exit_code == 0
    recorded = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text(encoding="utf-8"))
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run" / "model"), str(tmp_path / "data" / "val.jsonl"),
                                 "--seeding-column", "grade", "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert recorded["intervals"]["f1"] and again["intervals"] == recorded["intervals"]
