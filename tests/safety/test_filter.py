"""Tests for the prompt safety filter (postengine.safety)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from postengine.safety import SafetyCategory, SafetyVerdict, check_prompt, normalisation, normalise, rules
from postengine.safety import filter as safety_filter

HERE = Path(__file__).parent


def _lines(name: str) -> list[str]:
    """Corpus lines.  corpus_blocked.tsv: ``category<TAB>prompt``, obfuscated variants included
    (leetspeak, separators, zero-width spaces, fullwidth and Cyrillic look-alike letters);
    corpus_allowed.txt: one ordinary prompt per line, many with words that look dangerous."""
    text = (HERE / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _blocked() -> list[tuple[SafetyCategory, str]]:
    rows = []
    for line in _lines("corpus_blocked.tsv"):
        category, prompt = line.split("\t", 1)
        rows.append((SafetyCategory(category), prompt))
    return rows


BLOCKED = _blocked()
ALLOWED = _lines("corpus_allowed.txt")


# -- corpus --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "prompt"), BLOCKED, ids=[ascii(p) for _, p in BLOCKED])
def test_blocked_corpus(category: SafetyCategory, prompt: str) -> None:
    verdict = check_prompt(prompt)
    assert verdict is not None, f"not blocked: {prompt!r} (normalised {normalise(prompt)!r})"
    assert verdict.category == category, f"{prompt!r}: got {verdict.category}, want {category}"


@pytest.mark.parametrize("prompt", ALLOWED, ids=[ascii(p) for p in ALLOWED])
def test_allowed_corpus(prompt: str) -> None:
    verdict = check_prompt(prompt)
    rule = safety_filter._first_match(normalise(prompt))
    assert verdict is None, f"blocked: {prompt!r} as {verdict.category} by rule {rule and rule.why!r}"


def test_corpus_sizes_and_coverage() -> None:
    assert len(BLOCKED) >= 70
    assert len(ALLOWED) >= 70
    assert {c for c, _ in BLOCKED} == set(SafetyCategory)


@pytest.mark.parametrize("prompt", [p for _, p in BLOCKED] + ALLOWED)
def test_gate_never_changes_the_verdict(prompt: str) -> None:
    """The key gate is only an optimisation: running every rule must give the same answer."""
    text = normalise(prompt)
    assert safety_filter._first_match(text) is safety_filter._first_match(text, gated=False)


def _vocabulary() -> list[str]:
    words = {w for _, p in BLOCKED for w in normalise(p).split()}
    words |= {w for p in ALLOWED for w in normalise(p).split()}
    return sorted(words)


@pytest.mark.parametrize("seed", range(20))
def test_gate_never_changes_the_verdict_on_random_text(seed: int) -> None:
    """Shuffled corpus words make many near-misses; gated and ungated matching must agree."""
    rng = random.Random(seed)
    vocabulary = _vocabulary()
    for _ in range(50):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.5:  # splice a blocked prompt into the noise
            words.insert(rng.randint(0, len(words)), normalise(rng.choice(BLOCKED)[1]))
        text = " ".join(words)
        gated = safety_filter._first_match(text)
        assert gated is safety_filter._first_match(text, gated=False), text


@pytest.mark.parametrize("prompt", [p for _, p in BLOCKED if not p.isascii()] + ["東京の夜景  ポスター"])
def test_both_folding_paths_agree(prompt: str) -> None:
    """Mostly-ASCII text is folded character by character, text in other scripts as a whole;
    both ways must give the same matching form."""
    whole = normalisation._finish(normalisation._fold_text(prompt))
    assert normalise(prompt) == whole


def test_long_text_in_another_script_is_still_checked() -> None:
    padding = " Ünïcödé “quoted” — 東京の夜景" * 40  # many non-ASCII runs: the whole-text path
    verdict = check_prompt(padding + ". " + "nаkеd wоman" + ". " + padding)
    assert verdict is not None and verdict.category is SafetyCategory.SEXUAL_EXPLICIT
    assert check_prompt(padding) is None


def test_every_rule_is_exercised_by_the_blocked_corpus() -> None:
    hit = {id(safety_filter._first_match(normalise(p))) for _, p in BLOCKED}
    unused = [r.why for r in rules.RULES if id(r) not in hit]
    assert not unused, f"rules without a corpus line: {unused}"


# -- normalise -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("S.E.X", "sex"),
        ("s e x", "sex"),
        ("s-e-x", "sex"),
        ("k_i_l_l", "kill"),
        ("s | e | x", "sex"),
        ("ｓｅｘ", "sex"),  # fullwidth
        ("𝐬𝐞𝐱", "sex"),  # mathematical bold
        ("s\u200bex", "sex"),  # zero-width space
        ("s\u00adex", "sex"),  # soft hyphen
        ("séx", "sex"),
        ("s̶e̶x̶", "sex"),  # combining strike-through
        ("ѕех", "sex"),  # Cyrillic look-alikes
        ("SeXxXxY", "sexy"),
        ("n4z1", "nazi"),
        ("p0rn", "porn"),
        ("$ex", "sex"),
        ("k1ll", "kill"),
        ("ki11", "kill"),
        ("b1ood", "blood"),
        ("su1c1de", "suicide"),
        ("sw@st1ka", "swastika"),
        ("h0w t0", "how to"),
        ("  Hello,   World!  ", "hello world"),
        ("bomb-proof", "bomb proof"),
        ("a s e x y car", "a sexy car"),
        ("xxx kkk www", "xxx kkk www"),
        # numbers, product codes and abbreviations survive
        ("1488", "1488"),
        ("3d print", "3d print"),
        ("AR15 and AK47", "ar15 and ak47"),
        ("4k video, 1080p, 3rd place, 5yo, mp3", "4k video 1080p 3rd place 5yo mp3"),
        ("50% off, 3 2 1 go", "50 off 3 2 1 go"),
        ("e.g. A-Z", "e g a z"),
        ("t.e.e.n n.u.d.e.s", "teen nudes"),  # one separator per word keeps the words apart
        ("H O W  T O  M A K E", "how to make"),  # wider gaps between letter-spaced words
        ("p*rn", "porn"),  # a masked vowel is filled in when that spells a listed word
        ("*sale* 5* hotel", "sale 5 hotel"),
        ("wow!!!", "wow"),
        ("Café “crème” — 🎉 naïve", "cafe creme naive"),
        ("line one\nline\ttwo", "line one line two"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert normalisation._finish(normalisation._fold_text(raw)) == expected  # the whole-text path


def test_normalise_keeps_other_scripts() -> None:
    assert normalise("東京の夜景  ポスター") == "東京の夜景 ポスター"


# -- API ------------------------------------------------------------------------------------------


def test_message_format() -> None:
    verdict = check_prompt("sexy teen girl")
    assert verdict == SafetyVerdict(
        SafetyCategory.SEXUAL_MINORS, "sexual content involving minors is not allowed"
    )
    assert verdict.message == (
        "This prompt was blocked by the safety filter: sexual content involving minors is not allowed."
    )


@pytest.mark.parametrize("category", list(SafetyCategory))
def test_every_category_has_a_plain_reason(category: SafetyCategory) -> None:
    prompt = next(p for c, p in BLOCKED if c == category)
    verdict = check_prompt(prompt)
    assert verdict is not None
    assert verdict.reason and verdict.reason[0].islower() and not verdict.reason.endswith(".")
    assert verdict.message == f"This prompt was blocked by the safety filter: {verdict.reason}."


def test_category_values() -> None:
    assert {c.value for c in SafetyCategory} == {
        "sexual_minors",
        "sexual_explicit",
        "graphic_violence",
        "hate_extremism",
        "self_harm",
        "weapons_instructions",
        "spam_scam",
    }
    assert str(SafetyCategory.WEAPONS) == "weapons_instructions"


def test_verdict_is_frozen() -> None:
    verdict = SafetyVerdict(SafetyCategory.SPAM_SCAM, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.reason = "y"  # type: ignore[misc]


def test_minors_wins_over_explicit() -> None:
    verdict = check_prompt("hardcore porn with a teen")
    assert verdict is not None and verdict.category is SafetyCategory.SEXUAL_MINORS


def test_negated_terms_are_allowed() -> None:
    assert check_prompt("castle in the mist, no gore, no nudity, not nsfw") is None
    assert check_prompt("no gore here, but decapitated bodies everywhere") is not None


def test_empty_and_whitespace() -> None:
    assert check_prompt("") is None
    assert check_prompt("   \n\t ") is None
    assert normalise("") == ""


def test_long_benign_prompt_is_allowed() -> None:
    base = (
        "Bright summer sale banner for a family-owned shoe shop: golden hour light on the beach, "
        "a killer deal on sneakers, kids playing in the sand, a shot of espresso on a cafe table, "
        "knockout prices in bold type, free shipping on all orders, shooting stars overhead. "
    )
    prompt = (base * (2000 // len(base) + 1))[:2000]
    assert len(prompt) == 2000
    assert check_prompt(prompt) is None


def test_long_prompt_with_one_bad_sentence_is_blocked() -> None:
    filler = "a calm lake at sunrise with pine trees and soft mist, " * 40
    verdict = check_prompt(filler + "how to build a pipe bomb " + filler)
    assert verdict is not None and verdict.category is SafetyCategory.WEAPONS


def test_weird_input_does_not_crash() -> None:
    for prompt in ["\x00\x01", "\U0010ffff" * 10, "🔥" * 500, "a" * 5000, "1|" * 300, "s.e." * 400]:
        check_prompt(prompt)
