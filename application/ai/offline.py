"""The deterministic offline analyzer: lexicon sentiment with negation and intensifiers, urgency
from time words, deadlines, repetition and emphasis, intent by weighted keyword rules, and an
extractive summary — for pt-BR and English. The embedded default and the fallback of any model."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from application.ai import lexicons, rules
from application.ai.ports import Intent, MessageAnalysis

SUMMARY_LIMIT = 200
# longer messages are read up to here: a pasted log must not make analysis unbounded
READ_LIMIT = 5_000
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# words and clause punctuation: negation and boosters do not reach across a comma
_WORD_OR_STOP = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,.;:!?]")
_RAW_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?…\n])\s+|\n+")
_ACCENTED = re.compile(r"[ãõçâêôáéíóú]")


class OfflineAnalyzer:
    """Implements `MessageAnalyzer` without a network or a model: same text, same analysis."""

    def analyse(self, text: str, *, context: Sequence[str] = ()) -> MessageAnalysis:
        text = text[:READ_LIMIT]
        plain = lexicons.normalize(text)
        tokens: list[str] = _WORD_OR_STOP.findall(plain)
        language = detect_language(text, tokens)
        sentiment, hits = score_sentiment(text, tokens, language)
        intent, intent_weight = classify_intent(plain, sentiment)
        urgency = score_urgency(text, plain, sentiment, context)
        return MessageAnalysis(
            sentiment=round(sentiment, 3),
            confidence=_confidence(sentiment, hits, intent_weight),
            urgency=urgency,
            intent=intent,
            summary=summarize(text),
            language=language,
            model="offline",
        )


def detect_language(text: str, tokens: Sequence[str]) -> str:
    """ "pt" or "en" by stopword counts; Portuguese accents tip the balance; pt when unsure."""
    pt = sum(t in lexicons.STOPWORDS["pt"] for t in tokens)
    en = sum(t in lexicons.STOPWORDS["en"] for t in tokens)
    pt += 2 * len(_ACCENTED.findall(text.lower()[:500]))
    return "en" if en > pt else "pt"


def score_sentiment(text: str, tokens: Sequence[str], language: str) -> tuple[float, int]:
    """VADER's scheme, compacted: valence per word, boosted, flipped by a negation within three
    words, weighted around "but"; emphasis by "!" and CAPS; normalised to -1..1."""
    lexicon = lexicons.valences(language)
    negators = lexicons.NEGATORS[language]
    boosters = lexicons.BOOSTERS[language]
    shouted = _shouted_words(text)
    scores: list[float] = []
    contrast_at = -1
    for i, token in enumerate(tokens):
        if token in lexicons.CONTRAST[language]:
            contrast_at = len(scores)
        valence = lexicon.get(token) or _plural_valence(lexicon, token, language)
        if not valence or token in boosters or _is_salutation(tokens, i):
            continue
        sign = math.copysign(1.0, valence)
        window = _clause_window(tokens, i)
        valence += sign * sum(boosters.get(w, 0.0) for w in window[-2:])
        if token in shouted:
            valence += sign * 0.733
        if any(w in negators for w in window):
            valence *= -0.74
        scores.append(valence)
    scores += [lexicons.EMOJI[c] for c in text if c in lexicons.EMOJI]
    if contrast_at >= 0:
        scores = [s * (0.5 if i < contrast_at else 1.5) for i, s in enumerate(scores)]
    total = sum(scores)
    if total:
        total += math.copysign(min(text.count("!"), 4) * 0.292, total)
    return total / math.sqrt(total * total + 15), len(scores)


def _plural_valence(lexicon: lexicons.Lexicon, token: str, language: str) -> float:
    # LeIA lists most Portuguese adjectives in the singular only: "felizes" reads as "feliz"
    if language != "pt" or len(token) < 5 or token[-1] != "s" or token in _STOPWORDS:
        return 0.0
    return lexicon.get(token[:-1]) or lexicon.get(token[:-2], 0.0)


def _clause_window(tokens: Sequence[str], i: int) -> Sequence[str]:
    window = tokens[max(0, i - 3) : i]
    for j in range(len(window) - 1, -1, -1):
        if window[j] in _CLAUSE_STOPS:
            return window[j + 1 :]
    return window


_CLAUSE_STOPS = frozenset(",.;:!?")


def _is_salutation(tokens: Sequence[str], i: int) -> bool:
    # "bom dia", "good morning", "best time": set phrases, not judgements
    return i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) in _SET_PHRASES


_SET_PHRASES = frozenset(
    [(w, t) for w in ("bom", "boa", "good") for t in ("dia", "tarde", "noite", "morning")]
    + [("good", "afternoon"), ("good", "evening"), ("good", "day")]
    + [("melhor", "horario"), ("best", "time"), ("best", "way"), ("melhor", "forma")]
)


def _shouted_words(text: str) -> set[str]:
    words = _RAW_WORD.findall(text)
    caps = {w for w in words if len(w) > 1 and w.isupper()}
    # an all-caps message is a style, not emphasis on some of its words
    if not caps or len(caps) == len({w for w in words if len(w) > 1}):
        return set()
    return {lexicons.normalize(w) for w in caps}


def classify_intent(plain: str, sentiment: float) -> tuple[Intent, float]:
    """The intent whose cues weigh most; a negative message leans to complaint."""
    weights: dict[Intent, float] = {}
    for intent, tiers in rules.INTENT_CUES.items():
        weights[intent] = sum(
            weight * len(rules.pattern(cues).findall(plain)) for weight, cues in tiers
        )
    if sentiment <= -0.3:
        weights["complaint"] += 1.5 + 3 * (sentiment <= -0.6)
    best = max(_TIE_ORDER, key=lambda i: (weights.get(i, 0.0), -_TIE_ORDER.index(i)))
    if not weights.get(best):
        return "other", 0.0
    return best, weights[best]


# on equal weight the intent that asks for an action wins: "how do I subscribe to the plan?"
_TIE_ORDER: tuple[Intent, ...] = (
    "purchase",
    "complaint",
    "scheduling",
    "support",
    "pricing",
    "greeting",
    "other",
)


def score_urgency(text: str, plain: str, sentiment: float, context: Sequence[str]) -> int:
    """0..100: time words, a deadline or a clock time, the same ask repeated, and emphasis."""
    score = 5.0
    for weight, cues in rules.URGENCY_CUES:
        if rules.pattern(cues).search(plain):
            score += weight
    if rules.DEADLINE.search(plain) or rules.CLOCK.search(plain):
        score += 15
    score += 15 * min(2, sum(_similar(plain, lexicons.normalize(c)) for c in context[-10:]))
    score += 6 * min(text.count("!"), 3)
    if sentiment < 0:
        score += 15 * -sentiment
    return max(0, min(100, round(score)))


def _similar(a: str, b: str) -> bool:
    left, right = set(_TOKEN.findall(a)), set(_TOKEN.findall(b[:READ_LIMIT]))
    if not left or not right:
        return False
    return len(left & right) / len(left | right) >= 0.5


def summarize(text: str) -> str:
    """The most informative sentence, with the next best when both fit in 200 characters."""
    sentences = [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]
    if not sentences:
        return ""
    ranked = sorted(range(len(sentences)), key=lambda i: (-_information(sentences[i]), i))
    chosen = [ranked[0]]
    for i in ranked[1:2]:
        if len(sentences[chosen[0]]) + len(sentences[i]) + 1 <= SUMMARY_LIMIT:
            chosen.append(i)
    summary = " ".join(sentences[i] for i in sorted(chosen))
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    cut = summary[: SUMMARY_LIMIT - 1].rsplit(" ", 1)[0] or summary[: SUMMARY_LIMIT - 1]
    return cut + "…"


def _information(sentence: str) -> float:
    tokens: list[str] = _TOKEN.findall(lexicons.normalize(sentence))
    content = [t for t in tokens if t not in _STOPWORDS]
    return len(set(content)) + sum(t.isdigit() for t in content) + 0.1 * ("?" in sentence)


_STOPWORDS = lexicons.STOPWORDS["pt"] | lexicons.STOPWORDS["en"]


def _confidence(sentiment: float, hits: int, intent_weight: float) -> float:
    strength = 0.5 * abs(sentiment) + 0.1 * min(hits, 3) + 0.05 * min(intent_weight, 4)
    return round(min(1.0, 0.25 + strength), 3)
