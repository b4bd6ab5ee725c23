"""Gated automatic rollouts: ``controller`` moves traffic step by step, ``gates`` judges each step."""

from .controller import Rollouts

__all__ = ["Rollouts"]
