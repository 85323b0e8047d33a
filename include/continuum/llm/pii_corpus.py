"""A labelled corpus of personal data in chat messages, made with Faker, to measure redaction.

Each sample is one message a customer might type, in one of five locales, with the
character spans of the personal data it holds and their kind (the kinds of
`redact.PLACEHOLDERS`). Values come from Faker's locale providers (its IBANs, phone
numbers, streets, names, French NIRs and Spanish DNI/NIE are built to each
country's rules; UK NINOs and German tax ids, which Faker lacks, are made here), so the recogniser is tested on formats it was not written from.
Negative samples hold what must stay: prices, order numbers, quantities, dates
that are not birth dates, product codes.

`measure` scores any span finder on the corpus: recall per labelled kind (a value
counts as caught when every letter and digit of it lies inside some finding, of
any kind: what matters is that nothing of it survives) and precision per found
kind (a finding is right when it overlaps labelled personal data).
Used by `benchmarks/bench_redaction.py` and `tests/unit/test_llm_redact.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES")
STRUCTURED = ("card", "iban", "national_id", "email", "phone")  # the kinds held to >= 99% recall
# Faker's card types that people type as 13-19 digits; Maestro's 12-digit numbers are left out,
# because a 12-digit Luhn check passes one order number in ten.
_CARD_TYPES = ("visa13", "visa16", "visa19", "mastercard", "amex", "discover", "jcb15", "jcb16", "diners")
_NINO_FIRST, _NINO_SECOND = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
_NINO_UNUSED = ("BG", "GB", "KN", "NK", "NT", "TN")  # administrative prefixes, never issued


@dataclass(frozen=True)
class Sample:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    locale: str = ""


# {kind: [template, ...]} per language; {v} is the value, {n} an ordinary number, {p} a price.
_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "email": [
            "You can reach me at {v} about order {n}.",
            "my email is {v}",
            "Send the invoice ({p}) to {v}, thanks",
        ],
        "phone": ["Call me on {v} after 5pm.", "my number is {v}", "Please text {v} when order {n} ships."],
        "card": [
            "Charge {p} to my card {v}, exp 11/28.",
            "card number: {v}",
            "I paid with {v} for order {n}.",
        ],
        "iban": ["Refund {p} to {v} please.", "My IBAN is {v}.", "bank account {v} for claim settlement"],
        "national_id": ["My SSN is {v}.", "national insurance number {v}", "For the form: {v}, as asked."],
        "dob": ["I was born on {v}.", "DOB: {v}", "date of birth {v}, policy started {n} days ago"],
        "address": ["Ship to {v} please.", "I moved to {v} last month.", "Deliver order {n} to {v}."],
        "name": ["Hi, my name is {v} and I need help.", "I'm {v}, order {n} is late.", "My name is {v}."],
    },
    "de": {
        "email": ["Meine E-Mail ist {v}.", "Schreiben Sie an {v} wegen Bestellung {n}."],
        "phone": ["Rufen Sie mich unter {v} an.", "Meine Nummer: {v}"],
        "card": ["Bitte {p} von Karte {v} abbuchen.", "Kartennummer {v}"],
        "iban": ["Bitte überweisen Sie {p} auf {v}.", "Meine IBAN lautet {v}."],
        "national_id": ["Meine Steuer-ID ist {v}.", "Steuerliche Identifikationsnummer: {v}"],
        "dob": ["Ich bin geboren am {v}.", "Geburtsdatum: {v}"],
        "address": ["Meine Adresse ist {v}.", "Bitte liefern Sie Bestellung {n} an {v}."],
        "name": ["Hallo, ich heiße {v} und habe eine Frage.", "Mein Name ist {v}."],
    },
    "fr": {
        "email": ["Mon e-mail est {v}.", "Écrivez-moi à {v} pour la commande {n}."],
        "phone": ["Appelez-moi au {v}.", "Mon numéro : {v}"],
        "card": ["Débitez {p} sur ma carte {v}.", "numéro de carte {v}"],
        "iban": ["Remboursez {p} sur {v} svp.", "Mon IBAN est {v}."],
        "national_id": ["Mon numéro de sécurité sociale est {v}.", "NIR : {v}"],
        "dob": ["Je suis née le {v}.", "Date de naissance : {v}"],
        "address": ["J'habite au {v}.", "Livrez la commande {n} au {v}."],
        "name": ["Bonjour, je m'appelle {v}.", "Je m'appelle {v} et j'ai un souci avec la commande {n}."],
    },
    "es": {
        "email": ["Mi correo es {v}.", "Escríbame a {v} sobre el pedido {n}."],
        "phone": ["Llámeme al {v}.", "Mi teléfono: {v}"],
        "card": ["Cobren {p} a mi tarjeta {v}.", "tarjeta {v}"],
        "iban": ["Devuelvan {p} a {v}.", "Mi IBAN es {v}."],
        "national_id": ["Mi DNI es {v}.", "NIE: {v}"],
        "dob": ["Fecha de nacimiento: {v}", "Nací el {v}, nacido el {v}"],
        "address": ["Vivo en {v}.", "Envíen el pedido {n} a {v}."],
        "name": ["Hola, me llamo {v}.", "Me llamo {v} y tengo una pregunta."],
    },
}
_KEPT: dict[str, list[str]] = {
    "en": [
        "Order {n} was delivered on {d}, total {p}.",
        "I bought {q} items for {p} each, SKU {n}.",
        "Between {q} and {n} units, delivery in {q} days.",
        "Invoice {y}-{n} is due on {d}, reference {n}.",
        "It was {q} degrees and the 2 new lights cost {p}.",
        "I'm Looking for a gift under {p}; the barcode says {e}.",
        "Tracking number {t}, parcel of {q} kg, order {o}.",
        "I am Happy with order {o} from {d}, version {q}.{q}.{q}.",
    ],
    "de": [
        "Bestellung {n} kam am {d}, Summe {p}.",
        "Ich habe {q} Stück für {p} gekauft, Artikel {n}, EAN {e}.",
        "Ich heiße Sie herzlich willkommen, Ihre Bestellung {o} ist unterwegs.",
    ],
    "fr": [
        "La commande {n} est arrivée le {d}, total {p}.",
        "J'ai acheté {q} articles à {p}, réf. {n}, code-barres {e}.",
        "Je suis Client depuis {y}, commande {o}.",
    ],
    "es": ["El pedido {n} llegó el {d}, total {p}.", "Compré {q} unidades a {p}, referencia {o}, EAN {e}."],
}


def _card(fake, rng: random.Random) -> str:
    number = fake.credit_card_number(card_type=rng.choice(_CARD_TYPES))
    style = rng.choice(("plain", "spaced", "dashed"))
    if style == "plain" or len(number) not in (15, 16):
        return number
    sep = " " if style == "spaced" else "-"
    if len(number) == 15:
        return sep.join((number[:4], number[4:10], number[10:]))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(fake, rng: random.Random) -> str:
    iban = fake.iban()
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _nino(rng: random.Random) -> str:
    """A UK NINO with an allocatable prefix; Faker's en_GB `ssn` only makes the reserved `ZZ…T` test form."""
    while (prefix := rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)) in _NINO_UNUSED:
        pass
    digits = f"{rng.randrange(10**6):06d}"
    sep = rng.choice(("", " "))
    return sep.join((prefix, digits[:2], digits[2:4], digits[4:], rng.choice("ABCD")))


