"""The course's front page: `course/index.ipynb`, generated from the lesson registry below.

    python -m autograder.index           write course/index.ipynb
    python -m autograder.index --check   exit 1 if it is out of date

The registry is the one place that states each lesson's level, prerequisites and topics; the time a lesson
takes comes from the measured budgets in benchmarks/results/lessons.json (the full run's kernel CPU seconds
on one core), so the page never shows a number nobody measured. Only lessons that exist in solutions/ are
listed, and a lesson in solutions/ that the registry does not know is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .course import list_lessons

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LessonInfo:
    name: str  # folder name in solutions/ and course/
    title: str
    level: str  # beginner, intermediate, advanced
    requires: tuple[str, ...]  # lessons to do first
    topics: str


LEVELS = ("beginner", "intermediate", "advanced")

REGISTRY: tuple[LessonInfo, ...] = (
    LessonInfo("00_foundations", "Foundations", "beginner", (),
               "generative vs discriminative models; histograms, KDE and a Gaussian mixture fitted by EM; a "
               "Markov-chain text generator; a small Bayesian network; likelihood, NLL and bits/dim"),
    LessonInfo("01_autoencoders", "Autoencoders", "beginner", ("00_foundations",),
               "undercomplete and denoising autoencoders; the latent space; anomaly detection by reconstruction "
               "error and AUROC"),
    LessonInfo("02_vae", "Variational autoencoders", "beginner", ("01_autoencoders",),
               "the reparameterisation trick, the Gaussian KL, the negative ELBO; beta-VAE; a conditional VAE; "
               "walking through the latent space"),
    LessonInfo("03_gans", "Generative adversarial networks", "intermediate", ("00_foundations",),
               "the minimax game and the non-saturating loss; mode collapse, measured; WGAN-GP; a conditional "
               "DCGAN"),
    LessonInfo("04_autoregressive", "Autoregressive models", "intermediate", ("00_foundations",),
               "the chain rule; masked convolutions and PixelCNN with exact bits/dim; pixel-by-pixel sampling; "
               "char-level text models and temperature"),
    LessonInfo("05_flows", "Normalizing flows", "intermediate", ("00_foundations", "02_vae"),
               "change of variables; affine coupling layers and their log-determinants; RealNVP on 2D data and "
               "digits; dequantisation and bits/dim"),
    LessonInfo("06_ebm_rbm", "Energy-based models and RBMs", "advanced", ("00_foundations", "05_flows"),
               "energies and the partition function; Langevin dynamics; contrastive divergence with a replay "
               "buffer; RBMs, Gibbs sampling, free energy, exact likelihood of a tiny RBM"),
    LessonInfo("07_diffusion", "Diffusion models", "advanced", ("02_vae",),
               "the forward process in closed form; noise schedules; the epsilon-prediction loss; DDPM and DDIM "
               "sampling; classifier-free guidance"),
    LessonInfo("08_evaluation", "Evaluation and comparison", "advanced", ("02_vae", "03_gans", "07_diffusion"),
               "FID, KID, precision and recall, bits/dim; every family compared on the same data; what each "
               "metric misses; human judgement as a protocol"),
    LessonInfo("09_applications", "Applications", "advanced", ("01_autoencoders", "02_vae", "07_diffusion"),
               "anomaly detection with three scores; data augmentation with a conditional generator; "
               "inpainting with a diffusion model; style transfer by latent swap; responsible use"),
    LessonInfo("10_advanced", "Advanced architectures", "advanced", ("02_vae", "04_autoregressive", "07_diffusion"),
               "beta-VAE disentanglement on sprites; a VQ-VAE with a PixelCNN prior; latent diffusion"),
)


def registry_problems(source_root: Path = REPO / "solutions") -> list[str]:
    """Lessons in solutions/ that the registry does not know, and prerequisites that name no lesson."""
    known = {info.name for info in REGISTRY}
    problems = [f"{name}: in solutions/ but not in autograder/index.py's REGISTRY"
                for name in list_lessons(source_root) if name not in known]
    for info in REGISTRY:
        problems += [f"{info.name}: unknown prerequisite {req}" for req in info.requires if req not in known]
        if info.level not in LEVELS:
            problems.append(f"{info.name}: level {info.level!r} is not one of {LEVELS}")
    return problems


def _measured_minutes(results: Path) -> dict[str, str]:
    """lesson -> 'about N min' from the full runs' kernel CPU seconds (one core), where measured."""
    if not results.is_file():
        return {}
    rows = json.loads(results.read_text()).get("rows", [])
    out = {}
    for row in rows:
        seconds = row.get("kernel_cpu_s", row.get("wall_s"))
        if row.get("mode") == "full" and "error" not in row and seconds is not None:
            out[row["lesson"]] = f"{max(1, round(seconds / 60))} min" if seconds >= 60 else "under 1 min"
    return out


