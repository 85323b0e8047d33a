"""Personal data out of conversation logs, before anything is stored, scored or judged.

Each kind of personal data is replaced by a typed placeholder (`[EMAIL]`, `[PHONE]`,
`[CARD]`, `[IBAN]`, `[NATIONAL_ID]`, `[DOB]`, `[NAME]`, `[ADDRESS]`, `[POLICY_ID]`,
`[CLAIM_ID]`), so a scorer can still see *that* an assistant repeated an email
without seeing the email. The passes run in a fixed order, most specific first: a
card or IBAN number also looks like a phone number, a claim id like
`CLM-2026-000123` holds a date-like run of digits. Each pass runs on the text with
what earlier passes found masked out, so nothing is found twice and every finding
has its place in the original text (`find_spans`).

Every value of a conversation is redacted, whatever its JSON type or depth
(`redact_value`): strings, strings that hold JSON (tool-call arguments, tool results),
dict keys, and numbers that are personal data (a Luhn-valid card number logged as a
JSON int becomes the string `[CARD]`); a value under a key that names personal data
(`phone`, `email`, `date_of_birth`, `first_name`, ...) is replaced whole. Ordinary
numbers (token counts, prices, temperatures) stay.

Precision matters as much as recall: prices, dates, quantities and product codes
("SKU 12345") stay, because scorers read them. So identifiers are checked, not only
shaped: cards pass Luhn and start like a card network's numbers, IBANs mod-97, US SSNs
the allocation rules, UK NINOs the allocated letters, French NIRs their key, Spanish
DNI/NIE their letter, German tax ids (after their name) ISO 7064. A date is a date of birth only after a cue ("born
on", "DOB", "geboren am", "né le"), and a name only after a self-introduction
("my name is", "I'm", "ich heiße", "je m'appelle"). `benchmarks/bench_redaction.py`
measures recall and precision per kind on a Faker corpus in five locales.

Why our own patterns and not Presidio's recognisers: measured 2026-12-01 with
presidio-analyzer 2.2.366 in a scratch venv (its pattern recognisers CreditCard, Iban,
UsSsn, UkNino, EsNif, EsNie, Email and Phone for US/GB/DE/FR/ES, no NER model) on the
structured part of the bench corpus (seed 0, 5,800 messages, before German tax ids joined it). Recall card 0.733 (it
misses 19-digit Visa, 2-series Mastercard and 4-6-5 grouped numbers), IBAN 1.0,
national ids 0.768 (it has no French NIR), email 1.0, phone 0.849 at precision 0.826;
ours 1.0 on all five at precision >= 0.994, in 0.49 s against its 5.5 s. It would also
add spaCy to the lock (~180 MB with thinc and blis, ~5 s to import), and its email
recogniser fetches the public suffix list from the internet on first use. Names and
addresses need its spaCy NER model, which cannot be downloaded here.

Known limits: names typed in lower case, and street addresses without a house
number (except French ones followed by a postcode), are not recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "national_id": "[NATIONAL_ID]",
    "card": "[CARD]",
    "claim_id": "[CLAIM_ID]",
    "policy_id": "[POLICY_ID]",
    "dob": "[DOB]",
    "address": "[ADDRESS]",
    "phone": "[PHONE]",
    "name": "[NAME]",
}
# Any placeholder, for scorers that look for echoed personal data.
PLACEHOLDER_PATTERN = re.compile(r"\[(" + "|".join(p[1:-1] for p in PLACEHOLDERS.values()) + r")\]")
# Top-level keys the log schema fills with system-made ids (never typed by a person); they
# are joined on, so they stay byte for byte. Everything else, `params` and `usage` too, is redacted.
KEPT_KEYS = frozenset({"conversation_id", "assistant", "prompt", "model", "started_at"})

_UP = "A-ZÀ-ÖØ-Þ"  # upper-case Latin letters, accented ones included
_LO = "a-zß-öø-ÿ"

# --- checks on a matched value ----------------------------------------------------------


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# (lowest, highest issuer prefix, card lengths) of the card networks: a Luhn-valid 13-digit barcode
# (EAN-13) is a card only when it starts like one, which cuts false cards from barcodes by half or more.
_CARD_RANGES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("35", "35", (16, 17, 18, 19)),  # JCB (3528-3589 issued; Faker and test cards use all of 35)
    ("2131", "2131", (15,)),
    ("1800", "1800", (15,)),
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (14, 15, 16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", (13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("56", "69", (13, 14, 15, 16, 17, 18, 19)),
)


def _is_card(value: str) -> bool:
    digits = _digits(value)
    issued = any(
        low <= digits[: len(low)] <= high and len(digits) in lengths for low, high, lengths in _CARD_RANGES
    )
    return issued and _luhn(digits)


def _iban_valid(compact: str) -> bool:
    """ISO 13616 mod-97: the country and check digits moved to the end, letters as 10..35."""
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _is_phone(value: str) -> bool:
    digits = _digits(re.split(r"(?i)\s*(?:x|ext\.?)\s*\d", value)[0])
    if value.startswith(("+", "00")):
        return 8 <= len(digits) <= 15
    return 9 <= len(digits) <= 12


def _is_ssn(value: str) -> bool:
    """US SSN allocation rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = _digits(value)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _is_nir(value: str) -> bool:
    """French NIR (numéro de sécurité sociale): key = 97 - (13 digits mod 97); Corsica 2A/2B count as 19/18."""
    compact = value.replace(" ", "").upper()
    body = compact[:13].replace("2A", "19", 1) if compact[5:7] == "2A" else compact[:13]
    body = body.replace("2B", "18", 1) if compact[5:7] == "2B" else body
    return body.isdigit() and 97 - int(body) % 97 == int(compact[13:])


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _is_dni(value: str) -> bool:
    """Spanish DNI (8 digits) and NIE (X/Y/Z + 7 digits): the letter is the number mod 23."""
    compact = value.replace("-", "").upper()
    number = compact[:-1].replace("X", "0").replace("Y", "1").replace("Z", "2")
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == compact[-1]


