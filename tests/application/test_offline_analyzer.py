"""The offline analyzer: measured on a labelled set of pt-BR and English CRM messages (floors
a little under what it scores, to catch regressions), plus its rules one by one."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.ai.offline import SUMMARY_LIMIT, OfflineAnalyzer
from application.ai.ports import INTENTS, MessageAnalyzer

DATA = Path(__file__).parent / "data" / "labelled_messages.jsonl"
# |sentiment| under this reads as neutral when comparing with a labelled sign
NEUTRAL = 0.2
analyzer: MessageAnalyzer = OfflineAnalyzer()


def labelled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def sign(value: float) -> int:
    return 0 if abs(value) < NEUTRAL else (1 if value > 0 else -1)


@pytest.fixture(scope="module")
def measured() -> list[tuple[dict[str, Any], Any]]:
    return [
        (row, analyzer.analyse(row["text"], context=row.get("context", ()))) for row in labelled()
    ]


def test_the_labelled_set_is_large_and_half_portuguese() -> None:
    rows = labelled()
    assert len(rows) >= 200
    assert abs(sum(r["language"] == "pt" for r in rows) - len(rows) / 2) <= 5
    assert {r["intent"] for r in rows} == set(INTENTS)


def test_sentiment_sign_intent_and_language_accuracy_stay_above_their_floors(
    measured: list[tuple[dict[str, Any], Any]],
) -> None:
    n = len(measured)
    sentiment = sum(sign(a.sentiment) == r["sentiment"] for r, a in measured) / n
    intent = sum(a.intent == r["intent"] for r, a in measured) / n
    language = sum(a.language == r["language"] for r, a in measured) / n
    print(f"\nsentiment sign {sentiment:.1%}, intent {intent:.1%}, language {language:.1%} of {n}")
    # measured 94.9 %, 93.3 %, 99.6 % (254 messages; 78 % and 88 % on the last 32 before the
    # rules had seen them)
    assert sentiment >= 0.88
    assert intent >= 0.88
    assert language >= 0.97


def test_urgency_orders_high_over_medium_over_low(
    measured: list[tuple[dict[str, Any], Any]],
) -> None:
    levels: dict[str, list[int]] = {"low": [], "medium": [], "high": []}
    for row, analysis in measured:
        levels[row["urgency"]].append(analysis.urgency)
    means = {level: statistics.mean(values) for level, values in levels.items()}
    pairs = [(h, lo) for h in levels["high"] for lo in levels["low"]]
    ordered = sum(h > lo for h, lo in pairs) / len(pairs)
    print(f"\nurgency means {means}, high above low in {ordered:.1%} of pairs")
    assert means["high"] > means["medium"] + 15 > means["low"] + 25
    # measured 99.3 %
    assert ordered >= 0.95


@pytest.mark.parametrize(
    ("plain", "negated"),
    [("gostei do atendimento", "não gostei do atendimento"), ("this is good", "this is not good")],
)
def test_a_negation_turns_praise_negative(plain: str, negated: str) -> None:
    assert analyzer.analyse(plain).sentiment > NEUTRAL
    assert analyzer.analyse(negated).sentiment < -NEUTRAL


@pytest.mark.parametrize(
    ("base", "intensified"),
    [
        ("o produto é bom", "o produto é muito bom"),
        ("the product is good", "the product is very good"),
        ("the product is good", "the product is good!!!"),
        ("the product is good", "the product is GOOD"),
    ],
)
def test_intensifiers_exclamation_and_caps_strengthen_sentiment(
    base: str, intensified: str
) -> None:
    assert analyzer.analyse(intensified).sentiment > analyzer.analyse(base).sentiment > 0


def test_negation_does_not_reach_across_a_comma() -> None:
    assert analyzer.analyse("I waited and nothing, what a terrible delay").sentiment < 0


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Quanto custa o plano anual?", "pricing"),
        ("What is the price per seat?", "pricing"),
        ("Quero comprar 10 licenças", "purchase"),
        ("We want to buy the Pro plan", "purchase"),
        ("Não consigo acessar minha conta, dá erro", "support"),
        ("I forgot my password, how do I reset it?", "support"),
        ("Péssimo atendimento, quero reembolso", "complaint"),
        ("This is unacceptable, I want a refund", "complaint"),
        ("Podemos agendar uma reunião?", "scheduling"),
        ("Can we schedule a meeting next week?", "scheduling"),
        ("Oi, bom dia!", "greeting"),
        ("Hello, good morning!", "greeting"),
        ("Segue o documento.", "other"),
    ],
)
def test_each_intent_is_recognised(text: str, intent: str) -> None:
    assert analyzer.analyse(text).intent == intent


def test_urgency_rises_with_time_words_deadlines_and_exclamation() -> None:
    calm = analyzer.analyse("Can you send the report?").urgency
    deadline = analyzer.analyse("Can you send the report by Friday?").urgency
    now = analyzer.analyse("Can you send the report now? It's urgent!!").urgency
    assert calm < deadline < now


def test_asking_the_same_thing_again_raises_urgency() -> None:
    ask = "Vocês podem me enviar a segunda via do boleto?"
    first = analyzer.analyse(ask).urgency
    repeated = analyzer.analyse(ask, context=[ask, "Oi?", ask]).urgency
    assert repeated >= first + 20


def test_the_summary_keeps_the_informative_sentence_within_200_characters() -> None:
    text = (
        "Oi. Tudo bem? Preciso de um orçamento para 40 licenças do plano Enterprise com "
        "telefonia até sexta. " + "Obrigado desde já pela atenção, fico no aguardo. " * 10
    )
    summary = analyzer.analyse(text).summary
    assert len(summary) <= SUMMARY_LIMIT
    assert "orçamento para 40 licenças" in summary


def test_analysis_is_deterministic_offline_and_free() -> None:
    text = "O sistema travou de novo, preciso de ajuda urgente!"
    first, second = analyzer.analyse(text), OfflineAnalyzer().analyse(text)
    assert first == second
    assert (first.model, first.tokens_in, first.tokens_out) == ("offline", 0, 0)


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "👎", "?!", "\n\n"])
def test_empty_or_emoji_only_text_is_analysed(text: str) -> None:
    analysis = analyzer.analyse(text)
    assert -1 <= analysis.sentiment <= 1
    assert analysis.intent in INTENTS
    assert len(analysis.summary) <= SUMMARY_LIMIT


def test_emoji_carry_sentiment() -> None:
    assert analyzer.analyse("😀😀").sentiment > 0 > analyzer.analyse("😡👎").sentiment


def test_a_very_long_message_is_analysed_and_summarised_briefly() -> None:
    text = "The export fails with an error when I open the dashboard. " * 20_000
    analysis = analyzer.analyse(text)
    assert analysis.intent == "support"
    assert analysis.sentiment < 0
    assert len(analysis.summary) <= SUMMARY_LIMIT


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.text(max_size=200), max_size=5))
def test_any_text_gives_values_in_range(text: str, context: list[str]) -> None:
    analysis = analyzer.analyse(text, context=context)
    assert -1 <= analysis.sentiment <= 1
    assert 0 <= analysis.confidence <= 1
    assert 0 <= analysis.urgency <= 100
    assert analysis.intent in INTENTS
    assert analysis.language in ("pt", "en")
    assert len(analysis.summary) <= SUMMARY_LIMIT
