"""PII detection and redaction (``llmforge.data_pipeline.pii``) and the ``pii_redact`` step.

Tables of what must be caught (with the exact redacted text) and what must not
(dates, versions, prices, ordinary numbers, checksum failures, low-entropy
"secrets"), overlaps between kinds, Unicode around matches, and the step's stats
and metadata. Speed is measured by ``bench/pii.py``, never asserted here.

Credential-shaped test values are assembled at run time so that the source holds
no string a secret scanner would flag.
"""

from __future__ import annotations

from collections import Counter

import pytest

from llmforge.data_pipeline.document import Document
from llmforge.data_pipeline.pii import (
    KINDS,
    PiiMatch,
    detect,
    iban_ok,
    luhn_ok,
    redact,
    shannon_entropy,
)
from llmforge.data_pipeline.registry import available_steps, get_step
from llmforge.data_pipeline.spec import PipelineSpec, build_steps
from llmforge.errors import InvalidInput

# --- synthetic credentials (not real, not literal) ----------------------------------------------
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_PAT = "ghp" + "_" + "a1B2c3D4e5" * 3 + "F6g7H8"  # 36 after the prefix
GITHUB_FINE = "github" + "_pat_" + "11ABCDEFG0" + "abcdefghij12" + "_" + "Zz9" * 20
SLACK = "xox" + "b-123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI = "sk" + "-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ"
STRIPE = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
HF = "hf" + "_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
LLMFORGE = "lf" + "_" + "Q2w-E4r_T6y8U0i2O4p6A8s0D2f4G6h8J0k2L4z6"  # 40 after the prefix
GOOGLE = "AI" + "za" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"  # 35 after the prefix
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + "."
       + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ" + "."
       + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN " + "RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEAwqbtnXsz2lC0s0Bfq8kM1kq1Yp8Y0b2zZJ8c2Y1w5x6e7t8u\n"
       "9v0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6A7B8C9D0==\n"
       "-----END " + "RSA PRIVATE KEY-----")
assert len(GITHUB_PAT) == 40 and len(LLMFORGE) == 43 and len(GOOGLE) == 39

