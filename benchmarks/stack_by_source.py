"""Cross-fitted stack figures per validation file, for candidate sets of components.

A stack's own cross-fitted figures pool every validation row; a candidate component
can win on posts by new writers and lose on zhihu16k at once, which the pool hides.
This fits the default's combiner (C 1e4, language features, 10 folds, seed 0) over each
candidate set on all the files together and reports each file's rows apart, so sets
compare on equal terms. Validation data only: never pass a test file.

    .venv/bin/python benchmarks/stack_by_source.py \\
        --candidate kocscope/default_model/lexical kocscope/default_model/transformer \\
        --candidate kocscope/default_model/lexical runs/default-model-continued/model/transformer \\
        --validation ../shared/data/zhihu16k/val.jsonl corpus/seed/val.jsonl \\
                     corpus/seed-val2/val.jsonl corpus/seed-val3/val.jsonl
"""

from __future__ import annotations

import argparse

from kocscope.models.bundle import load_estimator
from kocscope.models.stacking import StackedModel
from kocscope.training.dataset import load_labelled
from kocscope.training.stacking import cross_fitted_metrics
from kocscope.training.training_args import DataConfig

SHOWN = ("n", "f1", "macro_f1", "roc_auc", "ece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", action="append", nargs="+", required=True, metavar="BUNDLE",
                        help="one candidate: a component bundle per component (repeat for each candidate)")
    parser.add_argument("--validation", nargs="+", required=True, metavar="FILE",
                        help="labelled files (label 1/promotion or 0/genuine)")
    args = parser.parse_args()
    cfg = DataConfig(positive_label=[1, "promotion"], negative_label=[0, "genuine"])
    data, _ = load_labelled(args.validation, cfg, check_optional=False)
    source = [where.rsplit(", line ", 1)[0] for where in data.where]
    for bundles in args.candidate:
        stack = StackedModel(
            {f"c{i}": load_estimator(b) for i, b in enumerate(bundles)},
            C=10000.0, language_features=True, cv_folds=10, seed=0,
        )
        outputs = stack.component_outputs(data.texts)
        features = stack.stack_features(data.texts, outputs)
        # the per-file rows come out of the per-"language" slot: the source stands in for it
        result = cross_fitted_metrics(features, data.y, source, C=stack.C, folds=10, seed=0)
        print(" + ".join(bundles))
        print("  all rows:", {k: round(result["all"][k], 3) for k in SHOWN})
        for name, m in result["by_language"].items():
            print(f"  {name}:", {k: round(m[k], 3) for k in SHOWN})


if __name__ == "__main__":
    main()
