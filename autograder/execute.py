"""How a student's notebook is executed while grading: the one place to change it (e.g. to add a sandbox).

nbgrader's autograde runs each notebook through an `Execute` preprocessor; the course config
(`autograder.settings`) swaps in `GradingExecute`, which starts the kernel with the grading environment.
A sandbox would go here too: wrap the kernel command or pick another kernel manager in `start_new_kernel`.
"""

from __future__ import annotations

import os
from typing import Any

from nbgrader.preprocessors import Execute
from traitlets import Dict, Unicode

__all__ = ["GradingExecute"]


class GradingExecute(Execute):
    """nbgrader's `Execute` with extra environment variables for the kernel (config: `kernel_env`)."""

    kernel_env = Dict(
        value_trait=Unicode(),
        default_value={},
        help="Environment variables set in the grading kernel, on top of the grader's own environment.",
    ).tag(config=True)

    def start_new_kernel(self, **kwargs: Any) -> None:
        env = dict(kwargs.pop("env", None) or os.environ)
        env.update(self.kernel_env)
        super().start_new_kernel(env=env, **kwargs)
