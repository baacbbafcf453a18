"""One module per model family for benchmarks/run.py. Each module defines:

    NAME: str                                        family name in the results table
    build() -> nn.Module                             the model for 8x8 digits (configured for the benchmark)
    train(model, budget_s: float, device) -> History  train on load_digits("train") for at most budget_s seconds
    sample(model, n: int, generator) -> Tensor       (n, 1, 8, 8) float in [0, 1]
    bits_per_dim(model, x_test) -> float | None      exact test bits/dim where the family has one, else None
"""

import time

CPU_CLOCK = time.process_time  # training budgets are CPU seconds (one torch thread): a busy machine does not shrink them
