"""Where the shared real data sits: ``shared/`` beside the repository checkout (as in CI)."""

from pathlib import Path

ZHIHU = Path(__file__).resolve().parents[2] / "shared" / "data" / "zhihu16k"
