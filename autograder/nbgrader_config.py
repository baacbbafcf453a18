"""nbgrader configuration of this repository, for plain nbgrader commands.

Run them from this folder (`cd autograder && nbgrader generate_assignment 02_vae --force`) or point
JUPYTER_CONFIG_PATH at it. The settings themselves live in autograder/settings.py (shared with the CLI).
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # nbgrader puts only the working directory on sys.path

from autograder.settings import RELEASE_DIR, SOURCE_DIR, STATE_DIR, nbgrader_config  # noqa: E402

c = get_config()  # noqa: F821 (provided by the config loader)
c.merge(nbgrader_config(REPO, source_directory=SOURCE_DIR, release_directory=RELEASE_DIR, state_directory=STATE_DIR))
