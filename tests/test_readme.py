"""The README's library example runs as written, on the shipped default model."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(capsys) -> None:
    text = README.read_text(encoding="utf-8")
    marker = text.index("executed by tests/test_readme.py")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    exec(compile(code, str(README), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    first, second = lines[0].split(), lines[1].split()
    assert first[1] in ("genuine", "promotion") and second[0] == "p2"
    assert lines[2].startswith("lin ")


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["./dev demo", "./dev test"]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))] == ["./dev test"]
