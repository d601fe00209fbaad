"""Prompt safety filter.

Every prompt is checked *before* any credit is reserved.  A prompt that matches a rule is refused
with HTTP 400 ``prompt_blocked``; the API layer uses :attr:`SafetyVerdict.message` as the error
message and :attr:`SafetyVerdict.category` as ``details.category``.

How it works
============

1. :func:`normalise` (:mod:`postengine.safety.normalisation`) turns the prompt into a *matching
   form*: lowercase words separated by single spaces, with Unicode tricks, look-alike letters,
   separators between letters and leetspeak undone.
2. The rule table (:mod:`postengine.safety.rules`, plain data built from the word lists in
   :mod:`postengine.safety.vocabulary`) is a list of whole-word regexes per category, with
   explicit exceptions for ambiguous words and negation ("no gore") taken into account.  The
   judgement calls behind the rules are documented there.
3. The first matching rule in table order wins (minors first, so "teen" + "porn" is always
   ``sexual_minors``).  The keyword gate (:mod:`postengine.safety.gate`) makes this fast: only
   the rule patterns whose literal first words occur in the prompt are tried, and only there.

This module wires the three together and holds the result type, :class:`SafetyVerdict`.

Speed
=====

Measured with CPython 3.11 on one core of a 2-core AMD EPYC VM, per 2,000-character prompt:
about 0.10 ms for plain ASCII marketing copy, 0.13 ms with curly quotes, accents and emoji,
0.2-0.3 ms for text written mostly in another script or packed with accents (whole-text Unicode
normalisation), and at most ~0.45 ms for the adversarial inputs tried (2,000 characters of
repeated trigger words).  See "Speed" in :mod:`postengine.safety.gate` and
:mod:`postengine.safety.normalisation` for how.
"""

from __future__ import annotations

from dataclasses import dataclass

from postengine.safety.gate import RULE_CLAUSE_IDS, matched_clauses
from postengine.safety.normalisation import normalise
from postengine.safety.rules import REASONS, RULES, Rule, SafetyCategory

__all__ = ["SafetyCategory", "SafetyVerdict", "check_prompt", "normalise"]


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """Why a prompt was blocked.  ``None`` from :func:`check_prompt` means it was allowed."""

    category: SafetyCategory
    reason: str  # plain words, e.g. "sexual content involving minors is not allowed"

    @property
    def message(self) -> str:
        return f"This prompt was blocked by the safety filter: {self.reason}."


def _first_match(text: str, *, gated: bool = True) -> Rule | None:
    """The first rule matching normalised ``text``.  ``gated=False`` (for tests) skips the gate
    and tries every clause at every word start; it must always give the same answer."""
    matched = matched_clauses(" " + text, gated=gated)
    if matched:
        for rule, ids in zip(RULES, RULE_CLAUSE_IDS, strict=True):
            if all(i in matched for i in ids):
                return rule
    return None


def check_prompt(prompt: str) -> SafetyVerdict | None:
    """Check a prompt.  Returns ``None`` when it is allowed, else why it was blocked."""
    rule = _first_match(normalise(prompt))
    if rule is None:
        return None
    return SafetyVerdict(rule.category, REASONS[rule.category])
