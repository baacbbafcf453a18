"""Tests of the grading pipeline (autograder/)."""
