"""PII detection and redaction with compiled regular expressions and checksums, pure stdlib.

Used by the ``pii_redact`` pipeline step and, on the request path, by the serving
gateway's guardrails, so it is built for speed: every pattern is compiled once at
import and starts with a character class or literal so ``re`` can skip ahead
(boundary look-behinds come after the first character); kinds that cannot occur
are skipped with a substring test (no digit: no phone, card, IP or IBAN; no ``@``:
no email); emails are found from each ``@`` and ``name = value`` secrets from each
name, not by trying a pattern at every word. Nothing heavier than ``re``,
``ipaddress`` and integer arithmetic runs: a 200-character text costs a few
microseconds without PII and some tens with several matches (``bench/pii.py``).

What is detected (``KINDS``) and how:

``email``
    ``local@domain.tld``: the local part and labels in ASCII or Latin letters
    (``jürgen.müller@example.de``), a dotted domain ending in an alphabetic TLD of
    2+ letters or a punycode ``xn--`` TLD. ``user@localhost`` and ``a@b`` are not
    addresses; neither are retina asset names such as ``logo@2x.png``.
``phone``
    International numbers (``+`` country code, then digit groups split by space,
    dot or dash, optionally a parenthesised group: ``+44 20 7946 0958``,
    ``+1 (202) 555-0143``, ``+14155552671``) with 9-15 digits (E.164); North American
    ``(555) 123-4567``, ``555-123-4567``, ``1-555-123-4567`` (one separator style);
    trunk-prefixed national numbers (``020 7946 0958``, ``06 12 34 56 78``,
    ``(030) 1234 5678``) with 9-13 digits. Bare digit runs, years, dates
    (``2024-01-15``, ``15.01.2024``, ``01/15/2024``), versions and prices are not
    phones: each needs a ``+``, a parenthesised area code, or a leading trunk ``0``
    or a 3-3-4 shape with consistent separators, and never a neighbouring digit.
``ip_address``
    IPv4 with every octet 0-255 and no leading zeros, not part of a longer dotted
    number (``1.2.3.4.5`` is a version); IPv6 full, compressed (``2001:db8::1``) and
    IPv4-suffixed (``::ffff:192.0.2.1``) forms, validated by ``ipaddress`` and
    required to contain a decimal digit (so C++'s ``Face::Bad`` is no address).
``credit_card``
    13-19 digits, bare or in groups split by one kind of separator (space or dash)
    shaped like card numbers (4-4-4-4, 4-4-4-1..3, 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4),
    passing the **Luhn** checksum (a Luhn-invalid number is not a card; neither is one
    digit repeated, nor the digits of an IBAN-shaped string such as ``DE89 3704 ...``).
``iban``
    Two upper-case letters, two check digits and 11-30 alphanumerics, compact or
    grouped by 4 with spaces, 15-34 characters, passing the ISO 13616 **mod-97** check.
``secret``
    Well-known credential shapes: AWS access key ids (``AKIA``/``ASIA`` + 16),
    GitHub tokens (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` + 36, ``github_pat_``),
    Slack ``xox[baprse]-``, OpenAI/Anthropic-style ``sk-`` (with a digit in it),
    Stripe ``sk_live_``/``rk_test_``..., Hugging Face ``hf_``, llmforge keys
    (``lf_`` + 40), Google API keys (``AIza`` + 35), JWTs (``eyJ….eyJ….sig``) and PEM
    private key blocks (a block cut short is redacted up to its last base64 line);
    plus ``api_key|access_key|secret|token|password|passwd|pwd ... [:=] value`` where
    the value is 16+ characters with a Shannon entropy of at least
    ``SECRET_MIN_ENTROPY`` bits per character. Only the value is redacted, never
    the name; values that look like template placeholders (``${DB_PASSWORD}``,
    ``{{ token }}``, ``<your-key>``) are left alone.

When candidates overlap, the more specific kind wins (secret > iban > credit_card
> email > ip_address > phone), then the longer match; a phone that ran into a
higher-ranked match is shortened to its last digit group that still makes a valid
number, otherwise dropped. So a card number is never also a phone and an IBAN's
digits are never a card.

Deliberately not detected: names, postal addresses, dates of birth, national id
numbers (SSN, passport) and other context-dependent PII — they need NER or
locale-specific rules, not patterns; lower-case IBANs; phone numbers written
without any separator or prefix (a bare 10-digit run is as likely an order number);
low-entropy passwords after a ``password:`` name (``correcthorsebatterystaple``,
3.4 bits/char, stays): the entropy floor is what keeps prose such as
``token = aaaaaaaaaaaaaaaa`` or ``secret: ThisIsTheDocsPage`` out.
"""

