"""Neural-network blocks shared by the tasks (plain ``nn.Module``s, no Lightning)."""

from kexue.nn.encoders import ConvEncoder, MeanEmbeddingEncoder, RecurrentEncoder

__all__ = ["ConvEncoder", "MeanEmbeddingEncoder", "RecurrentEncoder"]
