"""Redaction: recall and precision per kind of personal data on a labelled Faker corpus, and its cost.

The corpus (`continuum.llm.pii_corpus.corpus`) holds customer messages in five
locales (en_US, en_GB, de_DE, fr_FR, es_ES), each with the spans of the personal data
in it, plus as many messages holding only prices, order numbers, dates, barcodes and
tracking numbers. Recall counts a value as caught when nothing of it survives;
precision counts a finding as right when it overlaps labelled personal data.

Speed: `redact_conversation` over every message wrapped as a logged conversation,
against a `json.loads(json.dumps(...))` round trip of the same conversations, the
least any pass over the log does. When presidio-analyzer is installed, a second
comparison runs its pattern recognisers on the structured kinds of the same corpus
(it is not in the lock; see the docstring of `continuum.llm.redact` for why).
"""

from __future__ import annotations

import importlib.util
import json
from contextlib import contextmanager

from benchmarks import REPEATS, Comparison, Side, Sizes, ratio, times

SEED = 0
PER_KIND = 200  # samples of each kind in each locale: 8,800 messages
# Measured 2026-12-01 with presidio-analyzer 2.2.366 in a scratch venv (not in the lock).
PRESIDIO_NOTE = (
    "Presidio 2.2.366 pattern recognisers on the structured kinds of this corpus (seed 0, 5,800 messages, "
    "before German tax ids joined it), measured in a scratch venv: recall card 0.733, iban 1.000, national_id 0.768 (no French NIR), "
    "email 1.000, phone 0.849 at precision 0.826, 11x the time of Continuum's patterns; not in the lock "
    "(it brings spaCy and fetches the public suffix list at run time)."
)


def _per_kind(sizes: Sizes) -> int:
    return PER_KIND if sizes.rows >= 10_000 else max(2, sizes.rows // 50)


def _samples(per_kind: int, structured_only: bool = False):
    from continuum.llm import pii_corpus

    samples = pii_corpus.corpus(per_kind=per_kind, seed=SEED)
    if structured_only:
        samples = [s for s in samples if not s.spans or s.spans[0][2] in pii_corpus.STRUCTURED]
    return samples


def _facts(samples, find) -> dict:
    """One `kind=R recall / P precision` fact per kind, for the report."""
    from continuum.llm import pii_corpus

    facts = {"messages": len(samples)}
    for kind, score in pii_corpus.measure(samples, find).items():
        recall = "n/a" if score["recall"] is None else f"{score['recall']:.3f}"
        precision = "n/a" if score["precision"] is None else f"{score['precision']:.3f}"
        facts[kind] = f"R {recall} / P {precision} (n {score['labelled']}, found {score['found']})"
    return facts


def _conversations(samples) -> list[dict]:
    return [
        {
            "conversation_id": f"c-{i}",
            "assistant": "bench",
            "prompt": {"name": "bench", "version": "1"},
            "model": "m",
            "params": {"temperature": 0.2, "top_p": 1.0},
            "started_at": "2026-12-01T00:00:00Z",
            "usage": {"input_tokens": 10, "output_tokens": 5},
            "latency_ms": 100,
            "messages": [
                {"role": "user", "content": sample.text},
                {"role": "assistant", "content": "Thanks."},
            ],
        }
        for i, sample in enumerate(samples)
    ]


@contextmanager
def continuum_side(per_kind: int, structured_only: bool = False):
    from continuum.llm.redact import find_spans, redact_conversation

    samples = _samples(per_kind, structured_only)
    facts = _facts(samples, find_spans)
    conversations = _conversations(samples)
    redact_conversation(conversations[0])

    def run() -> dict:
        for conversation in conversations:
            redact_conversation(conversation)
        return facts

    yield run


@contextmanager
def json_round_trip(per_kind: int):
    conversations = _conversations(_samples(per_kind))

    def run() -> dict:
        json.loads(json.dumps(conversations))
        return {"messages": len(conversations)}

    yield run


_PRESIDIO_KINDS = {
    "CREDIT_CARD": "card",
    "IBAN_CODE": "iban",
    "US_SSN": "national_id",
    "UK_NINO": "national_id",
    "ES_NIF": "national_id",
    "ES_NIE": "national_id",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
}


@contextmanager
def presidio_side(per_kind: int):
    """Presidio's predefined pattern recognisers, called directly: no AnalyzerEngine, so no spaCy model."""
    from presidio_analyzer import predefined_recognizers as recognizers

    found = [
        recognizers.CreditCardRecognizer(),
        recognizers.IbanRecognizer(),
        recognizers.UsSsnRecognizer(),
        recognizers.UkNinoRecognizer(),
        recognizers.EsNifRecognizer(),
        recognizers.EsNieRecognizer(),
        recognizers.EmailRecognizer(),
        recognizers.PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "ES")),
    ]

    def find(text: str) -> list[tuple[int, int, str]]:
        spans = []
        for recognizer in found:
            for result in recognizer.analyze(text, recognizer.supported_entities, None):
                if result.entity_type in _PRESIDIO_KINDS:
                    spans.append((result.start, result.end, _PRESIDIO_KINDS[result.entity_type]))
        return spans

    samples = _samples(per_kind, structured_only=True)
    facts = _facts(samples, find)

    def run() -> dict:
        for sample in samples:
            find(sample.text)
        return facts

    yield run