def _steuer_id(rng: random.Random) -> str:
    """A German tax id (Faker has none): ten digits, one of them repeated, and the ISO 7064 check digit."""
    from continuum.llm.redact import steuer_id_check_digit

    digits = rng.sample("0123456789", 9)
    while digits[0] == "0":
        rng.shuffle(digits)
    digits.insert(rng.randrange(1, 10), rng.choice(digits))
    first_ten = "".join(digits)
    number = first_ten + str(steuer_id_check_digit(first_ten))
    return number if rng.random() < 0.5 else f"{number[:2]} {number[2:5]} {number[5:8]} {number[8:]}"


def _national_id(fake, locale: str, rng: random.Random) -> str:
    if locale == "en_GB":
        return _nino(rng)
    if locale == "de_DE":
        return _steuer_id(rng)
    if locale == "es_ES":
        return fake.nif() if rng.random() < 0.5 else fake.nie()
    return fake.ssn()  # en_US SSN, fr_FR NIR


def _dob(fake, locale: str, rng: random.Random) -> str:
    born = fake.date_of_birth(minimum_age=18, maximum_age=90)
    formats = {
        "en_US": ("%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d"),
        "en_GB": ("%d/%m/%Y", "%d %B %Y"),
        "de_DE": ("%d.%m.%Y",),
        "fr_FR": ("%d/%m/%Y",),
        "es_ES": ("%d/%m/%Y",),
    }[locale]
    return born.strftime(rng.choice(formats))


def _address(fake, locale: str) -> str:
    street = fake.street_address().replace("\n", ", ")
    if locale == "en_US":
        return f"{street}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}"
    if locale == "en_GB":
        return f"{fake.building_number()} {fake.street_name()}, {fake.city()} {fake.postcode()}"
    if locale == "es_ES":
        return f"{street.strip()}, {fake.postcode()} {fake.city()}"
    return f"{street}, {fake.postcode()} {fake.city()}"  # de_DE, fr_FR


