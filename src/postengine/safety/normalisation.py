"""Normalisation: the *matching form* of a prompt that the rules are written against.

:func:`normalise` turns the prompt into a matching form: Unicode NFKC, casefolded, format
characters (zero-width spaces, soft hyphens, bidi and tag characters) and accents/decorative
combining marks removed, a few look-alike letters from Cyrillic/Greek mapped to Latin, single
letters split by separators rejoined (``s.e.x``, ``k_i_l_l``, ``s e x``, ``H O W  T O``),
leetspeak decoded (``s3x``, ``k1ll``, ``$ex``, masked vowels as in ``n*gger``), everything that
is not a letter or digit turned into a space, and letter runs squashed (``sexxxy``).  Rules
therefore only ever see lowercase words separated by single spaces.

A masked vowel is only filled in when that spells the first word of a rule, so this module reads
:data:`postengine.safety.gate.FIRST_WORDS` (worked out from the rule table at import).

Speed
=====

Normalisation has a fast path: ASCII text skips the Unicode work, and text with only a few
non-ASCII runs (curly quotes, accents, emoji) folds just those characters (:func:`_fold_char`).
Text with many non-ASCII runs (another script) is folded as a whole (:func:`_fold_text`);
``tests/safety`` checks that both ways give the same matching form.
"""

from __future__ import annotations

import re
import unicodedata

from postengine.safety.gate import FIRST_WORDS

__all__ = ["normalise"]

# Combining marks that decorate Latin, Greek and Cyrillic letters (accents, "Zalgo" text,
# strike-through and enclosing marks) and variation selectors.  Marks of other scripts
# (Japanese dakuten, Devanagari vowel signs, Arabic harakat) are part of the spelling and stay.
# fmt: off
_DECORATIVE_MARK_BLOCKS = (
    (0x0300, 0x036F), (0x0483, 0x0489), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F), (0xFE20, 0xFE2F),
)
# fmt: on


def _mark_class() -> str:
    """A regex character class of decorative combining marks and all format characters (Cf).

    Format characters include zero-width spaces/joiners, soft hyphens and bidi controls.  Only
    the Basic Multilingual Plane is scanned (a few milliseconds at import) so that the regex
    engine can use a fast bitmap; plane 14 (invisible "tag" characters, variation selectors) is
    added as one range.  The handful of format characters elsewhere in the astral planes
    (Egyptian hieroglyph and musical-notation controls) are left alone.
    """
    cps = {cp for lo, hi in _DECORATIVE_MARK_BLOCKS for cp in range(lo, hi + 1)}
    cps.update(cp for cp in range(0x10000) if unicodedata.category(chr(cp)) == "Cf")
    ranges: list[tuple[int, int]] = []
    for cp in sorted(cps):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges
    ]
    return "[" + "".join(parts) + "\U000e0000-\U000e0fff]+"


_MARKS = re.compile(_mark_class())

# Letters from other scripts that look like Latin ones (after casefolding).  Only clear
# look-alikes are listed; the goal is "ѕех" (Cyrillic) == "sex", not transliteration.
# fmt: off
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
        # Armenian
        "օ": "o", "ս": "u", "հ": "h", "ո": "n",
        # Latin letters that NFD does not decompose
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ɡ": "g", "æ": "ae", "œ": "oe",
    }
)
# fmt: on