def steuer_id_check_digit(first_ten: str) -> int:
    """The check digit of a German tax id (Steuer-IdNr) over its first ten digits: ISO 7064 MOD 11,10."""
    product = 10
    for char in first_ten:
        total = (int(char) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10


def _is_steuer_id(value: str) -> bool:
    digits = _digits(value)
    return len(digits) == 11 and digits[0] != "0" and steuer_id_check_digit(digits[:10]) == int(digits[10])


def _always(value: str) -> bool:
    return True


# --- patterns -----------------------------------------------------------------------------

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(
    r"(?<![\w-])(?:"
    r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}"  # 4-4-4-4 (and 13-19 digit variants)
    r"|\d{4}([ -]?)\d{6}\2\d{4,5}"  # Amex / Diners 4-6-5, 4-6-4
    r")(?![\d-])"
)
_SSN = re.compile(
    r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])"
    r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)[#:\s]{1,3}(?:is\s+)?)(?P<v>\d{9})\b"
)
# UK National Insurance number: the letters HMRC allocates, administrative prefixes excluded.
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_NIR = re.compile(
    r"(?<!\d)(?<!\d[.,])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\d|[.,]\d)"
)
# Eleven digits are a German tax id only after its name: an order number looks the same.
_STEUER_ID = re.compile(
    r"(?i:\b(?:steuer-?id(?:entifikationsnummer)?|steuerliche\s+identifikationsnummer|idnr\.?|tax\s+id)"
    r"[:\s#-]{0,5}(?:(?:ist|lautet|is)\s+)?)(?P<v>\d{2}\s?\d{3}\s?\d{3}\s?\d{3})\b"
)
_DNI = re.compile(r"\b(?:\d{8}|[XYZ]-?\d{7})-?[A-Z]\b")
_CLAIM_ID = re.compile(r"\bCLM-?\d{4}-\d{4,8}\b|\bCLM-?\d{6,12}\b", re.IGNORECASE)
_POLICY_ID = re.compile(r"\bPOL-?\d{5,10}\b|\bP-\d{8}\b", re.IGNORECASE)

