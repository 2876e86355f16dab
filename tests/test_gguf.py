"""GGUF Llama files into our CausalLM (:mod:`kexue.models.gguf`).

CI-sized: a tiny random Llama written with ``gguf.GGUFWriter`` (q/k rows permuted as llama.cpp's converter does)
against a Llama forward written here from the definition, on the un-permuted weights with half-layout rotary.
With the ``smollm2`` asset fetched: SmolLM2-135M-Instruct against transformers reading the same file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import gguf
import numpy as np
import pytest
import torch
from tokenizers import pre_tokenizers

from kexue.errors import UsageError
from kexue.models.gguf import gguf_key_map, load_gguf, load_gguf_tokenizer

V, D, LAYERS, H, HKV, FFN, BASE, EPS = 300, 32, 2, 4, 2, 48, 10000.0, 1e-5
DH = D // H
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["h e", "l l", "he ll", "hell o", "Ġ hello"]


def tiny_vocab() -> list[str]:
    """Three control tokens, the 256 byte-level characters, then one token per merge."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    return CONTROL + alphabet + [m.replace(" ", "") for m in MERGES]


def to_gguf_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from halves (i, i + Dh/2) to adjacent pairs (2i, 2i + 1): what llama.cpp's
    converter does to a Hugging Face q or k projection."""
    out, inp = w.shape
    return w.reshape(heads, 2, out // heads // 2, inp).transpose(0, 2, 1, 3).reshape(out, inp)


def random_llama(tied: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Hugging Face-layout weights of a tiny Llama, float32, ``(out, in)`` matrices."""
    rng = np.random.default_rng(seed)

    def mat(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {"embed": mat(V, D, scale=1.0), "final_norm": 1 + mat(D, scale=0.1)}
    if not tied:
        w["output"] = mat(V, D)
    for i in range(LAYERS):
        w |= {f"{i}.attn_norm": 1 + mat(D, scale=0.1), f"{i}.q": mat(H * DH, D), f"{i}.k": mat(HKV * DH, D),
              f"{i}.v": mat(HKV * DH, D), f"{i}.o": mat(D, H * DH), f"{i}.ffn_norm": 1 + mat(D, scale=0.1),
              f"{i}.gate": mat(FFN, D), f"{i}.up": mat(FFN, D), f"{i}.down": mat(D, FFN)}
    return w


def write_gguf(path: Path, w: dict[str, np.ndarray], bad: dict[str, np.ndarray] | None = None,
               drop: str | None = None, add_bos: bool = False, add_eos: bool | None = None) -> Path:
    """``w`` as a llama.cpp-style GGUF (F32 tensors, q/k permuted); ``bad`` replaces tensors by GGUF name,
    ``drop`` leaves one out; ``add_bos`` / ``add_eos`` the tokenizer's flags (``None``: not written)."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(D)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(H)
    writer.add_head_count_kv(HKV)
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_rope_freq_base(BASE)
    writer.add_rope_dimension_count(DH)
    writer.add_vocab_size(V)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    tokens = tiny_vocab()
    assert len(tokens) <= V
    tokens += [f"<unused{i}>" for i in range(V - len(tokens))]
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(CONTROL) + [1] * (V - len(CONTROL)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    if add_eos is not None:
        writer.add_add_eos_token(add_eos)
    tensors = {"token_embd.weight": w["embed"], "output_norm.weight": w["final_norm"]}
    if "output" in w:
        tensors["output.weight"] = w["output"]
    for i in range(LAYERS):
        tensors |= {f"blk.{i}.attn_norm.weight": w[f"{i}.attn_norm"],
                    f"blk.{i}.attn_q.weight": to_gguf_rows(w[f"{i}.q"], H),
                    f"blk.{i}.attn_k.weight": to_gguf_rows(w[f"{i}.k"], HKV),
                    f"blk.{i}.attn_v.weight": w[f"{i}.v"], f"blk.{i}.attn_output.weight": w[f"{i}.o"],
                    f"blk.{i}.ffn_norm.weight": w[f"{i}.ffn_norm"], f"blk.{i}.ffn_gate.weight": w[f"{i}.gate"],
                    f"blk.{i}.ffn_up.weight": w[f"{i}.up"], f"blk.{i}.ffn_down.weight": w[f"{i}.down"]}
    tensors |= bad or {}
    for name, array in tensors.items():
        if name != drop:
            writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def reference_logits(w: dict[str, np.ndarray], ids: list[int]) -> torch.Tensor:
    """Llama by its definition, float64: RMSNorm, half-layout rotary on the Hugging Face-order q/k, grouped-query
    causal attention, SwiGLU; ``(T, V)``."""
    p = {k: torch.from_numpy(v).double() for k, v in w.items()}
    T = len(ids)

    def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * weight

    freq = BASE ** (-torch.arange(0, DH, 2, dtype=torch.float64) / DH)  # (DH/2,)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * torch.cat([freq, freq])  # (T, DH)

    def rotate(x: torch.Tensor) -> torch.Tensor:  # (heads, T, DH): pair i with i + DH/2
        half = torch.cat([-x[..., DH // 2:], x[..., :DH // 2]], dim=-1)
        return x * angle.cos() + half * angle.sin()

    x = p["embed"][ids]  # (T, D)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(LAYERS):
        h = rms(x, p[f"{i}.attn_norm"])
        q = rotate((h @ p[f"{i}.q"].T).view(T, H, DH).transpose(0, 1))  # (H, T, DH)
        k = rotate((h @ p[f"{i}.k"].T).view(T, HKV, DH).transpose(0, 1))  # (HKV, T, DH)
        v = (h @ p[f"{i}.v"].T).view(T, HKV, DH).transpose(0, 1)  # (HKV, T, DH)
        k, v = k.repeat_interleave(H // HKV, 0), v.repeat_interleave(H // HKV, 0)  # (H, T, DH): head j uses j // 2
        scores = (q @ k.transpose(1, 2) / math.sqrt(DH)).masked_fill(~causal, float("-inf"))  # (H, T, T)
        attn = scores.softmax(-1) @ v  # (H, T, DH)
        x = x + attn.transpose(0, 1).reshape(T, H * DH) @ p[f"{i}.o"].T
        h = rms(x, p[f"{i}.ffn_norm"])
        x = x + (torch.nn.functional.silu(h @ p[f"{i}.gate"].T) * (h @ p[f"{i}.up"].T)) @ p[f"{i}.down"].T
    return rms(x, p["final_norm"]) @ p.get("output", p["embed"]).T  # (T, V)


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_gguf_equals_hand_written_llama(tmp_path: Path, tied: bool) -> None:
    w = random_llama(tied)
    model, _ = load_gguf(write_gguf(tmp_path / "tiny.gguf", w))
    c = model.config
    assert (c.dim, c.num_layers, c.num_heads, c.num_kv_heads, c.ffn_dim, c.rope_base, c.rope_interleaved) == \
        (D, LAYERS, H, HKV, FFN, BASE, True)
    assert (model.lm_head.weight is model.embed.weight) == tied
    ids = [5, 77, 3, 250, 12, 9, 100, 42, 7, 1, 299]
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0]  # (T, V)
    expected = reference_logits(w, ids)
    assert (ours.double() - expected).abs().max().item() < 1e-4
    # The permutation matters: the same weights in half layout without llama.cpp's reordering give other logits.
    model.transformer.rotary.interleaved = False
    with torch.no_grad():
        assert (model(torch.tensor([ids]))[0].double() - expected).abs().max().item() > 1e-2


def test_tiny_tokenizer(tmp_path: Path) -> None:
    _, tok = load_gguf(write_gguf(tmp_path / "tiny.gguf", random_llama(True)))
    vocab = tiny_vocab()
    text = "hello hello 12<|im_end|>"
    # smollm splits each digit off first, so " 12" is "Ġ", "1", "2" (not "Ġ12"); the control token stays whole
    expected = [vocab.index(t) for t in ["hello", "Ġhello", "Ġ", "1", "2", "<|im_end|>"]]
    assert tok.encode(text).ids == expected
    assert tok.decode(expected, skip_special_tokens=False) == text


def test_key_map_is_explicit() -> None:
    keys = gguf_key_map(2, tied=False)
    assert keys["transformer.layers.1.attn.qkv.weight"] == ("blk.1.attn_q.weight", "blk.1.attn_k.weight",
                                                          "blk.1.attn_v.weight")
    assert keys["lm_head.weight"] == "output.weight" and "lm_head.weight" not in gguf_key_map(2, tied=True)
    assert len(keys) == 3 + 7 * 2


def test_tokenizer_alone(tmp_path: Path) -> None:
    tok, bos, eos, add_bos, add_eos = load_gguf_tokenizer(write_gguf(tmp_path / "tiny.gguf", random_llama(True)))
    assert (bos, eos, add_bos, add_eos) == (1, 2, False, False)
    assert tok.encode("hello").ids == [tiny_vocab().index("hello")]


@pytest.mark.parametrize(("add_bos", "add_eos"), [(False, None), (True, None), (True, True)])
def test_every_path_honours_the_files_bos_and_eos_flags(tmp_path: Path, add_bos: bool, add_eos: bool | None) -> None:
    """``tokenizer.ggml.add_bos_token`` / ``add_eos_token``: the loader's tokenizer (special tokens on), the task's
    component and the DataModule's prompts and training lines all frame a text alike (SmolLM2 says no BOS)."""
    from kexue.datamodules.language_model import LanguageModelDataModule
    from kexue.models import PretrainedTokenizer

    path = write_gguf(tmp_path / "tiny.gguf", random_llama(True), add_bos=add_bos, add_eos=add_eos)
    hello = tiny_vocab().index("hello")
    framed = [1] * add_bos + [hello] + [2] * bool(add_eos)
    assert load_gguf_tokenizer(path).tokenizer.encode("hello").ids == framed
    tok = PretrainedTokenizer(str(path))
    assert (tok.add_bos, tok.add_eos) == (add_bos, bool(add_eos)) and tok.frame(tok.encode("hello")) == framed
    data = LanguageModelDataModule(tokenizer=tok)
    prompt = data.collate([("hello", data.predict_target)])["ids"][0].tolist()
    assert prompt == [1] * add_bos + [hello]  # a prompt to continue never ends with the EOS
    assert data.collate([("hello", None), ("hello", None)])["ids"][0].tolist()[:len(framed)] == framed


def test_the_components_over_a_gguf_file_are_the_loaders_with_the_sizes_checked(tmp_path: Path) -> None:
    """``PretrainedCausalLM`` / ``PretrainedTokenizer`` (what ``--config smollm2`` sets, on any .gguf): the same
    network and ids as :func:`load_gguf`, the file's BOS/EOS (EOS pads), and a tokenizer too big is one line."""
    from kexue.models import PretrainedCausalLM, PretrainedTokenizer

    w = random_llama(True)
    path = str(write_gguf(tmp_path / "tiny.gguf", w))
    tok = PretrainedTokenizer(path)
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, 2, V)
    assert tok.encode("hello hello") == [tiny_vocab().index(t) for t in ["hello", "Ġhello"]]
    assert tok.config() == {"class_path": "kexue.models.lm_tokenizers.PretrainedTokenizer",
                            "init_args": {"source": path}}
    net = PretrainedCausalLM(path, vocab_size=tok.vocab_size, max_length=10_000)  # rotary: no position limit
    assert net.pretrained == path
    ids = [5, 77, 3, 250, 12]
    with torch.no_grad():
        assert (net(torch.tensor([ids]))[0].double() - reference_logits(w, ids)).abs().max().item() < 1e-4
    with pytest.raises(UsageError, match=f"the tokenizer has {V + 1} ids but the network's embedding has {V} rows"):
        PretrainedCausalLM(path, vocab_size=V + 1)


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    w = random_llama(True)
    with pytest.raises(ValueError, match="'blk.1.attn_k.weight' has shape \\(12, 32\\) but our "
                                         "'transformer.layers.1.attn.qkv.weight' rows 32:48 need \\(16, 32\\)"):
        load_gguf(write_gguf(tmp_path / "a.gguf", w, bad={"blk.1.attn_k.weight": np.zeros((12, D), np.float32)}))
    with pytest.raises(ValueError, match="'blk.0.ffn_down.weight' has shape \\(48, 32\\) but our "
                                         "'transformer.layers.0.ffn.down.weight' has shape \\(32, 48\\)"):
        load_gguf(write_gguf(tmp_path / "t.gguf", w, bad={"blk.0.ffn_down.weight": w["0.down"].T}))
    with pytest.raises(ValueError, match="lacks 'blk.0.ffn_up.weight'"):
        load_gguf(write_gguf(tmp_path / "b.gguf", w, drop="blk.0.ffn_up.weight"))
    with pytest.raises(ValueError, match="unexpected key.*'blk.0.extra.weight'"):
        load_gguf(write_gguf(tmp_path / "e.gguf", w, bad={"blk.0.extra.weight": np.zeros(3, np.float32)}))
    (tmp_path / "c.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="c.gguf: cannot read as GGUF") as err:
        load_gguf(tmp_path / "c.gguf")
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        load_gguf(tmp_path / "missing.gguf")


PROMPTS = ["The capital of France is", "Once upon a time, in 1869, there was a"]


@pytest.fixture(scope="module")
def smollm2_pair() -> Iterator[tuple]:
    """(our model, our tokenizer, transformers' LlamaForCausalLM, its tokenizer), all from the cached asset; one
    torch thread meanwhile (on a shared 2-core machine two threads contend and a forward takes seconds)."""
    from kexue.assets import asset_path
    from kexue.models.gguf import load_smollm2

    try:
        path = asset_path("smollm2")
    except UsageError as err:
        pytest.skip(str(err))  # names `kexue fetch smollm2`
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    # from_pretrained(gguf_file=...) would need accelerate; this is the same reading and q/k un-permuting
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    theirs = LlamaForCausalLM(config)
    state = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=theirs)["tensors"]
    missing = theirs.load_state_dict(state, strict=False).missing_keys
    assert missing == ["lm_head.weight"] and config.tie_word_embeddings
    theirs.tie_weights()
    model, tok = load_smollm2()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tok, theirs.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    torch.set_num_threads(threads)


