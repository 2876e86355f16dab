"""The sentiment task's model knobs: the n-gram embedding initialisation the default config relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from kexue.lightning_modules.text_classifier import TextClassifier

CONF = Path(__file__).resolve().parent.parent / "conf" / "sentiment.yaml"


@pytest.mark.parametrize("encoder", ["mean", "cnn", "gru"])
def test_embed_init_std_sets_the_scale_and_keeps_padding_zero(encoder: str) -> None:
    torch.manual_seed(0)
    model = TextClassifier(encoder=encoder, num_buckets=4096, embed_dim=16, embed_init_std=0.01)
    weight = model.encoder.embedding.weight.detach()  # (4096, 16)
    assert torch.all(weight[0] == 0)
    assert weight[1:].std().item() == pytest.approx(0.01, rel=0.05)


def test_embed_init_std_none_keeps_pytorchs_default() -> None:
    torch.manual_seed(0)
    weight = TextClassifier(num_buckets=4096, embed_dim=16).encoder.embedding.weight.detach()
    assert weight[1:].std().item() == pytest.approx(1.0, rel=0.05)


def test_negative_embed_init_std_is_refused() -> None:
    with pytest.raises(ValueError, match="embed_init_std"):
        TextClassifier(num_buckets=64, embed_init_std=-0.1)


def test_default_config_builds_a_small_init_mean_model() -> None:
    """conf/sentiment.yaml's model section is accepted as is, and a fresh model's logits start near zero."""
    model_args = yaml.safe_load(CONF.read_text(encoding="utf-8"))["model"]
    assert model_args["encoder"] == "mean" and model_args["embed_init_std"] <= 0.05
    torch.manual_seed(0)
    model = TextClassifier(**model_args).eval()
    with torch.no_grad():
        features = model.encoder(model.featurize(["好", "很差"]))  # (2, D)
    assert features.abs().max().item() < 0.1  # with N(0, 1) rows a one-character text's feature is O(1)