_MONTHS = (
    r"jan(?:uary|uar|vier)?|janv\.?|j[äa]n(?:ner)?|feb(?:ruary|ruar)?|f[ée]vr?(?:ier)?\.?|mar(?:ch|s)?|m[äa]rz"
    r"|apr(?:il)?|avr(?:il)?\.?|may|mai|june?|juni?|juin|july?|juli|juil(?:let)?\.?|aug(?:ust)?|ao[ûu]t"
    r"|sep(?:t|tember|tembre)?\.?|oct(?:ober|obre)?|okt(?:ober)?|nov(?:ember|embre)?\.?|d[ée]c(?:ember|embre)?\.?"
    r"|dez(?:ember)?|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
)
_DATE = (
    r"\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|\.)?\s+(?:of\s+|de\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+)?\d{{4}}"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
)
_DOB = re.compile(
    r"(?i:\b(?:born(?:\s+on)?|d\.?o\.?b\.?|date\s+of\s+birth|birth\s*date|birthday|geboren(?:\s+am)?"
    r"|geburtsdatum|geburtstag|n[ée]e?\s+le|date\s+de\s+naissance|fecha\s+de\s+nacimiento|nacid[oa]\s+el|nac[ií]\s+el)"
    r"(?:\s*(?:is|ist|est|es|was|:|-))?\s*(?:on\s+|am\s+|le\s+|el\s+|the\s+)?)"
    rf"(?P<v>(?i:{_DATE}))(?!\d)"
)

