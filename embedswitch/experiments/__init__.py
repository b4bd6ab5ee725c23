"""Judging versions with live traffic: A/B tests with feedback, team-draft interleaving, shadow
traffic, their assignment log, reports and statistics (``experiment.py`` is the entry point)."""

from .experiment import Experiment, Experiments
from .log import open_experiment_log

__all__ = ["Experiment", "Experiments", "open_experiment_log"]
