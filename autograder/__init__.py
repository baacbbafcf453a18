"""Grading pipeline of the course: nbgrader configured for this repository, and the `gm-grade` CLI.

    python -m autograder generate [LESSON ...] [--check]    course/ from solutions/
    python -m autograder grade LESSON SUBMISSIONS           autograde a folder or .zip of submissions
    python -m autograder feedback LESSON                    HTML feedback, hidden tests removed
    python -m autograder export                             every student x lesson as CSV

Plain nbgrader commands read `autograder/nbgrader_config.py` (run them from autograder/).
"""