def test_smollm2_tokenizer_equals_transformers(smollm2_pair: tuple) -> None:
    _, tok, _, their_tok = smollm2_pair
    for text in [*PROMPTS, "<|im_start|>user\nWhat's 12+7?<|im_end|>\n  two  spaces\té ü 漢字 🙂"]:
        assert tok.encode(text).ids == their_tok(text)["input_ids"], text


def test_smollm2_logits_and_greedy_tokens_equal_transformers(smollm2_pair: tuple) -> None:
    model, tok, theirs, _ = smollm2_pair
    # Both run float32 on the same dequantised weights; only the order of float32 operations differs (fused qkv,
    # SDPA vs eager attention, interleaved vs half rotary) over 30 layers. Measured: about 5e-5 on logits up to ~30,
    # i.e. a few float32 ulps of the largest logits; 1e-3 leaves room for other BLAS builds.
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = torch.tensor([tok.encode(prompt).ids])
            assert (model(ids) - theirs(ids).logits).abs().max().item() < 1e-3
        ours_ids = their_ids = torch.tensor([tok.encode(PROMPTS[0]).ids])
        for _ in range(10):  # greedy, recomputing the whole forward each step
            ours_ids = torch.cat([ours_ids, model(ours_ids)[:, -1:].argmax(-1)], dim=1)
            their_ids = torch.cat([their_ids, theirs(their_ids).logits[:, -1:].argmax(-1)], dim=1)
    assert ours_ids.tolist() == their_ids.tolist(), (tok.decode(ours_ids[0].tolist()),
                                                     tok.decode(their_ids[0].tolist()))