from __future__ import annotations

import ipaddress
import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from llmforge.errors import InvalidInput

KINDS = ("email", "phone", "ip_address", "credit_card", "iban", "secret")
DEFAULT_PLACEHOLDER = "[{KIND}]"
SECRET_MIN_ENTROPY = 3.5
"""Bits per character a ``name = value`` secret's value needs (random base62 of 16+ chars: ~3.7-4.0)."""

# When candidates overlap, the lower rank (more specific kind) wins; within a rank, the longer.
_RANK = {"secret": 0, "iban": 1, "credit_card": 2, "email": 3, "ip_address": 4, "phone": 5}


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    text: str


# A candidate: (rank, start, ends, kind), ``ends`` the acceptable end offsets, longest first
# (most kinds have one; a phone or a grouped card may also end at an earlier digit group).
_Candidate = tuple[int, int, tuple[int, ...], str]


# --- email ---------------------------------------------------------------------------------
_L = "A-Za-z0-9\u00c0-\u024f"  # ASCII letters and digits, Latin-1 Supplement, Latin Extended-A/B
# Found from each '@': the domain read forwards, the local part read backwards (on the reversed
# text), so the cost is per '@', not per word.
_LOCAL_REV = re.compile(rf"[{_L}._%+\-]+")
_DOMAIN = re.compile(
    rf"(?:[{_L}](?:[{_L}\-]{{0,61}}[{_L}])?\.)+"
    rf"(?P<tld>[A-Za-z]{{2,24}}|xn--[A-Za-z0-9\-]{{2,59}})"
    rf"(?![{_L}\-])"
)
_NOT_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"})


def _emails(text: str) -> list[_Candidate]:
    at = text.find("@")
    if at < 0:
        return []
    rank, out, n, rev = _RANK["email"], [], len(text), None
    while at >= 0:
        d = _DOMAIN.match(text, at + 1)
        if (d is not None and at > 0 and text[at - 1] != "." and d.end() - at <= 254  # domain: 253 at most
                and d.group("tld").lower() not in _NOT_TLDS):
            if rev is None:
                rev = text[::-1]
            local = _LOCAL_REV.match(rev, n - at)
            if local is not None:
                start = n - local.end()
                while text[start] == ".":  # a local part does not start with a dot
                    start += 1
                if at - start <= 64:
                    out.append((rank, start, (d.end(),), "email"))
        at = text.find("@", at + 1)
    return out


# --- phone ---------------------------------------------------------------------------------
_PHONE = re.compile(r"""
    [+(0-9](?<![\w+.\-/][+(0-9])           # first character, not glued to a word, number or path
    (?:
        (?<=\+)(?P<intl>[1-9][0-9]*(?:[ .\-]?\([0-9]{1,4}\)[ .\-]?[0-9]+|[ .\-][0-9]+)*)
      | (?<=\()(?:[2-9][0-9]{2}\)\ ?[0-9]{3}[ .\-][0-9]{4}
                | (?P<ptrunk>0[0-9]{1,4}\)\ ?[0-9]{2,8}(?:[ .\-][0-9]{2,4}){0,3}))
      | (?<=0)(?P<trunk>[0-9]{1,4}(?P<s0>[ .\-/])[0-9]{2,8}(?:(?P=s0)[0-9]{2,4}){0,3})
      | (?<=1)[ .\-](?:\([2-9][0-9]{2}\)\ ?[0-9]{3}[ .\-][0-9]{4}
                     | [2-9][0-9]{2}(?P<s1>[ .\-])[0-9]{3}(?P=s1)[0-9]{4})
      | (?<=[2-9])[0-9]{2}(?P<s2>[ .\-])[0-9]{3}(?P=s2)[0-9]{4}
    )
    (?![0-9A-Za-z]|[.\-/][0-9])
""", re.VERBOSE)
_DIGIT_RUN = re.compile(r"[0-9]+")


