"""Labelled posts for training and evaluation, checked before any training starts.

Rows are read through :mod:`kocscope.data.io`, so training sees exactly the
text the scoring engine will see (``Post.model_text``: normalized title and
text) and bad rows fail with the same file/line messages. Labels, seeding
grades and group columns are read from the raw row, under the user's column
names. Every problem a long training would only hit later (a missing column, a
third label value, one class only, grades outside 0-4, too few rows for the
folds) is a :class:`DataError` here, naming the column and the offending values.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kocscope.training.training_args import ConfigError, DataConfig, SplitConfig, TrainConfig

__all__ = [
    "DataError",
    "LabelMapping",
    "LabelledData",
    "TrainingData",
    "load_all_labelled",
    "load_labelled",
    "load_training_data",
    "require_both_classes",
    "stratified_folds",
    "stratified_split",
    "stratified_subsample",
]

_SHOW = 8  # offending rows / values listed in one message


class DataError(ValueError):
    """Labelled data that cannot train or evaluate a model."""


@dataclass
class LabelledData:
    """Aligned model inputs and targets; ``where`` locates each row for messages."""

    texts: list[str]
    y: np.ndarray  # int64, 1 = promotion
    seeding: np.ndarray  # float64 grade / 4, NaN where the row has no grade
    ids: list[str]
    langs: list[str]
    groups: dict[str, list[Any]]
    where: list[str]
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_promotion(self) -> int:
        return int(self.y.sum())

    @property
    def n_graded(self) -> int:
        return int(np.isfinite(self.seeding).sum())

    def subset(self, index: Sequence[int] | np.ndarray) -> LabelledData:
        idx = np.asarray(index, dtype=np.int64)
        pick = idx.tolist()
        return LabelledData(
            texts=[self.texts[i] for i in pick],
            y=self.y[idx],
            seeding=self.seeding[idx],
            ids=[self.ids[i] for i in pick],
            langs=[self.langs[i] for i in pick],
            groups={k: [v[i] for i in pick] for k, v in self.groups.items()},
            where=[self.where[i] for i in pick],
            sources=list(self.sources),
        )

    @classmethod
    def concat(cls, parts: Sequence[LabelledData]) -> LabelledData:
        keys = list(parts[0].groups) if parts else []
        return cls(
            texts=[t for p in parts for t in p.texts],
            y=np.concatenate([p.y for p in parts]) if parts else np.zeros(0, np.int64),
            seeding=np.concatenate([p.seeding for p in parts]) if parts else np.zeros(0),
            ids=[i for p in parts for i in p.ids],
            langs=[x for p in parts for x in p.langs],
            groups={k: [v for p in parts for v in p.groups[k]] for k in keys},
            where=[w for p in parts for w in p.where],
            sources=[s for p in parts for s in p.sources],
        )

    def describe(self) -> dict[str, Any]:
        """Counts for the bundle and the report: what the model learnt from."""
        return {
            "rows": len(self),
            "promotion": self.n_promotion,
            "genuine": len(self) - self.n_promotion,
            "with_seeding_grade": self.n_graded,
            "languages": dict(Counter(self.langs).most_common()),
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class LabelMapping:
    """Which raw label values mean `promotion` and `genuine` (compared case-insensitively).

    Several values per side let one recipe combine sources that spell labels
    differently (zhihu16k's 1/0 beside the seed corpus's promotion/genuine).
    """

    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"positive_label": _one_or_list(self.positive), "negative_label": _one_or_list(self.negative)}


def _one_or_list(values: tuple[str, ...]) -> Any:
    return None if not values else values[0] if len(values) == 1 else list(values)


def _label_set(value: Any) -> tuple[str, ...]:
    """The comparable keys of a label setting: one value or a list of values."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(k for k in (_label_key(v) for v in values) if k is not None)


# --- reading ---------------------------------------------------------------------


@dataclass
class _RawLabelled:
    """One source's accepted rows before label mapping."""

    source: str
    texts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    grades: list[Any] = field(default_factory=list)
    groups: dict[str, list[Any]] = field(default_factory=dict)
    seen_columns: set[str] = field(default_factory=set)


