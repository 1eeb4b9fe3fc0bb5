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
        json.dumps({k: v for k, v in config.items() if k not in ("metrics", "training_data")}, ensure_ascii=False, indent=2, sort_keys=True),
        "```",
        "",
        "## Validation metrics",
    ]
    metrics = config.get("metrics") or {}
    lines += _table(metrics) if metrics else ["Not evaluated."]
    lines += ["", "## Limits", *(f"- {item}" for item in _LIMITS), ""]
    return "\n".join(lines)
