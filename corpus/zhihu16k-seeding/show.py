"""Print a batch of sampled posts for grading, WITHOUT their label (grading is label-blind).

Posts up to FULL chars are shown whole; longer ones as head + buying-cue lines from the
middle + tail, so that a reader can grade 440 posts in one sitting (see README, limits).
Usage: python show.py ids_file start count
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from sample import TRAIN

FULL, HEAD, TAIL, CUE_LINES = 600, 350, 200, 3
CUE = re.compile(r"推荐|入手|购买|买|链接|价格|元|券|优惠|京东|天猫|淘宝|拼多多|旗舰店|回购|闭眼|必入|性价比|值得")


def excerpt(text: str) -> str:
    if len(text) <= FULL:
        return text
    middle = text[HEAD:-TAIL]
    cues = [ln.strip()[:80] for ln in middle.split("\n") if CUE.search(ln)][:CUE_LINES]
    cue_part = "\n".join(f"  >> {c}" for c in cues)
    return f"{text[:HEAD]}\n[... {len(middle)} chars skipped; cue lines:]\n{cue_part}\n[...]\n{text[-TAIL:]}"


def main() -> None:
    ids_file, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ids = [ln.strip() for ln in Path(ids_file).read_text(encoding="utf-8").splitlines() if ln.strip()]
    want = ids[start:start + count]
    rows = {}
    with TRAIN.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["id"] in want:
                rows[r["id"]] = r
    for i, pid in enumerate(want, start):
        r = rows[pid]
        print(f"=== #{i} {pid} [{r['topic']}] len={len(r['text'])}")
        print(excerpt(r["text"]))


if __name__ == "__main__":
    main()
