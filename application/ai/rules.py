"""Keyword rules for the offline analyzer: intent weights and urgency cues, pt-BR and English,
matched on `lexicons.normalize`d text. Cues are separated by spaces; "_" joins a phrase's words
and a trailing "*" matches any word with that prefix."""

from __future__ import annotations

import re
from functools import cache

from application.ai.ports import Intent

# (weight, cues); the highest total wins, ties fall to the order of INTENTS
# fmt: off
INTENT_CUES: dict[Intent, tuple[tuple[float, str], ...]] = {
    "pricing": (
        (3, "preco* quanto_custa* quanto_sai quanto_fica orcamento* cotacao desconto* "
            "mensalidade* tabela_de_preco* valor_do valor_da valores "
            "price* pricing how_much cost* quote discount* per_month per_user fee fees"),
        (1.5, "plano* plan plans caro cara barato* expensive cheap* budget pay* pag* "
              "anual mensal annual monthly tier* valor taxa* cobram"),
    ),
    "purchase": (
        (3, "comprar compra* contratar contrato* fechar_negocio fechar_o fechamos assinar "
            "adquirir pedido encomend* vamos_fechar quero_fechar "
            "buy buying purchas* sign_up subscribe order ordering go_ahead "
            "move_forward proceed close_the_deal sign_the_contract"),
        (1.5, "quero_o quero_a queremos proposta fatura* nota_fiscal boleto* "
              "invoice* seats license* want_to_start onboard* sign contract* "
              "assinar_o_plano subscribe_to quero_o_plano"),
    ),
    "support": (
        (3, "nao_funciona* nao_consigo erro* bug* suporte senha* login acessar acesso "
            "travando travou trava* configur* como_faco como_eu integr* sincroniz* "
            "not_working doesn't_work doesnt_work can't_log* cannot_log* can't_access "
            "error* password* crash* broken fix* support how_do_i how_can_i set_up "
            "setup integrat* sync* reset* fora_do_ar bloquead* blocked"),
        (1.5, "problema* ajuda duvida* instal* app aplicativo sistema relatorio* "
              "issue* problem* help install* dashboard report* export* import* "
              "log_in logar down lento lenta slow tutorial corrigir access"),
    ),
    "complaint": (
        (3, "reclama* pessim* horrivel absurdo descaso insatisfeit* decepcionad* procon "
            "reembolso estorno cancelar cancelamento ninguem_responde ninguem_me_respond* "
            "falta_de_respeito vergonha inaceitavel cobrado_duas_vezes cobraram "
            "complain* terrible awful unacceptable disappointed refund cancel* worst "
            "ridiculous frustrat* rude nobody_answer* nobody_respond* still_waiting "
            "overcharg* charged_twice"),
        (1.5, "demora* atras* de_novo novamente mais_uma_vez ja_liguei ja_mandei "
              "delay* late again already_called already_sent waited grosseir* "
              "charged cobranca bill"),
    ),
    "scheduling": (
        (3, "agend* marcar remarc* reuniao reunioes horario* disponibilidade "
            "visita demonstracao videochamada calendario "
            "schedul* reschedul* meeting* appointment* book_a availability "
            "calendar slot* set_up_a_call hop_on_a_call demo visit*"),
        (1.5, "disponivel segunda_feira terca quarta quinta sexta semana_que_vem "
              "available monday tuesday wednesday thursday friday next_week "
              "ligar call call_me book"),
    ),
    "greeting": (
        (1, "oi ola bom_dia boa_tarde boa_noite tudo_bem tudo_bom e_ai opa "
            "hello hi hey good_morning good_afternoon good_evening how_are_you"),
    ),
}

URGENCY_CUES: tuple[tuple[int, str], ...] = (
    (40, "urgente* urgencia emergencia imediatamente o_quanto_antes o_mais_rapido "
         "urgent* emergency asap immediately right_away right_now critical"),
    (25, "hoje agora agorinha neste_momento parado fora_do_ar "
         "today now tonight down this_morning this_afternoon"),
    (15, "amanha ainda_hoje fim_do_dia prazo "
         "tomorrow deadline end_of_day eod soon quickly"),
    (12, "de_novo novamente mais_uma_vez ja_liguei ja_mandei ainda_nao "
         "again already_called already_sent still"),
)
# fmt: on

DEADLINE = re.compile(
    r"\b(ate|antes de|by|before|until|no mais tardar)\s+(a |o |the |this |next )?"
    r"(segunda|terca|quarta|quinta|sexta|sabado|domingo|amanha|hoje|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today|"
    r"\d{1,2}\b|meio dia|noon|end of)"
)
CLOCK = re.compile(r"\b\d{1,2}(:\d{2}|h\d{0,2}|\s?(am|pm))\b|\b\d{1,2}/\d{1,2}\b")


@cache
def pattern(cues: str) -> re.Pattern[str]:
    """One regex for a cue list, matching whole words, phrases or prefixes ("preco*")."""
    return re.compile(r"\b(?:" + "|".join(map(_cue, cues.split())) + r")")


def _cue(cue: str) -> str:
    body = re.escape(cue.rstrip("*")).replace("_", r"[\s-]+")
    return body + (r"\w*" if cue.endswith("*") else r"(?!\w)")
