#!/usr/bin/env python
"""PII detection cost: microseconds per ``detect`` / ``redact`` call, normalised to 200 characters.

``llmforge.data_pipeline.pii`` runs on the serving gateway's request path, so it
must cost microseconds on a short text. This times both functions on a few
realistic ~200-character texts (prose without PII, prose full of numbers that
are not PII, a chat message with an email and a phone number, a support ticket
with one of every kind, and a config snippet with credentials), each with
``timeit`` (best of ``--repeat`` repetitions of ``--number`` calls, the usual way
to take scheduler noise out of a micro-benchmark), and normalises each figure to
200 characters. The headline figures are the mean over the texts.

    python bench/pii.py --quick --out /tmp/pii_quick.json   # a few seconds
    python bench/pii.py                                     # more calls and repetitions

Prints a table and, with ``--out``, one flat JSON object with
``detect_us_per_200_chars`` and ``redact_us_per_200_chars`` (plus the figure per
text). It does not write to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import _common  # noqa: E402

from llmforge.data_pipeline.pii import detect, redact  # noqa: E402

# Credential-shaped values assembled at run time (fake; no literal a secret scanner would flag).
_AWS = "AKIA" + "IOSFODNN7EXAMPLE"
_GH = "ghp" + "_" + "a1B2c3D4e5" * 3 + "F6g7H8"

TEXTS = {
    "prose_no_pii": (
        "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly roadmap "
        "and discusses how to improve onboarding for new engineers across every team in the company."
    ),
    "numbers_no_pii": (
        "Release v2.3.1 shipped on 2024-01-15; revenue grew 12.5% to $1,299,000 in Q3 2023 across 42 "
        "stores, and build 10.0.19041 fixed 17 bugs reported between 01/02/2024 and 15.03.2024 by users."
    ),
    "chat_email_phone": (
        "Hi! Thanks for the quick reply. You can reach me at jane.doe@example.com or on my mobile "
        "+44 20 7946 0958 after 6pm. I'd love to hear more about the role and the team in Berlin."
    ),
    "ticket_all_kinds": (
        "Refund for order 5521: card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, contact "
        "bob@example.org / (555) 123-4567, login from 192.168.1.20, key " + _AWS + "."
    ),
    "config_secrets": (
        "DATABASE_URL=postgres://app@db:5432/app\nAPI_KEY=\"Zx8Qp2Lm9Rt4Vw7Ks1Hd\"\nGITHUB_TOKEN=" + _GH
        + "\nDEBUG=false\nWORKERS=4\nALLOWED_HOSTS=api.example.com,10.0.0.12"
    ),
}


def per_call_us(fn, text: str, number: int, repeat: int) -> float:
    best = min(timeit.repeat(lambda: fn(text), number=number, repeat=repeat))
    return best / number * 1e6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 calls x 3 repetitions per text (a few seconds)")
    p.add_argument("--out", help="write the figures as one flat JSON object to this file")
    p.add_argument("--number", type=int, help="calls per repetition (default 20,000; quick 2,000)")
    p.add_argument("--repeat", type=int, help="repetitions, best taken (default 7; quick 3)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    number = args.number or (2_000 if args.quick else 20_000)
    repeat = args.repeat or (3 if args.quick else 7)
    load = _common.load_average()
    machine = _common.machine_info()

    rows, fig = [], {}
    detect_norm, redact_norm = [], []
    for name, text in TEXTS.items():
        found = ", ".join(f"{k}={v}" for k, v in sorted(redact(text)[1].items())) or "-"
        d = per_call_us(detect, text, number, repeat)
        r = per_call_us(redact, text, number, repeat)
        scale = 200 / len(text)
        detect_norm.append(d * scale)
        redact_norm.append(r * scale)
        fig[f"detect_us_{name}"] = round(d * scale, 2)
        fig[f"redact_us_{name}"] = round(r * scale, 2)
        rows.append([name, len(text), found, d, r, d * scale, r * scale])

    fig["detect_us_per_200_chars"] = round(sum(detect_norm) / len(detect_norm), 2)
    fig["redact_us_per_200_chars"] = round(sum(redact_norm) / len(redact_norm), 2)
    fig["load_average_1m"] = round(load, 2)

    print(f"PII detection, {number:,} calls x {repeat} repetitions (best), "
          f"{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
          f"load {_common.load_note(load)}")
    print(_common.markdown_table(
        ["text", "chars", "found", "detect us", "redact us", "detect us/200 chars", "redact us/200 chars"],
        rows, digits=2))
    print(f"\ndetect: {fig['detect_us_per_200_chars']} us per 200 chars, "
          f"redact: {fig['redact_us_per_200_chars']} us per 200 chars (mean over the texts)")
    _common.write_out(args.out, fig)
    return fig


if __name__ == "__main__":
    main()
