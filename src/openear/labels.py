"""Display labels: categories, languages and the guard's reasons in words, shared by pages, reports and alerts.

Apart from :mod:`openear.charts` so that a process that only describes things (an alert's message, a page's table)
never imports matplotlib (about 0.5 s).
"""

from __future__ import annotations

__all__ = ["CATEGORY_LABELS", "GUARD_REASONS", "LANGUAGE_NAMES", "language_name", "nice", "reason_label"]

CATEGORY_LABELS: dict[str, str] = {
    "app_issue": "App issue",
    "pay_tips": "Pay and tips",
    "scheduling_offers": "Scheduling and offers",
    "delivery_operations": "Delivery operations",
    "account_status": "Account and standing",
    "support": "Driver support",
    "safety": "Safety",
    "working_conditions": "Working conditions",
    "media_coverage": "Media coverage",
    "other": "Other",
}
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "es": "Spanish", "other": "Other languages"}
GUARD_REASONS: dict[str, str] = {
    "collective_action": "Organising or collective action",
    "research_press_contact": "Contact with researchers or journalists",
    "private": "From a private group",
    "closed": "From a closed group",
    "secret": "From a secret group",
    "source_not_public": "Source not public or consented",
    "unknown_visibility": "Visibility unknown",
    "email": "E-mail address",
    "phone": "Phone number",
    "handle": "User handle",
    "profile_url": "Profile link",
    "url": "Link naming a user",
    "name": "Author's name",
}


def nice(key: str) -> str:
    """A display label: the preset's category label, else the key in words (``collective_action`` -> ...)."""
    return CATEGORY_LABELS.get(key) or key.replace("_", " ").capitalize()


def language_name(code: str) -> str:
    """``en`` -> ``English``; unknown codes as they are."""
    return LANGUAGE_NAMES.get(code, code)


def reason_label(reason: str) -> str:
    """A guard reason in words (``phone`` -> ``Phone number``)."""
    return GUARD_REASONS.get(reason) or nice(reason)
