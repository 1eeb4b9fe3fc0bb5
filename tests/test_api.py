"""The library API's own contract: what it refuses, explain offsets, loading from threads.

Scoring itself is covered in test_scoring.py; these use the shipped lexical model.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import kocscope
from kocscope.data.records import RecordError
from kocscope.data.text import normalize
from kocscope.inference.api import _SENTENCE_RE, DEFAULT_MODEL_DIR, KocscopeModel, load_model

LEXICAL = DEFAULT_MODEL_DIR / "lexical"


@pytest.fixture(scope="module")
def model() -> KocscopeModel:
    return load_model(LEXICAL)


def test_one_string_is_refused_not_scored_per_character(model: KocscopeModel) -> None:
    with pytest.raises(TypeError, match="not one string"):
        model.score("one string")
    with pytest.raises(TypeError, match="not one string"):
        list(model.score_iter("abc"))
    assert len(model.score(("one string",))) == 1


@pytest.mark.parametrize("text", ["", "   ", "\u200b\n"])
def test_an_empty_bare_string_is_refused_like_an_empty_text_field(model: KocscopeModel, text: str) -> None:
    with pytest.raises(RecordError) as bare:
        model.score([text])
    with pytest.raises(RecordError) as field:
        model.score([{"text": text}])
    assert str(bare.value) == str(field.value) == f"field 'text': is empty, got {text!r}"


def test_evidence_offsets_cover_exactly_the_text_returned(model: KocscopeModel) -> None:
    text = "I bought it myself.  It costs 3.5 at example.com. Use code SAVE20, link in bio!"
    (score,) = model.score([text], explain=True)
    ev = score.evidence
    assert normalize(text)[ev["start"]:ev["end"]] == ev["text"]
    assert ev["text"] == "Use code SAVE20, link in bio!"  # a '.' then a space ends the sentence before


def test_a_dot_ends_a_sentence_only_before_whitespace_or_the_end() -> None:
    sentences = [m.group().strip() for m in _SENTENCE_RE.finditer("Love it. v3.5 at example.com works. 好用。 再买")]
    assert sentences == ["Love it.", "v3.5 at example.com works.", "好用。", "再买"]


def test_loads_from_several_threads_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    from kocscope.models import bundle

    inside, most = 0, 0
    real = bundle.load_estimator

    def slow_load(path: Path):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.05)  # long enough for the other threads to arrive
        try:
            return real(path)
        finally:
            inside -= 1

    monkeypatch.setattr(bundle, "load_estimator", slow_load)
    models: list[KocscopeModel] = []
    threads = [threading.Thread(target=lambda: models.append(load_model(LEXICAL))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 4 and most == 1


def test_first_loads_of_a_transformer_from_threads_do_not_race(tmp_path: Path) -> None:
    """transformers' lazy module fails 'cannot import name AutoTokenizer' when two threads
    import it first at once; only a fresh interpreter has not imported it yet."""
    from test_modeling import build_tiny_encoder, make_model

    bundle = make_model(str(build_tiny_encoder(tmp_path / "encoder"))).save_pretrained(tmp_path / "bundle")
    code = (
        "import sys, threading, kocscope\n"
        "errors = []\n"
        "gate = threading.Barrier(4)\n"
        "def load():\n"
        "    gate.wait()\n"
        "    try:\n"
        "        kocscope.load_model(sys.argv[1])\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=load) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(errors)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_public_names_resolve_and_are_listed() -> None:
    for name in ("KocscopeModel", "BundleError", "KocRanking", "KocWeights"):
        assert getattr(kocscope, name).__name__ == name
        assert name in dir(kocscope)
    assert set(kocscope.__all__) <= set(dir(kocscope))
    with pytest.raises(AttributeError):
        kocscope.not_a_name  # noqa: B018
    assert (Path(kocscope.__file__).parent / "py.typed").is_file()


def _sentences(text: str) -> list[str]:
    return [m.group().strip() for m in _SENTENCE_RE.finditer(text)]


def test_a_half_width_dot_before_a_han_character_ends_a_sentence() -> None:
    assert _sentences("今天试了.效果一般.不推荐") == ["今天试了.", "效果一般.", "不推荐"]
    assert _sentences("買了.很好用.") == ["買了.", "很好用."]
    # numbers, versions, domains and an ellipsis stay whole
    assert _sentences("价格3.5元,v1.2版本,官网example.com.好用") == ["价格3.5元,v1.2版本,官网example.com.", "好用"]
    assert _sentences("等了好久...终于到了") == ["等了好久...", "终于到了"]
    assert _sentences("v1.2 works.3.5 stars") == ["v1.2 works.3.5 stars"]  # before a non-Han char: as before


def test_explain_splits_chinese_typed_with_half_width_dots(model: KocscopeModel) -> None:
    text = "今天去逛街了.天气很好.感谢品牌方寄样,评论区领优惠券"
    (score,) = model.score([text], explain=True)
    ev = score.evidence
    assert ev["text"] == "感谢品牌方寄样,评论区领优惠券"
    assert normalize(text)[ev["start"]:ev["end"]] == ev["text"]


ORDINARY = [f"Day {i}: I washed my face and went to bed early." for i in range(60)]
DISCLOSURE = "This post is sponsored by Glowco, use code GLOW15 for 20% off, link in bio!"


def test_explain_finds_a_disclosure_at_the_end_of_a_long_post(model: KocscopeModel) -> None:
    text = " ".join([*ORDINARY, DISCLOSURE])
    (score,) = model.score([text], explain=True)
    ev = score.evidence
    assert ev["text"] == DISCLOSURE
    assert normalize(text)[ev["start"]:ev["end"]] == DISCLOSURE


def test_explain_scores_the_first_and_last_sentences_of_a_long_post(
    model: KocscopeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[list[str]] = []
    real = model.estimator.predict_outputs

    def spy(texts, *args, **kwargs):
        scored.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(model.estimator, "predict_outputs", spy)
    sentences = [f"Sentence number {i} is here." for i in range(100)]
    model.score([" ".join(sentences)], explain=True)
    assert scored[-1] == sentences[:24] + sentences[-24:]  # the cost stays bounded: 48 sentences
    model.score([" ".join(sentences[:48])], explain=True)
    assert scored[-1] == sentences[:48]  # a post of 48 sentences or fewer: every one