def _wanted_columns(cfg: DataConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(required, optional) columns as name -> role, for messages."""
    required = {cfg.text_column: "text_column", cfg.label_column: "label_column"}
    optional: dict[str, str] = {}
    if cfg.seeding_column:
        optional[cfg.seeding_column] = "seeding_column"
    if cfg.id_column:
        optional[cfg.id_column] = "id_column"
    for name in cfg.group_columns:
        optional[name] = "group_columns"
    return required, optional


def _missing_column(source: str, column: str, role: str, available: Sequence[str]) -> DataError:
    listed = ", ".join(repr(c) for c in available) or "none"
    return DataError(f"{source}: no column {column!r} (data.{role}); available columns: {listed}")


def _check_columns(source: str, columns: Sequence[str], cfg: DataConfig) -> None:
    required, _ = _wanted_columns(cfg)
    for column, role in required.items():
        if column not in columns:
            raise _missing_column(source, column, role, columns)


def _read_source(
    rows_factory: Any, source: str, unit: str, cfg: DataConfig, *, has_header: bool
) -> _RawLabelled:
    """Run a PostReader over raw rows, keeping each accepted row's raw values beside its Post."""
    from kocscope.data.io import PostReader, resolve_column_map
    from kocscope.data.records import RecordError
    from kocscope.data.text import detect_lang

    out = _RawLabelled(source=source, groups={name: [] for name in cfg.group_columns})
    current: list[Any] = [None]

    def rows(check: Any) -> Iterator[Any]:
        def on_header(columns: Sequence[str]) -> None:
            # optional columns (seeding, id, groups) may be absent from some sources
            _check_columns(source, columns, cfg)
            try:
                check(columns)
            except RecordError as exc:
                raise DataError(f"{source}: {exc.explanation}") from None

        first = True
        for row in rows_factory(on_header if has_header else None):
            if not has_header and first and row.data is not None:
                # JSON Lines has no header: the first row's fields must hold the required columns
                on_header(list(row.data))
                first = False
            if row.data is not None:
                out.seen_columns.update(row.data)
            current[0] = row
            yield row

    mapping = resolve_column_map(text_column=cfg.text_column, id_column=cfg.id_column)
    reader = PostReader(rows, source=source, unit=unit, on_error="raise", column_map=mapping)
    try:
        for post in reader:
            raw = current[0]
            data = raw.data
            out.texts.append(post.model_text)
            out.ids.append(post.id)
            out.langs.append(post.lang or detect_lang(post.model_text))
            out.where.append(f"{source}, {unit} {raw.line}")
            out.labels.append(data.get(cfg.label_column))
            out.grades.append(data.get(cfg.seeding_column) if cfg.seeding_column else None)
            for name in cfg.group_columns:
                out.groups[name].append(data.get(name))
    except RecordError as exc:
        raise DataError(str(exc)) from exc
    return out


def _read_file(path: str, cfg: DataConfig) -> _RawLabelled:
    from kocscope.data.io import check_encoding, detect_format, iter_rows

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: no such labelled data file"
            + (" (it is a folder)" if Path(path).is_dir() else "")
        )
    try:
        kind = detect_format(path).kind
        if kind != "parquet":
            check_encoding(cfg.encoding)
    except ValueError as exc:  # unknown file type or encoding: the options are wrong, not the rows
        raise ConfigError(f"{exc} (data.train / data.validation / data.encoding)") from exc
    return _read_source(
        lambda on_header: iter_rows(path, encoding=cfg.encoding, on_header=on_header),
        path,
        "row" if kind == "parquet" else "line",
        cfg,
        has_header=kind != "jsonl",
    )


