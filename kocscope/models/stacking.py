"""The stacked model: a logistic regression over the logits of other kocscope models.

Why: the lexical model and the transformer err on different posts, and their
errors differ by language. A combiner fitted on held-out (validation) logits,
with a language indicator and its interactions, lifts macro-F1 well beyond
either model alone (issue #6; figures in the card of a trained stack).

Features, in this order: each component's raw promotion logit ``z:<name>``,
then (``language_features``) ``is_non_zh`` (1 when
:func:`kocscope.data.text.detect_lang` of the text is not "zh") and
``z:<name>*is_non_zh`` per component. The combiner is fitted on validation
logits, so its output already is a calibrated logit: the PostEstimator
calibration stays the identity (method "stack") and only the threshold is
chosen on validation.

Seeding strength comes from a second combiner, a least-squares fit of the
validation seeding grades (grade / 4) on each component's seeding output
``s:<name>`` and promotion logit ``z:<name>``, clipped to [0, 1]. The logits
are there because the seeding heads learned that promotion pushes harder:
with them the fit can take that back out. Cross-fitted on the seed corpus's 275
graded validation rows it ranked posts better than the plain mean of the
components (Spearman zh 0.704 -> 0.755, en 0.796 -> 0.858). With fewer than
``SEEDING_MIN_GRADED`` graded validation rows, or ``seeding_combiner=False``,
the stack falls back to that mean.

Bundle: config.json carries the component list and the combiner's feature
names and weights as plain JSON numbers; each component is a full bundle in
its own sub-folder ``<name>/``; the top manifest covers every file, sub-folders
included, and each component's own manifest is checked again when it loads.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from kocscope.models.base import ModelOutputs, PostEstimator, check_texts
from kocscope.models.bundle import (
    CONFIG_FILE,
    BundleError,
    load_estimator,
    read_bundle_config,
    save_bundle,
)

# A component name becomes a folder of the bundle: keep it a plain, portable file name.
COMPONENT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
COMPONENT_KINDS = ("lexical", "transformer")  # stacks do not nest
LANGUAGE_FEATURE = "is_non_zh"
CALIBRATION_METHOD = "stack"
RUNTIMES = ("auto", "torch", "onnx")
SEEDING_RULE = "mean of the components' seeding outputs"
SEEDING_MODEL = "least squares on validation grades, clipped to [0, 1]"
SEEDING_MIN_GRADED = 20  # fewer graded validation rows than this: the mean rule
# (attribute, config key): what a trained stack records in its bundle besides the weights
_RECORDS = (
    ("metrics_", "metrics"),
    ("cross_fitted_metrics_", "cross_fitted_metrics"),
    ("training_data_", "training_data"),
    ("train_config_", "train_config"),
    ("training_run_", "training_run"),
)


def feature_names(components: Sequence[str], language_features: bool = True) -> list[str]:
    """Column names of :meth:`StackedModel.stack_features`, in order."""
    names = [f"z:{name}" for name in components]
    if language_features:
        names += [LANGUAGE_FEATURE] + [f"z:{name}*{LANGUAGE_FEATURE}" for name in components]
    return names


def seeding_feature_names(components: Sequence[str]) -> list[str]:
    """Column names of :meth:`StackedModel.seeding_features`, in order."""
    return [f"s:{name}" for name in components] + [f"z:{name}" for name in components]


def fit_seeding_combiner(features: np.ndarray, grades01: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares of grade / 4 on seeding features: (coef, intercept)."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.asarray(features, dtype=np.float64), np.asarray(grades01))
    return model.coef_.ravel().astype(np.float64), float(model.intercept_)


def check_component_name(name: Any) -> str | None:
    """Why ``name`` cannot name a component (None when it can)."""
    if not isinstance(name, str) or not COMPONENT_NAME_RE.match(name):
        return (
            f"component name {name!r} must start with a letter and hold only letters, digits, '_' or '-' "
            "(at most 64 characters): it becomes a folder of the bundle"
        )
    if name.lower() in ("readme.md", "config.json", "manifest.json"):
        return f"component name {name!r} clashes with a bundle file"
    return None


def non_zh(texts: Sequence[str]) -> np.ndarray:
    """1.0 where the text is not Chinese by :func:`detect_lang`, the rule the combiner was fitted with."""
    from kocscope.data.text import detect_lang

    return np.fromiter((detect_lang(t) != "zh" for t in texts), dtype=np.float64, count=len(texts))


def fit_combiner(
    features: np.ndarray, y: np.ndarray, C: float, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Logistic regression (L2, strength 1/C) on stack features: (coef, intercept).

    No class weighting: the output must stay a calibrated logit at the
    validation base rate, unlike the components' class-weighted logits.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise ValueError(
            f"fitting the combiner needs both classes; all {len(y)} rows are one class"
        )
    model = LogisticRegression(C=float(C), max_iter=10_000, random_state=seed)
    model.fit(np.asarray(features, dtype=np.float64), y)
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


class StackedModel(ClassifierMixin, PostEstimator, BaseEstimator):
    """Named component estimators under a logistic-regression combiner; see the module docstring.

    ``components``: name -> fitted estimator (any non-stack kind), in feature
    order. Learned state (set by :meth:`fit` or :meth:`from_pretrained`):
    ``coef_``, ``intercept_``, ``feature_names_``, the mixin's calibration
    (identity, method "stack") and threshold, ``seeding_coef_`` and
    ``seeding_intercept_`` (None when seeding is the components' mean),
    ``seeding_graded_rows_``, and optionally ``metrics_``,
    ``cross_fitted_metrics_``, ``training_data_``, ``train_config_``,
    ``training_run_``, which the bundle records.
    """

    kind = "stack"

    def __init__(
        self,
        components: Mapping[str, Any] | None = None,
        C: float = 1e4,
        language_features: bool = True,
        cv_folds: int = 10,
        seed: int = 0,
        seeding_combiner: bool = True,
    ) -> None:
        self.components = components
        self.C = C
        self.language_features = language_features
        self.cv_folds = cv_folds
        self.seed = seed
        self.seeding_combiner = seeding_combiner

    # -- settings -------------------------------------------------------------
    def _check_params(self) -> None:
        need = self._need
        need(
            isinstance(self.components, Mapping) and len(self.components) > 0,
            "components must name at least one fitted estimator; a stack is built by `kocscope train` "
            "with model.kind: stack and model.components (kocscope.training.stacking), which trains them first",
        )
        for name, estimator in self.components.items():
            problem = check_component_name(name)
            need(problem is None, str(problem))
            kind = getattr(estimator, "kind", None)
            need(
                kind in COMPONENT_KINDS and hasattr(estimator, "predict_outputs"),
                f"component {name!r} is a {kind or type(estimator).__name__!r}; expected one of {COMPONENT_KINDS}",
            )
        need(
            isinstance(self.C, (int, float))
            and not isinstance(self.C, bool)
            and math.isfinite(self.C)
            and self.C > 0,
            f"C must be a number > 0, got {self.C!r}",
        )
        need(
            isinstance(self.language_features, bool),
            f"language_features must be true or false, got {self.language_features!r}",
        )
        need(
            isinstance(self.cv_folds, int)
            and not isinstance(self.cv_folds, bool)
            and self.cv_folds >= 2,
            f"cv_folds must be an int >= 2, got {self.cv_folds!r}",
        )
        need(isinstance(self.seed, int), f"seed must be an int, got {self.seed!r}")
        need(
            isinstance(self.seeding_combiner, bool),
            f"seeding_combiner must be true or false, got {self.seeding_combiner!r}",
        )

    def _require_fitted(self) -> None:
        if getattr(self, "coef_", None) is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "this StackedModel has no combiner yet; call fit() or from_pretrained() first"
            )

    @property
    def component_names(self) -> list[str]:
        return list(self.components or {})

    # -- features -------------------------------------------------------------
    def component_outputs(
        self, texts: Sequence[str], batch_size: int | None = None
    ) -> dict[str, ModelOutputs]:
        """Each component's raw outputs, each component run once over all texts."""
        texts = check_texts(texts)
        return {
            name: est.predict_outputs(texts, batch_size=batch_size)
            for name, est in self.components.items()
        }

    def stack_features(
        self, texts: Sequence[str], outputs: Mapping[str, ModelOutputs]
    ) -> np.ndarray:
        """The combiner's input matrix (n, len(feature_names)) from the components' outputs."""
        z = np.column_stack(
            [np.asarray(outputs[name].logits, dtype=np.float64) for name in self.component_names]
        )
        if not self.language_features:
            return z
        lang = non_zh(list(texts))[:, None]
        return np.hstack([z, lang, z * lang])

    def seeding_features(self, outputs: Mapping[str, ModelOutputs]) -> np.ndarray:
        """The seeding combiner's input matrix (n, len(seeding_feature_names)): seeding outputs, then logits."""
        names = self.component_names
        return np.column_stack(
            [np.asarray(outputs[n].seeding, dtype=np.float64) for n in names]
            + [np.asarray(outputs[n].logits, dtype=np.float64) for n in names]
        )

    # -- training -------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        y: Sequence[int] | np.ndarray,
        seeding: Sequence[float] | np.ndarray | None = None,
        outputs: Mapping[str, ModelOutputs] | None = None,
    ) -> StackedModel:
        """Fit the combiners on held-out rows (the components stay as they are).

        ``seeding``: grade / 4 per text, NaN where ungraded; the seeding
        combiner needs ``SEEDING_MIN_GRADED`` graded rows, else seeding stays
        the components' mean. ``outputs``: the components' outputs on ``texts``
        when already computed. Fit on rows the components did not train on, or
        the combiners learn to trust their training-set overconfidence.
        """
        from kocscope.training.metrics import as_labels

        self._check_params()
        texts = list(texts)
        labels = as_labels(y, "y")
        if labels.shape[0] != len(texts):
            raise ValueError(f"y has {labels.shape[0]} labels for {len(texts)} texts")
        grades = np.full(len(texts), np.nan) if seeding is None else np.asarray(seeding, dtype=np.float64)
        if grades.shape != (len(texts),):
            raise ValueError(f"seeding has {grades.size} values for {len(texts)} texts")
        graded = ~np.isnan(grades)
        if ((grades[graded] < 0) | (grades[graded] > 1)).any():
            raise ValueError("seeding values must be grade / 4, within [0, 1] (NaN for ungraded rows)")
        outputs = self.component_outputs(texts) if outputs is None else outputs
        self.coef_, self.intercept_ = fit_combiner(
            self.stack_features(texts, outputs), labels, self.C, self.seed
        )
        self.feature_names_ = feature_names(self.component_names, self.language_features)
        self.seeding_coef_ = self.seeding_intercept_ = None
        self.seeding_graded_rows_ = int(graded.sum())
        if (
            self.seeding_combiner
            and self.seeding_graded_rows_ >= SEEDING_MIN_GRADED
            and np.ptp(grades[graded]) > 0
        ):
            self.seeding_coef_, self.seeding_intercept_ = fit_seeding_combiner(
                self.seeding_features(outputs)[graded], grades[graded]
            )
        self.set_calibration(1.0, 0.0, 0.5, CALIBRATION_METHOD)
        return self

    # -- scoring --------------------------------------------------------------
    def outputs_from_components(
        self, texts: Sequence[str], outputs: Mapping[str, ModelOutputs]
    ) -> ModelOutputs:
        """The stack's outputs given its components' outputs on ``texts``."""
        self._require_fitted()
        logits = self.stack_features(texts, outputs) @ self.coef_ + self.intercept_
        if getattr(self, "seeding_coef_", None) is None:
            seeding = np.mean(
                [np.asarray(outputs[n].seeding, dtype=np.float64) for n in self.component_names],
                axis=0,
            )
        else:
            seeding = np.clip(
                self.seeding_features(outputs) @ self.seeding_coef_ + self.seeding_intercept_, 0.0, 1.0
            )
        return ModelOutputs(logits=logits, seeding=seeding)

    def predict_outputs(self, texts: Sequence[str], batch_size: int | None = None) -> ModelOutputs:
        """The combiner's logit (already calibrated) and the seeding combiner's strength."""
        self._require_fitted()
        texts = check_texts(texts)
        if not texts:
            return ModelOutputs(logits=np.zeros(0), seeding=np.zeros(0))
        return self.outputs_from_components(texts, self.component_outputs(texts, batch_size))

    # -- what kocscope.inference.api.load_model asks of an estimator ----------
    @property
    def module_(self) -> Any:
        """The transformer components' torch modules as one ModuleList (None without any), so
        ``load_model(device=...)`` places them all with one ``.to(device)``."""
        modules = [
            m
            for m in (getattr(c, "module_", None) for c in (self.components or {}).values())
            if m is not None
        ]
        if not modules:
            return None
        from torch import nn

        return nn.ModuleList(modules)

    def set_runtime(self, runtime: str = "auto", threads: int | None = None) -> str:
        """Pick the engine of every transformer component (see TransformerPostModel.set_runtime);
        returns their engines joined by "+", or "numpy" when the stack has none."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        engines = [c for c in self.components.values() if hasattr(c, "set_runtime")]
        if not engines:
            if runtime == "onnx":
                raise ValueError(
                    "this stack has no transformer component, so no ONNX Runtime engine; use runtime 'auto'"
                )
            return "numpy"
        return "+".join(sorted({c.set_runtime(runtime, threads) for c in engines}))

    # -- bundle ---------------------------------------------------------------
    def combiner_config(self) -> dict[str, Any]:
        self._require_fitted()
        return {
            "model": "logistic regression",
            "C": float(self.C),
            "features": list(self.feature_names_),
            "coef": [float(v) for v in self.coef_],
            "intercept": float(self.intercept_),
        }

    def seeding_config(self) -> str | dict[str, Any]:
        """The bundle's ``seeding`` field: the mean rule's name, or the seeding combiner."""
        self._require_fitted()
        if getattr(self, "seeding_coef_", None) is None:
            return SEEDING_RULE
        return {
            "model": SEEDING_MODEL,
            "features": seeding_feature_names(self.component_names),
            "coef": [float(v) for v in self.seeding_coef_],
            "intercept": float(self.seeding_intercept_),
            "graded_rows": int(getattr(self, "seeding_graded_rows_", 0)),
        }

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write config.json, the card, each component as a full bundle in ``<name>/``, and one manifest."""
        self._require_fitted()
        self._check_params()
        config: dict[str, Any] = {
            "kind": self.kind,
            "C": float(self.C),
            "language_features": self.language_features,
            "cv_folds": self.cv_folds,
            "seed": self.seed,
            "seeding_combiner": self.seeding_combiner,
            "components": [
                {"name": name, "kind": est.kind} for name, est in self.components.items()
            ],
            "combiner": self.combiner_config(),
            "seeding": self.seeding_config(),
            **self.calibration_config(),
        }
        for attr, key in _RECORDS:
            if getattr(self, attr, None):
                config[key] = getattr(self, attr)

        def write(tmp: Path) -> None:
            for name, estimator in self.components.items():
                estimator.save_pretrained(tmp / name)

        return save_bundle(directory, config, write)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> StackedModel:
        """Load a stack bundle: the whole tree is checked against the top manifest, then each
        component loads through :func:`load_estimator` (which checks its own manifest)."""
        root = Path(directory)
        config = read_bundle_config(root, expected_kind=cls.kind)
        where = root / CONFIG_FILE
        missing = [
            k
            for k in ("C", "language_features", "cv_folds", "seed", "components", "combiner")
            if k not in config
        ]
        if missing:
            raise BundleError(f"{where}: missing field(s) {', '.join(missing)}")
        listed = config["components"]
        if not isinstance(listed, list) or not listed:
            raise BundleError(f"{where}: field components must be a non-empty list, got {listed!r}")
        components: dict[str, Any] = {}
        for i, entry in enumerate(listed):
            name = entry.get("name") if isinstance(entry, dict) else None
            problem = check_component_name(name)
            if problem or entry.get("kind") not in COMPONENT_KINDS or name in components:
                raise BundleError(
                    f"{where}: components[{i}] = {entry!r}: "
                    + (problem or f"expected a unique name and a kind in {COMPONENT_KINDS}")
                )
            estimator = load_estimator(root / name)
            if estimator.kind != entry["kind"]:
                raise BundleError(
                    f"{root / name}: holds a {estimator.kind!r} model, config.json lists {entry['kind']!r}"
                )
            components[name] = estimator
        model = cls(
            components,
            config["C"],
            config["language_features"],
            config["cv_folds"],
            config["seed"],
            # bundles from before the seeding combiner used the mean rule
            config.get("seeding_combiner", False),
        )
        try:
            model._check_params()
        except ValueError as exc:
            raise BundleError(f"{where}: {exc}") from exc
        model.coef_, model.intercept_, model.feature_names_ = _read_combiner(
            config["combiner"], model, where
        )
        model.seeding_coef_, model.seeding_intercept_, model.seeding_graded_rows_ = _read_seeding(
            config.get("seeding", SEEDING_RULE), model, where
        )
        model.load_calibration_config(config, where)
        for attr, key in _RECORDS:
            if config.get(key):
                setattr(model, attr, config[key])
        return model


