"""Personal data out of conversation logs, before anything is stored, scored or judged.

Each kind of personal data is replaced by a typed placeholder (`[EMAIL]`,
`[PHONE]`, `[CARD]`, `[IBAN]`, `[POLICY_ID]`, `[CLAIM_ID]`, `[ADDRESS]`), so a
scorer can still see *that* an assistant repeated an email without seeing the
email. The passes run in a fixed order, most specific first: a card or IBAN
number also looks like a phone number, a claim id like `CLM-2026-000123` holds a
date-like run of digits. Placeholders hold no digits, so a later pass never
matches what an earlier one wrote.

Precision matters as much as recall: prices, dates, quantities and product codes
("SKU 12345") stay, because scorers read them. Card numbers must pass the Luhn
check; a 16-digit number that fails it is not a card. Known limits: street
addresses are recognised in the English "number, name, suffix" form (plus UK
postcodes and US ZIP codes after a state), not "Hauptstrasse 5".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "claim_id": "[CLAIM_ID]",
    "policy_id": "[POLICY_ID]",
    "address": "[ADDRESS]",
    "phone": "[PHONE]",
}
# Top-level keys that carry identifiers and numbers, never free text typed by a person.
KEPT_KEYS = frozenset(
    {"conversation_id", "assistant", "prompt", "model", "params", "started_at", "usage", "latency_ms"}
)

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(
    r"(?<![\d-])(?:"
    r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}"  # 4-4-4-4 (and 13-19 digit variants)
    r"|\d{4}([ -]?)\d{6}\2\d{4,5}"  # Amex / Diners 4-6-5, 4-6-4
    r")(?![\d-])"
)
_CLAIM_ID = re.compile(r"\bCLM-?\d{4}-\d{4,8}\b|\bCLM-?\d{6,12}\b", re.IGNORECASE)
_POLICY_ID = re.compile(r"\bPOL-?\d{5,10}\b|\bP-\d{8}\b", re.IGNORECASE)
_SUFFIX_ABBR = r"St|Ave|Rd|Ln|Blvd|Dr|Ct|Pl|Sq|Hwy|Pkwy"
_SUFFIX_FULL = (
    r"Street|Avenue|Road|Lane|Boulevard|Drive|Court|Place|Way|Terrace|Close|Crescent|Square|Highway|Parkway"
)
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}"
_TAIL = (  # flat number, town, then a UK postcode or a US state and ZIP code
    r"(?:,?\s*(?:Apt|Flat|Suite|Unit)\.?\s*\w{1,5})?"
    r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})?"
    rf"(?:,?\s*(?:{_UK_POSTCODE}|[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?)\b)?"
)
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+"
    r"(?:"
    rf"(?:(?:[A-Z][a-z'.-]+|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:(?i:{_SUFFIX_FULL})\b|(?:{_SUFFIX_ABBR})\b\.?)"
    rf"|(?:[a-z]+\s+){{1,2}}(?i:{_SUFFIX_FULL})\b"  # typed in lower case: full suffix words only
    r")(?:\s(?:NW|NE|SW|SE|N|S|E|W)\b)?" + _TAIL
)
_POSTCODE = re.compile(rf"\b{_UK_POSTCODE}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # international
    r"|\(?0\d{1,4}\)?[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}"  # national, trunk prefix 0
    r"|(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # North American
    r")(?![\w])"
)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _is_card(value: str) -> bool:
    digits = _digits(value)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _is_iban(value: str) -> bool:
    return 15 <= len(value.replace(" ", "")) <= 34


def _is_phone(value: str) -> bool:
    digits = _digits(value)
    if value.startswith(("+", "00")):
        return 8 <= len(digits) <= 15
    return 9 <= len(digits) <= 12


def _always(value: str) -> bool:
    return True


# (kind, pattern, extra check on the matched text), in the order the passes run.
_PASSES: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("email", _EMAIL, _always),
    ("iban", _IBAN, _is_iban),
    ("card", _CARD, _is_card),
    ("claim_id", _CLAIM_ID, _always),
    ("policy_id", _POLICY_ID, _always),
    ("address", _ADDRESS, _always),
    ("address", _POSTCODE, _always),
    ("phone", _PHONE, _is_phone),
]


_MAY_HOLD_DATA = re.compile(r"[\d@]")  # every kind needs a digit, except an email, which needs an @


def _scan(text: str) -> tuple[str, list[tuple[str, str]]]:
    found: list[tuple[str, str]] = []
    if not _MAY_HOLD_DATA.search(text):
        return text, found
    for kind, pattern, accept in _PASSES:

        def replace(match: re.Match[str], kind: str = kind, accept: Callable[[str], bool] = accept) -> str:
            value = match.group(0)
            if not accept(value):
                return value
            found.append((kind, value))
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text, found


def redact_text(text: str) -> str:
    """`text` with every piece of personal data replaced by its typed placeholder."""
    return _scan(text)[0]


def find_personal_data(text: str) -> list[tuple[str, str]]:
    """(kind, value) for every piece of personal data in `text`, kinds as in PLACEHOLDERS, in pass order."""
    return _scan(text)[1]


def redact_value(value: Any) -> Any:
    """Strings redacted at any depth of dicts and lists; numbers, booleans and keys untouched."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    return value


def redact_conversation(conversation: dict) -> dict:
    """A new conversation dict with personal data redacted everywhere a person could have typed it.

    Messages (content, tool call arguments, tool results), feedback, outcome and
    any extra keys are redacted; ids, model, parameters and usage are kept as they are.
    """
    return {key: value if key in KEPT_KEYS else redact_value(value) for key, value in conversation.items()}