def _meaning(s: dict, r: dict) -> str:
    facts = s["facts"]
    from continuum.llm.pii_corpus import STRUCTURED

    lowest = min(float(facts[k].split()[1]) for k in STRUCTURED if k in facts)
    return (
        f"Redacting {facts['messages']:,} logged conversations takes {times(ratio(s, r), 1)} the time of a JSON "
        f"round trip of the same log ({s['seconds']:.2f} s vs {r['seconds']:.2f} s); the lowest recall on a "
        f"structured identifier (card, IBAN, national id, email, phone) is {lowest:.3f}."
    )


def _presidio_meaning(s: dict, r: dict) -> str:
    return (
        f"On the structured kinds, Continuum's patterns take {times(ratio(s, r), 2)} the time of Presidio's "
        "recognisers; compare the recall and precision per kind above."
    )


def comparisons(sizes: Sizes) -> list[Comparison]:
    per_kind = {"per_kind": _per_kind(sizes)}
    found = [
        Comparison(
            case="redaction",
            name="redaction: redact_conversation vs JSON round trip",
            rows=per_kind["per_kind"] * 45,  # (8 kinds + negatives) x 5 locales
            subject=Side(
                "continuum.llm.redact.redact_conversation",
                "benchmarks.bench_redaction:continuum_side",
                per_kind,
            ),
            reference=Side(
                "json.loads(json.dumps(log))", "benchmarks.bench_redaction:json_round_trip", per_kind
            ),
            meaning=_meaning,
            notes=(
                f"Faker corpus in en_US, en_GB, de_DE, fr_FR, es_ES (seed {SEED}, {REPEATS} timed runs); each "
                "kind reads R recall / P precision. The patterns were written against seed 0; on seed 11, not "
                "used while writing them, structured recall is 1.000, address 0.997, name 0.999, every "
                "precision >= 0.993. " + PRESIDIO_NOTE
            ),
        )
    ]
    if importlib.util.find_spec("presidio_analyzer") is not None:
        found.append(
            Comparison(
                case="redaction",
                name="redaction: Continuum patterns vs Presidio recognisers",
                rows=per_kind["per_kind"] * 30,
                subject=Side(
                    "continuum.llm.redact (structured kinds)",
                    "benchmarks.bench_redaction:continuum_side",
                    {**per_kind, "structured_only": True},
                ),
                reference=Side(
                    "presidio_analyzer predefined recognisers",
                    "benchmarks.bench_redaction:presidio_side",
                    per_kind,
                ),
                meaning=_presidio_meaning,
            )
        )
    return found
