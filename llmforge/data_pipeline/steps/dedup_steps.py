"""Registers the steps of ``data_pipeline/dedup/``: ``exact_dedup``, ``minhash_dedup``, ``decontaminate``."""

from llmforge.data_pipeline.dedup import Decontaminate, ExactDedup, MinhashDedup

__all__ = ["Decontaminate", "ExactDedup", "MinhashDedup"]
