"""Every inbound message analysed once, on both backends: signed webhooks redelivered, one or
two analysis workers, the analysis in the inbox, the message lists and the lead's timeline, and
none of it visible to another organization. The analyzer is the deterministic one of
tests/support/analysis.py (the real ones are tested with application.ai)."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from application.ai.analysis import (
    ALREADY,
    ANALYSIS_OFF,
    GONE,
    RECORDED,
    MessageAnalysisPolicy,
    analyse_message,
)
from application.ai.ports import MessageAnalysis
from application.conversations.messages import CHANNEL, conversation_id
from domain.conversation import Conversation
from interfaces.services import Services
from interfaces.timers import jobs_for
from projections.analysis_queue import ai_analysis_queue
from projections.registry import all_projectors
from tests.support.analysis import LengthAnalyzer, expected
from tests.support.api import Tenant, cheap_hashing, register  # noqa: F401
from tests.support.webhooks import PHONE_NUMBER_ID, meta_message, meta_payload, meta_signature

pytestmark = pytest.mark.usefixtures("cheap_hashing")

APP_SECRET = "meta-app-secret-ai-01"


def cloud_setup(tenant: Tenant) -> None:
    body = {
        "provider": "business_api",
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "token",
        "app_secret": APP_SECRET,
        "verify_token": "verify-ai",
    }
    assert tenant.post("/integrations/whatsapp/setup", json=body).status_code == 200


def deliver(client: TestClient[Any], tenant: Tenant, sender: str, texts: list[str]) -> UUID:
    """The contact's messages in one signed webhook, delivered three times; the chat's id."""
    wamids = [f"wamid.{uuid4().hex}" for _ in texts]
    body = meta_payload([meta_message(w, sender, t) for w, t in zip(wamids, texts, strict=True)])
    for _ in range(3):
        response = client.post(
            f"/webhooks/whatsapp/{tenant.organization_id}",
            content=body,
            headers=meta_signature(APP_SECRET, body),
        )
        assert response.status_code == 200, response.text
    org = UUID(tenant.organization_id)
    return conversation_id(org, CHANNEL, f"+{sender}")


def caught_up(services: Services, *tenants: Tenant) -> None:
    head = services.app.recorder.max_notification_id() or 0
    for tenant in tenants:
        tenant.position = max(tenant.position, head)
    names = [p.name for p in all_projectors()]
    assert services.wait_for(names, head, timeout=60), "the projectors did not catch up"


def run_workers(services: Services, analyzer: Any, workers: int) -> None:
    """`workers` analysis policies at once, each until a round finds nothing to do."""
    start = threading.Barrier(workers)
    failures: list[BaseException] = []

    def work() -> None:
        policy = MessageAnalysisPolicy(services.app, services.engine, analyzer)
        start.wait()
        try:
            while policy.run(datetime.now(UTC)):
                pass
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []


def analyses(services: Services, chat_id: UUID) -> list[Conversation.MessageAnalysed]:
    return [
        e for e in services.app.events.get(chat_id) if isinstance(e, Conversation.MessageAnalysed)
    ]


def sender_number() -> str:
    return "55119" + "".join(str(secrets.randbelow(10)) for _ in range(8))


def test_each_message_is_analysed_once_under_redelivery_and_two_workers(
    client: TestClient[Any], services: Services
) -> None:
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        texts=st.lists(st.text(alphabet="abcxyz !?", min_size=1, max_size=20), max_size=4),
        workers=st.integers(1, 2),
    )
    def once(texts: list[str], workers: int) -> None:
        tenant = register(client)
        cloud_setup(tenant)
        token = uuid4().hex[:8]  # this example's messages among every test's on the database
        mine = [f"{token} {t}".strip() for t in texts] or [token]
        chat_id = deliver(client, tenant, sender_number(), mine)
        caught_up(services, tenant)
        analyzer = LengthAnalyzer()

        run_workers(services, analyzer, workers)

        chat = services.app.load(Conversation, chat_id, UUID(tenant.organization_id))
        received = sorted(chat.provider_ids.values())
        assert len(received) == len(mine)  # 3 deliveries, one message each
        recorded = analyses(services, chat_id)
        assert sorted(e.message_id for e in recorded) == received  # one analysis each
        assert sorted(text for text, _ in analyzer.calls if text.startswith(token)) == sorted(mine)
        for e in recorded:  # a late worker, or one ignoring the queue, records nothing more
            again = analyse_message(
                services.app,
                analyzer,
                organization_id=chat.organization_id,
                conversation_id=chat_id,
                message_id=e.message_id,
            )
            assert again == ALREADY
        assert len(analyses(services, chat_id)) == len(mine)

    once()


class Racing:
    """An analyzer that lets no caller go on before `parties` callers have analysed."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=30)

    def analyse(self, text: str, *, context: Any = ()) -> MessageAnalysis:
        self.barrier.wait()
        return expected(text, context)


