"""Data helpers shared by the DataModules: the fixed split and the two bases, :class:`BatchedDataModule` (the
loader settings) and :class:`SplitDataModule` (plus the users' split files and the embedded corpus's fractions).

The bases declare the arguments every DataModule shares, once: a subclass takes ``**kwargs`` and passes them to
``super().__init__``; jsonargparse follows ``**kwargs`` into these signatures (``--help``, ``--print_config``), and
:meth:`BatchedDataModule.__init__` calls ``save_hyperparameters()``, which collects the arguments of every
``__init__`` on the way (the subclasses' included, as their locals are when they call ``super().__init__``). A task
whose default differs (a batch size, a split) names that argument in its own signature with its default and passes
it on by keyword, so ``--print_config`` shows the task's true value and Python callers get the same one.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Sequence, Sized, TypeVar

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, RandomSampler

from kexue.data.readers import read_text_lines
from kexue.errors import UsageError

T = TypeVar("T")


def fixed_split(
    rows: Sequence[T], fractions: tuple[float, float, float], seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Split ``rows`` into train/val/test by a seeded permutation: same input, same split, always.

    ``fractions`` are the train/val/test shares (non-negative, summing to 1); the test split takes the
    remainder after rounding down the first two.
    """
    SplitDataModule.check_split(fractions)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train, n_val = int(fractions[0] * len(rows)), int(fractions[1] * len(rows))
    pick = lambda idx: [rows[i] for i in idx]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train : n_train + n_val]), pick(order[n_train + n_val :])


def check_at_least(**limits: tuple[int, int]) -> None:
    """ValueError (a one-line CLI error) naming ``data.<name>`` for each ``name=(value, least)`` below its least:
    the DataModules' check of their counts and sizes (batch size, buckets, workers...)."""
    for name, (value, least) in limits.items():
        if value < least:
            raise ValueError(f"data.{name} must be >= {least}, got {value}")


def normalizes_over_batch(model: nn.Module | None) -> bool:
    """True when ``model`` has a layer that normalises over the batch in training mode (any BatchNorm): such a layer
    cannot take a batch of one sample (its variance is undefined; torch raises)."""
    return model is not None and any(isinstance(m, _BatchNorm) for m in model.modules())


class EpochSeededSampler(RandomSampler):
    """A shuffling sampler whose order depends only on ``(seed, epoch)``, not on the global RNG.

    It draws the same permutation as ``torch.utils.data.DistributedSampler`` (``randperm`` from a generator
    seeded with ``seed + epoch``), so one process with batch ``k*b`` sees exactly the global batches that
    ``k`` DDP processes with batch ``b`` see, and a run resumed at an epoch boundary replays the same order.
    Lightning calls :meth:`set_epoch` each epoch; under DDP it swaps in a ``DistributedSampler`` (it does so
    for ``RandomSampler`` subclasses, hence the base class).

    Args:
        data: the dataset (only its length is used).
        seed: base seed; None takes the ``seed_everything`` value (``PL_GLOBAL_SEED``), like Lightning does
            for its DistributedSampler.
    """

    def __init__(self, data: Sized, seed: int | None = None) -> None:
        super().__init__(data)
        self.data, self.epoch = data, 0
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data), generator=generator).tolist())


