"""Text helpers for the matcher: offset-preserving normalisation, script-aware word
boundaries, inflection of ``word~`` phrases, word and sentence indexes.

Contains no business logic.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

__all__ = [
    "FieldText",
    "ascii_words",
    "expand_phrase",
    "is_word_char",
    "normalize",
    "normalize_phrase",
    "word_map",
    "words",
]

_TRANSLATE = str.maketrans(
    {
        "’": "'",
        "‘": "'",
        "`": "'",
        "´": "'",
        "“": '"',
        "”": '"',
        "-": " ",
        "‐": " ",
        "‑": " ",
        "–": " ",
        "—": " ",
        "\n": " ",
        "\t": " ",
        "\r": " ",
        "\xa0": " ",
    }
)


# ``normalize`` and ``words`` of ASCII text as one byte table each (the same result
# as the general path, at a fraction of its cost; tests/classify/test_fast_paths.py).
_ASCII_FOLD = bytes(
    ord(chr(c).translate(_TRANSLATE).lower()) if c < 128 else c for c in range(256)
)
_ASCII_WORDS = bytes(
    ord(chr(c).lower()) if c < 128 and chr(c).isalnum() else 32 for c in range(256)
)


# The characters beyond ASCII that fold to ASCII: text whose only such characters
# are these (curly quotes, dashes, no-break spaces) folds on the ASCII path.
_FOLD_TO_ASCII = tuple(
    (k, v) for k, v in ((chr(k), str(v)) for k, v in _TRANSLATE.items()) if k >= "\x80"
)


def normalize(text: str) -> str:
    """Lower-case and fold quotes/dashes/space, keeping every character's offset."""
    if not text.isascii():
        folded = text
        for k, v in _FOLD_TO_ASCII:
            if k in folded:
                folded = folded.replace(k, v)
        if not folded.isascii():
            return _normalize(text)
        text = folded
    return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")


def _normalize(text: str) -> str:
    out = text.translate(_TRANSLATE).lower()
    if len(out) != len(text):
        # A few characters lower-case to two ("İ"); keep one so offsets hold.
        out = "".join(c.translate(_TRANSLATE).lower()[:1] or " " for c in text)
    return out


def normalize_phrase(phrase: str) -> str:
    """A phrase as it is looked up: normalised, single-spaced."""
    return " ".join(normalize(phrase).split())


def is_word_char(c: str) -> bool:
    """Letters and digits of alphabetic scripts; CJK, kana and hangul never join words
    for boundary purposes (those scripts do not separate words by spaces)."""
    if not c.isalnum():
        return False
    o = ord(c)
    if o < 0x1100:
        return True
    return not (
        0x3040 <= o <= 0x30FF  # kana
        or 0x3400 <= o <= 0x9FFF  # CJK ideographs
        or 0xF900 <= o <= 0xFAFF
        or 0xAC00 <= o <= 0xD7AF  # hangul syllables
        or 0x1100 <= o <= 0x11FF
        or 0x3130 <= o <= 0x318F
    )


_IRREGULAR: dict[str, tuple[str, ...]] = {
    "meet": ("meets", "met", "meeting"),
    "hold": ("holds", "held", "holding"),
    "leave": ("leaves", "left", "leaving"),
    "fly": ("flies", "flew", "flown", "flying"),
    "make": ("makes", "made", "making"),
    "begin": ("begins", "began", "begun", "beginning"),
    "go": ("goes", "went", "gone", "going"),
    "take": ("takes", "took", "taken", "taking"),
    "come": ("comes", "came", "coming"),
    "sit": ("sits", "sat", "sitting"),
    "shake": ("shakes", "shook", "shaken", "shaking"),
    "speak": ("speaks", "spoke", "spoken", "speaking"),
    "pay": ("pays", "paid", "paying"),
    "seek": ("seeks", "sought", "seeking"),
    "see": ("sees", "saw", "seen", "seeing"),
    "set": ("sets", "setting"),
    "put": ("puts", "putting"),
    "call": ("calls", "called", "calling"),
    "travel": ("travels", "travelled", "traveled", "travelling", "traveling"),
    "cancel": ("cancels", "cancelled", "canceled", "cancelling", "canceling"),
    "plan": ("plans", "planned", "planning"),
    "stop": ("stops", "stopped", "stopping"),
    "wrap": ("wraps", "wrapped", "wrapping"),
    "drop": ("drops", "dropped", "dropping"),
    "scrap": ("scraps", "scrapped", "scrapping"),
    "agree": ("agrees", "agreed", "agreeing"),
    "free": ("frees", "freed", "freeing"),
    "summit": ("summits",),
}
_VOWELS = set("aeiou")