def _phones(text: str) -> list[_Candidate]:
    rank, out = _RANK["phone"], []
    for m in _PHONE.finditer(text):
        start, s = m.start(), m.group()
        digits = "".join(_DIGIT_RUN.findall(s))
        if digits.count(digits[0]) == len(digits):
            continue  # "0000 0000 0000", "+1 111 111 1111": filler, not a number
        if m.group("intl") is not None:
            # Each digit group not inside parentheses may end the number: keep those with 9-15
            # digits so far, longest first (a number written right after it gets cut off).
            ends, n = [], 0
            for run in _DIGIT_RUN.finditer(s):
                n += run.end() - run.start()
                if 9 <= n <= 15 and (run.end() == len(s) or s[run.end()] != ")"):
                    ends.append(start + run.end())
            if ends:
                out.append((rank, start, tuple(reversed(ends)), "phone"))
        else:
            # North American numbers have 10 or 11 digits by construction; trunk-prefixed ones vary
            trunk = m.group("trunk") is not None or m.group("ptrunk") is not None
            if (not trunk or 9 <= len(digits) <= 13) and not _in_iban_shape(text, start):
                out.append((rank, start, (m.end(),), "phone"))
    return out


# --- IP addresses ---------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# The first octet with its first digit already consumed (so the pattern starts with a plain [0-9]).
_OCTET_REST = r"(?:(?<=2)(?:5[0-5]|[0-4][0-9]|[0-9]?)|(?<=1)[0-9]{0,2}|(?<=[3-9])[0-9]?|(?<=0))"
_IPV4 = re.compile(rf"[0-9](?<![\w.][0-9]){_OCTET_REST}(?:\.{_OCTET}){{3}}(?![\w]|\.[0-9])")
_IPV6 = re.compile(rf"(?<![\w:])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_OCTET}(?:\.{_OCTET}){{3}}|[0-9A-Fa-f]{{1,4}})?"
                   r"(?![\w:]|\.[0-9])")
_IPV4_HINT = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")  # starts with a literal: a fast scan
_HAS_DIGIT = re.compile(r"[0-9]")


def _ips(text: str) -> list[_Candidate]:
    rank, out = _RANK["ip_address"], []
    if _IPV4_HINT.search(text) is not None:
        out = [(rank, m.start(), (m.end(),), "ip_address") for m in _IPV4.finditer(text)]
    if "::" in text or text.count(":") >= 7:  # compressed, or all eight groups
        for m in _IPV6.finditer(text):
            s = m.group()
            if _HAS_DIGIT.search(s) is None:
                continue
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                continue
            out.append((rank, m.start(), (m.end(),), "ip_address"))
    return out


# --- credit cards ---------------------------------------------------------------------------
# Shapes card numbers are printed in: one run of 13-19 digits, 4-4-4-x (13-16 digits), 4-4-4-4-3
# (19), Amex 4-6-5 and Diners 4-6-4, with one separator style throughout.
_CARD = re.compile(r"""
    [0-9](?<![\w.\-+][0-9])[0-9]{3}
    (?: [0-9]{9,15}
      | (?P<sep>[ \-])[0-9]{4}(?P=sep)[0-9]{4}(?P=sep)[0-9]{1,4}(?:(?P=sep)[0-9]{3})?
      | (?P<sep6>[ \-])[0-9]{6}(?P=sep6)[0-9]{4,5})
    (?![\w]|[.,][0-9])
""", re.VERBOSE)