class BatchedDataModule(L.LightningDataModule):
    """The loader settings every kexue DataModule shares, declared once, and its four loaders.

    Subclasses take ``**kwargs`` and pass them on (``super().__init__(**kwargs)``); a subclass that changes a default
    names the argument in its own signature and passes it by keyword. This ``__init__`` checks the values and calls
    ``save_hyperparameters()`` for the whole chain, so a subclass turns a component into its config
    (:func:`kexue.nn.components.component_config`) *before* calling ``super().__init__`` and builds it after.
    Subclasses implement :meth:`_loader`; ``predict`` asks it for ``"predict"``.

    Args:
        split_seed: seed of the fixed split (not the training seed, so the split never moves).
        batch_size: examples per batch.
        num_workers: DataLoader workers (featurisation runs in them).
    """

    def __init__(self, split_seed: int = 0, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__()
        check_at_least(batch_size=(batch_size, 1), num_workers=(num_workers, 0))
        self.save_hyperparameters()  # every __init__ of the chain: see the module docstring

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        raise NotImplementedError

    def drop_last_training_batch(self, size: int, source: str) -> bool:
        """Whether the training loader of a split of ``size`` examples (read from ``source``, a file or the embedded
        set) drops its last incomplete batch: yes when the model being trained normalises over the batch
        (:func:`normalizes_over_batch`: task gan's generator, spectra's residual blocks) and the split, per process,
        fills at least one whole batch; a split smaller than a batch is one batch. Such a model given a training
        split of one example per process is refused (:class:`~kexue.errors.UsageError`), since every epoch would hold
        a batch of one. Every DataModule calls it for its training loader's ``drop_last``, so a network with a
        BatchNorm gets it without a line of its own."""
        trainer = self.trainer
        if not normalizes_over_batch(getattr(trainer, "lightning_module", None)):
            return False
        per_process = -(-size // max(trainer.world_size, 1))
        if per_process < 2:
            raise UsageError(f"the train split has {size} example(s) ({per_process} per process) and the model "
                             "normalises over the batch (BatchNorm), which needs at least 2 examples per batch", source)
        return per_process > self.hparams.batch_size

    def check_evaluation_split(self, name: str, size: int, source: str) -> None:
        """Refuse a ``val`` / ``test`` split of ``size`` examples (read from ``source``) too small for the metric of
        the model being evaluated: its ``min_evaluation_rows`` (default 1) and ``evaluation_metric`` attributes, e.g.
        2 for a Fréchet distance (a covariance of the real images) — so no figure is computed on nothing and no
        metric fails on the last batch (:class:`~kexue.errors.UsageError`, one line naming the split and its file).
        Every DataModule calls it when it builds an evaluation loader."""
        trainer = self.trainer
        model = getattr(trainer, "lightning_module", None)  # None outside a Trainer: nothing to check
        least = int(getattr(model, "min_evaluation_rows", 1))
        if size < least:
            metric = getattr(model, "evaluation_metric", "the model's metric")
            raise UsageError(f"the {name} split has {size} example(s): {metric} needs at least {least}", source)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")


class SplitDataModule(BatchedDataModule):
    """An embedded corpus cut by :func:`fixed_split`, any split replaceable by a user file, plus raw
    ``predict`` lines: the plumbing every kexue text DataModule shares.

    Subclasses implement :meth:`embedded` (the packaged corpus, fixed order), :meth:`read` (a user file) and
    :meth:`collate`. Examples are ``(text, target)``; ``predict_target`` fills in for raw lines.

    Args:
        train_path: a file replacing the embedded training split, in the task's format (its DataModule's
            docstring, the README's section on the task).
        val_path: same, replacing the validation split.
        test_path: same, replacing the test split.
        predict_path: the input lines of ``kexue predict``, in the task's format (default: the test split).
        split: train/val/test fractions of the embedded corpus.
        kwargs: ``split_seed``, ``batch_size``, ``num_workers``: :class:`BatchedDataModule`.
    """

    predict_target: object = None

    def __init__(
        self,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        **kwargs: Any,
    ) -> None:
        self.check_split(split)
        super().__init__(**kwargs)
        self.splits: dict[str, list] = {}

    @staticmethod
    def check_split(split: Sequence[float]) -> None:
        """ValueError (a one-line CLI error) unless ``split`` is three fractions summing to 1."""
        if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"data.split must be three non-negative fractions summing to 1, got {list(split)}")

    def embedded(self) -> list:
        raise NotImplementedError

    def read(self, path: str) -> list:
        raise NotImplementedError

    def collate(self, batch: list) -> object:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "predict" and hp.predict_path:  # raw lines only: no need to read the corpus
            if "predict" not in self.splits:
                texts = read_text_lines(hp.predict_path, keep_blank=True)
                self.splits["predict"] = [(t, self.predict_target) for t in texts]
            return
        if not {"train", "val", "test"} <= self.splits.keys():
            paths = {"train": hp.train_path, "val": hp.val_path, "test": hp.test_path}
            embedded = None
            if not all(paths.values()):
                embedded = dict(zip(("train", "val", "test"), fixed_split(self.embedded(), hp.split, hp.split_seed)))
            for name, path in paths.items():
                self.splits[name] = self.read(path) if path else embedded[name]
                if not self.splits[name]:
                    raise UsageError(
                        f"the {name} split is empty (no examples left after reading/filtering)",
                        path or "the embedded corpus",
                    )
        if stage == "predict" and "predict" not in self.splits:
            self.splits["predict"] = [(t, self.predict_target) for t, _ in self.splits["test"]]

    def index_evaluation_rows(self) -> None:
        """Append each val / test / predict row's index to it (``(text, target)`` -> ``(text, target, k)``), once:
        metrics keyed by example index count a row that ``DistributedSampler`` repeats to pad the last batches once
        (:class:`kexue.metrics.ExampleMetric`). Call it at the end of ``setup``."""
        for name in ("val", "test", "predict"):
            rows = self.splits.get(name, [])
            if rows and len(rows[0]) == 2:
                self.splits[name] = [(*row, k) for k, row in enumerate(rows)]

    def input_length(self, name: str) -> tuple[int, str] | None:
        """``(length, option)``: the longest input the collate gives the model from split ``name``, in the model's
        positions (characters, tokens), and the option that caps it; ``None`` (the default) when a subclass does
        not know it. Checked against the network's learned positions before the split's first batch
        (:func:`kexue.models.sizes.check_input_length`)."""
        return None

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        hp, data = self.hparams, self.splits[name]
        if (known := self.input_length(name)) is not None and self.trainer is not None:
            from kexue.models.sizes import check_input_length  # here: kexue.models imports this module's split

            where = f"the {name} split ({hp.get(f'{name}_path') or 'the embedded corpus'})"
            check_input_length(getattr(self.trainer, "lightning_module", None), known[0], known[1], where)
        if name in ("val", "test"):
            self.check_evaluation_split(name, len(data), hp[f"{name}_path"] or "the embedded corpus")
        return DataLoader(
            data,
            batch_size=hp.batch_size,
            sampler=EpochSeededSampler(data) if shuffle else None,
            num_workers=hp.num_workers,
            collate_fn=self.collate,
            drop_last=shuffle and self.drop_last_training_batch(len(data), hp.train_path or "the embedded corpus"),
        )


class FittedTokenizerData:
    """Mixin of a :class:`SplitDataModule` whose tokenizer component ``self.tokenizer`` (a
    :class:`kexue.nn.components.FittedComponent`: characters, a trained WordPiece, a pretrained BPE; its config in
    ``self.hparams.tokenizer``, a ``featurization`` argument) may have to learn its ids from the training split.

    :attr:`fitted_tokenizer` fits it on :meth:`training_texts` on first use and writes its config, with what it
    learnt, back into the hyperparameters, so a checkpoint tokenises as training did; the sizes the model's links
    read (:attr:`vocab_size`, :attr:`vocabulary_list`) come from it. Used by tasks language_model, cond_lm,
    reading_comprehension and pretrain (posts https://kexue.fm/archives/6933, /7115, /6915).
    """

    tokenizer: Any
    hparams: Any
    splits: dict[str, list]

    def training_texts(self) -> Iterable[str]:
        """The texts the tokenizer learns from: the training split's (the first field of each example)."""
        self.setup("fit")
        return [example[0] for example in self.splits["train"]]

    @property
    def fitted_tokenizer(self) -> Any:
        """The tokenizer, fitted first if it has to learn its ids. Linked as ``data.fitted_tokenizer`` where a
        model needs the object (jsonargparse reads ``data.tokenizer`` as the argument, not this attribute)."""
        tok = self.tokenizer
        if not tok.fitted:
            tok.fit(self.training_texts())
            self.hparams.tokenizer = tok.config()  # plain values: a checkpoint loads with weights_only
        return tok

    @property
    def vocab_size(self) -> int:
        """Token ids ``V`` the network must embed (linked to the network's ``vocab_size``)."""
        return self.fitted_tokenizer.vocab_size

    @property
    def vocabulary_list(self) -> list[str]:
        """The tokenizer's pieces in id order (linked to ``model.vocabulary`` by the BERT tasks)."""
        return self.fitted_tokenizer.vocabulary
