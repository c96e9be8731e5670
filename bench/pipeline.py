"""Documents per second per step of a full cleaning pipeline, over real text from ../shared/data.

    python bench/pipeline.py --quick --out /tmp/pipeline.json

Builds a corpus (news descriptions, Wikipedia paragraphs, instructions and model
answers, Shakespeare passages; repeated to the target size with light edits so
deduplication has work), imports it as a dataset version and runs one pipeline
with every built-in step. Per-step time is the time spent inside that step
(``StepStats.seconds``), so docs/s per step is ``docs_in / seconds``; the
end-to-end figure includes reading and writing shards. There is no peer for
this one (the MinHash peer comparison is ``bench/dedup.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from llmforge.artifacts import ArtifactStore  # noqa: E402
from llmforge.data_pipeline.datasets import DatasetStore  # noqa: E402
from llmforge.data_pipeline.run import run_pipeline  # noqa: E402

DATA = _common.ROOT.parent / "shared" / "data"
SPEC = {"steps": [
    {"step": "fix_mojibake"}, {"step": "normalize_unicode", "params": {"form": "NFKC"}}, {"step": "normalize_whitespace"},
    {"step": "length_filter", "params": {"min_words": 5}}, {"step": "language_filter", "params": {"languages": ["en"]}},
    {"step": "gopher_quality", "params": {"min_doc_words": 20}}, {"step": "gopher_repetition"}, {"step": "c4_lines"},
    {"step": "pii_redact"}, {"step": "exact_dedup"}, {"step": "minhash_dedup"},
]}


def corpus(n: int) -> list[dict]:
    texts: list[str] = []
    with open(DATA / "ag_news_sample.csv", newline="") as fh:
        texts += [r[1] + ". " + r[2] for r in csv.reader(fh)]
    squad = json.loads((DATA / "xquad_en_dev.json").read_text())
    texts += [p["context"] for a in squad["data"] for p in a["paragraphs"]]
    for line in (DATA / "self_instruct_user_oriented.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts.append(f"{row.get('instruction', '')} {row.get('instances', [{}])[0].get('output', '') if row.get('instances') else ''}")
    plays = (DATA / "tinyshakespeare.txt").read_text().split("\n\n")
    texts += ["\n".join(plays[i:i + 6]) for i in range(0, len(plays), 6)]
    rng = random.Random(0)
    rows = []
    while len(rows) < n:
        t = rng.choice(texts)
        if rng.random() < 0.1:  # a near-duplicate: drop one word
            words = t.split()
            if len(words) > 10:
                del words[rng.randrange(len(words))]
                t = " ".join(words)
        if rng.random() < 0.05:
            t += " Contact press@example.com or call +1-202-555-0143."
        rows.append({"text": t})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 documents instead of 40,000")
    ap.add_argument("--workers", type=int, default=2, help="shard-parallel processes")
    ap.add_argument("--out", help="write the figures as one flat JSON object")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: this benchmark reads the shared real datasets")
    n = 5_000 if args.quick else 40_000
    load0 = _common.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(ArtifactStore(tmp))
        version = store.write_version(corpus(n), shard_rows=max(500, n // 8))
        t0 = time.perf_counter()
        result = run_pipeline(store, version.id, SPEC, workers=args.workers)
        wall = time.perf_counter() - t0
    rows = []
    figures: dict[str, object] = {"docs": n, "workers": args.workers, "end_to_end_docs_per_s": round(n / wall, 1),
                                  "rows_out": result.version.rows, "load_avg_start": load0}
    for st in result.report["steps"]:
        rate = st["docs_in"] / st["seconds"] if st["seconds"] else float("nan")
        rows.append([st["step"], st["docs_in"], st["docs_out"], round(st["seconds"], 3), rate])
        figures[f"docs_per_s_{st['step']}"] = round(rate, 1)
    table = _common.markdown_table(["step", "docs in", "docs out", "seconds (summed over shards)", "docs/s (one core)"], rows)
    print(table)
    print(f"end to end: {n} docs in {wall:.1f} s = {n / wall:,.0f} docs/s with {args.workers} worker(s)")
    body = (f"Command: `{_common.command_line()}`  \nMachine: {_common.cpu_model()}, {_common.machine_info()['cores']} cores; "
            f"load average at start {_common.load_note(load0)}.\n\n{table}\n\n"
            f"End to end (read, every step, write the new version): {n} documents in {wall:.1f} s = "
            f"**{n / wall:,.0f} docs/s** with {args.workers} shard processes.\n")
    _common.append_section(f"pipeline: docs/s per cleaning step ({_common.utc_stamp()}{', quick' if args.quick else ''})", body)
    _common.write_out(args.out, figures)


if __name__ == "__main__":
    main()
