"""Labelled data: column and label mapping, grades, splits, and every bad-input error."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kocscope.training.dataset import (
    DataError,
    load_all_labelled,
    load_labelled,
    load_training_data,
    min_rows_for_folds,
    stratified_folds,
    stratified_split,
    stratified_subsample,
)
from kocscope.training.training_args import ConfigError, DataConfig, SplitConfig, config_from_dict


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return str(path)


def rows(n: int, every: int = 3, **extra: Any) -> list[dict[str, Any]]:
    """n posts; every ``every``-th is promotion ("yes"), the rest "no"."""
    out = []
    for i in range(n):
        promo = i % every == 0
        text = f"buy now with code SAVE{i}" if promo else f"我自己买的第{i}个杯子, honest note"
        out.append(
            {
                "id": f"p{i}",
                "text": text,
                "label": "yes" if promo else "no",
                "topic": "a" if i % 2 else "b",
                **extra,
            }
        )
    return out


def test_jsonl_labels_grades_groups_and_inputs(tmp_path: Path) -> None:
    data = rows(12)
    for i, row in enumerate(data):
        row["grade"] = None if i % 4 == 1 else i % 5
    data[2]["title"] = "Title here"
    path = write_jsonl(tmp_path / "t.jsonl", data)
    cfg = DataConfig(
        positive_label="YES", seeding_column="grade", group_columns=["topic"]
    )  # case-insensitive
    labelled, mapping = load_labelled(path, cfg)
    assert (mapping.positive, mapping.negative) == (("yes",), ("no",))
    assert labelled.y.tolist() == [1 if i % 3 == 0 else 0 for i in range(12)]
    assert labelled.ids == [f"p{i}" for i in range(12)]
    assert (
        labelled.texts[2] == "Title here\n" + data[2]["text"]
    )  # the model input, as the scorer builds it
    expected = [np.nan if i % 4 == 1 else (i % 5) / 4 for i in range(12)]
    np.testing.assert_array_equal(labelled.seeding, np.array(expected))
    assert labelled.n_graded == 9
    assert labelled.groups == {"topic": [r["topic"] for r in data]}
    assert labelled.where[3] == f"{path}, line 4"
    assert set(labelled.langs) <= {"zh", "en", "mixed", "other"}


def test_csv_with_mapped_text_column_and_numeric_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["post_id", "content", "is_ad"])
        for i in range(6):
            writer.writerow([f"x{i}", f"text {i}", i % 2])
    cfg = DataConfig(
        text_column="content", id_column="post_id", label_column="is_ad", positive_label=1
    )
    labelled, mapping = load_labelled(str(path), cfg)
    assert labelled.y.tolist() == [0, 1, 0, 1, 0, 1]  # CSV "1" matches positive_label 1
    assert labelled.ids == [f"x{i}" for i in range(6)]
    assert mapping.negative == ("0",)


def test_label_lists_combine_sources_that_spell_labels_differently(tmp_path: Path) -> None:
    numeric = write_jsonl(tmp_path / "a.jsonl", [{"text": f"a {i}", "label": i % 2} for i in range(4)])
    named = write_jsonl(
        tmp_path / "b.jsonl", [{"text": f"b {i}", "label": ["genuine", "promotion"][i % 2]} for i in range(4)]
    )
    cfg = DataConfig(positive_label=[1, "promotion"], negative_label=[0, "genuine"])
    labelled, mapping = load_labelled([numeric, named], cfg)
    assert labelled.y.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert mapping.to_dict() == {"positive_label": ["1", "promotion"], "negative_label": ["0", "genuine"]}
    odd = write_jsonl(tmp_path / "c.jsonl", [{"text": "c", "label": "maybe"}, {"text": "d", "label": 1}])
    with pytest.raises(DataError, match="'maybe'"):
        load_labelled([numeric, odd], cfg)


def test_dataset_folder_with_train_and_validation_splits(tmp_path: Path) -> None:
    import datasets

    folder = tmp_path / "ds"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows(30)),
            "validation": datasets.Dataset.from_list(rows(9)),
        }
    ).save_to_disk(str(folder))
    config = config_from_dict(
        {
            "data": {
                "dataset": str(folder),
                "dataset_validation_split": "validation",
                "positive_label": "yes",
            }
        }
    )
    data = load_training_data(config)
    assert (len(data.train), len(data.validation)) == (30, 9)
    assert data.validation_from == "dataset split"
    assert data.train.where[0] == f"{folder}[train], row 1"
    bad = config_from_dict(
        {"data": {"dataset": str(folder), "dataset_split": "test", "positive_label": "yes"}}
    )
    with pytest.raises(DataError, match="no split 'test'; splits: 'train', 'validation'"):
        load_training_data(bad)


def test_stratified_split_is_seeded_disjoint_and_keeps_proportions(tmp_path: Path) -> None:
    labelled, _ = load_labelled(
        write_jsonl(tmp_path / "t.jsonl", rows(60)), DataConfig(positive_label="yes")
    )
    train, val = stratified_split(labelled, SplitConfig(val_fraction=0.25, seed=3))
    again_train, again_val = stratified_split(labelled, SplitConfig(val_fraction=0.25, seed=3))
    other_train, _ = stratified_split(labelled, SplitConfig(val_fraction=0.25, seed=4))
    assert train.ids == again_train.ids and val.ids == again_val.ids
    assert other_train.ids != train.ids
    assert sorted(train.ids + val.ids) == sorted(labelled.ids)
    assert (val.n_promotion, len(val) - val.n_promotion) == (5, 10)  # 25% of 20 and of 40


def test_subsample_keeps_class_proportions(tmp_path: Path) -> None:
    labelled, _ = load_labelled(
        write_jsonl(tmp_path / "t.jsonl", rows(90)), DataConfig(positive_label="yes")
    )
    small = stratified_subsample(labelled, 30, seed=0)
    assert (len(small), small.n_promotion) == (30, 10)
    assert stratified_subsample(labelled, 1000, seed=0) is labelled


def test_folds_are_stratified_and_cover_every_row(tmp_path: Path) -> None:
    labelled, _ = load_labelled(
        write_jsonl(tmp_path / "t.jsonl", rows(30)), DataConfig(positive_label="yes")
    )
    folds = stratified_folds(labelled, 5, seed=0)
    assert len(folds) == 5
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(30))
    assert all(labelled.y[te].sum() == 2 for _, te in folds)


# --- bad input: each error names the column and the offending values ----------------------


def test_mixed_label_values_without_negative_label(tmp_path: Path) -> None:
    data = rows(20)
    data[4]["label"] = data[7]["label"] = "maybe"
    path = write_jsonl(tmp_path / "t.jsonl", data)
    with pytest.raises(DataError) as err:
        load_labelled(path, DataConfig(positive_label="yes"))
    text = str(err.value)
    assert (
        "column 'label'" in text
        and "'no': 11" in text
        and "'yes': 7" in text
        and "'maybe': 2" in text
    )
    assert "negative_label" in text


def test_unknown_label_values_with_negative_label(tmp_path: Path) -> None:
    data = rows(20)
    data[4]["label"] = "maybe"
    path = write_jsonl(tmp_path / "t.jsonl", data)
    with pytest.raises(DataError) as err:
        load_labelled(path, DataConfig(positive_label="yes", negative_label="no"))
    assert "'maybe': 1" in str(err.value) and f"{path}, line 5" in str(err.value)


def test_positive_label_absent(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", rows(9))
    with pytest.raises(
        DataError,
        match=r"positive_label 'promotion' does not occur in column 'label', which holds 'no': 6, 'yes': 3",
    ):
        load_labelled(path, DataConfig())


def test_empty_labels_are_listed(tmp_path: Path) -> None:
    data = rows(9)
    data[1]["label"] = ""
    del data[5]["label"]
    path = write_jsonl(tmp_path / "t.jsonl", data)
    with pytest.raises(
        DataError,
        match=r"column 'label' \(data.label_column\) is empty on 2 row\(s\): .*line 2; .*line 6",
    ):
        load_labelled(path, DataConfig(positive_label="yes"))


def test_single_class_training_set(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [r for r in rows(12) if r["label"] == "yes"])
    config = config_from_dict({"data": {"train": [path], "positive_label": "yes"}})
    with pytest.raises(DataError, match="single class: 4 promotion, 0 genuine"):
        load_training_data(config)


def test_empty_validation_file(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", rows(12))
    empty = tmp_path / "v.jsonl"
    empty.write_text("\n", encoding="utf-8")
    config = config_from_dict(
        {"data": {"train": [train], "validation": str(empty), "positive_label": "yes"}}
    )
    with pytest.raises(DataError, match=r"v.jsonl: no rows"):
        load_training_data(config)


def test_validation_split_with_one_class(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", rows(12))
    val = write_jsonl(tmp_path / "v.jsonl", [r for r in rows(6) if r["label"] == "no"])
    config = config_from_dict(
        {"data": {"train": [train], "validation": val, "positive_label": "yes"}}
    )
    with pytest.raises(DataError, match="validation split .* single class: 0 promotion, 4 genuine"):
        load_training_data(config)


def test_validation_label_values_must_match_training(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", rows(12))
    val_rows = rows(6)
    val_rows[1]["label"] = "nope"
    val = write_jsonl(tmp_path / "v.jsonl", val_rows)
    config = config_from_dict(
        {"data": {"train": [train], "validation": val, "positive_label": "yes"}}
    )
    with pytest.raises(
        DataError,
        match=r"v.jsonl: column 'label' has values outside 'yes' \(promotion\) and 'no' \(genuine\).*'nope': 1",
    ):
        load_training_data(config)


@pytest.mark.parametrize(
    ("cfg", "column", "role"),
    [
        (DataConfig(positive_label="yes", label_column="is_ad"), "is_ad", "label_column"),
        (DataConfig(positive_label="yes", text_column="content"), "content", "text_column"),
        (DataConfig(positive_label="yes", seeding_column="grade"), "grade", "seeding_column"),
        (DataConfig(positive_label="yes", group_columns=["platform"]), "platform", "group_columns"),
    ],
)
def test_missing_column_lists_available_columns(
    tmp_path: Path, cfg: DataConfig, column: str, role: str
) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", rows(6))
    with pytest.raises(DataError) as err:
        load_labelled(path, cfg)
    assert f"no column {column!r} (data.{role}); available columns:" in str(err.value)
    assert "'label'" in str(err.value) and "'topic'" in str(err.value)


def test_missing_column_in_csv_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,is_ad\nhello,1\nbye,0\n", encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"no column 'label' \(data.label_column\); available columns: 'text', 'is_ad'",
    ):
        load_labelled(str(path), DataConfig(positive_label=1))


def test_grades_outside_0_to_4_list_ids_and_lines(tmp_path: Path) -> None:
    data = rows(8)
    for row in data:
        row["grade"] = 2
    data[2]["grade"] = 5
    data[6]["grade"] = "high"
    data[3]["grade"] = -1
    path = write_jsonl(tmp_path / "t.jsonl", data)
    with pytest.raises(DataError) as err:
        load_labelled(path, DataConfig(positive_label="yes", seeding_column="grade"))
    text = str(err.value)
    assert "column 'grade'" in text and "3 row(s)" in text
    assert (
        "line 3 (id p2): 5" in text
        and "line 4 (id p3): -1" in text
        and "line 7 (id p6): 'high'" in text
    )


def test_too_few_rows_per_class_for_the_folds(tmp_path: Path) -> None:
    labelled, _ = load_labelled(
        write_jsonl(tmp_path / "t.jsonl", rows(12)), DataConfig(positive_label="yes")
    )
    assert labelled.n_promotion == 4 < min_rows_for_folds(5)
    with pytest.raises(
        DataError,
        match="5-fold cross-validation needs at least 5 rows of each class.*4 promotion and 8 genuine",
    ):
        stratified_folds(labelled, 5, seed=0)


def test_unreadable_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(rows(1)[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.jsonl, line 2: malformed JSON"):
        load_labelled(str(path), DataConfig(positive_label="yes"))


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such labelled data file"):
        load_labelled(str(tmp_path / "nope.jsonl"), DataConfig())


def test_all_labelled_joins_train_and_validation(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", rows(12))
    val = write_jsonl(tmp_path / "v.jsonl", rows(6))
    config = config_from_dict(
        {"data": {"train": [train], "validation": val, "positive_label": "yes"}}
    )
    data, _ = load_all_labelled(config)
    assert len(data) == 18 and data.sources == [train, val]


def test_unknown_file_type_or_encoding_is_a_config_error(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown file type '.txt'"):
        load_labelled(str(text), DataConfig())
    path = write_jsonl(tmp_path / "t.jsonl", rows(3))
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        load_labelled(path, DataConfig(encoding="klingon"))


def test_optional_columns_may_be_absent_from_some_sources_but_not_all(tmp_path: Path) -> None:
    graded = write_jsonl(tmp_path / "g.jsonl", [{"text": f"g {i}", "label": i % 2, "grade": 3} for i in range(4)])
    plain = write_jsonl(tmp_path / "p.jsonl", [{"text": f"p {i}", "label": i % 2} for i in range(4)])
    cfg = DataConfig(positive_label=1, seeding_column="grade")
    labelled, _ = load_labelled([graded, plain], cfg)
    assert np.isnan(labelled.seeding[4:]).all() and (labelled.seeding[:4] == 0.75).all()
    with pytest.raises(DataError, match="no column 'grade'"):
        load_labelled([plain], cfg)


def test_seeding_grades_join_by_id_and_the_column_wins(tmp_path: Path) -> None:
    posts = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": f"x{i}", "text": f"t {i}", "label": i % 2, "grade": 4 if i == 0 else None} for i in range(4)],
    )
    grades = write_jsonl(tmp_path / "g.jsonl", [{"id": "x0", "seeding": 1}, {"id": "x2", "seeding": 2}, {"id": "zz", "seeding": 3}])
    cfg = DataConfig(positive_label=1, seeding_column="grade", seeding_grades=[grades])
    labelled, _ = load_labelled(posts, cfg)
    assert labelled.seeding[0] == 1.0 and labelled.seeding[2] == 0.5  # x0 keeps its own grade 4
    assert np.isnan(labelled.seeding[1]) and np.isnan(labelled.seeding[3])
    bad = write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "seeding": 7}])
    with pytest.raises(DataError, match=r"b\.jsonl, line 1: needs an 'id' and a 'seeding' grade 0-4"):
        load_labelled(posts, DataConfig(positive_label=1, seeding_column="grade", seeding_grades=[bad]))


def test_grades_that_match_no_post_are_counted_and_numeric_ids_join(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", [{"id": i, "text": f"t {i}", "label": i % 2} for i in range(6)])
    val = write_jsonl(tmp_path / "v.jsonl", [{"id": f"v{i}", "text": f"v {i}", "label": i % 2} for i in range(4)])
    grades = write_jsonl(tmp_path / "g.jsonl", [{"id": 1, "seeding": 4}, {"id": "v0", "seeding": 2},
                                                  {"id": "gone", "seeding": 3}, {"id": "gone2", "seeding": 1}])
    config = config_from_dict(
        {"data": {"train": [train], "validation": [val], "positive_label": 1, "seeding_grades": [grades]}}
    )
    data = load_training_data(config)
    assert data.train.seeding[1] == 1.0 and data.validation.seeding[0] == 0.5
    assert data.unmatched_grades == 2 and data.describe()["unmatched_seeding_grades"] == 2
    assert "2 seeding grades (data.seeding_grades) matched no post here." in data.summary()


def test_a_group_column_may_sit_in_the_validation_files_alone(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", [{k: v for k, v in r.items() if k != "topic"} for r in rows(20)])
    val = write_jsonl(tmp_path / "v.jsonl", rows(10))
    config = config_from_dict(
        {"data": {"train": [train], "validation": [val], "positive_label": "yes", "group_columns": ["topic"]}}
    )
    data = load_training_data(config)
    assert set(data.validation.groups["topic"]) == {"a", "b"} and set(data.train.groups["topic"]) == {None}
    misspelt = config_from_dict(
        {"data": {"train": [train], "validation": [val], "positive_label": "yes", "group_columns": ["topc"]}}
    )
    with pytest.raises(DataError, match=r"t.jsonl, .*v.jsonl: no column 'topc' \(data.group_columns\) in the training or validation"):
        load_training_data(misspelt)
