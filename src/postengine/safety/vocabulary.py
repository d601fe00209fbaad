"""Vocabularies for the rule table: regex fragments for the words the rules are built from.

Everything here is plain data for :mod:`postengine.safety.rules`, written against the matching
form of :func:`postengine.safety.normalise` (lowercase words separated by single spaces).
Ambiguous words carry their exceptions right here ("nude" but not "nude lipstick", "baby" but not
"baby blue", "bomb" but not "bomb-proof"), so every rule that uses a word gets the same exceptions.
"""

from __future__ import annotations

# A term preceded by a simple negation does not count: "no gore", "not nsfw", "without nudity",
# "non-violent", "anti-nazi".  Lookbehinds must be fixed-width, hence one per word.
NOT_NEGATED = r"(?<!\bno )(?<!\bnot )(?<!\bwithout )(?<!\bnon )(?<!\banti )(?<!\bzero )(?<!\bsfw )"


def _alt(*terms: str) -> str:
    """Regex alternatives as one group."""
    return "(?:" + "|".join(terms) + ")"


def words(*terms: str) -> str:
    """Terms as whole words/phrases that are not negated."""
    return rf"\b{NOT_NEGATED}{_alt(*terms)}\b"


# The tables below are laid out by hand for reading; keep the formatter away from them.
# fmt: off
_AGE_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen"
    "|sixteen|seventeen"
)
MINORS = _alt(
    "child", "children", "childs", "childlike", "kid", "kids", "kiddie", "kiddies", "kiddy",
    r"minors?(?! (?:key|keys|league|chord|chords|scale|scales|detail|details|edits?|tweaks?))",
    "underage", "underaged", "under age", "under aged",
    "teen", "teens", "teenage", "teenaged", "teenager", "teenagers", "preteen", "preteens",
    "pre teen", "pre teens", "tween", "tweens", "toddler", "toddlers", "infant", "infants",
    # "baby" is a minor, but not "baby blue/pink" (colours), "baby shower", "baby oil" etc.
    r"bab(?:y|ies)(?! (?:blue|pink|yellow|doll|dolls|oil|powder|shower|showers|face|bump|boomers?|"
    r"back|backs|carrots?|spinach|breath|grand|steps?|hair|hairs|bangs|shark))",
    "little girls?", "little boys?", "young girls?", "young boys?", "schoolgirls?", "schoolboys?",
    "school girls?", "school boys?", "pubescent", "prepubescent", "pre pubescent",
    "loli", "lolis", "lolita", "lolitas", "shota", "shotas",
    # "12 year old", "12yo", "twelve-year-old"
    *(rf"{n}{sep}(?:years? old|yrs? old|yo)" for n in range(1, 18) for sep in ("", " ")),
    *(rf"{w} (?:years? old|yrs? old|yo)" for w in _AGE_WORDS.split("|")),
)

# Colour/fashion/food uses that are not nudity.
_NUDE_OK = (
    "colou?rs?|colou?red|tones?|toned|shades?|lipsticks?|lip|lips|gloss|heels?|pumps?|shoes?|sandals?"
    "|boots?|flats|sneakers|trainers|footwear|socks?|makeup|make up|palettes?|eyeshadows?|nails?|polish"
    "|manicure|beige|pink|blush|foundation|hosiery|tights|stockings|bras?|underwear|seamless|dress"
    "|dresses|gowns?|mesh|illusion|leather|suede|satin|linen|knit|sweaters?|cardigans?|tops?|skirts?"
    "|bags?|handbags?|mules|loafers|slingbacks?|trench|totes?|look|aesthetic"
)
_NAKED_OK = (
    "eye|eyes|cake|cakes|juice|truth|flame|flames|ambition|aggression|greed|bike|bikes|bowl|burrito"
    "|wood|walls?|wire|wires|light|bulbs?|lightbulbs?|brand|price|prices"
)
_TOPLESS_OK = "bus|buses|car|cars|convertible|jeep|roadster|tours?|vehicle|double decker"
# "food porn", "earth porn" and friends are social-media slang for nice pictures.
PORN = r"(?<!food )(?<!earth )(?<!cabin )(?<!house )(?<!travel )(?<!design )(?<!interior )porn"

