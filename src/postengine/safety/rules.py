"""The rule table: categories, the reasons shown to users, and the rules as plain data.

How the rules work
==================

The rule table (:data:`RULES`, plain data further down) is a list of regexes per category,
matched against the normalised prompt (see :mod:`postengine.safety.normalisation`).  Rules match
whole words only, so innocent words that merely *contain* a bad string ("Scunthorpe", "Essex",
"cocktail", "Hitchcock", "grape", "therapist") never match.  Ambiguous words carry explicit
exceptions ("gore" but not "Gore-Tex", "nude" but not "nude lipstick").  Terms preceded by a
simple negation ("no gore", "without nudity") do not count, because people often write negative
instructions into image prompts.  A rule may have several patterns that must all match somewhere
in the prompt (that is how "a child" + "a sexual term" works).

The first matching rule in table order wins.  The order is: sexual content involving minors,
explicit sexual content, self-harm, weapons instructions, graphic violence, hate and extremism,
spam and scams.  Minors come first, so "teen" + "porn" is always reported as ``sexual_minors``
and never as ``sexual_explicit``.

Every rule pattern must start with literal text (its *key*: "how to ", "swastika", "kill my"...),
which the keyword gate (:mod:`postengine.safety.gate`) files the pattern under; a pattern without
one is refused when the module is imported.

Judgement calls (documented here so they are easy to revisit)
=============================================================

* "sexy" on its own is **allowed** ("sexy red sports car", "sexy summer dress" are ordinary
  marketing copy).  It is still a *sexualising* word, so "sexy" together with any word for a child
  anywhere in the prompt is blocked as ``sexual_minors``.  The minors check looks at the whole
  prompt rather than a window of words, which is deliberately conservative: padding cannot be used
  to split "teen ... nude" apart, at the price of blocking the odd department-store prompt that
  advertises kids' pyjamas and lingerie in one breath.
* "nude"/"naked"/"topless" are blocked only next to a person or photo word ("nude woman",
  "naked model", "nude photos"), never as a colour or style ("nude lipstick", "naked cake",
  "topless bus tour").  "nudes" and "nudity" are always blocked.
* Weapons: pictures of weapons are allowed; *instructions* to make or modify them are not
  ("how to make a bomb", "build a pipe bomb", "3d print a gun", "synthesize sarin").  Things that are
  merely called bombs or guns ("bath bomb", "photo bomb", "water gun", "glue gun", "bomb-proof case")
  are allowed because only a closed list of words may sit between the verb and the weapon.
* Self-harm: instructions and encouragement are blocked ("how to kill myself", "cutting myself",
  "suicide methods", "pro-ana tips"); awareness and prevention material is allowed.
* Hate: a short list of slurs, symbols and slogans.  "nazi" alone is allowed (history posters,
  "grammar nazi"), "nazi flag/salute/propaganda" is not; "white power" is blocked but
  "white power bank" is not; "1488" is blocked except as a house number ("1488 Main Street").
* Spam: "guaranteed returns" is blocked as an investment promise, but "guaranteed returns within
  30 days" (a shop's returns policy) and "free returns guaranteed" are not.  Giveaways are allowed
  unless they push a click/claim ("free iPhone, click here").
* Negation: "no gore, no nudity" in a prompt is an instruction, not a request, so a term right
  after "no", "not", "without", "non", "anti", "zero" or "sfw" does not count.
* Only the categories in the spec are filtered; drugs, profanity and the like are out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from postengine.safety.vocabulary import (
    BOMB,
    BRANDS,
    CHEM,
    CRYPTO,
    EXPLOSIVE,
    GROUPS,
    HOW,
    LOGIN,
    MAKE,
    MINORS,
    MODIFIER,
    NOT_NEGATED,
    NUDE_ADJ,
    PAGE,
    PERSON,
    PORN,
    PRIZE,
    RECIPE,
    SELF,
    SEXUAL,
    WEAPON,
    WEAPON_SPECIFIC,
    words,
)

__all__ = ["REASONS", "RULES", "Rule", "SafetyCategory"]


class SafetyCategory(StrEnum):
    SEXUAL_MINORS = "sexual_minors"
    SEXUAL_EXPLICIT = "sexual_explicit"
    GRAPHIC_VIOLENCE = "graphic_violence"
    HATE_EXTREMISM = "hate_extremism"
    SELF_HARM = "self_harm"
    WEAPONS = "weapons_instructions"
    SPAM_SCAM = "spam_scam"


REASONS: dict[SafetyCategory, str] = {
    SafetyCategory.SEXUAL_MINORS: "sexual content involving minors is not allowed",
    SafetyCategory.SEXUAL_EXPLICIT: "explicit sexual content is not allowed",
    SafetyCategory.GRAPHIC_VIOLENCE: "graphic violence and gore are not allowed",
    SafetyCategory.HATE_EXTREMISM: "hateful or extremist content is not allowed",
    SafetyCategory.SELF_HARM: "content that encourages or explains self-harm is not allowed",
    SafetyCategory.WEAPONS: "instructions for making weapons or explosives are not allowed",
    SafetyCategory.SPAM_SCAM: "spam, scams and phishing content are not allowed",
}


@dataclass(frozen=True, slots=True)
class Rule:
    category: SafetyCategory
    why: str  # for maintainers and debugging; never shown to users
    patterns: tuple[str, ...]  # all must match somewhere in the prompt (AND)


def _rule(category: SafetyCategory, why: str, *patterns: str) -> Rule:
    """A rule that fires when every pattern matches somewhere (usually just one pattern)."""
    return Rule(category, why, patterns)


def _terms(category: SafetyCategory, why: str, *terms: str) -> Rule:
    """Block any of ``terms`` as a whole word/phrase, unless negated."""
    return _rule(category, why, words(*terms))


# The table below is laid out by hand for reading; keep the formatter away from it.
# fmt: off
# ---------------------------------------------------------------------------------------------
# The rule table.  Order matters: the first matching rule wins.
# ---------------------------------------------------------------------------------------------
_C = SafetyCategory

RULES: tuple[Rule, ...] = (
    # -- sexual content involving minors (checked first, wins over sexual_explicit) -----------
    _terms(
        _C.SEXUAL_MINORS,
        "terms that only ever mean sexualised minors",
        "csam", "pedos?", "paedos?", "pedophiles?", "paedophiles?", "pedophilia", "paedophilia",
        "pedophilic", "paedophilic", "pedobear", "lolicon", "shotacon", "jailbait", "child abuse material",
        "child sexual abuse material", "child exploitation material",
    ),
    _rule(
        _C.SEXUAL_MINORS,
        "a word for a child and a sexualising word anywhere in the same prompt",
        words(MINORS),
        words(SEXUAL),
    ),
    # -- explicit sexual content ---------------------------------------------------------------
    _terms(
        _C.SEXUAL_EXPLICIT,
        "explicit sexual terms",
        rf"{PORN}(?:o|os|s|ographic|ography|hub)?", "xxx", "nsfw", "hentai", "rule ?34", "nudes",
        "nudity", "full frontal", "x rated", "xrated", "smut", "smutty", "lewd",
        "sex (?:scenes?|acts?|tapes?|videos?|positions?|dolls?|slaves?|shows?|cams?)",
        "having sex", "have sex", "has sex", "oral sex", "anal sex", "group sex", "explicit sex",
        "sexual intercourse", "sexual acts?", "sexual positions?", "sexually explicit",
        "explicit (?:nudity|nude|porn|sexual)", "orgy", "orgies", "orgasms?", "orgasmic",
        "blow ?jobs?", "handjobs?", "footjobs?", "rimjobs?", "deepthroat(?:ing)?", "cumshots?",
        "cumming", "cum (?:on|dripping|covered|shot|facial)", "covered in cum", "creampies?",
        "gang ?bangs?", "bukkake", "threesomes?", r"masturbat\w*", r"ejaculat\w*",
        "erect (?:penis|cock|dick)", "penis(?:es)?", "vaginas?", "vulvas?", "genitals",
        "genitalia", "clitoris", "labia", "dildos?", "upskirts?", "downblouse", "dick pics?",
        "striptease", "bdsm", "erotic", "erotica", "incest", "bestiality", "zoophilia",
        "necrophilia", "rape", "raped", "raping", "rapists?", "fully (?:nude|naked)",
        "completely (?:nude|naked)", "totally (?:nude|naked)", "stark naked",
    ),
    _rule(
        _C.SEXUAL_EXPLICIT,
        "nude/naked/topless next to a person or photo word (not 'nude lipstick', 'naked cake')",
        rf"\b{NOT_NEGATED}{NUDE_ADJ}(?: \w+){{0,2}} {PERSON}\b"
        rf"|\b{PERSON}(?: \w+){{0,2}} {NOT_NEGATED}{NUDE_ADJ}\b",
    ),
    # -- self-harm instructions and encouragement ---------------------------------------------
    _rule(
        _C.SELF_HARM,
        "doing harm to oneself ('cutting myself', 'kill yourself'), not 'cut myself a slice'",
        r"\b(?<!don t )(?<!dont )(?<!never )(?<!not )(?<!no )"
        r"(?:kill|killing|hang|hanging|cut|cutting|harm|harming|poison|poisoning|drown|drowning"
        rf"|starve|starving|stab|stabbing|slit|slitting) {SELF}\b"
        r"(?! (?:a|an|some|free|loose|off|short|laughing|with laughter|slack)\b)",
    ),
    _rule(
        _C.SELF_HARM,
        "asking how to end one's life or self-harm",
        rf"\b{HOW} (?:\w+ ){{0,3}}?(?:commit suicide|suicide|kill {SELF}|end (?:my|your|one s|his|her)"
        rf" (?:own )?life|self ?harm|hurt {SELF}|overdose|od|die painlessly|starve {SELF})\b",
    ),
    _terms(
        _C.SELF_HARM,
        "suicide/self-harm methods, pro-eating-disorder content",
        "suicide (?:methods?|instructions?|guides?|tips|techniques?|tutorials?|kits?)",
        "self harm (?:tips|methods?|ideas|techniques?|instructions?|guides?|tutorials?|tools)",
        "selfharm (?:tips|methods?|ideas|techniques?|instructions?|guides?|tutorials?)",
        "painless (?:suicide|death|way to die)", "pro ?ana", "pro ?mia", "thinspo", "thinspiration", "meanspo", "bonespo", "bonespiration", "kys",
        r"end (?:my|your) (?:own )?life", "lethal dose (?:of|to)",
        "how many pills to (?:die|kill|overdose)",
    ),
    _rule(
        _C.SELF_HARM,
        "encouraging or glorifying self-harm, suicide or eating disorders",
        r"\b(?:encourag(?:e|es|ing)|promot(?:e|es|ing)|glorif(?:y|ies|ying)|romantici[sz](?:e|es|ing))"
        r" (?:\w+ ){0,2}?(?:self ?harm|suicide|anorexia|bulimia|eating disorders?|starving)\b",
    ),
    # -- weapons instructions -------------------------------------------------------------------
    _rule(
        _C.WEAPONS,
        "'how to make/build a <weapon>' and similar instruction frames",
        rf"\b{HOW} (?:\w+ ){{0,2}}?{MAKE} (?:{MODIFIER} ){{0,4}}{WEAPON}\b",
    ),
    _rule(
        _C.WEAPONS,
        "'instructions/recipe/blueprint for a <weapon>'",
        rf"\b{RECIPE} (?:{MODIFIER} ){{0,4}}{WEAPON}\b",
    ),
    _rule(
        _C.WEAPONS,
        "imperative 'build a pipe bomb', 'make napalm', 'synthesize sarin', 'make a bomb'",
        rf"\b{MAKE} (?:{MODIFIER} ){{0,4}}(?:{WEAPON_SPECIFIC}|{BOMB}|{EXPLOSIVE})\b(?! ass\b)",
    ),
    _rule(
        _C.WEAPONS,
        "'pipe bomb tutorial', 'napalm recipe', 'diy ghost gun'",
        rf"\b{WEAPON_SPECIFIC} (?:making )?(?:tutorials?|instructions|recipes?|guides?|blueprints?"
        rf"|schematics?|step by step|diy|how to)\b|\bdiy (?:{MODIFIER} ){{0,4}}{WEAPON_SPECIFIC}\b",
    ),
    _rule(
        _C.WEAPONS,
        "3D-printed firearms",
        r"\b3 ?d print(?:ed|ing|s)? (?:(?:an?|the|your own|my own|working|functional|untraceable) ){0,4}"
        r"(?:guns?|firearms?|pistols?|rifles?|handguns?|lower receivers?|receivers?|glocks?|ar ?15s?"
        r"|weapons?|ghost guns?)\b",
    ),
    _rule(
        _C.WEAPONS,
        "synthesis of chemical agents, bomb-making manuals, full-auto conversions",
        rf"\bsynthesis (?:of|for) {CHEM}\b|\b(?<!bath )(?<!fizzy )(?<!seed )bomb ?making\b"
        r"|\banarchist cookbook\b"
        r"|\bconvert(?:ing)? (?:\w+ ){0,3}?(?:to|into) (?:full auto|fully automatic|full automatic"
        r"|automatic fire|a machine gun)\b",
    ),
    # -- graphic violence and gore --------------------------------------------------------------
    _terms(
        _C.GRAPHIC_VIOLENCE,
        "gore vocabulary ('gore' but not 'Gore-Tex' or 'Al Gore')",
        "(?<!al )gore(?! tex)", "gory(?! details?)", "gorey", "goriest", "guro", "splatter gore",
        r"dismember\w*", r"decapitat\w*", "behead", "beheads", "beheaded", "beheading",
        "beheadings", r"disembowel\w*", r"eviscerat\w*", r"(?<!genital )mutilat\w*",
        "severed (?:heads?|limbs?|arms?|legs?|hands?|fingers?|bod(?:y|ies)|torsos?|feet|foot)",
        "blood ?soaked", "soaked in blood", "blood ?drenched", "drenched in blood",
        "covered in blood", "(?<!fake )blood splatter(?:ed|s)?", "(?<!fake )blood spatter(?:ed|s)?", "pools? of blood",
        "gushing blood", "blood gushing", "spilling (?:guts|intestines|entrails|brains|organs)",
        "guts spill\\w*", "entrails", "intestines (?:hanging|spilling|out)",
        "exposed (?:organs|intestines|brains?|entrails)", "brains? (?:splattered|blown out)",
        "brain matter", "head blown off", "skinned alive", "flayed", "flaying", "burned alive",
        "burnt alive", "burning alive", "impaled (?:bod(?:y|ies)|corpses?|person|people|man|woman"
        "|victims?|head|heads|on)",
        "gouged out eyes?", "eyes? gouged(?: out)?", "slit (?:his|her|their|its|a) throat",
        "throats? slit", "slit throats?", "slitting (?:his|her|their|its|a) throat",
        "mangled (?:bod(?:y|ies)|corpses?|remains)", "rotting (?:corpses?|bod(?:y|ies)|flesh)",
        "bloody (?:corpses?|bod(?:y|ies)|massacre|remains|carcass|stumps?)",
        "torture (?:scene|video|footage)", "snuff (?:films?|movies?|videos?)",
        "execution (?:video|footage)", "mass shootings?", "school shootings?", "blood and gore",
    ),
    # -- hate and extremism --------------------------------------------------------------------
    _terms(
        _C.HATE_EXTREMISM,
        "extremist symbols, slogans and codes",
        "swastikas?", "hakenkreuz", "sonnenrad", "wolfsangel", "totenkopf",
        "ss (?:runes?|bolts|lightning bolts|insignia)", "sieg heil", "heil hitler", "hail hitler",
        "heil (?:\\w+ )?hitler",
        "hitler (?:was right|did nothing wrong|salute|saluting)",
        "nazi (?:flags?|propaganda|salutes?|saluting|symbols?|banners?|rally|rallies|armbands?"
        "|insignia|emblems?|regalia|posters?|recruitment|glorification)",
        "neo ?nazis?", "neonazis?", "third reich (?:flags?|propaganda|eagle|banners?)",
        "white power(?! (?:banks?|strips?|adapters?|cables?|cords?|outlets?|supply|supplies|buttons?"
        "|sockets?|tools?|drills?|stations?|plugs?|bars?|bricks?|cells?|leds?|chargers?"
        "|sources?|switch(?:es)?|suits?|showers?|rangers?|lines?|cords?|poles?|grids?))",
        "white pride", "white genocide", "white supremacist (?:flags?|propaganda|symbols?|posters?"
        "|logos?|rally|rallies|recruitment)",
        "white supremacy (?:propaganda|flags?|symbols?|posters?)",
        # 14 words + "88" = "HH"; but a house number is just a house number
        r"1488(?! (?:\w+ )?(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|way|court"
        r"|ct|place|pl)\b)",
        "14 88", "kkk", "ku klux klan",
        "klan (?:rally|rallies|robes?|hoods?|flags?)", "klansm[ae]n",
        *(
            f"{group} (?:flags?|propaganda|banners?|recruitment|posters?|beheading videos?|execution videos?)"
            for group in ("isis", "daesh", "isil", "islamic state", "al qaeda", "al qaida", "jihadist", "jihadi")
        ),
        "blood and hono(?:u)?r", "holocaust (?:denial|hoax|is a lie|was a lie|never happened"
        "|was fake|is fake)",
        # A short list of slurs; this is a filter, so they have to be written down.
        "niggers?", "niggas?", "nigg(?:a|e)z", "sandniggers?", "faggots?", "kikes?", "wetbacks?",
        "ragheads?", "towelheads?", "gooks?", "spics?(?! and span)", "pakis", "paki", "beaners?",
    ),
    _rule(
        _C.HATE_EXTREMISM,
        "calls for violence against, or dehumanising statements about, a group",
        rf"\b(?:kill|gas|exterminate|eradicate|lynch|hang|burn|shoot|deport) (?:all )?(?:the )?"
        rf"{GROUPS}\b|\bdeath to (?:all )?(?:the )?{GROUPS}\b"
        rf"|\b{GROUPS} (?:are|r) (?:\w+ )?(?:vermin|subhuman|sub human|animals|rats|parasites"
        r"|cockroaches|a disease|a plague|inferior|filth|scum)\b",
    ),
    # -- spam, scams and phishing ---------------------------------------------------------------
    _terms(
        _C.SPAM_SCAM,
        "investment-scam promises",
        "guaranteed (?:\\d+ (?:percent |x )?)?(?:(?:daily|weekly|monthly|annual|annuali[sz]ed|high"
        "|huge|massive|passive|fixed|crypto|investment|forex|trading|100 percent) ){0,4}"
        "(?:returns?|profits?|income|roi|gains|payouts?)(?! (?:within|policy|window|on all orders))",
        *(
            f"{what} (?:are |is )?(?:100 (?:percent )?)?guaranteed"
            for what in ("profits?", "roi", "gains", "income")
        ),
        "risk ?free (?:investments?|returns?|profits?|income|trading|crypto)",
        "get rich (?:quick|fast|overnight)",
        rf"double (?:your )?{CRYPTO}", "double (?:your )?(?:money|investment|deposit|funds)",
        rf"doubling (?:your )?{CRYPTO}", rf"{CRYPTO} doubler",
    ),
    _rule(
        _C.SPAM_SCAM,
        "'send crypto to ...', 'wire money to claim your prize', advance-fee scams",
        rf"\bsend (?:(?:\d+|your|some|me|us|any|the|all) ){{0,4}}{CRYPTO} (?:to|and|at|via)\b"
        r"|\b(?:wire|send|transfer|pay) (?:\w+ ){0,5}?to (?:claim|release|receive|unlock|collect)"
        r" (?:your |the |my )?(?:\w+ )?(?:prize|winnings|reward|inheritance|lottery|funds|payout)\b"
        r"|\b(?:processing|release|clearance|transfer|unlock) fee to (?:claim|release|receive|unlock)\b",
    ),
    _rule(
        _C.SPAM_SCAM,
        "'free iPhone, click here', 'you have won ... claim'",
        rf"\b(?:free|win|won|claim) (?:(?:a|an|your|the|free|brand new|new|\d+) ){{0,4}}{PRIZE}\b"
        r"(?: \w+){0,6}? (?:click|tap|claim|dm)\b"
        r"|\b(?:click|tap) (?:(?:here|now|the|this|link|below|on) ){0,4}(?:to|and) (?:claim|win|get|collect"
        rf"|receive) (?:\w+ ){{0,3}}?(?:free|prize|reward|rewards|winnings|{PRIZE})\b"
        # "you have won", "you ve won", "you are a winner", "you are selected": keyed on "won" etc.
        r"|(?<=(?:you|ave|are| ve| re) )(?:won(?! t\b)|winner|selected|a winner|a lucky winner|the winner"
        r"|the lucky winner|our winner|our lucky winner|been selected)\b(?: \w+){0,6}?"
        r" (?:claim|click|tap|send|wire|pay)\b",
    ),
    _rule(
        _C.SPAM_SCAM,
        "phishing: fake/cloned login pages, account-suspension threats, seed-phrase requests",
        rf"\b(?:fake|cloned?|clone of|spoof(?:ed)?|phishing|counterfeit|lookalike|look alike|replica"
        rf"|copycat|imitation|fraudulent) (?:\w+ ){{0,3}}?{LOGIN} {PAGE}\b"
        rf"|\b{LOGIN} {PAGE} (?:clone|replica|copy|lookalike|spoof|phish\w*)\b"
        rf"|\b(?:clone|copy|replicate|mimic|imitate|spoof) (?:the |a |an )?(?:\w+ ){{0,2}}?{LOGIN} {PAGE}\b"
        rf"|\b(?:fake|spoofed|cloned) {BRANDS} (?:\w+ )?(?:page|website|site|email|login|portal)\b"
        r"|\bphishing (?:kit|kits|template|templates)\b"
        r"|\b(?:verify|confirm|update) your (?:account|bank details|payment details|password|identity"
        r"|card details) (?:\w+ ){0,4}?(?:or|otherwise) (?:it |your account |account )?(?:will be|gets|get)"
        r" (?:suspended|closed|locked|deleted|terminated|disabled)\b"
        r"|\b(?:enter|share|send|type|submit|verify) (?:your )?(?:wallet )?(?:seed|recovery|secret)"
        r" phrase\b|\b(?:enter|share|send|submit) (?:your )?(?:wallet )?private key\b",
    ),
    _rule(
        _C.SPAM_SCAM,
        "work-from-home money claims",
        r"\b(?:earn|make) (?:up to )?\d[\d ]* (?:dollars |usd |bucks |euros |pounds |k )?(?:a|per|every|each)"
        r" (?:day|hour|week) (?:from|at|working from) home\b",
    ),
)
# fmt: on