def _read_combiner(
    combiner: Any, model: StackedModel, where: Path
) -> tuple[np.ndarray, float, list[str]]:
    expected = feature_names(model.component_names, model.language_features)
    coef, intercept = _read_linear(combiner, "combiner", expected, where)
    return coef, intercept, expected


def _read_seeding(
    seeding: Any, model: StackedModel, where: Path
) -> tuple[np.ndarray | None, float | None, int]:
    """The seeding combiner's (coef, intercept, graded rows); (None, None, 0) for the mean rule."""
    if seeding == SEEDING_RULE:
        return None, None, 0
    expected = seeding_feature_names(model.component_names)
    coef, intercept = _read_linear(seeding, "seeding", expected, where)
    rows = seeding.get("graded_rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise BundleError(f"{where}: field seeding.graded_rows must be a whole number, got {rows!r}")
    return coef, intercept, rows


def _read_linear(
    spec: Any, field_name: str, expected: list[str], where: Path
) -> tuple[np.ndarray, float]:
    """Weights of a linear map recorded as {features, coef, intercept}, checked against ``expected``."""
    if not isinstance(spec, dict):
        raise BundleError(f"{where}: field {field_name} must be a mapping, got {spec!r}")
    if spec.get("features") != expected:
        raise BundleError(
            f"{where}: field {field_name}.features is {spec.get('features')!r}, expected {expected}"
        )
    coef, intercept = spec.get("coef"), spec.get("intercept")
    numbers = isinstance(coef, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in coef
    )
    if not numbers or len(coef) != len(expected) or not all(math.isfinite(v) for v in coef):
        raise BundleError(
            f"{where}: field {field_name}.coef must be {len(expected)} finite numbers, got {coef!r}"
        )
    if (
        not isinstance(intercept, (int, float))
        or isinstance(intercept, bool)
        or not math.isfinite(intercept)
    ):
        raise BundleError(
            f"{where}: field {field_name}.intercept must be a finite number, got {intercept!r}"
        )
    return np.asarray(coef, dtype=np.float64), float(intercept)
