"""Data pipeline: ingest raw text, clean, deduplicate, filter and label it into versioned JSONL/Parquet datasets."""