# A town after a street: capitalised words, with the small words of place names between them.
_TOWN = (
    rf"[{_UP}][\w'’-]*(?:[\s-]+(?:(?:am|an|der|im|in|bei|ob|vor|sur|sous|en|lès|les|le|la|de|del|du|des|aux)"
    rf"[\s-]+)*[{_UP}][\w'’-]*){{0,3}}"
)
_SUFFIX_ABBR = r"St|Ave|Rd|Ln|Blvd|Dr|Ct|Pl|Sq|Hwy|Pkwy|Cres|Ter|Trl"
# The USPS street suffixes (Publication 28, appendix C1) and the usual British ones.
_SUFFIX_FULL = (
    r"Alley|Avenue|Branch|Bridge|Brooks?|Burgs?|Bypass|Camp|Canyon|Cape|Causeway|Centers?|Circles?|Cliffs?"
    r"|Close|Club|Common|Corners?|Course|Courts?|Coves?|Creek|Crescent|Crest|Crossing|Crossroad|Curve|Dale|Dam"
    r"|Divide|Drives?|Estates?|Expressway|Extensions?|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|Forges?|Forks?"
    r"|Fort|Freeway|Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Harbour|Haven|Heights|Highway|Hills?"
    r"|Hollow|Inlet|Islands?|Isle|Junctions?|Keys?|Knolls?|Lakes?|Land|Landing|Lane|Lights?|Loaf|Locks?|Lodge"
    r"|Loop|Mall|Manors?|Meadows?|Mews|Mills?|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|Overpass"
    r"|Parks?|Parkways?|Pass|Passage|Path|Pike|Pines?|Place|Plains?|Plaza|Points?|Ports?|Prairie|Radial|Ramp"
    r"|Ranch|Rapids?|Rest|Ridges?|River|Roads?|Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?"
    r"|Squares?|Station|Stravenue|Stream|Streets?|Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail"
    r"|Tunnel|Turnpike|Underpass|Unions?|Valleys?|Via|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall|Ways?"
    r"|Wells?"
)
# Typed in lower case: only the common suffix words, so "2 new lights" stays.
_SUFFIX_LOWER = r"street|avenue|road|lane|boulevard|drive|court|place|terrace|close|crescent|square|highway"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}"
_TAIL = (  # flat number, town, then a UK postcode or a US state and ZIP code
    r"(?:,?\s*(?:Apt|Flat|Suite|Unit|Studio)\.?\s*#?\w{1,5})?"
    r"(?:,\s*[A-Z][A-Za-z'-]+\b(?:\s[A-Z][A-Za-z'-]+\b){0,2})?"
    rf"(?:,?\s*(?:{_UK_POSTCODE}|[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?)\b)?"
)
_ADDRESS_EN = re.compile(
    r"(?:\b(?:Flat|Studio|Apartment|Apt\.?|Unit|Suite)\s+\w{1,5},?\s+)?"
    r"\b\d{1,5}[A-Za-z]?,?\s+"
    r"(?:"
    rf"(?:(?:[A-Z][A-Za-z'.-]+|\d{{1,3}}(?:st|nd|rd|th))\s+){{1,4}}(?:(?:{_SUFFIX_FULL})\b|(?:{_SUFFIX_ABBR})\b\.?)"
    rf"|(?:[a-z]+\s+){{1,2}}(?i:{_SUFFIX_LOWER})\b"
    r")(?:\s(?:NW|NE|SW|SE|N|S|E|W)\b)?" + _TAIL
)
_DE_KIND = r"straße|strasse|str\.|gasse|weg|allee|platz|ring|damm|ufer|chaussee|steig|pfad|markt|graben"
_DE_TAIL = rf"(?:,?\s*(?:D-)?\d{{5}}\s+{_TOWN})?"
_ADDRESS_DE = re.compile(
    r"\b(?:"
    rf"(?:[{_UP}][{_LO}]+[\s-])*(?:[{_UP}][{_LO}]+|[{_LO}]+)-(?i:{_DE_KIND})"  # Jens-Rädel-Platz, Anna van-Allee
    rf"|[{_UP}][{_LO}]+(?i:{_DE_KIND})"  # Hauptstraße, Linkeallee, Hauptstr.
    rf"|[{_UP}][{_LO}]+\s+(?:Straße|Strasse|Str\.|Gasse|Weg|Allee|Platz|Ring|Damm|Ufer|Chaussee)"  # Berliner Straße
    rf"|(?:Am|An\s+der|Im|Auf\s+der|Zum|Zur)\s+[{_UP}][{_LO}]+"  # Am Markt
    r")\s*\d{1,4}\s?[a-zA-Z]?(?:\s?[/-]\s?\d{1,4}[a-zA-Z]?)?(?!\w)" + _DE_TAIL
)
_FR_KIND = (
    r"rue|avenue|av\.|boulevard|bd|chemin|allée|place|impasse|quai|route|cours|passage|square|voie|sentier"
    r"|faubourg|rond-point|résidence|villa|hameau|promenade"
)
_FR_WORD = rf"[{_UP}][\w'’-]*"
_FR_LINK = r"(?:(?:de|du|des|la|le|les|et|sur|en|aux)\s+|d['’]|l['’])*"
_FR_STREET = rf"(?i:{_FR_KIND})\s+{_FR_LINK}{_FR_WORD}(?:\s+{_FR_LINK}{_FR_WORD}){{0,4}}"
_FR_TAIL = rf",?\s*\d{{5}}\s+{_TOWN}"
_ADDRESS_FR = re.compile(
    rf"\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+{_FR_STREET}(?:{_FR_TAIL})?"
    rf"|\b{_FR_STREET}{_FR_TAIL}"  # no house number: only with the postcode and town after it
)
_ES_KIND = (
    r"Calle|C/|C\.|Avenida|Avda\.?|Plaza|Pza\.|Paseo|Camino|Ronda|Travesía|Urbanización|Callejón|Cañada"
    r"|Pasaje|Vial?|Vía|Rambla|Glorieta|Alameda|Acceso|Cuesta|Pasadizo|Carretera|Ctra\."
)
_ES_LINK = r"(?:(?:de|del|la|las|los|el|y)\s+)*"
_ADDRESS_ES = re.compile(
    rf"(?<!\w)(?:{_ES_KIND})\s+{_ES_LINK}[{_UP}]\w*(?:\s+{_ES_LINK}[{_UP}]\w*){{0,4}},?\s*(?:n[º°o]\.?\s*)?\d{{1,4}}"
    r"(?:\s*,?\s*(?:Apt\.|Piso|Puerta)\s*\w{1,4})?"
    rf"(?:,?\s*(?:{_TOWN},?\s*\d{{5}}|\d{{5}}\s+{_TOWN}))?"
)
_POSTCODE = re.compile(rf"\b{_UK_POSTCODE}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # international
    r"|\(?0\d{1,4}\)?[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}"  # national, trunk prefix 0
    r"|(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # North American
    r")(?:\s?(?:x|ext\.?\s?)\d{1,6})?(?![\w])"
)
# Ten or eleven digits in a row are a phone number only after a cue: an order number looks the same.
_PHONE_CUED = re.compile(
    r"(?i:\b(?:call|phone|tel|text|mobile|cell|reach|whatsapp|sms|fax|my\s+number)\b[^\d\n]{0,20}?)"
    r"(?P<v>\+?\d{10,11})\b"
)
_NAME_WORD = rf"(?:[{_UP}]['’])?[{_UP}][{_LO}]+(?:[{_UP}][{_LO}]+)?(?:-[{_UP}][{_LO}]+)*"  # O'Brien, McKenzie
_NAME_PARTICLE = r"(?:van|von|der|den|de|du|da|di|del|la|le|ter|ten|zu|y|Le|La|De)\s+"
_NAME = re.compile(
    r"(?i:\b(?:my\s+name\s+is|my\s+name's|i\s+am|i['’]m|call\s+me|mein\s+name\s+ist|ich\s+hei(?:ß|ss)e"
    r"|je\s+m['’]appelle|je\s+suis|mon\s+nom\s+est|me\s+llamo|mi\s+nombre\s+es)\s+)"
    rf"(?P<v>{_NAME_WORD}(?:\s+(?:{_NAME_PARTICLE})*{_NAME_WORD}){{0,3}})"
)
# Capitalised words that follow "I'm" or "je suis" without being a name.
_NOT_NAMES = frozenset(
    "Sorry Sure Not Afraid Looking Interested Trying Going Here Back Ready Happy Glad Still Just So Very "
    "Really New Also Only Calling Writing Having Getting Unable Fine Good Confused Worried Done Waiting "
    "Okay Ok Desolé Désolé Content Contente Client Cliente Vraiment Pas Très English British American Français "
    "Française Allemand Allemande Anglais Anglaise "
    "French German Canadian Spanish Allergic Pregnant Disabled Retired Sie Ihn Euch Dich".split()
)


