"""Dialogue summarization with FLAN-T5 on DialogSum: the library behind the DVC pipeline."""

__version__ = "0.1.0"