def _open_dataset(name: str, split: str) -> Any:
    """One split of a `datasets` folder (save_to_disk) or of a named dataset."""
    import datasets

    try:
        if Path(name).exists():
            loaded = datasets.load_from_disk(name)
        else:
            loaded = datasets.load_dataset(name)
    except Exception as exc:  # datasets raises many types for "cannot load"
        raise DataError(f"dataset {name!r}: cannot load it ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, Mapping):
        if split not in loaded:
            raise DataError(
                f"dataset {name!r} has no split {split!r}; splits: {', '.join(map(repr, loaded))}"
            )
        return loaded[split]
    return loaded


def _read_dataset(name: str, split: str, cfg: DataConfig) -> _RawLabelled:
    from kocscope.data.io import RawRow

    ds = _open_dataset(name, split)
    source = f"{name}[{split}]"

    def factory(on_header: Any) -> Iterator[Any]:
        on_header(list(ds.column_names))
        for number, row in enumerate(ds, 1):
            yield RawRow(number, dict(row), row)

    return _read_source(factory, source, "row", cfg, has_header=True)


# --- labels and grades ------------------------------------------------------------


def _label_key(value: Any) -> str | None:
    """Comparable form of a label value: "1", 1 and 1.0 agree; case and spaces do not matter."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip().casefold()
    return text or None


def _rows_list(where: Sequence[str], index: Sequence[int]) -> str:
    shown = "; ".join(where[i] for i in index[:_SHOW])
    return shown + (f"; ... ({len(index)} rows)" if len(index) > _SHOW else "")


def _value_counts(raw: Sequence[Any], keys: Sequence[str | None]) -> str:
    counts = Counter(k for k in keys if k is not None)
    shown: dict[str, Any] = {}
    for value, key in zip(raw, keys):
        if key is not None and key not in shown:
            shown[key] = value
    return ", ".join(f"{shown[k]!r}: {n}" for k, n in counts.most_common())


def _label_keys(raw: _RawLabelled, cfg: DataConfig) -> list[str | None]:
    keys = [_label_key(v) for v in raw.labels]
    empty = [i for i, k in enumerate(keys) if k is None]
    if empty:
        raise DataError(
            f"{raw.source}: column {cfg.label_column!r} (data.label_column) is empty on {len(empty)} row(s): "
            f"{_rows_list(raw.where, empty)}"
        )
    return keys


def resolve_label_mapping(raw: _RawLabelled, cfg: DataConfig) -> LabelMapping:
    """Check a source's label column against positive/negative_label; infer the negative value."""
    column = cfg.label_column
    keys = _label_keys(raw, cfg)
    positive = _label_set(cfg.positive_label)
    negative = _label_set(cfg.negative_label) if cfg.negative_label is not None else ()
    values = _value_counts(raw.labels, keys)
    if not positive:
        raise DataError(f"data.positive_label is empty; column {column!r} holds {values}")
    if negative:
        unknown = [i for i, k in enumerate(keys) if k not in positive and k not in negative]
        if unknown:
            odd = _value_counts([raw.labels[i] for i in unknown], [keys[i] for i in unknown])
            raise DataError(
                f"{raw.source}: column {column!r} has values that are neither positive_label "
                f"{cfg.positive_label!r} nor negative_label {cfg.negative_label!r}: {odd} "
                f"(e.g. {_rows_list(raw.where, unknown)}). All values with counts: {values}"
            )
        return LabelMapping(positive, negative)
    if not any(k in positive for k in keys):
        raise DataError(
            f"{raw.source}: positive_label {cfg.positive_label!r} does not occur in column {column!r}, "
            f"which holds {values}; set data.positive_label to the value that means promotion"
        )
    others = sorted({k for k in keys if k not in positive})
    if len(others) > 1:
        raise DataError(
            f"{raw.source}: column {column!r} mixes {len(others) + len(positive)} label values: {values}; "
            f"positive_label is {cfg.positive_label!r} and no negative_label is set, so it is unclear which "
            "value means genuine. Set data.negative_label (e.g. --set data.negative_label=...) or clean the column"
        )
    return LabelMapping(positive, tuple(others))


def _map_labels(raw: _RawLabelled, mapping: LabelMapping, cfg: DataConfig) -> np.ndarray:
    keys = _label_keys(raw, cfg)
    allowed = {*mapping.positive, *mapping.negative}
    unknown = [i for i, k in enumerate(keys) if k not in allowed]
    if unknown:
        odd = _value_counts([raw.labels[i] for i in unknown], [keys[i] for i in unknown])
        known = f"{_one_or_list(mapping.positive)!r} (promotion)" + (
            f" and {_one_or_list(mapping.negative)!r} (genuine)" if mapping.negative else ""
        )
        raise DataError(
            f"{raw.source}: column {cfg.label_column!r} has values outside {known}, the labels of the "
            f"training data: {odd} (e.g. {_rows_list(raw.where, unknown)})"
        )
    return np.array([1 if k in mapping.positive else 0 for k in keys], dtype=np.int64)


def _grade01(value: Any) -> float:
    """A 0-4 seeding grade as grade / 4; NaN when empty; ValueError when it is no grade."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):
        raise ValueError(value)
    grade = float(value)  # TypeError/ValueError for anything that is not a number
    if math.isnan(grade):
        return math.nan
    if not 0.0 <= grade <= 4.0:
        raise ValueError(value)
    return grade / 4.0


def _parse_grades(raw: _RawLabelled, cfg: DataConfig) -> np.ndarray:
    """grade / 4 in [0, 1]; NaN for rows without a grade (they do not train the seeding head)."""
    out = np.full(len(raw.grades), np.nan)
    bad: list[str] = []
    for i, value in enumerate(raw.grades):
        try:
            out[i] = _grade01(value)
        except (TypeError, ValueError):
            bad.append(f"{raw.where[i]} (id {raw.ids[i]}): {value!r}")
    if bad:
        shown = "; ".join(bad[:_SHOW]) + (f"; ... ({len(bad)} rows)" if len(bad) > _SHOW else "")
        raise DataError(
            f"{raw.source}: column {cfg.seeding_column!r} (data.seeding_column) must hold seeding grades "
            f"0-4 or be empty; {len(bad)} row(s) do not: {shown}"
        )
    return out


def _read_grades(cfg: DataConfig) -> dict[str, float]:
    """Post id -> grade / 4 from the ``data.seeding_grades`` files ({"id", "seeding"} per line).

    Grades kept apart from a corpus (its text may not be copied) join by post id.
    """
    from kocscope.data.io import iter_rows

    grades: dict[str, float] = {}
    for path in cfg.seeding_grades:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such seeding grades file (data.seeding_grades)")
        for row in iter_rows(path):
            where = f"{path}, line {row.line}"
            if row.error is not None:
                raise DataError(f"{where}: {row.error.explanation} (data.seeding_grades)")
            post_id, value = row.data.get("id"), row.data.get("seeding")
            if isinstance(post_id, int) and not isinstance(post_id, bool):
                post_id = str(post_id)  # numeric ids, as the posts' own id column allows
            try:
                grade = _grade01(value)
            except (TypeError, ValueError):
                grade = math.nan
            if not isinstance(post_id, str) or math.isnan(grade):
                raise DataError(f"{where}: needs an 'id' and a 'seeding' grade 0-4, got {row.data!r}")
            grades[post_id] = grade
    return grades


def _join_grades(data: LabelledData, grades: dict[str, float]) -> LabelledData:
    """Fill missing seeding grades by post id; a grade in the data's own seeding column wins."""
    for i, post_id in enumerate(data.ids):
        if np.isnan(data.seeding[i]) and post_id in grades:
            data.seeding[i] = grades[post_id]
    return data


def _finish(raw: _RawLabelled, mapping: LabelMapping, cfg: DataConfig) -> LabelledData:
    return LabelledData(
        texts=raw.texts,
        y=_map_labels(raw, mapping, cfg),
        seeding=_parse_grades(raw, cfg),
        ids=raw.ids,
        langs=raw.langs,
        groups=raw.groups,
        where=raw.where,
        sources=[raw.source],
    )


def _read_any(
    source: str | Sequence[str], cfg: DataConfig, dataset_split: str | None
) -> list[_RawLabelled]:
    if dataset_split is not None:
        return [_read_dataset(str(source), dataset_split, cfg)]
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    return [_read_file(str(p), cfg) for p in paths]


def load_labelled(
    source: str | os.PathLike[str] | Sequence[str],
    cfg: DataConfig,
    *,
    mapping: LabelMapping | None = None,
    dataset_split: str | None = None,
    check_optional: bool = True,
    check_groups: bool = True,
) -> tuple[LabelledData, LabelMapping]:
    """Read labelled posts from file(s) (or a dataset split when ``dataset_split`` is given).

    ``mapping`` fixes the label values (e.g. those found in the training data,
    so validation cannot silently mean something else); without it the values
    are checked and inferred from the first source. An optional column (seeding,
    id, group) must occur in at least one source, which catches a misspelt name;
    ``check_optional=False`` skips that for files that extend sources already
    checked (a stack's combiner-only validation rows), ``check_groups=False`` for
    the group columns alone (training data whose validation files hold them).
    """
    raws = _read_any(source, cfg, dataset_split)
    for raw in raws:
        if not raw.texts:
            raise DataError(
                f"{raw.source}: no rows; labelled data needs posts with a {cfg.label_column!r} column"
            )
    _, optional = _wanted_columns(cfg)
    for column, role in optional.items() if check_optional else ():
        if role == "group_columns" and not check_groups:
            continue
        if not any(column in raw.seen_columns for raw in raws):
            raise _missing_column(raws[0].source, column, role, sorted(raws[0].seen_columns))
    if mapping is None:
        combined = _RawLabelled(
            source=", ".join(r.source for r in raws),
            labels=[v for r in raws for v in r.labels],
            where=[w for r in raws for w in r.where],
        )
        mapping = resolve_label_mapping(combined, cfg)
    data = LabelledData.concat([_finish(raw, mapping, cfg) for raw in raws])
    return (_join_grades(data, _read_grades(cfg)) if cfg.seeding_grades else data), mapping


# --- splits -------------------------------------------------------------------------


def require_both_classes(data: LabelledData, role: str, *, minimum: int = 1) -> None:
    """Both classes, at least ``minimum`` rows each; otherwise a DataError saying which split."""
    if not len(data):
        raise DataError(f"the {role} split is empty")
    n_pos = data.n_promotion
    counts = {"promotion": n_pos, "genuine": len(data) - n_pos}
    short = [name for name, n in counts.items() if n < minimum]
    if short:
        where = ", ".join(data.sources) or "the data"
        if minimum == 1:
            raise DataError(
                f"the {role} split ({where}) holds a single class: {counts['promotion']} promotion, "
                f"{counts['genuine']} genuine; a model needs examples of both"
            )
        raise DataError(
            f"the {role} split ({where}) needs at least {minimum} rows of each class; it has "
            f"{counts['promotion']} promotion and {counts['genuine']} genuine"
        )


def _per_class(y: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(y == c)) for c in (0, 1)]