def _not_a_common_word(value: str) -> bool:
    return value.split()[0] not in _NOT_NAMES


# --- finders: (start, end) of each finding in the (masked) text ----------------------------

Finder = Callable[[str], Iterator[tuple[int, int]]]


def _by_pattern(pattern: re.Pattern[str], accept: Callable[[str], bool] = _always) -> Finder:
    """Matches of `pattern` that pass `accept`; the group `v`, when it matched, is the finding."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        for match in pattern.finditer(text):
            group = "v" if "v" in pattern.groupindex and match.group("v") is not None else 0
            start, end = match.span(group)
            if accept(text[start:end]):
                yield start, end

    return find


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    """IBAN-shaped runs that pass mod-97; a run that also swallowed the next word is cut back group by group."""
    for match in _IBAN.finditer(text):
        value = match.group(0)
        groups = value.split(" ")
        for keep in range(len(groups), 0, -1):
            candidate = " ".join(groups[:keep])
            if _iban_valid(candidate.replace(" ", "")):
                yield match.start(), match.start() + len(candidate)
                break


# (kind, finder), in the order the passes run.
_PASSES: list[tuple[str, Finder]] = [
    ("email", _by_pattern(_EMAIL)),
    ("iban", _ibans),
    ("national_id", _by_pattern(_SSN, _is_ssn)),
    ("national_id", _by_pattern(_NIR, _is_nir)),
    ("national_id", _by_pattern(_NINO)),
    ("national_id", _by_pattern(_DNI, _is_dni)),
    ("national_id", _by_pattern(_STEUER_ID, _is_steuer_id)),
    ("card", _by_pattern(_CARD, _is_card)),
    ("claim_id", _by_pattern(_CLAIM_ID)),
    ("policy_id", _by_pattern(_POLICY_ID)),
    ("dob", _by_pattern(_DOB)),
    ("address", _by_pattern(_ADDRESS_EN)),
    ("address", _by_pattern(_ADDRESS_DE)),
    ("address", _by_pattern(_ADDRESS_FR)),
    ("address", _by_pattern(_ADDRESS_ES)),
    ("address", _by_pattern(_POSTCODE)),
    ("phone", _by_pattern(_PHONE, _is_phone)),
    ("phone", _by_pattern(_PHONE_CUED)),
    ("name", _by_pattern(_NAME, _not_a_common_word)),
]
_NEEDS_DIGIT_OR_AT = frozenset(kind for kind in PLACEHOLDERS if kind != "name")
_MAY_HOLD_DATA = re.compile(r"[\d@]")
_MASK = "\x00"  # a non-word character: masked text matches no later pattern


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every piece of personal data in `text`, in pass order."""
    found: list[tuple[int, int, str]] = []
    masked = text
    structured = bool(_MAY_HOLD_DATA.search(text))  # every kind but a name needs a digit or an @
    for kind, finder in _PASSES:
        if kind in _NEEDS_DIGIT_OR_AT and not structured:
            continue
        spans = list(finder(masked))
        for start, end in spans:
            found.append((start, end, kind))
            masked = masked[:start] + _MASK * (end - start) + masked[end:]
    return found


