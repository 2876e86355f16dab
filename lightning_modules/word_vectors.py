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
still exports. The evaluation word lists are the DataModule's val/test datasets (word ids, encoded with its
vocabulary; :mod:`kexue.data.word_lists`), scored by :class:`~kexue.metrics.WordSimilarity` and
:class:`~kexue.metrics.AnalogyAccuracy`: validation logs ``val/wordsim353``; test logs ``test/wordsim353``,
``test/simlex999`` (Spearman) and ``test/analogy`` (3CosAdd accuracy), each beside ``..._coverage``, the share of
its rows whose words are in the vocabulary. ``report_lines`` exports the vectors in word2vec text format
(``vectors.txt`` in the run directory) and prints its path last.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch import Tensor, nn

from kexue.losses import negative_sampling_loss  # noqa: F401  (re-exported from its old home)
from kexue.metrics import AnalogyAccuracy, WordSimilarity, log_score
from kexue.text.vectors import nearest_neighbours, save_word2vec_format

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
        # One Metric per word list, made when its first batch arrives: the lists are the DataModule's.
        self.word_list_metrics = nn.ModuleDict()

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

    def _update(self, batch: dict[str, Any]) -> None:
        """Score one batch of a word list (:mod:`kexue.data.word_lists`) into that list's Metric."""
        name, words = batch["set"], batch["words"]  # words: (B, 2) pairs or (B, 4) analogy questions
        if name not in self.word_list_metrics:
            metric = AnalogyAccuracy() if words.shape[1] == 4 else WordSimilarity()
            self.word_list_metrics[name] = metric.to(self.device)
        metric, vectors = self.word_list_metrics[name], self.vectors().detach()  # (V, D)
        if words.shape[1] == 4:
            metric.update(vectors, words, batch["candidates"], ids=batch["index"])
        else:
            metric.update(vectors, words, batch["scores"], ids=batch["index"])

    def _log_word_lists(self, stage: str) -> None:
        for name, metric in self.word_list_metrics.items():
            if metric.update_called:
                score, coverage = metric.compute()  # synced across ranks by the Metric
                if isinstance(metric, AnalogyAccuracy):
                    nothing = "no question has its four words among the candidate words"
                elif coverage == 0:
                    nothing = "no pair has both words in the vocabulary"
                else:
                    nothing = "fewer than 3 pairs have both words in the vocabulary, too few to rank"
                log_score(self, f"{stage}/{name}", float(score), int(not math.isnan(score)),
                          f"{nothing} ({stage}/{name}_coverage {float(coverage):.4f})")
                self.log(f"{stage}/{name}_coverage", float(coverage))
            metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_word_lists("val")

    def on_test_epoch_end(self) -> None:
        self._log_word_lists("test")

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