# Separators people put between single letters: "s.e.x", "s-e-x", "k_i_l_l", "s|e|x", "s*e*x".
# A run needs three or more single characters joined by the *same* separator, so "e.g.", "a.m."
# and "A-Z" are left alone and "t.e.e.n n.u.d.e.s" stays two words.  The regex starts with the
# separator (a character class), so the engine skips ordinary text quickly; the lookbehinds check
# that a single character stands before it.
_SOFT_SEP = r"[.\-_*~/\\|+:=^`#,'\"•·]"
_SEP_RUN = re.compile(
    rf"({_SOFT_SEP})(?=[^\W_]\1)(?<![^\W_][^\W_]{_SOFT_SEP})(?<=[^\W_]{_SOFT_SEP})[^\W_](?:\1[^\W_])+(?![^\W_])"
)
# Letter-spaced words with wider gaps between the words: "H O W  T O  M A K E  A  B O M B".
_SPACED_WORDS = re.compile(r"(?<!\S)[^\W_](?: [^\W_])+(?: {2,}[^\W_](?: [^\W_])*)+(?!\S)")
_SPACED_WORDS_HINT = re.compile(r"  (?<=[^\W_] [^\W_]  )")  # starts with a literal: a quick first look
_WIDE_GAP = re.compile(r" {2,}")
# The same with spaces, "s e x" or "s | e | x".  Searched in " " + text + " ".
_SPACE_RUN = re.compile(rf" ((?:[^\W_] (?:{_SOFT_SEP} )?){{2,}}[^\W_])(?= )")
# Leetspeak.  "1" and "|" are read as "l" or "i" depending on the neighbours (see _deleet).
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "€": "e"}
_ONE_LIKE = frozenset("1|")
_VOWELS = frozenset("aeiou")
_TOKEN_EXTRA = frozenset("@$€!|*")  # characters that count as part of a word while decoding leet
# A leet character inside a word that has letters: "s3x", "k1ll", "$ex", "n4z1".  The regex starts
# with a character class, so the engine skips plain text quickly; plain numbers ("2024", "50%")
# fail straight away because no letter touches them.
# "*" is also here: a masked vowel ("n*gger", "p*rn") is filled in when that spells a listed word.
_LEETY = re.compile(
    r"[0-9@$€!|*](?:(?<=[^\W\d_][0-9@$€!|*])"  # a letter right before it: "k1ll"
    r"|(?<![\w@$€!|*][0-9@$€!|*])(?=(?:[^\W_]|[@$€!|*])*[^\W\d_]))"  # or a word start: "$ex", "5ex"
    r"(?:[^\W_]|[@$€!|*])*"
)
# Product codes, ordinals and units keep their digits: "ar15", "ak47", "1080p", "3rd", "5yo", "mp3".
# A doubled digit at the end is leet, not a model number: "fr33", "ki11".
_PROTECTED = re.compile(
    r"[a-z]+(?!(\d)\1$)\d{2,}|\d{2,}[a-z]+|[a-z]{1,2}\d"
    r"|\d+(?:st|nd|rd|th|s|k|p|d|g|x|h|m|yo|yr|yrs|mm|cm|km|kg|lb|lbs|ml|oz|am|pm|hz|gb|mb|tb|mp|fps|px|ft|in)"
)
# Every ASCII character that is not a letter or digit becomes a space (a fast str.translate).
_ASCII_TO_SPACE = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
# The same for text with other scripts, in two cheap steps: non-ASCII punctuation and symbols
# (curly quotes, dashes, emoji), then ASCII punctuation (spaces are left alone: fewer matches).
_NON_ASCII_NON_WORD = re.compile(r"[^\x00-\x7f\w€•·]+")  # but keep leet "€" and separators
_ASCII_PUNCT = re.compile(r"[\x00-\x1f\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f€•·]+")
_ASCII_SPACES = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f]")
_HOMOGLYPH_CHARS = re.compile("[" + "".join(chr(c) for c in _HOMOGLYPHS) + "]")
# "sexxxy", "kiiiill", "gooooore" -> one letter.  A word that is nothing but x, k or w keeps three
# letters because "xxx", "kkk" and "www" mean something.
_REPEATS = re.compile(r"([a-z])\1{2,}")
_ANY_TRIPLE = re.compile(r"(.)\1\1")  # a much cheaper first look


def _deleet(tok: str) -> str:
    if len(tok) == 2 and tok[1] == "0" and tok[0].isalpha():  # "t0", "n0", "g0"
        return tok[0] + "o"
    if sum(c.isalpha() for c in tok) < 2 or _PROTECTED.fullmatch(tok):
        return tok
    if "*" in tok and not ("*" in tok[1:-1] and tok.replace("*", "").isalpha()):
        return tok  # "*" only counts as a masked letter inside a plain word
    out: list[str] = []
    last = len(tok) - 1
    for i, c in enumerate(tok):
        if c in _LEET:
            out.append(_LEET[c])
        elif c in _ONE_LIKE:
            nxt = tok[i + 1] if i < last else ""
            prev = out[-1] if out else ""
            if (
                nxt in _ONE_LIKE  # "ki11" -> "kill"
                or (prev == "l" and i > 0 and tok[i - 1] in _ONE_LIKE)
                or (prev == "r" and nxt in ("", "s"))  # "gir1", "gir1s"
                or _LEET.get(nxt, nxt) in _VOWELS  # "b1ood", "s1ut", "1oli"
                or (not nxt and prev in _VOWELS)  # "ana1", "paypa1"
            ):
                out.append("l")
            else:  # "k1ll", "n4z1", "su1c1de"
                out.append("i")
        elif c == "!" and 0 < i < last and tok[i - 1] != "!" and tok[i + 1] not in "!?":
            out.append("i")  # "d!ck"; but "wow!!!" is just punctuation
        else:
            out.append(c)
    word = "".join(out)
    if "*" in word:
        for vowel in "aeiou":
            if (filled := word.replace("*", vowel)) in FIRST_WORDS:
                return filled
    return word


def _deleet_text(text: str) -> str:
    out: list[str] = []
    done = 0
    for m in _LEETY.finditer(text):
        start = m.start()
        while start > done and (text[start - 1].isalnum() or text[start - 1] in _TOKEN_EXTRA):
            start -= 1  # back to the start of the word
        word = text[start : m.end()]
        new = _deleet(word)
        if new != word:
            out += (text[done:start], new)
            done = m.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _join_sep_run(m: re.Match[str]) -> str:
    run = m.group(0)  # ".e.x" of "s.e.x": the first character stands just before the match
    chars = m.string[m.start() - 1] + run[1::2]
    if sum(c.isalpha() for c in chars) < 2:  # "1.5.2", "4-4-2": numbers, not a hidden word
        return run
    return run[1::2]


