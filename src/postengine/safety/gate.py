"""The keyword gate: a fast pre-filter that decides which rule patterns are worth trying where.

Speed
=====

A 2,000-character prompt should take well under 0.2 ms, and running ~25 large regexes over it
would not.  Every rule pattern starts with literal text (its *key*: "how to ", "swastika",
"kill my"...), which :func:`_expand` works out when the module is imported, splitting each
pattern by key.  At check time one pass of a single trie-shaped regex (``_GATE``) finds the
word starts where any key occurs, and only the patterns filed under those keys are tried,
anchored at those positions (each compiled on first use, so importing stays cheap).  The gate is
purely an optimisation: ``tests/safety`` checks that trying every rule at every word gives the
same answer (``matched_clauses(..., gated=False)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from postengine.safety.rules import RULES

__all__ = ["FIRST_WORDS", "RULE_CLAUSE_IDS", "matched_clauses"]


class _Lazy:
    """A regex compiled when first needed, so that importing the module stays fast (there are
    about a thousand small per-key patterns and most prompts only ever need a few of them)."""

    __slots__ = ("compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.compiled: re.Pattern[str] | None = None

    def compile(self) -> re.Pattern[str]:
        if self.compiled is None:
            self.compiled = re.compile(self.source)
        return self.compiled


@dataclass(frozen=True, slots=True)
class _Clause:
    pattern: _Lazy  # matched at word starts of the normalised text
    # The same pattern split by its first word: key -> the alternatives that start with a word
    # beginning with ``key``.  See "Speed" in the module docstring.
    by_key: dict[str, _Lazy]


# ---------------------------------------------------------------------------------------------
# Keys: splitting a pattern into alternatives by the literal text that their matches start with.
# ---------------------------------------------------------------------------------------------


def _structure(rx: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, group depth before it) for every character of `rx` from `start` that is
    regex syntax: escapes and the insides of character classes are skipped."""
    depth, in_class, i = 0, False, start
    while i < len(rx):
        c = rx[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        else:
            yield i, c, depth
            depth += (c == "(") - (c == ")")
        i += 1


def _closing(rx: str, i: int) -> int:
    """Index of the ")" that closes the group opening at ``rx[i]``."""
    for j, c, depth in _structure(rx, i):
        if c == ")" and depth == 1:
            return j
    raise ValueError(f"unbalanced group in {rx!r}")


def _top_level_alternatives(rx: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for i, c, depth in _structure(rx):
        if c == "|" and depth == 0:
            parts.append(rx[start:i])
            start = i + 1
    parts.append(rx[start:])
    return parts


_LITERAL = re.compile(r"[a-z0-9 ]*")
_QUANTIFIERS = ("?", "*", "+", "{")


def _specific_enough(key: str) -> bool:
    """Stop refining a key once it has a whole word and two characters of the next one."""
    space = key.find(" ")
    return 0 < space < len(key) - 2


def _expand(rx: str, prefix: str = "") -> list[tuple[str, str]]:
    """Split a pattern into alternatives, each with the literal text that all its matches start with.

    Returns ``(key, alternative)`` pairs; together the alternatives match exactly what ``rx``
    matches, and a match of an alternative always starts with its key.  Leading zero-width
    assertions are kept but skipped over, and a group at the end of the literal text is
    inlined ("(?:kill|cut) myself" -> "kill myself", "cut myself") so that keys get specific:
    "kill my" rather than "kill".  ``prefix`` is the literal text already known to come first.
    """
    alternatives = _top_level_alternatives(rx)
    if len(alternatives) > 1:
        return [pair for alternative in alternatives for pair in _expand(alternative, prefix)]
    i = 0
    while True:
        if rx.startswith("\\b", i):
            i += 2
        elif rx.startswith(("(?<!", "(?<=", "(?!", "(?="), i):
            i = _closing(rx, i) + 1
        else:
            break
    literal = _LITERAL.match(rx, i)
    assert literal is not None
    lit, after = literal.group(), rx[literal.end() :]
    if after[:1] in _QUANTIFIERS:  # "ways? to": the "s" is optional, so the key stops before it
        return [(prefix + lit[:-1], rx)]
    key = prefix + lit
    if after.startswith("(?:") and not _specific_enough(key):
        end = _closing(after, 0)
        tail = after[end + 1 :]
        if tail[:1] not in _QUANTIFIERS:
            # "(?:a|b)c" matches what "ac" and "bc" match: inline each alternative and go on.
            return [
                (k, rx[: literal.end()] + r)
                for alternative in _top_level_alternatives(after[3:end])
                for k, r in _expand(alternative + tail, key)
            ]
    return [(key, rx)]


def _clause(pattern: str) -> _Clause:
    by_key: dict[str, list[str]] = {}
    for key, alternative in _expand(pattern):
        if not key or key[0] == " ":
            raise ValueError(f"no literal first word in {pattern!r}; the gate needs one")
        by_key.setdefault(key, []).append(alternative)
    return _Clause(_Lazy(pattern), {k: _Lazy("|".join(v)) for k, v in by_key.items()})


# ---------------------------------------------------------------------------------------------
# Matching: a trie of first words finds where rules can start, then only those rules run there.
# ---------------------------------------------------------------------------------------------


class _Trie(dict[str, "_Trie"]):
    """A prefix tree; the key ``""`` marks the end of a word."""


def _trie_regex(words: Iterable[str]) -> str:
    """A regex that matches the longest of ``words`` found at a position (a prefix trie)."""
    root = _Trie()
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, _Trie())
        node[""] = _Trie()

    def build(node: _Trie) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


# The clauses of each rule, in table order; a clause's id is its index in _CLAUSES.
_RULE_CLAUSES: tuple[tuple[_Clause, ...], ...] = tuple(tuple(_clause(p) for p in r.patterns) for r in RULES)
_CLAUSES: tuple[_Clause, ...] = tuple(c for clauses in _RULE_CLAUSES for c in clauses)
RULE_CLAUSE_IDS: tuple[tuple[int, ...], ...] = tuple(
    tuple(_CLAUSES.index(c) for c in clauses) for clauses in _RULE_CLAUSES
)


def _dispatch_table() -> dict[str, tuple[tuple[int, _Lazy], ...]]:
    by_key: dict[str, list[tuple[int, _Lazy]]] = {}
    for cid, clause in enumerate(_CLAUSES):
        for key, pattern in clause.by_key.items():
            by_key.setdefault(key, []).append((cid, pattern))
    # The gate reports the longest key at a word start; every key that is a prefix of it
    # occurs there too, so each key maps to the patterns of all of its prefixes.
    return {
        found: tuple(entry for i in range(1, len(found) + 1) for entry in by_key.get(found[:i], ()))
        for found in by_key
    }


_DISPATCH = _dispatch_table()
# Whole first words of the rules, for filling in masked letters ("n*gger") during normalisation.
FIRST_WORDS = frozenset(key.split(" ")[0] for key in _DISPATCH if " " in key or key.isalpha())
# A lookahead, so that a key spanning two words ("kill my") does not hide a key at the next word.
_GATE = re.compile(" (?=(" + _trie_regex(_DISPATCH) + "))")


def matched_clauses(padded: str, *, gated: bool = True) -> set[int]:
    """Ids of the clauses that match ``padded`` (normalised text with one leading space) at some
    word start.  ``gated=False`` (for tests) skips the gate and tries every clause at every word
    start; it must always give the same answer."""
    matched: set[int] = set()
    if gated:
        for m in _GATE.finditer(padded):
            pos = m.end()
            for cid, lazy in _DISPATCH[m.group(1)]:
                if cid not in matched and (lazy.compiled or lazy.compile()).match(padded, pos):
                    matched.add(cid)
    else:
        starts = [i + 1 for i, c in enumerate(padded) if c == " "]
        for cid, clause in enumerate(_CLAUSES):
            pattern = clause.pattern.compile()
            if any(pattern.match(padded, pos) for pos in starts):
                matched.add(cid)
    return matched
