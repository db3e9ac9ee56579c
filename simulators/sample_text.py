"""Multilingual sample sentences: every script the real APIs send (Latin, Cyrillic, CJK, RTL, emoji)."""

from __future__ import annotations

import random

PHRASES = [
    "Thanks for joining today.", "Can you walk me through the pricing?",
    "We need SSO before the rollout.", "Давайте обсудим сроки внедрения.",
    "我们下周再确认一下预算。", "נשמח לקבל הצעת מחיר מעודכנת.", "Let's ship it 🚀",
    "The integration took about three weeks.", "¿Podemos revisar el contrato mañana?",
    "Überprüfen wir die Datenschutzerklärung.", "That's a great question — let me check.",
]


def sample_sentence(rng: random.Random) -> str:
    return " ".join(rng.sample(PHRASES, rng.randint(1, 3)))
