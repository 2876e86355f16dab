"""Neural-network blocks shared by the tasks (plain ``nn.Module``s, no Lightning)."""

from kexue.nn.attention import KVCache, MultiHeadAttention, scaled_dot_product_attention
from kexue.nn.components import build_component, component_config
from kexue.nn.conv1d import ResidualBlock1d, ResidualConv1dClassifier, ResidualConv1dEncoder, normalize_spectra
from kexue.nn.crf import ConditionalRandomField, TransitionConstraints, bio_constraints, bmes_constraints
from kexue.nn.encoders import (
    CharConvEncoder,
    CharDGCNNEncoder,
    CharRecurrentEncoder,
    CharTokenEncoder,
    ConvEncoder,
    MeanEmbeddingEncoder,
    RecurrentEncoder,
    init_embedding_,
)
from kexue.nn.masks import causal_mask, combine_masks, padding_mask, seq2seq_mask
from kexue.nn.memm import MaximumEntropyMarkovModel
from kexue.nn.normalization import ConditionalLayerNorm, conditional_layer_norm
from kexue.nn.positions import LearnedPositions, RotaryEmbedding, SinusoidalPositions, sinusoidal_positions
from kexue.nn.quantize import (
    CodeUsage,
    VectorQuantizer,
    code_perplexity,
    ema_codebook_update,
    nearest_codes,
    vq_losses,
)
from kexue.nn.synthesizer import SynthesizerAttention, synthesized_attention
from kexue.nn.transformer import (
    CharTransformerEncoder,
    FeedForward,
    Transformer,
    TransformerBlock,
    TransformerConfig,
    TransformerEncoder,
)

__all__ = [
    "bio_constraints",
    "bmes_constraints",
    "build_component",
    "causal_mask",
    "CharConvEncoder",
    "CharDGCNNEncoder",
    "CharRecurrentEncoder",
    "CharTokenEncoder",
    "CharTransformerEncoder",
    "combine_masks",
    "component_config",
    "conditional_layer_norm",
    "ConditionalLayerNorm",
    "ConditionalRandomField",
    "ConvEncoder",
    "FeedForward",
    "init_embedding_",
    "KVCache",
    "LearnedPositions",
    "MaximumEntropyMarkovModel",
    "MeanEmbeddingEncoder",
    "MultiHeadAttention",
    "normalize_spectra",
    "padding_mask",
    "RecurrentEncoder",
    "ResidualBlock1d",
    "ResidualConv1dClassifier",
    "ResidualConv1dEncoder",
    "RotaryEmbedding",
    "scaled_dot_product_attention",
    "seq2seq_mask",
    "sinusoidal_positions",
    "SinusoidalPositions",
    "Transformer",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerEncoder",
    "SynthesizerAttention",
    "synthesized_attention",
    "TransitionConstraints",
    "CodeUsage",
    "VectorQuantizer",
    "code_perplexity",
    "ema_codebook_update",
    "nearest_codes",
    "vq_losses",
]