# --- must be caught: (kind, text, redacted) -----------------------------------------------------
POSITIVE = [
    # email
    ("email", "Contact john.doe@example.com today.", "Contact [EMAIL] today."),
    ("email", "first.last+tag@sub.example.co.uk", "[EMAIL]"),
    ("email", "<alice_smith@my-company.io>", "<[EMAIL]>"),
    ("email", "mailto:ops@example.org?subject=hi", "mailto:[EMAIL]?subject=hi"),
    ("email", "Write to bob@example.com.", "Write to [EMAIL]."),
    ("email", "Schreiben Sie jürgen.müller@example.de, bitte", "Schreiben Sie [EMAIL], bitte"),
    ("email", "...john@example.com", "...[EMAIL]"),
    # phone
    ("phone", "Call +44 20 7946 0958 now", "Call [PHONE] now"),
    ("phone", "+1-202-555-0143", "[PHONE]"),
    ("phone", "Office: (555) 123-4567.", "Office: [PHONE]."),
    ("phone", "cell 555-123-4567", "cell [PHONE]"),
    ("phone", "555.123.4567", "[PHONE]"),
    ("phone", "555 123 4567", "[PHONE]"),
    ("phone", "+1 (202) 555-0143", "[PHONE]"),
    ("phone", "1-800-555-0199", "[PHONE]"),
    ("phone", "+14155552671", "[PHONE]"),
    ("phone", "Tel. +33 1 23 45 67 89", "Tel. [PHONE]"),
    ("phone", "+44 (0)20 7946 0958", "[PHONE]"),
    ("phone", "+49 30 12345678", "[PHONE]"),
    ("phone", "UK 020 7946 0958", "UK [PHONE]"),
    ("phone", "(020) 7946 0958", "[PHONE]"),
    ("phone", "FR 06 12 34 56 78", "FR [PHONE]"),
    ("phone", "freephone 0800 123 456", "freephone [PHONE]"),
    # ip_address
    ("ip_address", "server 192.168.1.20 is down", "server [IP_ADDRESS] is down"),
    ("ip_address", "ping 10.0.0.1.", "ping [IP_ADDRESS]."),
    ("ip_address", "host=10.1.2.3:5432", "host=[IP_ADDRESS]:5432"),
    ("ip_address", "0.0.0.0 and 255.255.255.255", "[IP_ADDRESS] and [IP_ADDRESS]"),
    ("ip_address", "v6 2001:db8::1 here", "v6 [IP_ADDRESS] here"),
    ("ip_address", "fe80::1ff:fe23:4567:890a", "[IP_ADDRESS]"),
    ("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[IP_ADDRESS]"),
    ("ip_address", "mapped ::ffff:192.0.2.1", "mapped [IP_ADDRESS]"),
    ("ip_address", "http://[::1]:8080/", "http://[[IP_ADDRESS]]:8080/"),
    # credit_card
    ("credit_card", "Visa 4111 1111 1111 1111 exp 12/27", "Visa [CREDIT_CARD] exp 12/27"),
    ("credit_card", "4111-1111-1111-1111", "[CREDIT_CARD]"),
    ("credit_card", "card:4111111111111111.", "card:[CREDIT_CARD]."),
    ("credit_card", "MC 5500 0055 5555 5559", "MC [CREDIT_CARD]"),
    ("credit_card", "Amex 3782 822463 10005", "Amex [CREDIT_CARD]"),
    ("credit_card", "Diners 3056 930902 5904", "Diners [CREDIT_CARD]"),
    ("credit_card", "Discover 6011000990139424", "Discover [CREDIT_CARD]"),
    ("credit_card", "Visa-13 4222222222222", "Visa-13 [CREDIT_CARD]"),
    ("credit_card", "ordered 4111 1111 1111 1111 12 items", "ordered [CREDIT_CARD] 12 items"),
    # iban
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32.", "IBAN [IBAN]."),
    ("iban", "DE89 3704 0044 0532 0130 00", "[IBAN]"),
    ("iban", "pay to GB82WEST12345698765432 today", "pay to [IBAN] today"),
    ("iban", "IBAN: DE89370400440532013000, thanks", "IBAN: [IBAN], thanks"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
    ("iban", "NL91 ABNA 0417 1643 00 EUR 250", "[IBAN] EUR 250"),
    # secret: well-known shapes
    ("secret", f"aws {AWS_KEY} key", "aws [SECRET] key"),
    ("secret", f"export GITHUB_TOKEN={GITHUB_PAT}", "export GITHUB_TOKEN=[SECRET]"),
    ("secret", f"pat {GITHUB_FINE}", "pat [SECRET]"),
    ("secret", f"slack {SLACK}", "slack [SECRET]"),
    ("secret", f"OPENAI_API_KEY={OPENAI}", "OPENAI_API_KEY=[SECRET]"),
    ("secret", f"stripe {STRIPE}", "stripe [SECRET]"),
    ("secret", f"hf {HF}", "hf [SECRET]"),
    ("secret", f"Authorization: Bearer {LLMFORGE}", "Authorization: Bearer [SECRET]"),
    ("secret", f"maps {GOOGLE}&q=x", "maps [SECRET]&q=x"),
    ("secret", f"jwt {JWT} end", "jwt [SECRET] end"),
    ("secret", f"key:\n{PEM}\nthanks", "key:\n[SECRET]\nthanks"),
    ("secret", "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabcdEFGH1234ijkl\n",
     "[SECRET]\n"),  # cut short: up to its last base64 line
    # secret: name = high-entropy value (only the value goes)
    ("secret", 'api_key = "Zx8Qp2Lm9Rt4Vw7Ks1Hd"', 'api_key = "[SECRET]"'),
    ("secret", "PASSWORD=Tr0ub4dor&3xQ9!zK7w", "PASSWORD=[SECRET]"),
    ("secret", "aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "aws_secret_access_key: [SECRET]"),
    ("secret", '{"token": "a8f5f167f44f4964e6c998dee827110c"}', '{"token": "[SECRET]"}'),
    ("secret", "client_secret => 9vQ2xL7pR4tW1zK8mN3b, next", "client_secret => [SECRET], next"),
    ("secret", "db passwd: hT7#kP2!qW9$zX4m.", "db passwd: [SECRET]."),
    ("secret", "SECRET_KEY=Zx8Qp2Lm9Rt4Vw7Ks1Hd", "SECRET_KEY=[SECRET]"),  # found from both names: once
]


@pytest.mark.parametrize("kind,text,expected", POSITIVE, ids=[f"{k}:{t[:30]}" for k, t, _ in POSITIVE])
def test_caught_and_redacted(kind: str, text: str, expected: str) -> None:
    out, counts = redact(text)
    assert out == expected
    assert set(counts) == {kind}
    assert sum(counts.values()) == expected.count(f"[{kind.upper()}]")
    assert {m.kind for m in detect(text)} == {kind}
    # detecting only that kind finds the same spans
    assert detect(text, [kind]) == detect(text)


def test_every_kind_has_positive_cases() -> None:
    assert {k for k, _, _ in POSITIVE} == set(KINDS)


# --- must not be caught --------------------------------------------------------------------------
NEGATIVE = [
    # dates, times, years
    "Released on 2024-01-15 at 10:30:00.",
    "Due 15.01.2024, signed 01/15/2024, filed 2024/01/15",
    "timestamp 2024-01-15T10:30:00Z",
    "The years 1999, 2000 and 2024; between 2019-2021 and 2022-2024.",
    "Dates 01.02.2024 03.04.2024 05.06.2024",
    # versions, dotted numbers
    "Version 1.2.3.4.5 and v2.10.3, python 3.11.7",
    "build 10.0.19041.1234 and v1.2.3.4",
    "256.300.1.1 and 192.168.01.1 are not addresses",
    # prices, quantities, ordinary numbers
    "Price: $1,299.99 or €2.499,00 (10 000 units) 1 234 567",
    "Population 8000000000, order #123456789012, ids 1234567890 9876543210",
    "pi is 3.14159265358979 and e is 2.718281828",
    "Lat/long 48.8584, 2.2945",
    "Call 555-0143 or room 020, floor 3",
    "ISBN 978-3-16-148410-0",
    "C++11 gives +1 more and 3+4=7",
    # card-shaped numbers failing Luhn, or filler
    "4111 1111 1111 1112",
    "4111111111111112",
    "0000 0000 0000 0000",
    "4111 1111-1111 1111",  # mixed separators
    # IBAN-shaped strings failing mod-97 (one digit altered)
    "GB82 WEST 1234 5698 7654 33",
    "DE89 3704 0044 0532 0130 01",
    "GB83WEST12345698765432",
    # low entropy, short or templated "secrets"
    "password = aaaaaaaaaaaaaaaaaaaa",
    "password: hunter2",
    "token = 'ab12ab12ab12ab12ab12'",
    "SECRET_KEY=${DJANGO_SECRET_KEY_VALUE}",
    "api_key: <your-api-key-goes-here>",
    "the secret: https://docs.example.com/tokens/abc",
    "use sk-learn-compatible-estimators",
    "AKIA alone, ghp_short, sk-123",
    # not addresses
    "user@localhost, a@b, @handle, logo@2x.png and x.@example.com",
    # hex and code that look a bit like addresses or keys
    "std::vector<int> and Foo::Bar, at 12:30, MAC 00:1A:2B:3C:4D:5E",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "colour #ff0000, ok, no, yes",
    # prose
    "The quick brown fox jumps over the lazy dog.",
    "",
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_not_caught(text: str) -> None:
    assert detect(text) == []
    out, counts = redact(text)
    assert out == text
    assert counts == Counter()


def test_text_without_pii_is_returned_unchanged() -> None:
    text = ("Our Q3 2023 revenue grew 12.5% to $1,299,000 across 42 stores; release v2.3.1 shipped on "
            "2024-01-15 and fixed 17 bugs. Straße, café, naïve — 東京 🎉")
    out, counts = redact(text)
    assert out is text
    assert not counts


# --- overlaps between kinds ---------------------------------------------------------------------
def test_card_is_not_also_a_phone() -> None:
    assert [m.kind for m in detect("4111 1111 1111 1111")] == ["credit_card"]
    assert [m.kind for m in detect("+4111111111111111")] == []  # 16 digits: no E.164 number either


def test_iban_digits_are_not_a_card_or_phone() -> None:
    assert [(m.kind, m.text) for m in detect("DE89 3704 0044 0532 0130 00")] == [
        ("iban", "DE89 3704 0044 0532 0130 00")]


def test_phone_running_into_a_card_is_cut_at_its_last_group() -> None:
    out, counts = redact("Call +1 202 555 0143 4111 1111 1111 1111 now")
    assert out == "Call [PHONE] [CREDIT_CARD] now"
    assert counts == Counter(phone=1, credit_card=1)


def test_email_wins_over_the_phone_inside_it() -> None:
    assert redact("text +15551234567@sms.example.com")[0] == "text [EMAIL]"


def test_ipv4_suffix_of_ipv6_is_one_address() -> None:
    assert [(m.kind, m.text) for m in detect("::ffff:192.0.2.1")] == [("ip_address", "::ffff:192.0.2.1")]


def test_secret_name_and_value_shape_give_one_secret() -> None:
    text = f'{{"api_key": "{OPENAI}", "token": "{JWT}"}}'
    out, counts = redact(text)
    assert out == '{"api_key": "[SECRET]", "token": "[SECRET]"}'
    assert counts == Counter(secret=2)


def test_matches_are_sorted_non_overlapping_and_slice_the_text() -> None:
    text = (f"Jane <jane.doe@example.com>, +44 20 7946 0958, card 4111 1111 1111 1111, "
            f"IBAN GB82 WEST 1234 5698 7654 32, host 192.168.1.20, key {AWS_KEY}.")
    matches = detect(text)
    assert [m.kind for m in matches] == ["email", "phone", "credit_card", "iban", "ip_address", "secret"]
    for a, b in zip(matches, matches[1:]):
        assert a.end <= b.start
    for m in matches:
        assert text[m.start:m.end] == m.text
    assert redact(text)[0] == ("Jane <[EMAIL]>, [PHONE], card [CREDIT_CARD], IBAN [IBAN], "
                               "host [IP_ADDRESS], key [SECRET].")


# --- Unicode around matches --------------------------------------------------------------------
UNICODE = [
    ("Привет, пишите на ivan@example.ru или звоните +7 495 123-45-67 ✓",
     "Привет, пишите на [EMAIL] или звоните [PHONE] ✓"),
    ("📧 jane@example.com 📞 +44 20 7946 0958 🎉", "📧 [EMAIL] 📞 [PHONE] 🎉"),
    ("电子邮件：zhang@example.cn，谢谢", "电子邮件：[EMAIL]，谢谢"),
    ("请联系zhang@example.cn谢谢", "请联系[EMAIL]谢谢"),
    ("Ruf an: +49 30 1234567 — danke für café ☕ 4111 1111 1111 1111 ✓",
     "Ruf an: [PHONE] — danke für café ☕ [CREDIT_CARD] ✓"),
    ("サーバー 10.0.0.1 と fe80::1 です", "サーバー [IP_ADDRESS] と [IP_ADDRESS] です"),
    # 'İ'.lower() is two characters, so offsets from the lower-cased text would be off by one
    ("İstanbul office password: Zx8Qp2Lm9Rt4Vw7Ks1Hd", "İstanbul office password: [SECRET]"),
]


@pytest.mark.parametrize("text,expected", UNICODE)
def test_unicode_around_matches(text: str, expected: str) -> None:
    assert redact(text)[0] == expected
    for m in detect(text):
        assert text[m.start:m.end] == m.text


# --- API details -------------------------------------------------------------------------------
def test_kinds_filter_and_unknown_kinds() -> None:
    text = "mail a@example.com, call 555-123-4567"
    assert redact(text, kinds=["phone"])[0] == "mail a@example.com, call [PHONE]"
    assert redact(text, kinds="email")[0] == "mail [EMAIL], call 555-123-4567"  # one kind as a string
    with pytest.raises(InvalidInput) as exc:
        detect(text, ["email", "ssn"])
    assert "'ssn'" in exc.value.message and "valid kinds: email, phone, ip_address" in exc.value.message


def test_placeholder_format() -> None:
    assert redact("a@example.com", placeholder="<{kind}>")[0] == "<email>"
    assert redact("a@example.com", placeholder="***")[0] == "***"
    with pytest.raises(InvalidInput):
        redact("a@example.com", placeholder="[{TYPE}]")


def test_pii_match_is_a_frozen_value() -> None:
    m = detect("x a@example.com")[0]
    assert m == PiiMatch("email", 2, 15, "a@example.com")
    with pytest.raises(AttributeError):
        m.start = 0  # type: ignore[misc]


def test_checksums_and_entropy() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and iban_ok("DE89370400440532013000")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33") and not iban_ok("GB82")
    assert shannon_entropy("") == 0.0 and shannon_entropy("aaaaaaaaaaaaaaaaaaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy("Zx8Qp2Lm9Rt4Vw7Ks1Hd") > 3.5


# --- the pipeline step ---------------------------------------------------------------------------
def test_step_is_registered() -> None:
    assert "pii_redact" in available_steps()
    assert get_step("pii_redact").name == "pii_redact"


def test_step_redacts_counts_and_records_metadata() -> None:
    step = get_step("pii_redact")()
    docs = [
        Document("mail a.b@example.com or +44 20 7946 0958, again c@example.org", "0", {"source": "x"}),
        Document("nothing to see here, version 1.2.3", "1", {"source": "y"}),
        Document(f"key {AWS_KEY} on 10.0.0.1", "2"),
    ]
    out = list(step.run(docs))
    assert [d.text for d in out] == ["mail [EMAIL] or [PHONE], again [EMAIL]",
                                     "nothing to see here, version 1.2.3",
                                     "key [SECRET] on [IP_ADDRESS]"]
    assert out[0].metadata == {"source": "x", "pii": {"email": 2, "phone": 1}}
    assert out[1].metadata == {"source": "y"}  # nothing found: no "pii" key
    assert out[2].metadata == {"pii": {"secret": 1, "ip_address": 1}}
    stats = step.stats
    assert stats.counts == Counter(email=2, phone=1, secret=1, ip_address=1)
    assert (stats.docs_in, stats.docs_out, stats.modified) == (3, 3, 2)
    assert stats.to_dict()["counts"] == {"email": 2, "phone": 1, "secret": 1, "ip_address": 1}


def test_step_params_kinds_and_placeholder() -> None:
    step = get_step("pii_redact")(kinds=["email"], placeholder="<{kind}>")
    (doc,) = step.run([Document("a@example.com, 555-123-4567", "0")])
    assert doc.text == "<email>, 555-123-4567"
    assert doc.metadata == {"pii": {"email": 1}}
    assert step.stats.counts == Counter(email=1)
    assert step.apply("b@example.com") == "<email>"


@pytest.mark.parametrize("params,needle", [
    ({"kinds": ["email", "ssn"]}, "valid kinds: email, phone, ip_address, credit_card, iban, secret"),
    ({"kinds": []}, "valid kinds"),
    ({"placeholder": "[{TYPE}]"}, "{KIND}"),
    ({"redact": True}, "redact"),
])
def test_step_rejects_bad_params_with_a_clear_error(params: dict, needle: str) -> None:
    spec = PipelineSpec.parse({"steps": [{"step": "pii_redact", "params": params}]})
    with pytest.raises(InvalidInput) as exc:
        build_steps(spec)
    assert needle in exc.value.message
    assert exc.value.message.startswith("steps[0] (pii_redact)")


def test_step_from_a_spec_with_defaults() -> None:
    (step,) = build_steps(PipelineSpec.parse({"steps": [{"step": "pii_redact"}]}))
    assert step.params.kinds == list(KINDS)
    assert step.params.placeholder == "[{KIND}]"
