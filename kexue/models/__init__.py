"""Whole networks built from :mod:`kexue.nn` blocks, and the loaders that fill them from pretrained checkpoints
(Hugging Face BERT / GPT-2 folders, GPT2_ML, GGUF Llama files) by explicit key maps with shape checks."""

from kexue.models.bert import Bert, BertFromConfig, BertFromFolder
from kexue.models.bert_encoders import BertCharEncoder, BertTextEncoder
from kexue.models.causal_lm import CausalLM
from kexue.models.conditional_lm import ConditionalBertLM
from kexue.models.gguf import load_gguf, load_smollm2
from kexue.models.gpt2 import GPT2ML, load_gpt2, load_gpt2_ml
from kexue.models.judge import DigitJudge, judge_classifier
from kexue.models.lm_tokenizers import CharTokenizer, PretrainedTokenizer
from kexue.models.pretrained import PretrainedCausalLM
from kexue.models.tokenizers import (
    BertCharTokenizer,
    BertFolderCharTokenizer,
    bert_tokenizer,
    gpt2_tokenizer,
    wordpiece_tokenizer,
)
from kexue.models.vq_vae import CodePrior, ConvAutoencoder

__all__ = ["GPT2ML", "Bert", "BertCharEncoder", "BertTextEncoder", "CausalLM", "CharTokenizer", "DigitJudge",
           "PretrainedCausalLM", "PretrainedTokenizer", "bert_tokenizer", "gpt2_tokenizer", "judge_classifier",
           "load_gguf", "load_gpt2", "load_gpt2_ml", "load_smollm2", "wordpiece_tokenizer", "CodePrior",
           "ConditionalBertLM", "ConvAutoencoder", "BertFromConfig", "BertFromFolder", "BertCharTokenizer",
           "BertFolderCharTokenizer"]