_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")  # each digit doubled, digits of the result summed


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number satisfies."""
    odd, even = digits[-1::-2], digits[-2::-2].translate(_LUHN_DOUBLE)
    return (sum(odd.encode()) + sum(even.encode()) - 48 * len(digits)) % 10 == 0


def _cards(text: str) -> list[_Candidate]:
    rank, out, pos = _RANK["credit_card"], [], 0
    while (m := _CARD.search(text, pos)) is not None:
        s, ends = m.group(), []
        sep = m.group("sep") or m.group("sep6")
        groups = s.split(sep) if sep else [s]
        # the whole run; for 4-4-4-4-x also without its last group (a number after the card)
        for k in ((len(groups), 4) if len(groups) == 5 else (len(groups),)):
            digits = "".join(groups[:k])
            if len(set(digits)) > 1 and luhn_ok(digits):
                ends.append(m.start() + sum(len(g) for g in groups[:k]) + k - 1)
                break
        if ends and not _in_iban_shape(text, m.start()):
            out.append((rank, m.start(), tuple(ends), "credit_card"))
            pos = ends[0]
        else:  # "+1 202 555 0143 4111 1111 1111 1111": the card starts at a later group
            pos = m.start() + 1
    return out


# --- IBAN ------------------------------------------------------------------------------------
_IBAN = re.compile(r"""
    [A-Z](?<!\w[A-Z])[A-Z][0-9]{2}                           # country code, check digits
    (?:[A-Z0-9]{11,30} | (?:\ [A-Z0-9]{4}){2,7}(?:\ [A-Z0-9]{1,4})?)  # compact, or printed in fours
    (?![\w])
""", re.VERBOSE)
_IBAN_LETTERS = {ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}  # A=10 ... Z=35


# The head of an IBAN-shaped string printed in fours, right before a given offset.
_IBAN_HEAD = re.compile(r"(?<!\w)[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4})* \Z")


def _in_iban_shape(text: str, start: int) -> bool:
    """True when ``text[start:]`` continues "DE89 3704 ...": digits of an IBAN (valid or not), not a card or phone."""
    return start >= 5 and text[start - 1] == " " and _IBAN_HEAD.search(text, max(0, start - 40), start) is not None


def iban_ok(iban: str) -> bool:
    """ISO 13616: 15-34 characters whose rearranged numeric form is 1 modulo 97 (spaces ignored)."""
    s = iban.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    return int((s[4:] + s[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _ibans(text: str) -> list[_Candidate]:
    rank, out, pos = _RANK["iban"], [], 0
    while (m := _IBAN.search(text, pos)) is not None:
        s, ends = m.group(), []
        if " " in s:
            groups = s.split(" ")
            for k in range(len(groups), 3, -1):  # whole, then without trailing groups (an amount after it)
                if iban_ok("".join(groups[:k])):
                    ends.append(m.start() + sum(len(g) for g in groups[:k]) + k - 1)
                    break
        elif iban_ok(s):
            ends.append(m.end())
        if ends:
            out.append((rank, m.start(), tuple(ends), "iban"))
        pos = ends[0] if ends else m.start() + 1
    return out


# --- secrets ---------------------------------------------------------------------------------
_B = r"[A-Za-z0-9_\-]"  # a token must not be glued to one of these on its left
_TOKEN = re.compile(rf"""
    A(?<!{_B}A)(?:(?:KIA|SIA)[0-9A-Z]{{16}}(?![0-9A-Za-z])                 # AWS access key id
                 | Iza[0-9A-Za-z_\-]{{35}}(?![0-9A-Za-z_\-]))               # Google API key
  | g(?<!{_B}g)(?:h[pousr]_[A-Za-z0-9]{{36,255}}(?![A-Za-z0-9_])              # GitHub
                 | ithub_pat_[A-Za-z0-9_]{{22,255}})
  | x(?<!{_B}x)ox[baprse]-[A-Za-z0-9\-]{{10,}}                               # Slack
  | s(?<!{_B}s)(?:(?P<sk>k-[A-Za-z0-9_\-]{{20,}})                           # OpenAI, Anthropic
                 | k_(?:live|test)_[A-Za-z0-9]{{16,}})                      # Stripe
  | r(?<!{_B}r)k_(?:live|test)_[A-Za-z0-9]{{16,}}
  | h(?<!{_B}h)f_[A-Za-z0-9]{{30,}}                                          # Hugging Face
  | l(?<!{_B}l)f_[A-Za-z0-9_\-]{{40}}(?![A-Za-z0-9_\-])                      # llmforge
  | e(?<!{_B}e)yJ[A-Za-z0-9_\-]{{8,}}\.eyJ[A-Za-z0-9_\-]{{8,}}\.[A-Za-z0-9_\-]*  # JWT
