"""Redaction: every format of personal data users really type goes, and nothing a scorer needs goes with it."""

from __future__ import annotations

import copy
import json

import pytest

from continuum.llm import pii_corpus
from continuum.llm.redact import (
    find_personal_data,
    find_spans,
    redact_conversation,
    redact_text,
    redact_value,
)

FOUND = [  # (text, the text after redaction)
    # emails
    ("mail me at jane.doe@example.com", "mail me at [EMAIL]"),
    ("JOHN_SMITH+orders@mail.example.co.uk.", "[EMAIL]."),
    ("<a.b-c@sub.example.org>", "<[EMAIL]>"),
    # phones, international and local
    ("call +44 7700 900123 today", "call [PHONE] today"),
    ("+1 (415) 555-0132", "[PHONE]"),
    ("+1-415-555-0132", "[PHONE]"),
    ("+33 6 12 34 56 78", "[PHONE]"),
    ("+49 30 1234567", "[PHONE]"),
    ("+4915123456789", "[PHONE]"),
    ("0044 20 7946 0958", "[PHONE]"),
    ("(415) 555-0132", "[PHONE]"),
    ("415-555-0132 or 415.555.0132", "[PHONE] or [PHONE]"),
    ("07700 900123", "[PHONE]"),
    ("020 7946 0958", "[PHONE]"),
    ("06 12 34 56 78", "[PHONE]"),
    ("my number is 0612345678.", "my number is [PHONE]."),
    ("(020) 7946-0958", "[PHONE]"),
    # payment cards, Luhn-valid, with spaces, dashes or none
    ("card 4111 1111 1111 1111 exp 11/28", "card [CARD] exp 11/28"),
    ("4111-1111-1111-1111", "[CARD]"),
    ("5555555555554444", "[CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("4539 1488 0343 6467", "[CARD]"),
    ("visa 13 digits 4222222222222", "visa 13 digits [CARD]"),
    # IBANs
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
    ("DE89370400440532013000", "[IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
    ("NL91ABNA0417164300.", "[IBAN]."),
    # policy and claim ids
    ("policy POL-123456", "policy [POLICY_ID]"),
    ("policy P-00012345,", "policy [POLICY_ID],"),
    ("pol-9876543", "[POLICY_ID]"),
    ("claim CLM-2026-000123 was filed", "claim [CLAIM_ID] was filed"),
    ("CLM2026000123", "[CLAIM_ID]"),
    # street addresses and postcodes
    ("Ship to 221B Baker Street, London NW1 6XE please", "Ship to [ADDRESS] please"),
    ("42 Elm St., Springfield, IL 62704.", "[ADDRESS]."),
    ("1600 Pennsylvania Avenue NW, Washington, DC 20500", "[ADDRESS]"),
    ("350 5th Avenue, New York, NY 10118", "[ADDRESS]"),
    ("17 Harbour Road, Bristol BS1 5TT", "[ADDRESS]"),
    ("8 Willow Lane, Flat 2, Leeds LS6 2AB", "[ADDRESS]"),
    ("deliver to 12 baker street tomorrow", "deliver to [ADDRESS] tomorrow"),
    ("10 Downing St", "[ADDRESS]"),
    ("77 Sunset Blvd", "[ADDRESS]"),
    ("my postcode is SW1A 1AA", "my postcode is [ADDRESS]"),
    # street addresses in German, French and Spanish formats
    ("Ich wohne in der Hauptstrasse 5.", "Ich wohne in der [ADDRESS]."),
    ("Lieferung an Hauptstraße 5, 10115 Berlin bitte", "Lieferung an [ADDRESS] bitte"),
    ("Berliner Str. 12a", "[ADDRESS]"),
    ("Jens-Rädel-Platz 5/8, 83873 Lemgo", "[ADDRESS]"),
    ("J'habite 12 rue de la Paix, 75002 Paris.", "J'habite [ADDRESS]."),
    ("au 88, boulevard Delahaye", "au [ADDRESS]"),
    ("Calle Mayor 5, 28013 Madrid", "[ADDRESS]"),
    # national ids: US SSN, UK NINO, French NIR, Spanish DNI and NIE, each with its check
    ("my SSN is 123-45-6789", "my SSN is [NATIONAL_ID]"),
    ("ssn: 123456789", "ssn: [NATIONAL_ID]"),
    ("NI number JG 10 37 59 A", "NI number [NATIONAL_ID]"),
    ("AB123456C", "[NATIONAL_ID]"),
    ("NIR 1 84 12 76 451 089 46", "NIR [NATIONAL_ID]"),
    ("DNI 12345678Z", "DNI [NATIONAL_ID]"),
    ("NIE X1234567L", "NIE [NATIONAL_ID]"),
    ("Meine Steuer-ID ist 86 095 742 719.", "Meine Steuer-ID ist [NATIONAL_ID]."),
    # dates of birth, after a cue only
    ("I was born on 14/03/1985.", "I was born on [DOB]."),
    ("DOB: 1985-03-14", "DOB: [DOB]"),
    ("date of birth March 14, 1985", "date of birth [DOB]"),
    ("geboren am 14.03.1985", "geboren am [DOB]"),
    ("née le 14 mars 1985", "née le [DOB]"),
    # self-introduced names
    ("Hi, my name is Jane Doe and I need help", "Hi, my name is [NAME] and I need help"),
    ("I'm Lauren McKenzie.", "I'm [NAME]."),
    ("Hallo, ich heiße Jürgen Müller-Lüdenscheidt.", "Hallo, ich heiße [NAME]."),
    ("Bonjour, je m'appelle Édouard Le Dumont.", "Bonjour, je m'appelle [NAME]."),
    ("Me llamo Lucía.", "Me llamo [NAME]."),
    # phone numbers with an extension, and ten digits after a cue
    ("(874)289-0682x883", "[PHONE]"),
    ("call me on 4744931864", "call me on [PHONE]"),
]

KEPT = [  # things that look numeric or structured but are not personal data
    "The set costs $1,299.99, or €49.90 on sale, or 24.99 USD.",
    "Ordered on 2026-11-28, delivered 28/11/2026 at 10:30.",
    "3 x 250 g bags, quantity 12, sizes 38 39 40 41 42.",
    "SKU 12345 and SKU 48213 are in stock.",
    "order 10045, order #100234567, invoice 2026-000123",
    "A 12-cup coffee maker, Model XPS 9320, Sony WH-CH720N.",
    "Between 10 and 20 items, 5 more days down the road.",
    "2 items from the store on Main Street",  # a street without a number is not an address
    "The damage was assessed at $21,725.49 after a $1,000 deductible.",
    "HTTP 503 after 5000 ms; retry in 30 seconds.",
    "not a card: 4111 1111 1111 1112",  # fails the Luhn check
    "version 3 scored 0.31 with a CI of [0.27, 0.35]",
    "customer C-104233 bought 2 of SKU 77431",
    "clm-2026-45 is too short to be a claim id",
    "not an SSN: 666-12-3456 or 912-34-5678",  # never-issued areas
    "I'm Looking for a gift, I am Happy with it",  # capitalised, but no name
    "Ich heiße Sie herzlich willkommen.",
    "Ordered on 14/03/2025, order 4744931864",  # a date without a birth cue; ten digits without a phone cue
    "barcode 4006381333931, tracking 1Z626456792688440",
    "DNI 12345678A",  # wrong letter
    "Bestellnummer 86095742719, Steuer-ID 86095742718",  # no cue; a wrong check digit
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_personal_data_is_replaced_by_its_typed_placeholder(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_prices_dates_quantities_and_product_codes_are_kept(text):
    assert redact_text(text) == text
    assert find_personal_data(text) == []


def test_a_realistic_message_with_everything_at_once():
    text = (
        "Hi, I'm Jane. Claim CLM-2026-004512 on policy POL-483920: please pay the $4,570.00 into "
        "GB82 WEST 1234 5698 7654 32, or charge back card 5555-5555-5555-4444. Call me on +44 7700 900123 "
        "or email jane.doe@example.com; I have moved to 17 Harbour Road, Bristol BS1 5TT."
    )
    assert redact_text(text) == (
        "Hi, I'm [NAME]. Claim [CLAIM_ID] on policy [POLICY_ID]: please pay the $4,570.00 into "
        "[IBAN], or charge back card [CARD]. Call me on [PHONE] "
        "or email [EMAIL]; I have moved to [ADDRESS]."
    )
    assert [kind for kind, _ in find_personal_data(text)] == [
        "email",
        "iban",
        "card",
        "claim_id",
        "policy_id",
        "address",
        "phone",
        "name",
    ]
    assert ("card", "5555-5555-5555-4444") in find_personal_data(text)


def test_redaction_is_idempotent():
    for text, _ in FOUND:
        once = redact_text(text)
        assert redact_text(once) == once


def test_redact_conversation_reaches_every_value_and_keeps_only_the_system_ids():
    conversation = {
        "conversation_id": "c-0001",
        "assistant": "claims_assistant",
        "prompt": {"name": "claims_assistant", "version": "2"},
        "model": "gpt-4o",
        "params": {"temperature": 0.2, "top_p": 0.9, "user": "jane@example.com"},
        "started_at": "2026-11-28T10:00:00Z",
        "usage": {"input_tokens": 812, "output_tokens": 164, "billed_to": 4111111111111111},
        "latency_ms": 1830,
        "messages": [
            {"role": "user", "content": "My claim is CLM-2026-000123, call +44 7700 900123"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "name": "check_compliance",
                        "arguments": {
                            "claim_id": "CLM-2026-000123",
                            "notes": {"contact": ["jane@example.com"]},
                        },
                    },
                    {"name": "search_products", "arguments": {"query": "paint", "max_price": 30}},
                ],
            },
            {"role": "tool", "name": "check_policy", "content": '{"holder_address": "42 Elm Street"}'},
        ],
        "feedback": {"rating": 2, "comment": "Ring me on 07700 900456"},
        "outcome": {"success": False},
        "notes": "agent wrote: card 4111 1111 1111 1111",
        "customer_id": "C-104233",
    }
    before = copy.deepcopy(conversation)
    redacted = redact_conversation(conversation)
    assert conversation == before  # the input is untouched
    assert redacted["messages"][0]["content"] == "My claim is [CLAIM_ID], call [PHONE]"
    arguments = redacted["messages"][1]["tool_calls"][0]["arguments"]
    assert arguments == {"claim_id": "[CLAIM_ID]", "notes": {"contact": ["[EMAIL]"]}}
    assert redacted["messages"][1]["tool_calls"][1]["arguments"] == {"query": "paint", "max_price": 30}
    assert redacted["messages"][2] == {
        "role": "tool",
        "name": "check_policy",
        "content": '{"holder_address": "[ADDRESS]"}',
    }
    assert redacted["feedback"] == {"rating": 2, "comment": "Ring me on [PHONE]"}
    assert redacted["notes"] == "agent wrote: card [CARD]"
    # params and usage are redacted too; their ordinary numbers stay numbers
    assert redacted["params"] == {"temperature": 0.2, "top_p": 0.9, "user": "[EMAIL]"}
    assert redacted["usage"] == {"input_tokens": 812, "output_tokens": 164, "billed_to": "[CARD]"}
    for key in ("conversation_id", "assistant", "prompt", "model", "started_at", "latency_ms"):
        assert redacted[key] == conversation[key]
    assert redacted["customer_id"] == "C-104233" and redacted["outcome"] == {"success": False}


def test_a_card_number_logged_as_a_json_int_in_tool_arguments_is_replaced():
    call = {"name": "refund", "arguments": {"card": 4111111111111111, "amount": 4570, "order": 100234567}}
    redacted = redact_value(call)
    assert redacted["arguments"] == {"card": "[CARD]", "amount": 4570, "order": 100234567}
    # a Luhn-invalid 16-digit int is no card and stays a number
    assert redact_value({"reference": 4111111111111112}) == {"reference": 4111111111111112}


def test_tool_call_arguments_as_a_json_string_are_redacted_inside():
    arguments = json.dumps({"iban": "DE89 3704 0044 0532 0130 00", "cc": 5555555555554444, "qty": 3})
    redacted = json.loads(redact_value(arguments))
    assert redacted == {"iban": "[IBAN]", "cc": "[CARD]", "qty": 3}
    untouched = json.dumps({"query": "paint", "max_price": 30})
    assert redact_value(untouched) == untouched  # nothing found: the string stays byte for byte


def test_a_key_that_names_personal_data_replaces_its_value_whatever_its_type():
    redacted = redact_value(
        {"customer": {"phone": 447700900123, "dateOfBirth": "1985-03-14", "first_name": "jane", "tier": 2}}
    )
    assert redacted == {
        "customer": {"phone": "[PHONE]", "dateOfBirth": "[DOB]", "first_name": "[NAME]", "tier": 2}
    }


def test_numbers_that_are_not_personal_data_stay_numbers():
    usage = {"input_tokens": 812, "output_tokens": 164, "cost_usd": 0.0123, "temperature": 0.7, "ok": True}
    assert redact_value(usage) == usage


def test_an_iban_with_a_bad_checksum_is_not_an_iban():
    assert redact_text("IBAN DE89370400440532013000") == "IBAN [IBAN]"
    assert ("iban", "DE88370400440532013000") not in find_personal_data("IBAN DE88370400440532013000")
    assert "[IBAN]" not in redact_text("IBAN DE88370400440532013000")


def test_a_luhn_invalid_16_digit_number_is_not_a_card():
    assert redact_text("card 4111 1111 1111 1111") == "card [CARD]"
    assert [kind for kind, _ in find_personal_data("card 4111 1111 1111 1112")] == []


def test_an_iban_run_that_swallowed_the_next_word_is_cut_back_to_the_valid_iban():
    assert redact_text("GB82 WEST 1234 5698 7654 32 THEN") == "[IBAN] THEN"


def test_spans_point_into_the_original_text():
    text = "Mail jane@example.com or call +44 7700 900123"
    assert [(text[start:end], kind) for start, end, kind in find_spans(text)] == [
        ("jane@example.com", "email"),
        ("+44 7700 900123", "phone"),
    ]


@pytest.fixture(scope="module")
def corpus():
    return pii_corpus.corpus(per_kind=40, seed=7)


def test_recall_on_structured_identifiers_is_at_least_99_percent_on_a_faker_corpus(corpus):
    """Five locales of Faker-made cards, IBANs, national ids, emails and phone numbers; see bench_redaction."""
    scores = pii_corpus.measure(corpus, find_spans)
    for kind in pii_corpus.STRUCTURED:
        assert scores[kind]["labelled"] >= 120, kind
        assert scores[kind]["recall"] >= 0.99, (
            kind,
            scores[kind],
            pii_corpus.missed(corpus, find_spans, kind)[:5],
        )


def test_precision_and_the_other_kinds_stay_above_their_floor(corpus):
    scores = pii_corpus.measure(corpus, find_spans)
    for kind, score in scores.items():
        assert score["precision"] >= 0.97, (kind, score)
    for kind in ("dob", "address", "name"):
        assert scores[kind]["recall"] >= 0.95, (kind, scores[kind])
    kept = [sample for sample in corpus if not sample.spans]
    assert len(kept) >= 200
    assert sum(redact_text(sample.text) == sample.text for sample in kept) / len(kept) >= 0.97
