"""Reading a multiple-choice answer out of free text, without guessing.

``parse_choice`` returns the option letter a response names, or ``None`` when it names none
(or several): an unparsed answer is counted as such, never replaced by a random pick (as
lmms-eval does on LongVideoBench). What it accepts, in order:

0. the response is exactly one option's text (an option may itself read "(B) is wrong");
1. the response is a letter form: "B", "b", "(B)", "B.", "B)", "B:", "(b) some text",
   "B. some text", after dropping a lead-in ("The answer is", "Best option:", "Answer:", …);
2. a letter stated as the answer ("the answer is C", "answer: C"; one letter only, so
   "Option A is wrong; the answer is C" is C), else named anywhere: "(B)", "option B";
3. the text of exactly one option (longest match wins; a tie is ambiguous -> ``None``);
4. a lone capital letter in range that is not the article "A" starting a sentence.
"""

from __future__ import annotations

import re

LETTERS = "ABCDEFGHIJ"
_LEAD_INS = re.compile(
    r"^\s*(?:(?:the\s+)?(?:best|correct|right|final)?\s*(?:answer|option|choice)\s*(?:is|would be|:)?\s*:?|"
    r"answer\s*:|best\s+(?:answer|option)\s*:)\s*",
    re.IGNORECASE,
)
_LETTER_FORM = re.compile(r"^\(?([A-Ja-j])\s*(?:\)|\.|:|\]|$|\s+[-–]\s)")
_NAMED = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|:)?\s*:?\s*\(?([A-J])\b(?!['’])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([A-J])\)")
_STATED = re.compile(r"answer\s*(?:is|would be|:)\s*:?\s*\(?([A-J])\b(?!['’])", re.IGNORECASE)


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _article(text: str, start: int, end: int) -> bool:
    """Is the capital "A" at text[start:end] the English article ("A dog runs")?"""
    if text[start:end] != "A":
        return False
    m = re.match(r" +([a-z]+)", text[end:])
    return bool(m) and m.group(1) not in ("or", "and", "nor", "is", "was")


def parse_choice(response: str, options: list[str]) -> str | None:
    """The letter (A, B, …) of the option ``response`` names, or ``None``."""
    valid = LETTERS[: len(options)]
    text = response.strip().strip("*`\"' ")
    if not text:
        return None
    # 0. exactly one option's text, and nothing else
    exact = [i for i, o in enumerate(options) if _words(o) and _words(o) == _words(text)]
    if len(exact) == 1:
        return valid[exact[0]]
    # 1. the whole response is (or begins with) a letter form, after any lead-in
    body = _LEAD_INS.sub("", text, count=1).strip() if _LEAD_INS.match(text) else text
    for candidate in (body, text):
        m = _LETTER_FORM.match(candidate)
        if m and m.group(1).upper() in valid:
            if _article(candidate, m.start(1), m.end(1)):
                break
            return m.group(1).upper()
    # 2. a letter stated as the answer (one letter only), else named explicitly
    stated = {
        m.group(1).upper()
        for m in _STATED.finditer(text)
        if m.group(1).upper() in valid and not _article(text, m.start(1), m.end(1))
    }
    if len(stated) == 1:
        return stated.pop()
    if len(stated) > 1:
        return None  # two answers stated: no guess
    for pattern in (_PAREN, _NAMED):
        m = pattern.search(text)
        if m and m.group(1).upper() in valid and not _article(text, m.start(1), m.end(1)):
            return m.group(1).upper()
    # 3. the text of exactly one option
    said = f" {_words(text)} "
    hits = [(len(_words(o)), i) for i, o in enumerate(options) if _words(o) and f" {_words(o)} " in said]
    if hits:
        hits.sort(reverse=True)
        if len(hits) == 1 or hits[0][0] > hits[1][0]:
            return valid[hits[0][1]]
        return None
    # 4. a lone capital letter (not the sentence-initial article "A")
    found = {
        m.group(1)
        for m in re.finditer(r"(?<![A-Za-z])([A-J])(?![A-Za-z'’])", text)
        if m.group(1) in valid and not _article(text, m.start(1), m.end(1))
    }
    return found.pop() if len(found) == 1 else None


def normalize_text(text: str) -> str:
    """Free-text answers compared as SQuAD's exact match compares them: lower case, no
    punctuation, no articles (a, an, the), single spaces."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def grade(response: str, options: list[str] | tuple[str, ...], answer: str | None) -> tuple[str | None, bool | None]:
    """(what the response answers, whether that is right): the option letter it names for a
    multiple-choice item, the normalized text for a free-text one (no options); None when
    unparsed or when the item has no public answer."""
    if options:
        pred = parse_choice(response, list(options))
        return pred, None if answer is None else pred == answer
    pred = normalize_text(response) or None
    return pred, None if answer is None else pred == normalize_text(answer)