""", re.VERBOSE)
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# A block cut short: its base64 lines, each ended by a newline (real or escaped "\n"), a quote or the text.
_PEM_LINES = re.compile(r"(?:(?:\r?\n|\\n)[A-Za-z0-9+/]{4,}={0,2}(?=\r?\n|\\n|[\"']|\Z))*")
# Matched only where one of _ASSIGNED_HINTS occurs (found with str.find on the lower-cased
# text), so prose pays a few substring searches, not a regex attempt per letter.
_ASSIGNED = re.compile(r"""
    (?: secret | token | passw(?:or)?d | pwd                     # secret, client_secret, password, passwd
      | (?:(?<=api)|(?<=api[_\-])|(?<=access)|(?<=access[_\-])   # api_key, apikey, access-key,
          |(?<=private)|(?<=private[_\-])|(?<=secret)|(?<=secret[_\-]))key  # private_key, secret_key
    )
    [\w.\-]*                      # ... _key, _access_key, s, _v2
    ["']?\s*(?::=|=>|[:=])\s*     # key: value, KEY=value, "key": "value", key => value
    ["']?(?P<value>[^\s"'`,;]{16,1024})
""", re.VERBOSE | re.IGNORECASE)
_VALUE_REST = re.compile(r"[^\s\"'`,;]*")
_ASSIGNED_HINTS = ("secret", "token", "passw", "pwd", "key")
_ASSIGNED_SCAN = re.compile(_ASSIGNED.pattern, re.VERBOSE | re.IGNORECASE)
_NOT_SECRET_STARTS = ("$", "{", "<", "%", "*", "http://", "https://")  # templates, masks, links


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` under its own character frequencies (0 for '', max log2 of its length)."""
    n = len(s)
    if n == 0:
        return 0.0
    # H = log2(n) - sum(c * log2(c)) / n over the character counts c (characters seen once add nothing)
    return math.log2(n) - sum(c * math.log2(c) for c in map(s.count, set(s)) if c > 1) / n


def _assignments(text: str) -> Iterator[re.Match]:
    lowered = text.lower()
    if len(lowered) != len(text):  # lower-casing changed offsets (e.g. 'İ'): scan the text itself
        yield from _ASSIGNED_SCAN.finditer(text)
        return
    starts = []
    for hint in _ASSIGNED_HINTS:
        i = lowered.find(hint)
        while i >= 0:
            starts.append(i)
            i = lowered.find(hint, i + 1)
    skip_to = 0
    for i in sorted(starts):
        if i < skip_to:
            continue  # inside the value just matched ("secret_key=..." is found from "secret" already)
        m = _ASSIGNED.match(text, i)
        if m is not None:
            skip_to = m.end("value")
            yield m


def _pem_blocks(text: str) -> Iterator[tuple[int, int]]:
    """Each private key block, BEGIN to END, or to its last base64 line when it has no END (linear time)."""
    pos, end, no_more_ends = 0, None, False
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        if end is None or end.start() < begin.end():
            end = None if no_more_ends else _PEM_END.search(text, begin.end())
            no_more_ends = end is None
        stop = end.end() if end is not None else _PEM_LINES.match(text, begin.end()).end()
        yield begin.start(), stop
        pos = stop


def _secrets(text: str) -> list[_Candidate]:
    rank, out = _RANK["secret"], []
    # gh*_, github_pat_, [sr]k_live_, hf_, lf_ all have an underscore
    if ("_" in text or "sk-" in text or "eyJ" in text or "xox" in text or "AKIA" in text or "ASIA" in text
            or "AIza" in text):
        for m in _TOKEN.finditer(text):
            sk = m.group("sk")
            if sk is not None and _HAS_DIGIT.search(sk) is None:
                continue  # "sk-learn-compatible-estimators" is prose, not a key
            out.append((rank, m.start(), (m.end(),), "secret"))
    if "-----BEGIN" in text:
        out.extend((rank, start, (end,), "secret") for start, end in _pem_blocks(text))
    if "=" in text or ":" in text:
        for m in _assignments(text):
            value, end = m.group("value"), m.end("value")
            if len(value) == 1024:  # a very long value: judged by its first 1024 characters, redacted whole
                end = _VALUE_REST.match(text, end).end()
            elif value.endswith("."):  # end of the sentence, not of the value
                value, end = value[:-1], end - 1
            if (len(value) >= 16 and not value.startswith(_NOT_SECRET_STARTS)
                    and shannon_entropy(value) >= SECRET_MIN_ENTROPY):
                out.append((rank, m.start("value"), (end,), "secret"))
    return out


_FINDERS = {"secret": _secrets, "iban": _ibans, "credit_card": _cards, "email": _emails,
            "ip_address": _ips, "phone": _phones}
_NEEDS_DIGIT = frozenset({"phone", "ip_address", "credit_card", "iban"})
_ALL = frozenset(KINDS)


# --- the API -----------------------------------------------------------------------------------
def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """The kinds asked for, deduplicated in ``KINDS`` order; InvalidInput naming the valid ones otherwise."""
    if kinds is KINDS:
        return KINDS
    asked = {kinds} if isinstance(kinds, str) else set(kinds)
    unknown = asked - _ALL
    if unknown:
        raise InvalidInput(f"unknown PII kind(s) {', '.join(sorted(map(repr, unknown)))}; "
                           f"valid kinds: {', '.join(KINDS)}", param="kinds")
    wanted = tuple(k for k in KINDS if k in asked)
    return KINDS if wanted == KINDS else wanted


def _resolve(cands: list[_Candidate]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, kind), by start: the most specific kind first, then the longest."""
    cands.sort(key=lambda c: (c[0], c[1] - c[2][0], c[1]))
    starts: list[int] = []
    kept: list[tuple[int, int, str]] = []
    for _, start, ends, kind in cands:
        i = bisect_left(starts, start)
        if i and kept[i - 1][1] > start:
            continue  # starts inside a kept match
        limit = kept[i][0] if i < len(kept) else None
        for end in ends:
            if limit is None or end <= limit:
                starts.insert(i, start)
                kept.insert(i, (start, end, kind))
                break
    return kept


def _spans(text: str, kinds: Iterable[str]) -> list[tuple[int, int, str]]:
    wanted = check_kinds(kinds)
    if not text:
        return []
    has_digit = _HAS_DIGIT.search(text) is not None
    cands: list[_Candidate] = []
    for kind in wanted:
        if has_digit or kind not in _NEEDS_DIGIT:
            cands.extend(_FINDERS[kind](text))
    if len(cands) > 1:
        return _resolve(cands)
    return [(c[1], c[2][0], c[3]) for c in cands]


def detect(text: str, kinds: Iterable[str] = KINDS) -> list[PiiMatch]:
    """Every PII match in ``text`` of the given kinds, non-overlapping and sorted by start."""
    return [PiiMatch(kind, start, end, text[start:end]) for start, end, kind in _spans(text, kinds)]


@lru_cache(maxsize=64)
def replacements(placeholder: str = DEFAULT_PLACEHOLDER) -> Mapping[str, str]:
    """The text that replaces each kind: ``placeholder`` formatted with ``KIND`` (EMAIL) and ``kind`` (email)."""
    try:
        return MappingProxyType({k: placeholder.format(KIND=k.upper(), kind=k) for k in KINDS})
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(f"PII placeholder {placeholder!r} is not a valid format string with only "
                           f"{{KIND}} and {{kind}} fields ({type(exc).__name__}: {exc})",
                           param="placeholder") from None


def redact(text: str, kinds: Iterable[str] = KINDS, placeholder: str = DEFAULT_PLACEHOLDER) -> tuple[str, Counter]:
    """``text`` with each match replaced by its typed placeholder (``[EMAIL]``), and the count per kind."""
    subs = replacements(placeholder)
    spans = _spans(text, kinds)
    counts: Counter = Counter()
    if not spans:
        return text, counts
    parts, pos = [], 0
    for start, end, kind in spans:
        parts.append(text[pos:start])
        parts.append(subs[kind])
        counts[kind] += 1
        pos = end
    parts.append(text[pos:])
    return "".join(parts), counts
