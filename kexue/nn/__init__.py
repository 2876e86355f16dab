"""Neural-network blocks shared by the tasks (plain ``nn.Module``s, no Lightning)."""

from kexue.nn.components import build_component, component_config
from kexue.nn.conv1d import ResidualBlock1d, ResidualConv1dClassifier, ResidualConv1dEncoder, normalize_spectra
from kexue.nn.crf import ConditionalRandomField, TransitionConstraints, bio_constraints, bmes_constraints
from kexue.nn.encoders import (
    CharConvEncoder,
    CharRecurrentEncoder,
    CharTokenEncoder,
    ConvEncoder,
    MeanEmbeddingEncoder,
    RecurrentEncoder,
    init_embedding_,
)
from kexue.nn.memm import MaximumEntropyMarkovModel

__all__ = [
    "CharConvEncoder",
    "CharRecurrentEncoder",
    "CharTokenEncoder",
    "ConditionalRandomField",
    "ConvEncoder",
    "MaximumEntropyMarkovModel",
    "MeanEmbeddingEncoder",
    "RecurrentEncoder",
    "ResidualBlock1d",
    "ResidualConv1dClassifier",
    "ResidualConv1dEncoder",
    "TransitionConstraints",
    "bio_constraints",
    "build_component",
    "component_config",
    "bmes_constraints",
    "init_embedding_",
    "normalize_spectra",
]
