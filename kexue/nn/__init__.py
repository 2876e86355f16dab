"""Neural-network blocks shared by the tasks (plain ``nn.Module``s, no Lightning)."""

from kexue.nn.conv1d import ResidualBlock1d, ResidualConv1dClassifier, normalize_spectra
from kexue.nn.crf import ConditionalRandomField, TransitionConstraints, bio_constraints, bmes_constraints
from kexue.nn.encoders import CharTokenEncoder, ConvEncoder, MeanEmbeddingEncoder, RecurrentEncoder
from kexue.nn.memm import MaximumEntropyMarkovModel

__all__ = [
    "CharTokenEncoder",
    "ConditionalRandomField",
    "ConvEncoder",
    "MaximumEntropyMarkovModel",
    "MeanEmbeddingEncoder",
    "RecurrentEncoder",
    "ResidualBlock1d",
    "ResidualConv1dClassifier",
    "TransitionConstraints",
    "bio_constraints",
    "bmes_constraints",
    "normalize_spectra",
]
