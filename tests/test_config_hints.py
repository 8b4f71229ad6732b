"""openear.toml's country and lang hints are checked when the settings load, as --country / --lang are."""

from __future__ import annotations

from pathlib import Path

import pytest

from openear import settings
from openear.errors import ConfigError


def workspace(tmp_path: Path, extra: str) -> Path:
    (tmp_path / settings.CONFIG_NAME).write_text(
        'organisation = "t"\n[[sources]]\nname = "forum"\nconnector = "files"\nvisibility = "public"\n' + extra,
        encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("extra", "problem"), [
    ('country = "usa"\n', "country: not a two-letter country code: 'usa' (e.g. US, GB, ES)"),
    ('country = 34\n', "country: must be a string, not number (e.g. US, GB, ES)"),
    ('lang = "english!"\n', "lang: not a language code: 'english!' (e.g. en, es, es-419)"),
    ('lang = ["en"]\n', "lang: must be a string, not array (e.g. en, es, es-419)"),
])
def test_bad_hint_is_refused_naming_file_source_and_key(tmp_path: Path, extra: str, problem: str) -> None:
    home = workspace(tmp_path, extra)
    with pytest.raises(ConfigError) as info:
        settings.load(home)
    assert str(info.value) == f"{home.resolve() / settings.CONFIG_NAME}: sources[0] ('forum'): {problem}"


def test_good_hints_are_stored_as_the_cli_stores_them(tmp_path: Path) -> None:
    spec = settings.load(workspace(tmp_path, 'country = "es"\nlang = "ES_419"\n')).source("forum")
    assert spec is not None and (spec.country, spec.lang) == ("ES", "es-419")
    spec = settings.load(workspace(tmp_path, 'country = " "\nlang = "und"\n')).source("forum")
    assert spec is not None and (spec.country, spec.lang) == (None, None)
