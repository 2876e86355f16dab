"""Task word_discovery: n-gram counts, PMI and the code-length change against naive loops, the decisive cut
against its definition, the segmentation DP against brute-force enumeration and against jieba reading the
exported lexicon, recovery of planted words, and bad input through the CLI."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from kexue.errors import UsageError
from kexue.lightning_modules.word_discovery import WordDiscoverer
from kexue.platform.cli import main
from kexue.text.word_discovery import (
    WordDiscoveryConfig,
    cohesive_ngrams,
    count_ngrams,
    decisive_cut,
    description_length_change,
    discover_words,
    entropy,
    export_lexicon,
    joins_punctuation,
    neighbour_entropy,
    pmi,
    segment,
)

from .conftest import assert_one_line_error, kexue

TINY = ["天气很好天气", "今天天气好", "好天气", "天天"]


def test_count_ngrams_matches_naive_loop() -> None:
    naive: Counter[str] = Counter()
    for text in TINY:
        for start in range(len(text)):
            for end in range(start + 1, min(start + 3, len(text)) + 1):
                naive[text[start:end]] += 1
    assert count_ngrams(TINY, 3) == naive
    assert count_ngrams(TINY, 3)["天气"] == 4 and count_ngrams(TINY, 3)["天"] == 7


def test_pmi_matches_probabilities_by_hand() -> None:
    counts = count_ngrams(TINY, 3)
    total = sum(map(len, TINY))  # 21 characters
    p = {g: c / total for g, c in counts.items()}
    assert pmi("天气", counts, total) == pytest.approx(math.log(p["天气"] / (p["天"] * p["气"])))
    by_split = [math.log(p["天气好"] / (p["天"] * p["气好"])), math.log(p["天气好"] / (p["天气"] * p["好"]))]
    assert pmi("天气好", counts, total) == pytest.approx(min(by_split))


def naive_pmi(gram: str, texts: list[str]) -> float:
    """The reference cohesion, from scratch: occurrences found by scanning every position of every text, then
    the smallest ``log(P(gram) / (P(left) P(right)))`` over the splits, with ``P(s) = occurrences(s) / characters``."""

    def occurrences(s: str) -> int:
        return sum(text[i : i + len(s)] == s for text in texts for i in range(len(text) - len(s) + 1))

    chars = sum(len(text) for text in texts)
    return min(
        math.log((occurrences(gram) / chars) / (occurrences(gram[:k]) / chars * occurrences(gram[k:]) / chars))
        for k in range(1, len(gram))
    )


def test_cohesive_ngrams_thresholds_and_punctuation() -> None:
    texts = ["他说：“好。”", "他说：“不。”", "——他说：“——”"] * 3
    counts, total = count_ngrams(texts, 3), sum(map(len, texts))
    grams = cohesive_ngrams(counts, total, min_count=3, threshold=0.5)
    naive = {g for g in counts if len(g) > 1 and counts[g] >= 3 and naive_pmi(g, texts) >= 0.5 * (len(g) - 1)}
    assert {"说：", "：“"} <= naive and not {"说：", "：“"} & grams  # cohesive, but glued to punctuation
    assert grams == {g for g in naive if not joins_punctuation(g)} and {"他说", "——"} <= grams


def code_length(tokens: list[str]) -> float:
    """-sum_x N_x log(N_x / N) over the token counts of a token sequence."""
    counts, n = Counter(tokens), len(tokens)
    return -sum(c * math.log(c / n) for c in counts.values())


def merge_pairs(tokens: list[str], a: str, b: str) -> list[str]:
    out, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


@pytest.mark.parametrize("text, a, b", [("abcabdabxaybqab", "a", "b"), ("aaxaayazbaab", "a", "a")])
def test_description_length_change_matches_recounting(text: str, a: str, b: str) -> None:
    tokens = list(text)
    merged = merge_pairs(tokens, a, b)
    n_ab = merged.count(a + b)
    counts = Counter(tokens)
    got = description_length_change(n_ab, counts[a], counts[b], len(tokens), same=a == b)
    assert got == pytest.approx(code_length(merged) - code_length(tokens))


def test_decisive_cut_matches_definition() -> None:
    rng = random.Random(0)
    for _ in range(200):
        text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 9)))
        grams = {"".join(rng.choice("abc") for _ in range(rng.randint(2, 3))) for _ in range(3)}
        pieces = decisive_cut(text, grams, 3)
        assert "".join(pieces) == text
        cuts = set(itertools.accumulate(map(len, pieces)))
        for i in range(1, len(text)):  # a cut before text[i] iff no gram occurrence spans i-1 and i
            covered = any(text[s : s + len(g)] == g and s < i < s + len(g) for g in grams for s in range(len(text)))
            assert (i in cuts) != covered, (text, grams, pieces)


def brute_force_best(text: str, lexicon: dict[str, int]) -> float:
    """Best log-probability over all 2^(n-1) splits of ``text`` (unknown single characters count 1)."""
    total, best = sum(lexicon.values()), -math.inf
    for mask in range(2 ** (len(text) - 1)):
        cuts = [0, *[i + 1 for i in range(len(text) - 1) if mask >> i & 1], len(text)]
        words = [text[s:e] for s, e in zip(cuts, cuts[1:])]
        counts = [lexicon.get(w, 1 if len(w) == 1 else 0) for w in words]
        if all(counts):
            best = max(best, sum(math.log(c / total) for c in counts))
    return best


def log_prob(words: list[str], lexicon: dict[str, int]) -> float:
    total = sum(lexicon.values())
    return sum(math.log(lexicon.get(w, 1) / total) for w in words)


def test_segment_matches_brute_force() -> None:
    rng = random.Random(1)
    for _ in range(150):
        lexicon = {"".join(rng.choice("abcd") for _ in range(rng.randint(1, 4))): rng.randint(1, 50) for _ in range(8)}
        text = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 9)))
        words = segment(text, lexicon)
        assert "".join(words) == text
        assert all(w in lexicon or len(w) == 1 for w in words)
        assert log_prob(words, lexicon) == pytest.approx(brute_force_best(text, lexicon))


def test_export_is_a_jieba_dictionary_that_segments_like_segment(tmp_path: Path) -> None:
    jieba = pytest.importorskip("jieba")
    lexicon = {"天气": 40, "今天": 25, "天": 30, "气": 7, "今": 3, "好天气": 11, "天天": 5, "很好": 9, "好": 60}
    path = export_lexicon(lexicon, tmp_path / "lexicon.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "好 60" and len(lines) == len(lexicon)
    assert {w: int(c) for w, c in (line.split(" ") for line in lines)} == lexicon
    tokenizer = jieba.Tokenizer(dictionary=str(path))  # our lexicon as jieba's whole dictionary
    tokenizer.tmp_dir = str(tmp_path)
    for text in ["今天天气很好", "好天气天天好", "天今气好很天", "气气天好天气今天"]:
        assert segment(text, lexicon) == list(tokenizer.cut(text, HMM=False)), text


def test_neighbour_entropy_by_hand() -> None:
    left, right = neighbour_entropy([["天气", "好"], ["好", "天气", "很"], ["x", "天气", "很"]])["天气"]
    assert left == pytest.approx(entropy([1, 1, 1]))  # a sentence edge, 好, x
    assert right == pytest.approx(entropy([1, 2]))  # 好 once, 很 twice


def test_discover_words_recovers_planted_words() -> None:
    # 16 equally likely words: a within-word split has PMI about log(16 * 2.2) = 3.6, a cross-word pair
    # about log(2.2) = 0.8; threshold 1.1 per character puts the bar between them for 2- to 4-grams.
    vocabulary = [
        "中国",
        "经济",
        "发展",
        "人民",
        "改革开放",
        "世界",
        "和平",
        "我们",
        "社会主义",
        "企业",
        "市场",
        "政府",
        "农村",
        "科学技术",
        "文化",
        "干部",
    ]
    rng = random.Random(0)
    corpus = ["".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 8))) for _ in range(600)]
    lexicon = discover_words(corpus, WordDiscoveryConfig(max_n=4, min_count=5, threshold=1.1))
    found = {w for w in lexicon if len(w) > 1}
    assert found == set(vocabulary)
    assert segment("中国人民改革开放发展经济", lexicon) == ["中国", "人民", "改革开放", "发展", "经济"]


def test_model_learns_from_batches_alone_and_scores_words(tmp_path: Path) -> None:
    vocabulary = planted_corpus(tmp_path / "raw.txt")
    lines = (tmp_path / "raw.txt").read_text("utf-8").splitlines()
    model = WordDiscoverer(min_count=3, threshold=1.0)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    # B/M/E/S = 0/1/2/3, written out by hand for 中国|人民 and 和平|发展|我们; -1 past the end
    val = [{"texts": ["中国人民", "和平发展我们"], "tags": torch.tensor([[0, 2, 0, 2, -1, -1], [0, 2, 0, 2, 0, 2]])}]
    # plain loaders, no DataModule: a model that read trainer.datamodule would fail here
    trainer.fit(model, train_dataloaders=DataLoader(lines, batch_size=64, collate_fn=list),
                val_dataloaders=DataLoader(val, batch_size=None))
    assert set(vocabulary) <= set(model.lexicon)
    assert trainer.callback_metrics["val/f1"] == pytest.approx(1.0)
    assert model.predict_step({"texts": ["中国人民", ""]}, 0) == ["中国 人民", ""]


def test_discover_words_bad_input() -> None:
    with pytest.raises(UsageError, match="empty"):
        discover_words(["", " \n "], WordDiscoveryConfig())
    with pytest.raises(UsageError, match="min_count=1000"):
        discover_words(TINY, WordDiscoveryConfig(min_count=1000))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> SimpleNamespace:
    """``kexue ARGS`` in this process (Lightning is imported once for all tests), as a CompletedProcess."""
    capsys.readouterr()
    status = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=status, stdout=out.out, stderr=out.err)


def planted_corpus(path: Path) -> list[str]:
    vocabulary = ["中国", "经济", "发展", "人民", "世界", "和平", "我们"]
    rng = random.Random(0)
    path.write_text("\n".join("".join(rng.choice(vocabulary) for _ in range(6)) for _ in range(300)), "utf-8")
    return vocabulary


def test_cli_run_on_a_raw_corpus_exports_the_lexicon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vocabulary = planted_corpus(tmp_path / "raw.txt")
    args = ["--logger", "none", f"--data.corpus_path={tmp_path / 'raw.txt'}", "--trainer.limit_val_batches=2"]
    proc = run_cli(capsys, "run", "word_discovery", *args, "--trainer.limit_test_batches=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("test/f1 ") for line in lines), proc.stdout
    assert "discovered" in lines[-2] and "中国" in lines[-2]
    path = Path(lines[-1].removeprefix("lexicon: "))
    assert path.name == "lexicon.txt" and path.is_file()
    exported = dict(line.split(" ") for line in path.read_text("utf-8").splitlines())
    assert set(vocabulary) <= exported.keys()
    # predict from the checkpoint `run` saved: the lexicon travels in it
    (tmp_path / "lines.txt").write_text("中国人民\n\n和平发展\n", "utf-8")  # a blank line gives a blank line
    ckpt = next(path.parent.rglob("*.ckpt"))
    proc = run_cli(
        capsys,
        "predict",
        "word_discovery",
        *args,
        f"--ckpt_path={ckpt}",
        f"--data.predict_path={tmp_path / 'lines.txt'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["中国 人民", "", "和平 发展"]  # exactly one line per input line


@pytest.mark.parametrize(
    "content, option, fragment",
    [
        (None, "", "corpus file not found"),
        ("", "", "no text lines in file"),
        (b"\xff\xfe\xfa\n", "", "not UTF-8"),
        ("天气", "--model.max_n=1", "model.max_n must be >= 2"),
    ],
)
def test_cli_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, option: str, fragment: str
) -> None:
    corpus = tmp_path / "raw.txt"
    if isinstance(content, bytes):
        corpus.write_bytes(content)
    elif content is not None:
        corpus.write_text(content, encoding="utf-8")
    args = ["run", "word_discovery", "--logger", "none", f"--data.corpus_path={corpus}", *([option] if option else [])]
    proc = run_cli(capsys, *args)  # in-process: Lightning's log handler may complain about pytest's closed
    last = proc.stderr.strip().splitlines()[-1]  # streams, so the no-traceback check is the subprocess test's
    assert proc.returncode == 2 and last.startswith("kexue: error: ") and fragment in last, proc.stderr[-2000:]


def test_cli_no_vocabulary_is_one_line_in_a_subprocess(tmp_path: Path) -> None:
    # raised at the end of the "training" epoch, deep inside Lightning: still exit 2 and one line
    (tmp_path / "raw.txt").write_text("天气很好\n今天天气好\n", encoding="utf-8")
    proc = kexue(
        "run",
        "word_discovery",
        "--logger",
        "none",
        f"--data.corpus_path={tmp_path / 'raw.txt'}",
        "--model.min_count=50",
        cwd=tmp_path,
    )
    assert_one_line_error(proc, "no word of two or more characters passed min_count=50")