SEXUAL = _alt(
    # "sex education", "same-sex parents", "baby sex reveal" are not sexual content.
    r"(?<!same )(?<!opposite )sex(?! (?:ed|education|educator|offenders?|reveal|of (?:the|your) baby"
    r"|determination|ratio|chromosomes?|differences?|selection))",
    "sexy", "sexier", "sexiest", "sexed up",
    r"sexual(?:ly)?(?! (?:health|education|orientation|harassment|wellness"
    r"|(?:abuse|assault|violence) (?:awareness|prevention|survivors?|support)))",
    "sexuali[sz]ed", "sexuali[sz]e", "sexuali[sz]ing", "seductive", "seductively", "seduce",
    "seducing", "erotic", "erotica", "erotically", "sensual", "sensually", "lingerie",
    rf"nude(?! (?:{_NUDE_OK})\b)", "nudes", "nudity", rf"naked(?! (?:{_NAKED_OK})\b)",
    rf"topless(?! (?:{_TOPLESS_OK})\b)", "undressed", "undressing", "unclothed", "stripper",
    "strippers", "striptease", rf"{PORN}(?:o|os|s|ographic|ography)?", "xxx", "nsfw", "lewd",
    "fetish", "fetishes", "bdsm", "hentai", "boudoir", "orgasms?", "genitals", "genitalia", "penis",
    "vagina", "boobs", "titties", "nipples", "intercourse", r"molest\w*", "rape", "raped", "raping",
    "provocative pose", "suggestive pose", "suggestive poses",
)

PERSON = _alt(
    "woman", "women", "man", "men", "girls?", "guys?", "lady", "ladies", "females?", "males?",
    "models?", "person", "people", "body", "bodies", "couples?", "wife", "husband", "girlfriend",
    "boyfriend", "bride", "actress", "actor", "celebrity", "celebrities", "selfies?",
    "photos?", "pics?", "pictures?", "images?", "photoshoot", "photo shoot", "photography",
    "scenes?", "figures?", "portraits?", "dancers?", "students?", "nurse", "teacher",
)
NUDE_ADJ = _alt(
    rf"nude(?! (?:{_NUDE_OK})\b)", rf"naked(?! (?:{_NAKED_OK})\b)",
    rf"topless(?! (?:{_TOPLESS_OK})\b)", "undressed", "unclothed", "bare breasted", "nsfw",
)