def _join_spaced_words(m: re.Match[str]) -> str:
    return " ".join(group.replace(" ", "") for group in _WIDE_GAP.split(m.group()))


def _join_space_run(m: re.Match[str]) -> str:
    chars = "".join(c for c in m.group(1) if c.isalnum())
    if sum(c.isalpha() for c in chars) < 2:  # "3 2 1 go", "4 x 4"
        return m.group(0)
    if len(chars) >= 4 and chars[0] in "ai":  # "a s e x y" is "a sexy", not "asexy"
        return f" {chars[0]} {chars[1:]}"
    return " " + chars


def _squash(m: re.Match[str]) -> str:
    letter = m.group(1)
    if letter in "xkw":
        text, s, e = m.string, m.start(), m.end()
        if not text[s - 1].isalnum() and not text[e].isalnum():  # the whole word (text is padded)
            return letter * 3
    return letter


_NON_ASCII_RUNS = re.compile(r"([^\x00-\x7f]+)")
_KEEP = frozenset("€•·")  # leet "€" and separators are dealt with later
_FOLDED: dict[str, str] = {}  # cache for _fold_char


def _fold_char(ch: str) -> str:
    """What one non-ASCII character becomes; the same steps as _fold_text, one character at a time."""
    if (folded := _FOLDED.get(ch)) is not None:
        return folded
    composed = unicodedata.normalize("NFKC", ch).casefold()
    out: list[str] = []
    for c in unicodedata.normalize("NFD", composed):
        if c.isascii() or c in _KEEP:
            out.append(c)
        elif _MARKS.match(c):  # decorative mark or format character: drop
            continue
        elif unicodedata.category(c)[0] == "M":  # a mark that is part of the spelling (kana)
            out = [composed]
            break
        elif c.isalnum():
            out.append(c.translate(_HOMOGLYPHS))
        else:  # punctuation, symbols, emoji
            out.append(" ")
    folded = "".join(out)
    if len(_FOLDED) < 50_000:
        _FOLDED[ch] = folded
    return folded


def _fold_text(text: str) -> str:
    """NFKC, casefold, drop marks and format characters, map look-alikes: the whole-text way."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        decompose = not unicodedata.is_normalized("NFD", text)
        if decompose:
            text = unicodedata.normalize("NFD", text)  # "é" -> "e" + accent, stripped next
        text = _MARKS.sub("", text)
        if decompose and not text.isascii():
            text = unicodedata.normalize("NFC", text)  # put back what NFD split in other scripts
        text = _NON_ASCII_NON_WORD.sub(" ", text)  # curly quotes, dashes, emoji
        if not text.isascii() and _HOMOGLYPH_CHARS.search(text):
            text = text.translate(_HOMOGLYPHS)
    if "  " in text and _SPACED_WORDS_HINT.search(text):
        text = _SPACED_WORDS.sub(_join_spaced_words, text)
    return text


def _fold(text: str) -> str:
    """Unicode and case folding; picks the cheapest way that gives the same result."""
    if text.isascii():
        text = text.lower()
    else:
        pieces = _NON_ASCII_RUNS.split(text)
        if len(pieces) > 129:  # lots of non-ASCII text (another script): do it all at once
            return _fold_text(text)
        # Mostly ASCII with a few curly quotes, accents or emoji (the usual case): fold only the
        # non-ASCII characters, which is much cheaper than normalising the whole text.
        pieces[1::2] = ["".join(map(_fold_char, run)) for run in pieces[1::2]]
        text = "".join(pieces).lower()
    if "  " in text and _SPACED_WORDS_HINT.search(text):
        text = _SPACED_WORDS.sub(_join_spaced_words, text)
    return text


def _finish(text: str) -> str:
    """Separators, leetspeak, punctuation, letter runs and whitespace of folded text."""
    if text.isascii() and "  " not in text and not _ASCII_SPACES.search(text):
        text = f" {text} "  # already single-spaced (the usual case): skip the split/join
    else:
        text = " " + " ".join(text.split()) + " "
    text = _SEP_RUN.sub(_join_sep_run, text)
    text = _SPACE_RUN.sub(_join_space_run, text)
    text = _deleet_text(text)
    text = text.translate(_ASCII_TO_SPACE) if text.isascii() else _ASCII_PUNCT.sub(" ", text)
    text = " " + " ".join(text.split()) + " "
    triple = _ANY_TRIPLE.search(text)
    if triple is not None and _REPEATS.search(text, triple.start()):
        text = _REPEATS.sub(_squash, text)
    return text.strip()


def normalise(text: str) -> str:
    """Return the matching form of ``text``: lowercase words separated by single spaces.

    NFKC, casefold, strip format characters and decorative marks, map look-alike letters,
    rejoin single letters split by separators ("s.e.x", "k_i_l_l", "s e x"), decode leetspeak,
    turn everything that is not a letter or digit into a space, squash letter runs ("sexxxy")
    and collapse whitespace.
    """
    return _finish(_fold(text))
