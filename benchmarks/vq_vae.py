"""Task `vq_vae` (kexue.fm/archives/6760): VQ-VAE with the codebook loss and with the EMA codebook beside the plain
autoencoder with the same encoder, decoder and bottleneck shape, all through `kexue run vq_vae` in the same run.

Every row is a real `kexue run` (the newest checkpoint, then test), timed wall-clock including start-up. The VQ-VAE
rows train the autoencoder for `epochs - prior_epochs` epochs, then the Transformer prior for `prior_epochs`; the
plain autoencoder (`--model.quantizer null`, no codes, no prior) trains the same `epochs - prior_epochs` epochs.
Columns: test reconstruction MSE (pixels in [0, 1]), code perplexity (exp of the entropy of the test set's code
usage; K = 64 at most) and the share of the K codes used on the test set, the prior's test NLL in nats per code
(log K = 4.16 is the uniform prior), and, when the digit judge `kexue/models/judge.py` is in git, the prior's samples
scored by it: an Inception-score-like spread x confidence (10 at best) and the Fréchet distance of its features to
the test images', with the test images' own figures as the reference.

Usage: python benchmarks/vq_vae.py [--datasets digits mnist5k] [--epochs N --prior_epochs P] [--extra ARGS...]
(no --epochs: each set's full settings, FULL below).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import ROOT, machine, run_kexue, test_metrics, write_section

FULL = {"digits": (55, 25), "mnist5k": (40, 15)}  # dataset -> (epochs, prior epochs)
# row name, the row's key (vq / ema / none), its quantiser flags
ROWS = (("VQ-VAE, codebook loss", "vq", []), ("VQ-VAE, EMA codebook", "ema", ["--model.quantizer.ema=true"]),
        ("plain autoencoder", "none", ["--model.quantizer=null"]))


def judge_landed() -> bool:
    """True when ``kexue/models/judge.py`` is committed (the brief: score samples only with the judge in git)."""
    proc = subprocess.run(["git", "ls-files", "--error-unmatch", "kexue/models/judge.py"], cwd=ROOT,
                          capture_output=True)
    return proc.returncode == 0


def judge_scores(dataset: str, checkpoint: str, n: int, seed: int = 0) -> dict[str, float]:
    """Inception-score-like figure and Fréchet distance of ``n`` prior samples (and of the test images, for
    reference) on the digit judge's probabilities and features."""
    import torch

    from kexue.datamodules.images import ImageDataModule
    from kexue.lightning_modules.vq_vae import VQVAE
    from kexue.metrics.images import frechet_distance, inception_score
    from kexue.models.judge import judge_classifier

    judge = judge_classifier(dataset)
    data = ImageDataModule(dataset=dataset)
    data.setup("test")
    test = data.splits["test"][0]  # (N, 1, H, W)
    model = VQVAE.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    samples = model.sample(n, generator=torch.Generator().manual_seed(seed))  # (n, 1, H, W)
    with torch.no_grad():
        (f_s, l_s), (f_t, l_t) = judge.features_and_logits(samples), judge.features_and_logits(test)
    return {"is": float(inception_score(l_s.softmax(-1))), "fd": float(frechet_distance(f_s, f_t)),
            "is_test": float(inception_score(l_t.softmax(-1))), "judge_acc": judge.test_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(FULL), choices=list(FULL))
    parser.add_argument("--epochs", type=int, help="total epochs of every VQ-VAE run (default: FULL)")
    parser.add_argument("--prior_epochs", type=int, help="of those, the prior's (default: FULL)")
    parser.add_argument("--samples", type=int, default=500, help="prior samples scored by the judge")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `kexue run` arguments")
    args = parser.parse_args()
    where = machine()
    reduced = args.epochs is not None or args.prior_epochs is not None or bool(args.extra)
    judged = judge_landed()
    table = ["| data | model | epochs (AE + prior) | test MSE | code perplexity | codes used | prior NLL (nats/code) "
             + ("| judge IS-like ↑ | judge Fréchet ↓ " if judged else "") + "| wall s |",
             "|---|---|---|---:|---:|---:|---:|" + ("---:|---:|" if judged else "") + "---:|"]
    references = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            epochs = args.epochs if args.epochs is not None else FULL[dataset][0]
            prior = args.prior_epochs if args.prior_epochs is not None else FULL[dataset][1]
            for name, quantizer, flags in ROWS:
                run_epochs, run_prior = (epochs - prior, 0) if quantizer == "none" else (epochs, prior)
                proc, seconds = run_kexue(["run", "vq_vae", "--logger", "csv", "--trainer.enable_progress_bar=false",
                                           f"--data.dataset={dataset}", f"--trainer.max_epochs={run_epochs}",
                                           f"--model.prior_epochs={run_prior}", *args.extra, *flags], Path(tmp))
                m = test_metrics(proc.stdout)
                best = next(line.split(": ", 1)[1] for line in proc.stdout.splitlines()
                            if line.startswith("best checkpoint: "))
                vq = quantizer != "none"
                cells = [dataset, name, f"{epochs - prior} + {run_prior}", f"{m['test/mse']:.4f}",
                         f"{m['test/perplexity']:.1f}" if vq else "-", f"{m['test/codes_used']:.2f}" if vq else "-",
                         f"{m['test/prior_nll']:.3f}" if vq else "-"]
                if judged:
                    s = judge_scores(dataset, str(Path(tmp) / best), args.samples) if vq else {}
                    cells += [f"{s['is']:.2f}" if s else "-", f"{s['fd']:.1f}" if s else "-"]
                    if s and not any(r.startswith(f"{dataset}:") for r in references):
                        references.append(f"{dataset}: the test images themselves score IS-like {s['is_test']:.2f} "
                                          f"(judge test accuracy {s['judge_acc']:.3f})")
                table.append("| " + " | ".join(cells) + f" | {seconds:.0f} |")
                print(table[-1], flush=True)
    label = "Reduced run (smaller than the full settings; the full run is still to do)" if reduced else "Full run"
    full = "; ".join(f"{d} {e} epochs, {p} of them the prior's" for d, (e, p) in FULL.items())
    body = [
        "## vq_vae: VQ-VAE vs the plain autoencoder with the same bottleneck",
        "",
        f"{label}: `python benchmarks/vq_vae.py {' '.join(sys.argv[1:])}`".rstrip() + f" on {where}. "
        f"Full settings: `python benchmarks/vq_vae.py` ({full}).",
        "",
        "Defaults: K = 64 codes of D = 16 channels, beta = 0.25, dead codes restarted after 100 unused batches; the "
        "code grid is 4 x 4 on digits (8 x 8 pixels), 7 x 7 on MNIST-5k (28 x 28). The plain autoencoder keeps the "
        "same continuous 16-channel grid (no quantiser, no prior). Code perplexity and codes used are over the test "
        "split; the prior NLL is of the test codes (uniform: log 64 = 4.159).",
        "",
        *table,
        "",
    ]
    if judged:
        body += [f"Judge: `kexue.models.judge` ({args.samples} prior samples a row, temperature 1); "
                 + "; ".join(references) + ".", ""]
    else:
        body += ["Judging of the prior's samples remains: the digit judge (`kexue/models/judge.py`) was not in git "
                 "when this ran; reconstruction and codebook figures only.", ""]
    write_section("vq_vae", "\n".join(body))


if __name__ == "__main__":
    main()
