"""The guard's protected-topic detector: recall on clear en/es examples, silence on ordinary driver talk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openear.guard import COLLECTIVE_ACTION, RESEARCH_PRESS_CONTACT, Guard, ProtectedTopicDetector
from openear.models import Post
from shared_data import shared_path

DETECTOR = ProtectedTopicDetector()
PROTECTED = {"collective_action", "research_press_contact"}
# Red-team posts written for these tests: evasions a driver would use (slang for a mass log-off, hashtags, Spanish
# typos, spaced letters, leetspeak, fullwidth, zero-width and Cyrillic/Greek look-alike letters, emoji) that must be
# withheld, and ordinary posts sharing their words that must be kept. Escapes in the JSON keep the tricks visible.
REDTEAM = json.loads((Path(__file__).parent / "fixtures" / "protected_topics_redteam.json").read_text("utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        "We need a union, who wants to start organizing drivers in our area?",
        "Strike tomorrow: everyone log off together at 10am",
        "Join the protest outside the headquarters on Friday",
        "Please sign our petition for better pay per block",
        "The walkout at the Avenel station lasted all day",
        "Teamsters are talking to Flex drivers now",
        "Huelga de riders el lunes, convocan CCOO y UGT",
        "Mañana hay manifestación de repartidores frente a la sede de Glovo",
        "Hay que sindicarse, solos no conseguimos nada",
        "Recogida de firmas para exigir mejores condiciones",
        "Paro de repartidores en toda la ciudad este viernes",
        "Nos coordinamos por WhatsApp para desconectarnos todos a la vez",
    ],
)
def test_collective_action(text: str) -> None:
    assert DETECTOR.detect(text) == "collective_action"


@pytest.mark.parametrize(
    "text",
    [
        "I'm a PhD researcher looking for Flex drivers to talk about their work",
        "Take our 10-minute survey about gig delivery, $20 gift card",
        "A journalist from the Guardian wants to interview couriers, DM if interested",
        "Reporter here, writing a story about deactivations",
        "Soy estudiante de doctorado y hago una encuesta a repartidores",
        "Un periodista me pidió una entrevista sobre Glovo",
        "Buscamos riders para un documental sobre el reparto",
        "Estoy haciendo mi TFG sobre las plataformas de reparto, ¿me ayudáis con un cuestionario?",
    ],
)
def test_research_and_press_contact(text: str) -> None:
    assert DETECTOR.detect(text) == "research_press_contact"


@pytest.mark.parametrize(
    "text",
    [
        "I organize my packages by stop number before leaving the station.",
        "Paying off student loans with Flex blocks, it's been ok.",
        "I'm a college student and do blocks between classes.",
        "Had a job interview at a DSP today, hope I get it.",
        "Estoy en el paro y hago repartos con Glovo mientras tanto.",
        "La furgoneta se paró en medio de la calle y tuve que llamar a soporte.",
        "Vivo en Estados Unidos y reparto para Amazon Flex.",
        "Hablé con un agente de soporte y no me ayudó nada.",
        "I talked to the station manager about the missing packages.",
        "I listen to podcasts while driving my route.",
        "Pago diario, eso sí es bueno de Glovo.",
        "Tuve que documentar los daños del coche con fotos.",
        "The app shut down twice today, had to restart it.",
        "I did some research on which warehouse has the best blocks.",
        "Marcha atrás en el garaje y rayé el coche.",
        "Había caravana en la autopista y llegué tarde.",
        "I had to stop working after I hurt my back.",
        "High demand tonight, surge everywhere.",
        "Entrevista de trabajo en la agencia de reparto, a ver qué tal.",
        "Estoy luchando con la app desde esta mañana, no carga nada.",
        "We had 30 drivers waiting at the station for an hour.",
        "Mi hijo es estudiante y reparte en bici los fines de semana.",
        "As we wrote in our previous message, your case is closed.",
        "Me han desactivado la cuenta sin explicación",
    ],
)
def test_ordinary_driver_talk_is_not_flagged(text: str) -> None:
    assert DETECTOR.detect(text) is None


def test_term_lists_are_folded_and_unique() -> None:
    for terms in (COLLECTIVE_ACTION, RESEARCH_PRESS_CONTACT):
        assert len(terms) == len(set(terms))
        assert all(t == t.strip() and t for t in terms)


def test_driver_feedback_dev_set() -> None:
    path = shared_path("data", "driver-feedback", "dev.jsonl")
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    protected = [i for i in items if PROTECTED & set(i["categories"])]
    ordinary = [i for i in items if i["kind"] == "social" and not PROTECTED & set(i["categories"])]
    recall = sum(DETECTOR.detect(i["text"]) is not None for i in protected) / len(protected)
    false_withhold = sum(DETECTOR.detect(i["text"]) is not None for i in ordinary) / len(ordinary)
    assert recall >= 0.9
    assert false_withhold <= 0.05


@pytest.mark.parametrize(("text", "topic"), REDTEAM["withhold"], ids=lambda x: ascii(x)[:40])
def test_redteam_evasions_are_withheld(text: str, topic: str) -> None:
    post = Post(source="s", external_id="1", platform="reddit", kind="social", visibility="public",
                created_at=datetime(2026, 11, 1, tzinfo=UTC), text=text, author_id="u1")
    verdict = Guard(b"k" * 32).check(post, "public")
    assert verdict.rejection is not None, f"stored: {text!r}"
    assert (verdict.rejection.action, verdict.rejection.reason) == ("withheld", topic)


@pytest.mark.parametrize("text", REDTEAM["keep"], ids=lambda x: ascii(x)[:40])
def test_redteam_ordinary_posts_sharing_words_are_kept(text: str) -> None:
    assert DETECTOR.detect(text) is None


@pytest.mark.parametrize("text", REDTEAM["keep_news"])
def test_redteam_news_about_protected_topics_is_kept(text: str) -> None:
    post = Post(source="s", external_id="1", platform="news", kind="news", visibility="public",
                created_at=datetime(2026, 11, 1, tzinfo=UTC), text=text)
    assert Guard(b"k" * 32).check(post, "public").post is not None
    assert DETECTOR.detect(text) is not None  # the same words from an individual would be withheld


def test_redteam_lists_are_large_enough() -> None:
    assert len(REDTEAM["withhold"]) >= 80 and len(REDTEAM["keep"]) >= 40


@given(st.text(max_size=500))
@settings(max_examples=300, deadline=None)
def test_detect_never_crashes(text: str) -> None:
    assert DETECTOR.detect(text) in (None, "collective_action", "research_press_contact")
