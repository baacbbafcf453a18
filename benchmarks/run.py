"""Benchmark every model family on 8x8 digits against simple baselines, in one run, on the same features.

    python benchmarks/run.py [--budget 120] [--families vae ddpm ...] [--no-baselines] [--report-only]

Each row (a family or a baseline) is saved to benchmarks/results/bench/<name>.json with its command, machine and
date, so one family can be re-run alone; benchmarks/RESULTS.md is assembled from all saved rows. Training
budgets are CPU seconds on one torch thread. Samples go to benchmarks/samples/<name>.npy: the exact
images the table scored, float32 (n, 8, 8) in [0, 1], so any other evaluator can score them too (git ignores the
folder). Reference set for FID/KID/precision/recall: the test split (359 images); features: gmlib's digits
classifier. Baselines: the training split itself (the floor: as good as a sample can be), sklearn
GaussianMixture and KernelDensity on PCA features, and an independent-pixel categorical model (17 levels).
Bits/dim is reported on the 17 grey levels of the test split where a family's likelihood is exact.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gmlib.data import load_digits  # noqa: E402
from gmlib.metrics import evaluate_samples, feature_network  # noqa: E402
from gmlib.train import fit  # noqa: E402

FAMILIES = ["vae", "gan", "pixelcnn", "flows", "ebm", "rbm", "ddpm", "vqvae"]
SAMPLES_DIR = ROOT / "benchmarks" / "samples"
RESULTS_DIR = ROOT / "benchmarks" / "results" / "bench"
LEVELS = 17


# ------------------------------------------------------------------------------------------------ baselines
def pca_baseline(kind: str, x_train: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Fit a GaussianMixture or KernelDensity on PCA features of the training images; sample and map back."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    flat = x_train.flatten(1).numpy().astype(np.float64)
    pca = PCA(n_components=16, random_state=seed).fit(flat)
    codes = pca.transform(flat)
    if kind == "gmm":
        model = GaussianMixture(n_components=10, covariance_type="full", random_state=seed).fit(codes)
        draws = model.sample(n)[0]
    else:
        search = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1, 1, 15)}, cv=3).fit(codes)
        draws = search.best_estimator_.sample(n, random_state=seed)
    images = np.clip(pca.inverse_transform(draws), 0, 1).reshape(n, 1, 8, 8)
    return torch.from_numpy(images).float()


def independent_pixel_baseline(x_train: torch.Tensor, x_test: torch.Tensor, n: int, seed: int):
    """Per-pixel categorical over the 17 levels (add-one smoothing): samples and exact test bits/dim."""
    k_train = (x_train * (LEVELS - 1)).round().long().flatten(1)  # (N, 64)
    k_test = (x_test * (LEVELS - 1)).round().long().flatten(1)
    counts = torch.stack([torch.bincount(k_train[:, d], minlength=LEVELS) for d in range(64)]).double() + 1
    probs = counts / counts.sum(1, keepdim=True)  # (64, 17)
    log_p = probs.log().gather(1, k_test.T).sum(0)  # (N_test,)
    bpd = float(-log_p.mean() / (64 * math.log(2)))
    g = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(probs.float(), n, replacement=True, generator=g).T  # (n, 64)
    return (draws.float() / (LEVELS - 1)).view(n, 1, 8, 8), bpd


# ------------------------------------------------------------------------------------------------ fit overhead
def fit_throughput(device: torch.device, steps: int = 300) -> tuple[float, float]:
    """Steps per CPU second of `fit` and of a minimal hand-written loop on the same VAE, data and optimiser."""
    from gmlib.models.vae import VAE, VAEConfig

    data = load_digits("train")

    def loader():
        return torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))

    def hand(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.to(device).train()
        done = 0
        start = time.process_time()
        while done < steps:
            for x, y in loader():
                if done >= steps:
                    break
                opt.zero_grad()
                loss, _ = model.loss((x.to(device), y.to(device)))
                loss.backward()
                opt.step()
                done += 1
        return steps / (time.process_time() - start)

    def ours(model):
        start = time.process_time()
        fit(model, loader(), epochs=10_000, max_steps=steps, device=device, progress=False, fast=False)
        return steps / (time.process_time() - start)

    rates = {"hand": [], "fit": []}
    for _ in range(5):  # interleaved, medians: robust to drift in the machine's state
        torch.manual_seed(0)
        rates["hand"].append(hand(VAE(VAEConfig())))
        torch.manual_seed(0)
        rates["fit"].append(ours(VAE(VAEConfig())))
    return float(np.median(rates["fit"])), float(np.median(rates["hand"]))


# ------------------------------------------------------------------------------------------------ main
def _save(name: str, row: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    row = {**row, "date": datetime.now(UTC).isoformat(timespec="seconds")}
    (RESULTS_DIR / f"{_slug(name)}.json").write_text(json.dumps(row, indent=1) + "\n")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=120.0, help="training CPU seconds per family")
    ap.add_argument("--families", nargs="*", default=FAMILIES, help="families to (re)run; the rest keep their last row")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines and the fit throughput")
    ap.add_argument("--report-only", action="store_true", help="only rebuild RESULTS.md from the saved rows")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()
    if args.report_only:
        write_report(args.out)
        return 0
    from gmlib.device import get_device

    torch.set_num_threads(1)  # small models: one thread is fastest, and CPU seconds then measure the work done

    device = get_device(args.device)
    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    x_train, x_test = load_digits("train").tensors[0], load_digits("test").tensors[0]
    net = feature_network("digits")
    command = f"python benchmarks/{Path(sys.argv[0]).name} {shlex.join(sys.argv[1:])}".strip()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, 1 torch thread, device {device}, "
               f"torch {torch.__version__}, Python {platform.python_version()}")

    def record(name, kind, samples, **extra):
        samples = samples.detach().float().cpu().clamp(0, 1)
        np.save(SAMPLES_DIR / f"{_slug(name)}.npy", samples.view(-1, 8, 8).numpy().astype(np.float32))
        row = {"name": name, "kind": kind, **evaluate_samples(samples, x_test, net), **extra,
               "samples": len(samples), "command": command, "machine": machine}
        _save(name, row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    if not args.no_baselines:
        g = torch.Generator().manual_seed(args.seed)
        floor = x_train[torch.randperm(len(x_train), generator=g)[: min(args.samples, len(x_train))]]
        record("data (train split)", "floor", floor)
        record("gmm-pca", "baseline", pca_baseline("gmm", x_train, args.samples, args.seed))
        record("kde-pca", "baseline", pca_baseline("kde", x_train, args.samples, args.seed))
        ind, ind_bpd = independent_pixel_baseline(x_train, x_test, args.samples, args.seed)
        record("independent pixels", "baseline", ind, bits_per_dim=ind_bpd)

    for fam in args.families:
        mod = importlib.import_module(f"benchmarks.families.{fam}")
        torch.manual_seed(args.seed)
        model = mod.build()
        params = sum(p.numel() for p in model.parameters())
        cpu, wall = time.process_time(), time.perf_counter()
        mod.train(model, args.budget, device)
        train_cpu_s, train_wall_s = time.process_time() - cpu, time.perf_counter() - wall
        model.eval()
        cpu = time.process_time()
        samples = mod.sample(model, args.samples, torch.Generator(device="cpu").manual_seed(args.seed))
        sample_cpu_s = time.process_time() - cpu
        bpd = mod.bits_per_dim(model, x_test.to(device))
        record(mod.NAME, "model", samples, params=params, train_s=train_cpu_s, train_wall_s=train_wall_s,
               budget_s=args.budget, images_per_s=len(samples) / max(sample_cpu_s, 1e-9), bits_per_dim=bpd)

    if not args.no_baselines:
        fit_rate, hand_rate = fit_throughput(device)
        _save("fit-throughput", {"name": "fit-throughput", "kind": "speed", "fit_steps_per_s": fit_rate,
                                  "hand_steps_per_s": hand_rate, "command": command, "machine": machine})
    write_report(args.out)
    return 0


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def write_report(out: Path) -> None:
    """Assemble RESULTS.md from the saved rows (benchmarks/results/bench/*.json)."""
    saved = {}
    for path in sorted(RESULTS_DIR.glob("*.json")):
        row = json.loads(path.read_text())
        saved[row["name"]] = row
    speed = saved.pop("fit-throughput", None)
    order = {"floor": 0, "baseline": 1, "model": 2}
    fam_order = {name: i for i, name in enumerate(FAMILIES)}
    rows = sorted(saved.values(), key=lambda r: (order.get(r["kind"], 3), fam_order.get(r["name"], 99), r["name"]))
    lines = [
        "# Benchmark: every family on 8x8 digits",
        "",
        "Written by `make bench` (`python benchmarks/run.py`); each row was measured by the command and on the",
        "machine recorded in `benchmarks/results/bench/<name>.json` (one row per file, with its date).",
        "",
        "- training budget: CPU seconds on one torch thread (`time.process_time`), so a busy machine does not shrink",
        "  it; `train s` is that CPU time, `wall s` the elapsed time of the same run;",
        "- `images/s`: samples per CPU second on one thread;",
        "- quality: each row's samples (1000 by default) scored against the 359 test images on the features of",
        "  gmlib's digits classifier: FID, KID, precision/recall (k = 3), Inception-style score;",
        "- bits/dim: exact test negative log-likelihood over the 17 grey levels, where the family has one;",
        "- samples: `benchmarks/samples/<name>.npy`, float32 (n, 8, 8) in [0, 1] (git ignores the folder).",
        "",
    ]
    if rows:
        lines += [f"Machine of the last row: {rows[-1].get('machine', '?')}.", ""]
    lines += [
        "| name | kind | params | train s | wall s | images/s | FID | KID | precision | recall | IS | bits/dim | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| " + " | ".join([r["name"], r["kind"], _fmt(r.get("params")), _fmt(r.get("train_s")),
                                          _fmt(r.get("train_wall_s")), _fmt(r.get("images_per_s")), _fmt(r["fid"]),
                                          _fmt(r["kid"]), _fmt(r["precision"]), _fmt(r["recall"]),
                                          _fmt(r["inception_score"]), _fmt(r.get("bits_per_dim")),
                                          r.get("date", "")[:16]]) + " |")
    lines += ["", "## Targets", ""]
    floor, kde, ind = saved.get("data (train split)"), saved.get("kde-pca"), saved.get("independent pixels")
    models = [r for r in rows if r["kind"] == "model"]
    if kde:
        for r in models:
            lines.append(f"- {r['name']}: FID {_fmt(r['fid'])} vs the KDE baseline's {_fmt(kde['fid'])}: "
                         + ("beats it" if r["fid"] < kde["fid"] else "MISSED"))
    ddpm = saved.get("ddpm")
    if ddpm and floor:
        lines.append(f"- ddpm within 2x the data floor: FID {_fmt(ddpm['fid'])} vs 2 x {_fmt(floor['fid'])}: "
                     + ("met" if ddpm["fid"] <= 2 * floor["fid"] else "MISSED"))
    if ind:
        for r in models:
            if r.get("bits_per_dim") is not None:
                verdict = "beats it" if r["bits_per_dim"] < ind["bits_per_dim"] else "MISSED"
                lines.append(f"- {r['name']} bits/dim {_fmt(r['bits_per_dim'])} vs independent pixels "
                             f"{_fmt(ind['bits_per_dim'])}: {verdict}")
    if speed:
        ratio = speed["fit_steps_per_s"] / speed["hand_steps_per_s"]
        lines.append(f"- fit throughput {speed['fit_steps_per_s']:.0f} steps per CPU second vs a minimal hand loop "
                     f"{speed['hand_steps_per_s']:.0f}: {100 * ratio:.0f}% "
                     + ("(>= 90%: met)" if ratio >= 0.9 else "(< 90%: MISSED)"))
    missing = [f for f in FAMILIES if f not in saved]
    if missing:
        lines.append(f"- not run yet: {', '.join(missing)}")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