def _name(fake, rng: random.Random) -> str:
    first = fake.first_name()
    return first if rng.random() < 0.3 else f"{first} {fake.last_name()}"


def _value(kind: str, fake, locale: str, rng: random.Random) -> str:
    makers: dict[str, Callable[[], str]] = {
        "email": fake.email,
        "phone": fake.phone_number,
        "card": lambda: _card(fake, rng),
        "iban": lambda: _iban(fake, rng),
        "national_id": lambda: _national_id(fake, locale, rng),
        "dob": lambda: _dob(fake, locale, rng),
        "address": lambda: _address(fake, locale),
        "name": lambda: _name(fake, rng),
    }
    return makers[kind]()


def _ordinary(fake, rng: random.Random) -> dict[str, str]:
    return {
        "n": str(rng.randrange(100, 10**7)),
        "q": str(rng.randrange(1, 50)),
        "p": f"${rng.randrange(1, 5000)}.{rng.randrange(100):02d}",
        "d": fake.date_between("-1y", "today").strftime(rng.choice(("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"))),
        "y": str(rng.randrange(2020, 2027)),
        "o": str(rng.randrange(10**9, 10**10)),  # a 10-digit order number, shaped like a phone number
        "e": fake.ean13(),  # a barcode: 13 digits, one in ten of them Luhn-valid
        "t": f"1Z{rng.randrange(10**15):015d}",
    }


def _fill(template: str, value: str | None, kind: str | None, ordinary: dict[str, str]) -> Sample:
    """The template with {v} replaced by `value` (spans recorded) and the other fields by `ordinary`."""
    text, spans, rest = "", [], template
    while rest:
        head, brace, rest = rest.partition("{")
        text += head
        if not brace:
            break
        name, _, rest = rest.partition("}")
        if name == "v":
            spans.append((len(text), len(text) + len(value), kind))
            text += value
        else:
            text += ordinary[name]
    return Sample(text, spans)


def corpus(per_kind: int = 200, seed: int = 0, locales: tuple[str, ...] = LOCALES) -> list[Sample]:
    """`per_kind` labelled samples of each kind in each locale, plus as many negatives per locale."""
    from faker import Faker

    samples: list[Sample] = []
    for index, locale in enumerate(locales):
        fake, rng = Faker(locale), random.Random(seed * 1000 + index)
        fake.seed_instance(seed * 1000 + index)
        templates = _TEMPLATES[locale[:2]]
        for kind, options in templates.items():
            for _ in range(per_kind):
                sample = _fill(
                    rng.choice(options), _value(kind, fake, locale, rng), kind, _ordinary(fake, rng)
                )
                samples.append(Sample(sample.text, sample.spans, locale))
        for _ in range(per_kind):
            sample = _fill(rng.choice(_KEPT[locale[:2]]), None, None, _ordinary(fake, rng))
            samples.append(Sample(sample.text, [], locale))
    return samples


def measure(
    samples: list[Sample], find: Callable[[str], list[tuple[int, int, str]]]
) -> dict[str, dict[str, float | int | None]]:
    """Recall per labelled kind and precision per found kind of `find` (text -> [(start, end, kind)])."""
    labelled: dict[str, list[int]] = {}  # kind -> [labelled, caught]
    found: dict[str, list[int]] = {}  # kind -> [found, right]
    for sample in samples:
        spans = find(sample.text)
        covered = {i for start, end, _ in spans for i in range(start, end)}
        for start, end, kind in sample.spans:
            counts = labelled.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += all(i in covered for i in range(start, end) if sample.text[i].isalnum())
        for start, end, kind in spans:
            counts = found.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += any(start < l_end and l_start < end for l_start, l_end, _ in sample.spans)
    kinds = sorted(set(labelled) | set(found))
    return {
        kind: {
            "labelled": labelled.get(kind, [0, 0])[0],
            "recall": labelled[kind][1] / labelled[kind][0] if kind in labelled else None,
            "found": found.get(kind, [0, 0])[0],
            "precision": found[kind][1] / found[kind][0] if kind in found else None,
        }
        for kind in kinds
    }


def missed(samples: list[Sample], find: Callable[[str], list[tuple[int, int, str]]], kind: str) -> list[str]:
    """The labelled values of `kind` that `find` let (partly) through: for debugging a low recall."""
    out = []
    for sample in samples:
        covered = {i for start, end, _ in find(sample.text) for i in range(start, end)}
        for start, end, label in sample.spans:
            if label == kind and not all(i in covered for i in range(start, end) if sample.text[i].isalnum()):
                out.append(sample.text[start:end])
    return out