def stratified_split(data: LabelledData, split: SplitConfig) -> tuple[LabelledData, LabelledData]:
    """Hold out ``val_fraction`` of each class (at least one row each) with a fixed seed."""
    require_both_classes(data, "training", minimum=2)
    rng = np.random.default_rng(split.seed)
    held: list[int] = []
    for idx in _per_class(data.y, rng):
        n_val = min(max(round(len(idx) * split.val_fraction), 1), len(idx) - 1)
        held.extend(idx[:n_val].tolist())
    val_mask = np.zeros(len(data), dtype=bool)
    val_mask[held] = True
    return data.subset(np.flatnonzero(~val_mask)), data.subset(np.flatnonzero(val_mask))


def stratified_subsample(data: LabelledData, max_rows: int, seed: int) -> LabelledData:
    """At most ``max_rows`` rows in the original class proportions (at least one per class)."""
    if len(data) <= max_rows:
        return data
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for idx in _per_class(data.y, rng):
        take = max(1, round(len(idx) * max_rows / len(data))) if len(idx) else 0
        keep.extend(idx[:take].tolist())
    return data.subset(np.sort(np.asarray(keep, dtype=np.int64)))


def min_rows_for_folds(folds: int) -> int:
    """Rows per class for ``folds``-fold CV whose training parts can still hold out a validation row per class."""
    n = folds
    while n - math.ceil(n / folds) < 2:
        n += 1
    return n


