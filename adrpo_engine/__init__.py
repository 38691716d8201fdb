"""ADRPO engine: adaptive divergence regularized policy optimization for LLMs and flow-matching models."""

__version__ = "0.1.0"
