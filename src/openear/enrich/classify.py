"""Categories and subcategories from the taxonomy preset. PLACEHOLDER: being replaced by the rules classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openear.models import Label


@dataclass(frozen=True)
class Categorisation:
    labels: tuple[Label, ...]
    primary: str | None
    categories: tuple[str, ...]


class Classifier:
    name = "rules"
    version = "0"

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def load(cls, taxonomy_path: Path | None = None) -> Classifier:
        return cls()

    def classify(self, text: str, *, title: str | None = None, kind: str = "social", lang: str = "en") -> Categorisation:
        primary = "media_coverage" if kind == "news" else "other"
        return Categorisation((Label("primary", primary, 0.1, self.enricher),), primary, (primary,))
