"""Whole networks built from :mod:`kexue.nn` blocks, and the loaders that fill them from pretrained checkpoints
(Hugging Face BERT / GPT-2 folders, GPT2_ML, GGUF Llama files) by explicit key maps with shape checks."""

from kexue.models.causal_lm import CausalLM

__all__ = ["CausalLM"]