def test_two_workers_analysing_the_same_message_at_once_record_one_analysis(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    chat_id = deliver(client, acme, sender_number(), ["how much is it?"])
    chat = services.app.load(Conversation, chat_id, UUID(acme.organization_id))
    (message_id,) = chat.provider_ids.values()
    racing, outcomes = Racing(2), []

    def analyse() -> None:
        outcomes.append(
            analyse_message(
                services.app,
                racing,
                organization_id=chat.organization_id,
                conversation_id=chat_id,
                message_id=message_id,
            )
        )

    threads = [threading.Thread(target=analyse) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == [ALREADY, RECORDED]  # the loser met a version conflict, reloaded
    assert [e.message_id for e in analyses(services, chat_id)] == [message_id]


def test_the_inbox_the_message_lists_and_the_timeline_show_the_analysis(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    texts = ["hello there", "this is urgent!!", "still waiting!!!"]
    chat_id = deliver(client, acme, sender_number(), texts)
    caught_up(services, acme)
    run_workers(services, LengthAnalyzer(), 1)
    caught_up(services, acme)
    want = [expected(t, texts[:i]) for i, t in enumerate(texts)]

    (row,) = [c for c in acme.get("/crm/conversations").json()["items"] if c["id"] == str(chat_id)]
    assert row["latest_sentiment"] == pytest.approx(want[-1].sentiment)
    assert row["latest_urgency"] == want[-1].urgency == 60
    assert row["sentiment_trend"] == pytest.approx([w.sentiment for w in want])

    listed = acme.get(f"/crm/conversations/{chat_id}/messages").json()["items"]
    by_lead = acme.get(f"/crm/leads/{row['lead_id']}/messages").json()["items"]
    assert by_lead == listed
    shown = {m["text"]: m for m in listed}
    for text, w in zip(texts, want, strict=True):
        m = shown[text]
        assert (m["urgency"], m["intent"], m["summary"]) == (w.urgency, w.intent, w.summary)
        assert m["sentiment"] == pytest.approx(w.sentiment)
    assert shown["still waiting!!!"]["summary"].endswith("(2 before)")  # the earlier two

    timeline = acme.get(f"/crm/leads/{row['lead_id']}/activities").json()["items"]
    entries = [a for a in timeline if a["activity_type"] == "message_analysed"]
    assert sorted(a["data"]["summary"] for a in entries) == sorted(w.summary for w in want)
    assert {a["title"] for a in entries} == {"Message analysed"}


def test_an_unanalysed_message_and_an_outbound_one_show_no_analysis(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    chat_id = deliver(client, acme, sender_number(), ["hi"])
    caught_up(services, acme)

    (row,) = [c for c in acme.get("/crm/conversations").json()["items"] if c["id"] == str(chat_id)]
    (message,) = acme.get(f"/crm/conversations/{chat_id}/messages").json()["items"]

    assert (row["latest_sentiment"], row["latest_urgency"], row["sentiment_trend"]) == (
        None,
        None,
        [],
    )
    assert [message[k] for k in ("sentiment", "urgency", "intent", "summary")] == [None] * 4


def test_another_organization_neither_sees_nor_analyses_this_ones_messages(
    client: TestClient[Any], services: Services
) -> None:
    acme, globex = register(client, "Acme"), register(client, "Globex")
    cloud_setup(acme)
    cloud_setup(globex)
    acme_chat = deliver(client, acme, sender_number(), ["acme's secret plan!"])
    globex_chat = deliver(client, globex, sender_number(), ["globex hello"])
    chat = services.app.load(Conversation, acme_chat, UUID(acme.organization_id))
    (message_id,) = chat.provider_ids.values()

    # a worker handed another organization's id for this conversation records nothing
    crossed = analyse_message(
        services.app,
        LengthAnalyzer(),
        organization_id=UUID(globex.organization_id),
        conversation_id=acme_chat,
        message_id=message_id,
    )
    assert crossed == GONE and analyses(services, acme_chat) == []
    caught_up(services, acme, globex)
    run_workers(services, LengthAnalyzer(), 2)
    caught_up(services, acme, globex)

    seen = globex.get("/crm/conversations").json()["items"]
    assert [c["id"] for c in seen] == [str(globex_chat)]
    assert seen[0]["latest_sentiment"] == pytest.approx(expected("globex hello").sentiment)
    assert globex.get(f"/crm/conversations/{acme_chat}/messages").status_code == 404
    assert globex.get(f"/crm/leads/{chat.lead_id}/activities").status_code == 404
    mine = acme.get(f"/crm/conversations/{acme_chat}/messages").json()["items"]
    assert mine[0]["summary"] == expected("acme's secret plan!").summary
    assert "globex" not in str(acme.get("/crm/conversations").json())


def test_the_timers_analyse_messages_only_when_there_is_an_analyzer(
    client: TestClient[Any], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no platform key: the offline model
    acme = register(client)
    cloud_setup(acme)
    services.analyzer = None  # the composition root found no analyzer module
    assert "message_analysis" not in [job.name for job in jobs_for(services)]
    services.analyzer = LengthAnalyzer()
    (job,) = [job for job in jobs_for(services) if job.name == "message_analysis"]
    chat_id = deliver(client, acme, sender_number(), ["preciso do preço hoje, é urgente!"])
    caught_up(services, acme)

    while job.run(datetime.now(UTC)):
        pass

    (analysis,) = analyses(services, chat_id)
    assert analysis.model == "offline"  # the organization's model: no key, the offline one


def test_an_organization_with_analysis_off_has_its_messages_skipped(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    off = acme.put("/ai/settings", json={"analysis_enabled": False})
    assert off.status_code == 200, off.text
    services.analyzer = LengthAnalyzer()
    (job,) = [job for job in jobs_for(services) if job.name == "message_analysis"]
    chat_id = deliver(client, acme, sender_number(), ["hello, anyone?"])
    caught_up(services, acme)

    while job.run(datetime.now(UTC)):
        pass

    assert analyses(services, chat_id) == []
    with services.engine.connect() as conn:
        q = ai_analysis_queue.c
        row = conn.execute(
            sa.select(q.status, q.last_error).where(q.conversation_id == chat_id)
        ).one()
    assert tuple(row) == ("skipped", ANALYSIS_OFF)


class Flaky:
    """Fails its first `failures` calls (a model that is away), then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def analyse(self, text: str, *, context: Any = ()) -> MessageAnalysis:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("the model did not answer")
        return expected(text, context)


def test_a_failing_analyzer_leaves_the_message_to_a_later_round(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    chat_id = deliver(client, acme, sender_number(), ["are you open today?"])
    caught_up(services, acme)
    analyzer = Flaky(failures=1)
    policy = MessageAnalysisPolicy(services.app, services.engine, analyzer)
    now = datetime.now(UTC)

    while policy.run(now):  # everything due now, this message's failure included
        pass
    assert analyses(services, chat_id) == [] and analyzer.failures == 0
    later = now + timedelta(minutes=15)  # past the retry's backoff
    while policy.run(later):
        pass

    assert len(analyses(services, chat_id)) == 1


def test_a_message_whose_contact_was_erased_before_its_analysis_is_never_analysed(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    chat_id = deliver(client, acme, sender_number(), ["my cpf is 123, call me!"])
    caught_up(services, acme)
    chat = services.app.load(Conversation, chat_id, UUID(acme.organization_id))
    erased = acme.post(
        "/privacy/erase", json={"lead_id": str(chat.lead_id), "legal_basis": "LGPD art. 18, VI"}
    )
    assert erased.status_code == 200, erased.text
    caught_up(services, acme)
    analyzer = LengthAnalyzer()

    run_workers(services, analyzer, 1)

    assert analyses(services, chat_id) == []
    assert not any("cpf" in text for text, _ in analyzer.calls)  # nothing reached the model
    with services.engine.connect() as conn:
        q = ai_analysis_queue.c
        status = conn.execute(sa.select(q.status).where(q.conversation_id == chat_id)).scalar_one()
    assert status == "skipped"


class Overexcited:
    """A model answering out of every range."""

    def analyse(self, text: str, *, context: Any = ()) -> MessageAnalysis:
        return MessageAnalysis(
            sentiment=3.0,
            confidence=float("nan"),
            urgency=250,
            intent="other",
            summary="x" * 2000,
            language="en",
            model="",
        )


def test_a_models_numbers_out_of_range_are_kept_in_range(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    chat_id = deliver(client, acme, sender_number(), ["wow"])
    chat = services.app.load(Conversation, chat_id, UUID(acme.organization_id))
    (message_id,) = chat.provider_ids.values()

    outcome = analyse_message(
        services.app,
        Overexcited(),
        organization_id=chat.organization_id,
        conversation_id=chat_id,
        message_id=message_id,
    )

    (analysis,) = analyses(services, chat_id)
    assert outcome == RECORDED
    assert (analysis.sentiment, analysis.confidence, analysis.urgency) == (1.0, 0.0, 100)
    assert len(analysis.summary) == 1000 and analysis.model == "unknown"
