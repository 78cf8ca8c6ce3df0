"""Text analysis for search: tokens, stems, typo keys, edit distance and snippets.

- Tokens are runs of letters/digits, case-folded; hyphenated compounds also yield the joined
  form (`wi-fi` → `wi`, `fi`, `wifi`; `e-mail` → `e`, `mail`, `email`).
- Stop words (English function words plus chat filler such as "hi", "please", "thanks") are
  dropped; single characters too, except digits.
- Stems come from the Snowball English (Porter 2) stemmer (`snowballstemmer`, the maintained
  pure-Python package Sphinx uses): `printers`/`printing` → `printer`/`print`,
  `disconnects` → `disconnect`.
- Typo keys: a term and all its one-character deletions (the SymSpell idea). Two terms within
  one edit (insert, delete, substitute, swap of neighbours) always share a key, so the
  vocabulary can be searched through an ordinary multikey index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

import snowballstemmer

MAX_TERM = 40
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_STEMMER = snowballstemmer.stemmer("english")

STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don down during each
few for from further had hadn has hasn have haven having he her here hers herself him himself his how
i if in into is isn it its itself just let ll me more most my myself no nor not now of off on once
only or other ought our ours ourselves out over own re same shan she should shouldn so some such than
that the their theirs them themselves then there these they this those through to too under until up
ve very was wasn we were weren what when where which while who whom why will with won would wouldn
you your yours yourself yourselves also get got getting gets im ive id dont cant wont doesnt didnt
isnt hi hello hey thanks thank thx please pls plz anyone someone somebody guys help
""".split())


def fold(text: str) -> str:
    """Lower-case and strip accents (`Café` → `cafe`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    result: str = _STEMMER.stemWord(word)
    return result


def words(text: str) -> Iterator[str]:
    """Surface words of `text` (folded, stop words kept), joined forms of hyphenated compounds."""
    for match in _WORD.finditer(fold(text)):
        token = match.group()
        if "-" in token:
            parts = token.split("-")
            yield from parts
            yield "".join(parts)
        else:
            yield token


def keep(word: str) -> bool:
    return (len(word) > 1 or word.isdigit()) and len(word) <= MAX_TERM and word not in STOP_WORDS


def terms(text: str) -> list[str]:
    """The stemmed index terms of `text`, in order, with repeats (for term frequencies)."""
    return [stem(w) for w in words(text) if keep(w)]


def surface_forms(text: str) -> dict[str, str]:
    """Stem → the first word of `text` that produced it (to explain matches in plain words)."""
    forms: dict[str, str] = {}
    for w in words(text):
        if keep(w):
            forms.setdefault(stem(w), w)
    return forms


def typo_keys(term: str) -> list[str]:
    """`term` and its one-character deletions (terms shorter than 4 get only themselves)."""
    if len(term) < 4:
        return [term]
    return sorted({term, *(term[:i] + term[i + 1:] for i in range(len(term)))})


def distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal-string-alignment edit distance (adjacent swaps count one), capped at `limit + 1`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
        if min(cur) > limit:
            return limit + 1
    return min(prev[-1], limit + 1)


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def snippet(texts: Iterable[str], wanted: set[str], width: int = 180) -> str:
    """The passage of `texts` with the most distinct `wanted` stems, about `width` characters.

    Falls back to the start of the first non-empty text when nothing matches.
    """
    best: tuple[int, int, str, int] | None = None  # (hits, -order, text, start)
    first = ""
    order = 0
    for text in texts:
        if not text.strip():
            continue
        first = first or text
        for match in _SENTENCE.finditer(text):
            found = {stem(w) for w in words(match.group()) if keep(w)} & wanted
            order += 1
            if found and (best is None or (len(found), -order) > best[:2]):
                best = (len(found), -order, text, match.start())
    if best is None:
        return _cut(first, 0, width)
    return _cut(best[2], best[3], width)


def _cut(text: str, start: int, width: int) -> str:
    text = " ".join(text.split()) if start == 0 else text
    while start < len(text) and text[start].isspace():
        start += 1
    piece = " ".join(text[start:start + width + 40].split())
    if len(piece) > width:
        cut = piece.rfind(" ", 0, width)
        piece = piece[: cut if cut > width // 2 else width].rstrip(" ,;:") + "…"
    return ("…" if start > 0 else "") + piece