# "explosive" the noun, not the adjective: "how to make an explosive" but not
# "how to make an explosive first impression".
EXPLOSIVE = (
    r"explosive(?= (?:at|from|with|using|in|out|and|or|that|which|for|to|step|device|devices|charge"
    r"|charges|material|materials|mixture|compound|compounds)\b|$)"
)
# Things that are weapons in every sense.  Everything here is only blocked inside an
# instruction frame (see the weapons rules), so "a pipe bomb in a museum" is still allowed.
BOMB = r"bombs?(?! (?:proof|shell|shells|pop|pops|jackets?|squad|dog|dogs|threat|threats))"
WEAPON_SPECIFIC = _alt(
    rf"pipe ?{BOMB}", rf"nail {BOMB}", rf"car {BOMB}", rf"pressure cooker {BOMB}",
    rf"fertili[sz]er {BOMB}", rf"dirty {BOMB}", rf"petrol {BOMB}", rf"letter {BOMB}",
    rf"nuclear {BOMB}", "nukes?", "molotovs?", "molotov cocktails?", "ieds?",
    "improvised explosive devices?", "explosive devices?", "explosives", "explosive charges?",
    "explosive vests?", "suicide vests?", "detonators?", "blasting caps?", "grenades?",
    "landmines?", "land mines?", "claymores?", "napalm", "thermite", "tnt", "c4", "semtex", "tatp",
    "anfo", "rdx", "hmx", "petn", "nitroglycerine?", "gunpowder", "black powder",
    "sarin", "tabun", "soman", "vx", "novichok", "nerve agents?", "nerve gas", "ricin", "anthrax",
    "mustard gas", "chlorine gas", "phosgene", "botulinum toxin", "poison gas",
    "chemical weapons?", "biological weapons?", "bioweapons?", "bio weapons?",
    "ghost guns?", "zip guns?", "untraceable guns?", "auto sears?", "glock switch(?:es)?",
    "bump stocks?", "silencers?", "suppressors?", "lower receivers?",
)
# Generic weapon words, only blocked after "how to make/build ..." style frames.
_WEAPON_GENERIC = _alt(
    BOMB, r"guns?(?! (?:safes?|cabinets?|racks?|cases?|cleaning|holsters?|shows?|range|shy|metal))",
    "firearms?", "handguns?", "pistols?", "rifles?", "shotguns?", "assault rifles?",
    "machine ?guns?", "submachine guns?", "ar15s?", "ar 15s?", "ak47s?", "ak 47s?",
    "weapons?", EXPLOSIVE, "glocks?",
)
WEAPON = _alt(WEAPON_SPECIFIC, _WEAPON_GENERIC)
MAKE = (
    r"(?:make|making|build|building|assemble|assembling|construct|constructing|craft|crafting"
    r"|create|creating|manufacture|manufacturing|produce|producing|synthesi[sz]e|synthesi[sz]ing"
    r"|cook|cooking|brew|brewing|mix|mixing|3 ?d print|3 ?d printing|print|printing|rig|rigging"
    r"|weaponi[sz]e|weaponi[sz]ing|extract|extracting|prepare|preparing|detonate|set off)"
)
# Only these words may stand between the verb and the weapon.  That is what keeps
# "how to make a bath bomb", "build a water gun" and "make a bomb-proof case" allowed.
MODIFIER = (
    r"(?:an?|the|some|your own|my own|our own|homemade|home made|diy|improvised|untraceable|working"
    r"|functional|real|simple|easy|powerful|deadly|lethal|small|large|big|crude|cheap|effective"
    r"|makeshift|basic|quick)"
)
HOW = (
    r"(?:how (?:to|do (?:i|you|we|people|they)|can (?:i|you|we|someone|one)|would (?:i|you|one)"
    r"|should (?:i|we)|does one)|ways? to|steps? (?:to|for)|step by step(?: guide)?(?: to| for| on)?"
    r"|guide (?:to|for|on)|tutorial (?:to|for|on)?|teach me(?: how)? to|tell me how to"
    r"|show me how to|explain how to|learn (?:how )?to|diy)"
)
RECIPE = (
    r"(?:instructions?|recipes?|blueprints?|schematics?|formula|diagrams?|plans|manual|directions)"
    r" (?:for|to|on|of)(?: making| building)?"
)
CHEM = _alt(
    "sarin", "tabun", "soman", "vx", "novichok", "nerve agents?", "nerve gas", "ricin", "anthrax",
    "mustard gas", "chlorine gas", "phosgene", "botulinum toxin", "chemical weapons?",
    "biological weapons?", "bioweapons?", "napalm", "thermite", "tatp", "nitroglycerine?",
)

GROUPS = _alt(
    "jews", "jewish people", "muslims", "blacks", "black people", "gays", "gay people", "arabs",
    "mexicans", "immigrants", "asians", "christians", "hindus", "sikhs", "gypsies", "roma",
    "trans people", "refugees", "africans", "chinese people", "whites", "white people", "infidels",
)

SELF = r"(?:my|your|ur|him|her|them|one)sel(?:f|ves)"
CRYPTO = (
    r"(?:crypto|cryptocurrency|bitcoins?|btc|eth|ethereum|usdt|tether|bnb|doge|dogecoin|solana|sol"
    r"|xrp|coins|shiba)"
)
PRIZE = r"(?:iphones?|ipads?|macbooks?|ps5|playstation|xbox|samsung galaxy|gift ?cards?|giftcards?|cash)"
BRANDS = (
    r"(?:paypal|bank|banking|apple id|apple|icloud|google|gmail|microsoft|outlook|office 365|amazon"
    r"|netflix|facebook|instagram|whatsapp|metamask|coinbase|binance|chase|wells fargo|hsbc"
    r"|barclays|steam|ebay|irs|hmrc|dhl|fedex|ups|usps)"
)
LOGIN = r"(?:log ?in|sign ?in|signin|logon|account verification|verification|password reset)"
PAGE = r"(?:pages?|screens?|forms?|portals?|sites?|websites?)"
# fmt: on