def build_index(root: Path = REPO) -> nbformat.NotebookNode:
    """The index notebook for the lessons present in root/solutions (markdown cells only)."""
    present = set(list_lessons(root / "solutions"))
    lessons = [info for info in REGISTRY if info.name in present]
    minutes = _measured_minutes(root / "benchmarks" / "results" / "lessons.json")
    titles = {info.name: f"{info.name[:2]} {info.title}" for info in REGISTRY}

    intro = """# Generative Models, Hands-On

An interactive course on deep generative models: every lesson explains a family of models with its maths, asks
you to write the pieces that matter (each checked at once by tests), trains a real model with your own code
plugged in, and lets you explore what it learned with a widget. Everything runs offline on a laptop CPU; a GPU
is used when there is one.

**How to work through a lesson.** Open it, run the cells from the top (Shift+Enter). Where a cell says
`raise NotImplementedError()`, write your solution in its place; the test cell after it checks your work and
says what was expected when something is off. A *Hint* under each exercise opens with a click. The training
parts run with gmlib's reference version of an exercise until yours works, and say so. Your instructor grades
with the same visible tests plus hidden ones; the hidden ones check the same behaviour on other inputs.

**Prerequisites.** Python and NumPy; PyTorch tensors, autograd and `nn.Module` at the level of an introductory
deep-learning course; probability (densities, expectations, Bayes' rule, the Gaussian), linear algebra
(matrices, determinants) and the chain rule of calculus.
"""
    path_lines = ["## The learning path", "",
                  "| lesson | level | do first | what you learn | time on a CPU |", "|---|---|---|---|---|"]
    for info in lessons:
        link = f"[{titles[info.name]}]({info.name}/{info.name}.ipynb)"
        requires = ", ".join(titles.get(r, r) for r in info.requires) or "-"
        path_lines.append(f"| {link} | {info.level} | {requires} | {info.topics} | "
                          f"{minutes.get(info.name, 'not measured yet')} |")
    path_lines += ["", "Three routes through the course:", ""]
    for level, text in [
        ("beginner", "the ideas and the first deep generative models: start here if generative modelling is new"),
        ("intermediate", "the three exact-likelihood or adversarial families, each independent of the others"),
        ("advanced", "energy-based and diffusion models, evaluation, applications and combined models"),
    ]:
        names = ", ".join(titles[i.name] for i in lessons if i.level == level) or "-"
        path_lines.append(f"- **{level}** ({text}): {names}")
    path_lines += [
        "",
        "The time is that of a full run of the solved lesson on one CPU core, training included (measured by "
        "`make bench`); a second run is much quicker, because trained models are cached.",
    ]
    practical = """## Practical notes

- **Data.** Image lessons use scikit-learn's 8x8 digits, which ship with the course: nothing is downloaded. To
  use MNIST instead, set `DATASET = "mnist"` in the lesson's parameters cell (the cell near the top). That needs
  internet the first time (torchvision downloads it), or the MNIST files in a local folder: without either, the
  lesson stops with a message that says what to do.
- **FAST mode.** `GMLIB_FAST=1` makes every training run stop after a few steps: the notebook then runs in
  seconds (that is how the course is tested), with poor models.
- **Trained models are cached** in `~/.cache/gmlib` (or `GMLIB_CACHE`): re-running a lesson loads them instead
  of training again. Delete the folder to start afresh.
- **GPU.** gmlib uses CUDA or Apple's MPS when PyTorch sees one (`gmlib.get_device()`), the CPU otherwise.
- **Notation** is the same in every lesson: see the glossary below.

## Glossary of notation

| symbol | meaning |
|---|---|
| $x$, $x_0$ | a data point (an image of shape (C, H, W), or a point in 2D); $x_0$ is clean data in diffusion |
| $B$, $d$, $D$ | batch size; latent dimension; data dimension ($C \\cdot H \\cdot W$) |
| $z$ | a latent variable; $z \\sim \\mathcal N(0, I)$ unless said otherwise |
| $p_\\theta(x)$, $q_\\phi(z \\mid x)$ | the model's density; an encoder's approximate posterior |
| $\\mu$, $\\log \\sigma^2$ (`mu`, `logvar`) | mean and log-variance of a diagonal Gaussian |
| NLL | negative log-likelihood $-\\log p_\\theta(x)$, in nats unless said otherwise |
| bits/dim | NLL in bits divided by the number of dimensions $D$: $-\\log_2 p(x) / D$ |
| $E_\\theta(x)$, $Z$ | an energy, with $p(x) = e^{-E(x)} / Z$; the partition function |
| $x_t$, $t$, $T$ | a noisy version of $x_0$ at diffusion step $t \\in \\{1, \\dots, T\\}$ |
| $\\beta_t$, $\\alpha_t = 1 - \\beta_t$, $\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s$ (`alpha_bar`) | a noise schedule |
| $\\epsilon$ (`eps`) | standard Gaussian noise; $\\epsilon_\\theta(x_t, t)$ the network's prediction of it |
| $D(x)$, $G(z)$ | a GAN's discriminator (a logit) and generator |
| $v$, $h$ | visible and hidden units of an RBM |
"""
    cells = [nbformat.v4.new_markdown_cell(intro), nbformat.v4.new_markdown_cell("\n".join(path_lines)),
             nbformat.v4.new_markdown_cell(practical)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"index-{i}"  # stable ids: the file only changes when its content does
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write course/index.ipynb from the lesson registry")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if course/index.ipynb is out of date")
    ap.add_argument("--root", type=Path, default=REPO)
    args = ap.parse_args(argv)
    problems = registry_problems(args.root / "solutions")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    text = nbformat.writes(build_index(args.root)) + "\n"
    target = args.root / "course" / "index.ipynb"
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is out of date: run `python -m autograder.index` (or `make course`)", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
