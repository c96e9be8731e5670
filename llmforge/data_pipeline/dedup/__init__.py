"""Deduplication and decontamination steps.

- ``exact_dedup`` (:class:`ExactDedup`): drop later copies of the same normalised text.
- ``minhash_dedup`` (:class:`MinhashDedup`): drop near-duplicates (MinHash LSH; candidates
  optionally verified by Jaccard, estimated from signatures or exact from stored shingle
  hashes); clusters go to ``clusters.jsonl``. For precision, set ``verify_threshold=0.8,
  verify_with="shingles"`` (see ``bench/dedup.py`` and ``docs/benchmarks.md``).
- ``decontaminate`` (:class:`Decontaminate`): drop documents sharing a word n-gram with eval texts.

The two dedup steps are :class:`~llmforge.data_pipeline.base.GlobalStep` s: the runner fans
``index_shard`` and ``filter_shard`` out over shards and runs ``plan`` once; ``step.run(docs)``
chains the three phases over one stream. The pure functions (``shingles``, ``jaccard``,
``signature``, ``estimated_jaccard``, ``normalize``) are there for tests and benchmarks.
"""

from llmforge.data_pipeline.dedup.decontaminate import Decontaminate
from llmforge.data_pipeline.dedup.exact import ExactDedup, normalize
from llmforge.data_pipeline.dedup.minhash import MinhashDedup, estimated_jaccard, jaccard, shingles, signature

__all__ = ["Decontaminate", "ExactDedup", "MinhashDedup", "estimated_jaccard", "jaccard", "normalize", "shingles",
           "signature"]