def test_the_clis_greedy_continuation_equals_transformers_greedy(smollm2_pair: tuple, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """The README's greedy command (``--config smollm2 --model.generation.do_sample false``), with sampling knobs
    that greedy ignores: the prompt without BOS (the file says ``add_bos_token = false``), the argmax at each
    step, ``<|im_end|>`` never printed: the continuation transformers' ``generate(do_sample=False)`` gives."""
    from kexue.cli import main

    _, _, theirs, their_tok = smollm2_pair
    (tmp_path / "prompts.txt").write_text(f"{PROMPTS[0]}\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", "language_model", "--config", "smollm2", "--data.predict_path",
                 str(tmp_path / "prompts.txt"), "--model.generation.max_new_tokens", "8",
                 "--model.generation.do_sample", "false", "--model.generation.repetition_penalty", "1.3",
                 "--model.generation.top_k", "2", "--logger", "none",
                 "--trainer.default_root_dir", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = their_tok(PROMPTS[0], return_tensors="pt")["input_ids"]
    eos = their_tok.eos_token_id
    with torch.no_grad():
        out = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                              eos_token_id=eos, pad_token_id=eos)[0, ids.shape[1]:]
    expected = " ".join(their_tok.decode(out, skip_special_tokens=True).split())
    assert lines == [f"{PROMPTS[0]}\t{expected}"] and "Paris" in expected
