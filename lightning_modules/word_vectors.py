"""What the word-vector LightningModules share: the vocabulary, evaluation on word lists and export.

The three methods live beside this file: :mod:`kexue.lightning_modules.word2vec` (negative sampling,
“噪声对比估计”杂谈, https://kexue.fm/archives/5617), :mod:`kexue.lightning_modules.svd_vectors` (PPMI + SVD,
SVD分解(三): 连Word2Vec都只不过是个SVD?, https://kexue.fm/archives/4208) and
:mod:`kexue.lightning_modules.simpler_glove` (更别致的词向量模型(四)/(六), https://kexue.fm/archives/4675, /4677).

How the data reach a model without it reading the DataModule: ``vocab_size``, ``words`` and ``language`` are
constructor arguments that the tasks link from the built DataModule (``Task.data_links``), so the tables
are sized before a checkpoint is restored into them. ``vocab_size`` and ``language`` are hyperparameters;
the ``V`` words are not (a list of tens of thousands of strings has no place in ``hparams.yaml`` or a
logger's hyperparameter table): they travel in the checkpoint under ``"vocabulary"``, so a checkpoint alone
still scores and exports. Validation logs wordsim353 Spearman; test logs wordsim353 / simlex999 Spearman and
analogy accuracy; ``report_lines`` exports the vectors in word2vec text format (``vectors.txt`` in the run
directory) and prints its path last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch import Tensor

from kexue.data.packages import gensim_test_file
from kexue.losses import negative_sampling_loss  # noqa: F401  (re-exported from its old home)
from kexue.text.vectors import (
    analogy_accuracy,
    nearest_neighbours,
    read_analogies,
    read_word_pairs,
    save_word2vec_format,
    word_similarity,
)

PROBES = {
    "en": ["king", "france", "computer", "war", "music", "science"],
    "zh": ["中国", "经济", "北京", "电脑", "酒店", "服务"],
}


class WordVectorModule(L.LightningModule):
    """Vocabulary, evaluation and export; subclasses build their ``(V, D)`` table and implement :meth:`vectors`.

    Args:
        vocab_size: ``V`` (linked from ``data.vocab_size``; ``None`` only until a checkpoint's value replaces it).
        words: the ``V`` words, id order (linked from ``data.words``; ``None`` when a checkpoint brings them).
        language: ``"en"`` or ``"zh"``, which probe words ``kexue run`` prints neighbours of.
    """

    def __init__(self, vocab_size: int | None = None, words: Sequence[str] | None = None, language: str = "en") -> None:
        super().__init__()
        if vocab_size is None:
            raise ValueError("model.vocab_size is not set: the task links it from the data, a checkpoint restores it")
        if vocab_size < 1:
            raise ValueError(f"model.vocab_size must be >= 1, got {vocab_size}")
        if words is not None and len(words) != vocab_size:
            raise ValueError(f"model.words holds {len(words)} words, model.vocab_size is {vocab_size}")
        self.words: list[str] = list(words) if words is not None else []
        self.language = language

    def vectors(self) -> Tensor:
        """The ``(V, D)`` word vectors that are evaluated and exported."""
        raise NotImplementedError

    def on_train_start(self) -> None:
        # A subclass's ``train_threads`` hyperparameter caps torch's intra-op threads while it trains on the CPU
        # (sparse row updates gain nothing from more; word2vec, jose); restored when training ends.
        self._threads = torch.get_num_threads()
        threads = self.hparams.get("train_threads")
        if threads is not None and self.device.type == "cpu":
            torch.set_num_threads(threads)

    def on_train_end(self) -> None:
        torch.set_num_threads(getattr(self, "_threads", torch.get_num_threads()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vocabulary"] = [str(w) for w in self.words]  # plain str: checkpoints load with weights_only

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        words = checkpoint.get("vocabulary")
        if words is None or len(words) != self.hparams.vocab_size:
            raise ValueError("the checkpoint holds no vocabulary of the model's size (written before this version): "
                             "retrain")
        self.words = list(words)

    def _evaluate(self, stage: str) -> None:
        if not self.words:
            raise ValueError("the model has no vocabulary: build it through the task (or load a checkpoint)")
        vectors = self.vectors().detach().float().cpu()  # (V, D)
        files = {"wordsim353": "wordsim353.tsv"} if stage == "val" else {
            "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
        for name, file in files.items():
            rho, _ = word_similarity(vectors, self.words, read_word_pairs(gensim_test_file(file)))
            self.log(f"{stage}/{name}", rho)
        if stage == "test":
            acc, _ = analogy_accuracy(vectors, self.words, read_analogies(gensim_test_file("questions-words.txt")))
            self.log("test/analogy", acc)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate("val")

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate("test")

    def report_lines(self, command: str) -> list[str]:
        """Nearest neighbours of a few probe words, then the path of the exported ``vectors.txt``."""
        if command not in ("fit", "run", "test") or not self.words:
            return []
        trainer = self.trainer
        run_dir = Path(trainer.default_root_dir)  # the run directory; log_dir would broadcast from rank 0 alone
        run_dir.mkdir(parents=True, exist_ok=True)
        vectors, lines = self.vectors().detach().float().cpu(), []  # (V, D)
        path = save_word2vec_format(run_dir / "vectors.txt", self.words, vectors)
        for word in PROBES.get(self.language, []):
            if word in self.words:
                near = nearest_neighbours(vectors, self.words, word, k=8)
                lines.append(f"nearest {word}: " + " ".join(w for w, _ in near))
        return [*lines, str(path.resolve())]