def find_personal_data(text: str) -> list[tuple[str, str]]:
    """(kind, value) for every piece of personal data in `text`, kinds as in PLACEHOLDERS, in pass order."""
    return [(kind, text[start:end]) for start, end, kind in find_spans(text)]


def redact_text(text: str) -> str:
    """`text` with every piece of personal data replaced by its typed placeholder."""
    spans = sorted(find_spans(text))
    if not spans:
        return text
    parts, position = [], 0
    for start, end, kind in spans:
        parts += [text[position:start], PLACEHOLDERS[kind]]
        position = end
    parts.append(text[position:])
    return "".join(parts)


# --- structured values ----------------------------------------------------------------------

# A key that names personal data: its value goes whole, whatever its type ("phone": 4477009001).
_KEY_KINDS: list[tuple[str, re.Pattern[str]]] = [
    (kind, re.compile(rf"(?:^|_)(?:{names})$"))
    for kind, names in (
        ("email", r"e_?mail|email_address"),
        ("phone", r"phone|phone_number|mobile|telephone|tel|fax"),
        ("iban", r"iban"),
        ("card", r"card_number|cc_number|pan|credit_card"),
        ("national_id", r"ssn|social_security_number|nino|national_id|national_insurance_number|nir|dni|nie"),
        ("dob", r"dob|date_of_birth|birth_date|birthdate|birthday"),
        (
            "name",
            r"first_name|last_name|full_name|surname|given_name|family_name|(?:customer|holder|contact|patient)_name",
        ),
        ("address", r"address|street|street_address|postcode|post_code|postal_code|zip|zip_code"),
    )
]


def _key_kind(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower().replace("-", "_")
    return next((kind for kind, pattern in _KEY_KINDS if pattern.search(snake)), None)


def _redact_json_string(text: str) -> str:
    """A string holding a JSON object or array is redacted as structure, so key names count too."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return redact_text(text)
    if not isinstance(parsed, dict | list):
        return redact_text(text)
    redacted = redact_value(parsed)
    return text if redacted == parsed else json.dumps(redacted, ensure_ascii=False)


def redact_value(value: Any, key: Any = None) -> Any:
    """Every value at any depth: strings (and JSON inside them), dict keys, and numbers that are personal data.

    `key` is the dict key `value` sits under: a key naming personal data replaces the value
    whole. Booleans, None and ordinary numbers stay as they are.
    """
    kind = _key_kind(key)
    if kind and value not in (None, "") and not isinstance(value, bool | dict | list):
        return PLACEHOLDERS[kind]
    if isinstance(value, str):
        stripped = value.lstrip()
        return _redact_json_string(value) if stripped[:1] in ("{", "[") else redact_text(value)
    if isinstance(value, dict):
        return {
            (redact_text(k) if isinstance(k, str) else k): redact_value(item, k) for k, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item, key) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and _is_card(str(abs(value))):
        return PLACEHOLDERS["card"]  # a card number logged as a JSON number
    return value


def redact_conversation(conversation: dict) -> dict:
    """A new conversation dict with every value redacted except the system-made ids in KEPT_KEYS.

    Messages (content, tool-call arguments, tool results), feedback, outcome, params,
    usage and any extra keys are redacted at every depth and whatever their JSON type.
    """
    return {
        key: value if key in KEPT_KEYS else redact_value(value, key) for key, value in conversation.items()
    }