def stratified_folds(
    data: LabelledData, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train index, test index) per fold, stratified and shuffled with ``seed``."""
    if folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {folds}")
    need = min_rows_for_folds(folds)
    counts = {"promotion": data.n_promotion, "genuine": len(data) - data.n_promotion}
    short = {k: n for k, n in counts.items() if n < need}
    if short:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {need} rows of each class (one test row per fold, "
            f"two left to train and validate on); the data has {counts['promotion']} promotion and "
            f"{counts['genuine']} genuine. Use fewer folds or more data"
        )
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(data)), data.y)]


# --- from a TrainConfig ----------------------------------------------------------------


@dataclass
class TrainingData:
    """The splits one training run uses, and how they were made."""

    train: LabelledData
    validation: LabelledData
    mapping: LabelMapping
    validation_from: str  # "file", "dataset split" or "stratified split of the training data"
    total_train_rows: int  # before max_train_rows subsampling
    # data.seeding_grades ids found in neither split: a run whose own files leave some grades
    # out (a stack component with its own `train`) is fine, so they are counted, not refused
    unmatched_grades: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "train": self.train.describe(),
            "validation": self.validation.describe(),
            "validation_from": self.validation_from,
            "labels": self.mapping.to_dict(),
            "train_rows_before_subsample": self.total_train_rows,
            "unmatched_seeding_grades": self.unmatched_grades,
        }

    def summary(self) -> str:
        """One sentence for the model card."""
        tr, va = self.train, self.validation
        sub = (
            f" (subsampled from {self.total_train_rows:,})"
            if self.total_train_rows != len(tr)
            else ""
        )
        return (
            f"{len(tr):,} training rows{sub} from {', '.join(map(_short_name, tr.sources))}: "
            f"{tr.n_promotion:,} promotion, "
            f"{len(tr) - tr.n_promotion:,} genuine, {tr.n_graded:,} with a seeding grade. "
            f"Validation ({self.validation_from}): {len(va):,} rows, {va.n_promotion:,} promotion. "
            f"Label {_one_or_list(self.mapping.positive)!r} = promotion"
            + (f", {_one_or_list(self.mapping.negative)!r} = genuine." if self.mapping.negative else ".")
            + (f" {self.unmatched_grades:,} seeding grades (data.seeding_grades) matched no post here."
               if self.unmatched_grades else "")
        )


def _short_name(source: str) -> str:
    """Folder and file name: enough to tell sources apart in a model card, without the local path."""
    path = Path(source)
    return str(Path(path.parent.name) / path.name) if path.parent.name else path.name


def _train_source(cfg: DataConfig) -> tuple[str | list[str], str | None]:
    return (cfg.dataset, cfg.dataset_split) if cfg.dataset else (cfg.train, None)


def load_all_labelled(config: TrainConfig) -> tuple[LabelledData, LabelMapping]:
    """Training and validation rows together (cross-validation makes its own splits and
    reports no group slices, so group columns need not be in every file)."""
    cfg = config.data
    source, split = _train_source(cfg)
    data, mapping = load_labelled(source, cfg, dataset_split=split, check_groups=False)
    extra: LabelledData | None = None
    if cfg.validation:
        extra, _ = load_labelled(cfg.validation, cfg, mapping=mapping, check_groups=False)
    elif cfg.dataset and cfg.dataset_validation_split:
        extra, _ = load_labelled(
            cfg.dataset, cfg, mapping=mapping, dataset_split=cfg.dataset_validation_split, check_groups=False
        )
    if extra is not None:
        data = LabelledData.concat([data, extra])
    require_both_classes(data, "labelled")
    return data, mapping


def load_training_data(config: TrainConfig) -> TrainingData:
    """Read, check and split the data of a TrainConfig; raises DataError before any training."""
    cfg = config.data
    source, split = _train_source(cfg)
    # a group column (an evaluation slice) may sit in the validation files alone
    train, mapping = load_labelled(source, cfg, dataset_split=split, check_groups=not cfg.validation)
    require_both_classes(train, "training")
    if cfg.validation:
        validation, _ = load_labelled(cfg.validation, cfg, mapping=mapping, check_groups=False)
        for name in cfg.group_columns:
            if all(v is None for v in [*train.groups[name], *validation.groups[name]]):
                raise DataError(
                    f"{', '.join([*train.sources, *validation.sources])}: no column {name!r} "
                    "(data.group_columns) in the training or validation files"
                )
        origin = "file"
    elif cfg.dataset and cfg.dataset_validation_split:
        validation, _ = load_labelled(
            cfg.dataset, cfg, mapping=mapping, dataset_split=cfg.dataset_validation_split
        )
        origin = "dataset split"
    else:
        train, validation = stratified_split(train, config.split)
        origin = f"stratified {config.split.val_fraction:g} of the training data, seed {config.split.seed}"
    total = len(train)
    seen = {*train.ids, *validation.ids}
    unmatched = sum(post_id not in seen for post_id in _read_grades(cfg)) if cfg.seeding_grades else 0
    if config.training.max_train_rows is not None:
        train = stratified_subsample(train, config.training.max_train_rows, config.training.seed)
    require_both_classes(train, "training")
    require_both_classes(validation, "validation")
    return TrainingData(train, validation, mapping, origin, total, unmatched)