def _inflect(word: str) -> tuple[str, ...]:
    if word in _IRREGULAR:
        return (word, *_IRREGULAR[word])
    if word.endswith("e"):
        return (word, word + "s", word + "d", word[:-1] + "ing")
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return (word, word + "es", word + "ed", word + "ing")
    if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
        return (word, word[:-1] + "ies", word[:-1] + "ied", word + "ing")
    return (word, word + "s", word + "ed", word + "ing")


def expand_phrase(phrase: str) -> list[str]:
    """All surface forms of a phrase: ``arrive~ in`` -> arrive/arrives/arrived/arriving in."""
    forms = [""]
    for word in phrase.split():
        variants = _inflect(word[:-1]) if word.endswith("~") else (word,)
        forms = [f"{f} {v}" if f else v for f in forms for v in variants]
    return [normalize_phrase(f) for f in forms]


_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A run of letters/digits of alphabetic scripts, or one CJK/kana/hangul character;
# no nested quantifiers, so matching is linear.
_WORDS = re.compile(f"[^\\W_{_CJK}]+|[{_CJK}]")

_ABBREV = frozenset(
    "u.s mr mrs ms dr st jan feb mar apr jun jul aug sep sept oct nov dec gen gov "
    "sen rep no vs inc corp jr sr lt col capt prof s n e w u.k u.n".split()
)


_NON_WORD = re.compile(r"[\W_]")
_HAS_CJK = re.compile(f"[{_CJK}]")


_ASCII_NON_WORD = bytes(c if c < 128 and chr(c).isalnum() else 32 for c in range(256))


def word_map(text: str) -> str:
    """Every character that is not a letter or digit becomes a space (same length)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_NON_WORD).decode("ascii")
    return _NON_WORD.sub(" ", text)


def ascii_words(text: str) -> list[str]:
    """The words of ASCII ``text``: ``words(normalize(text))``, faster."""
    return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()


def words(norm: str) -> list[str] | None:
    """The whole words of a normalised text: the runs of letters and digits that a
    word-bounded phrase can match; None when it holds CJK, kana or hangul (whose
    words are not separated)."""
    if norm.isascii():
        return norm.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    if _HAS_CJK.search(norm):
        return None
    return _NON_WORD.sub(" ", norm).split()


class FieldText:
    """One field's text with lazily built word and sentence indexes."""

    __slots__ = ("_padded", "_sent_starts", "_word_starts", "norm", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.norm = normalize(text)
        self._padded: str | None = None
        self._word_starts: list[int] | None = None
        self._sent_starts: list[int] | None = None

    def padded(self) -> str:
        """``word_map`` of ``norm`` between two spaces, for a padded automaton;
        empty when the text holds CJK, kana or hangul (scanned with exact checks)."""
        if self._padded is None:
            norm = self.norm
            if norm.isascii() or not _HAS_CJK.search(norm):
                self._padded = f" {word_map(norm)} "
            else:
                self._padded = ""
        return self._padded

    def word_index(self, offset: int) -> int:
        """How many words start strictly before ``offset``."""
        if self._word_starts is None:
            self._word_starts = [m.start() for m in _WORDS.finditer(self.norm)]
        return bisect_left(self._word_starts, offset)

    def sentence_index(self, offset: int) -> int:
        """Which sentence ``offset`` lies in (0-based)."""
        if self._sent_starts is None:
            self._sent_starts = self._sentences()
        return bisect_right(self._sent_starts, offset)

    def _sentences(self) -> list[int]:
        text, starts = self.text, []
        for m in _SENT_END.finditer(text):
            j = m.end()
            if m.group(1):
                starts.append(j)
                continue
            c, nxt = m.group(2), text[j]
            if not (nxt.isupper() or nxt in "\"'“‘("):
                continue
            i = m.start()
            k = i
            while k > 0 and (text[k - 1].isalpha() or text[k - 1] == "."):
                k -= 1
            token = text[k:i].lower()
            if c == "." and (token in _ABBREV or len(token) == 1):
                continue
            starts.append(j)
        return starts


# A sentence ends at a CJK full stop, or at . ! ? ; before spaces and then a
# capital letter or an opening quote (checked in ``_sentences``).
_SENT_END = re.compile(r"([。！？])|([.!?;]) +(?=\S)")
