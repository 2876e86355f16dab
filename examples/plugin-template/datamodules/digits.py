"""scikit-learn's digits (1,797 real 8x8 scans shipped inside the package), fixed seeded split."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset, random_split


class DigitsDataModule(L.LightningDataModule):
    """Batches of ``(pixels (B, 64) in [0, 1], label (B,))``; 70/15/15 split fixed by ``split_seed``."""

    def __init__(self, batch_size: int = 64, split_seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        data = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))
        gen = torch.Generator().manual_seed(self.hparams.split_seed)
        self.train, self.val, self.test = random_split(data, [0.7, 0.15, 0.15], generator=gen)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=256)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=256)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
