"""Turn what an importer read (a :class:`RawItem`) into a :class:`Post`: UTC times, clean text, checked fields.

Pure functions, no I/O. Every problem is an :class:`InvalidField` naming the field, so the pipeline can report
``FILE:LINE: field: problem`` and go on with the next item. Formats:

- ``jsonl`` / ``csv``: openear's own records ``{id, text, created_at, author, url, title, kind, lang, country,
  visibility}`` (CSV: the same columns, empty cells are absent).
- ``zeeschuimer``: Zeeschuimer's NDJSON envelope (``source_platform``, ``item_id``, ``data``...) around X/Twitter
  GraphQL tweets or Facebook ``Story`` objects.
- ``4cat``: 4CAT's CSV export (``id``, ``body``, ``author``, ``timestamp``/``unix_timestamp``...).

Assumptions about the platform formats are listed on :func:`normalise_zeeschuimer` and :func:`normalise_4cat`.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from openear.errors import InputFormatError, InvalidField
from openear.models import ITEM_VISIBILITIES, KINDS, Post, RawItem
from openear.settings import SourceSpec

MAX_ID_CHARS = 256
# A post's text, cleaned: longer is refused (not cut: nothing is stored other than as written). The longest posts
# platforms allow are some 63,000 characters (Facebook); the guard and the enrichers hold some 40 bytes a character
# of a post until its batch is stored, so a batch of 500 posts of 1 MB each would need some 20 GB.
MAX_TEXT_CHARS = 100_000
_ECHO = 60  # characters of a bad value quoted back in a message

# C0/C1 controls except tab and newline, and lone surrogates (json.loads lets "\ud800" through).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_LANG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_EPOCH = re.compile(r"[+-]?\d+(?:\.\d+)?")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
# X's legacy format: "Wed Oct 10 20:19:24 +0000 2018" (English names whatever the locale).
_TWITTER_DATE = re.compile(
    r"[A-Za-z]{3} ([A-Za-z]{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})"
)
_UNDETERMINED_LANGS = {"und", "zxx", "qme", "qam", "qct", "qht", "qst", "art"}


# ----------------------------------------------------------------------------------------------------------------
# Values


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def echo(value: object) -> str:
    """A bad value quoted back, shortened, on one line."""
    text = value if isinstance(value, str) else str(value)
    text = _CONTROL.sub("", text).replace("\n", " ").replace("\t", " ")
    if len(text) > _ECHO:
        text = text[: _ECHO - 1] + "…"
    return repr(text)


def clean_text(value: str) -> str:
    """NFC, ``\\r\\n`` -> ``\\n``, control characters removed (tab and newline kept), stripped."""
    if value.isascii() and value.isprintable():  # the common case: nothing to do but strip
        return value.strip()
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _CONTROL.sub("", value)
    return unicodedata.normalize("NFC", value).strip()


def clean_line(value: str) -> str:
    """:func:`clean_text` on one line: runs of white space become one space."""
    if value.isascii() and value.isprintable() and "  " not in value:
        return value.strip()
    return _SPACES.sub(" ", clean_text(value))


def text_field(value: Any, field: str, *, required: bool = False, multiline: bool = False,
               allow_number: bool = False) -> str | None:
    """A string field, cleaned; ``None`` when absent or empty. Numbers are accepted (as text) for ids."""
    if value is None:
        if required:
            raise InvalidField(field, "required")
        return None
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidField(field, f"must be a string, not {json_type(value)}")
    cleaned = clean_text(value) if multiline else clean_line(value)
    if not cleaned:
        if required:
            raise InvalidField(field, "must not be empty")
        return None
    return cleaned


def id_field(value: Any, field: str, *, required: bool = True) -> str | None:
    """An identifier: a non-empty string (or whole number) of at most 256 characters."""
    cleaned = text_field(value, field, required=required, allow_number=True)
    if cleaned is not None and len(cleaned) > MAX_ID_CHARS:
        raise InvalidField(field, f"too long ({len(cleaned)} characters, limit {MAX_ID_CHARS})")
    return cleaned


def url_field(value: Any, field: str) -> str | None:
    """An absolute http(s) URL, or ``None``."""
    url = text_field(value, field)
    if url is None:
        return None
    if not re.match(r"https?://[^\s/]+", url, re.IGNORECASE) or " " in url:
        raise InvalidField(field, f"not an http(s) URL: {echo(url)}")
    return url


def choice_field(value: Any, field: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices`` (case-insensitive), or ``None`` when absent."""
    text = text_field(value, field)
    if text is None:
        return None
    if text.lower() not in choices:
        raise InvalidField(field, f"must be one of {', '.join(choices)}, not {echo(text)}")
    return text.lower()


def lang_field(value: Any, field: str) -> str | None:
    """A language tag (``en``, ``es-419``) in lower case; ``None`` when absent or undetermined (``und``)."""
    text = text_field(value, field)
    if text is None:
        return None
    if not _LANG.fullmatch(text):
        raise InvalidField(field, f"not a language code: {echo(text)}")
    text = text.lower().replace("_", "-")
    return None if text in _UNDETERMINED_LANGS else text


def country_field(value: Any, field: str) -> str | None:
    """A two-letter country code in upper case, or ``None``."""
    text = text_field(value, field)
    if text is None:
        return None
    if not _COUNTRY.fullmatch(text):
        raise InvalidField(field, f"not a two-letter country code: {echo(text)}")
    return text.upper()


# ----------------------------------------------------------------------------------------------------------------
# Times


def _utc(value: datetime, field: str, raw: object) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidField(field, f"date out of range: {echo(raw)}") from None


def parse_epoch(value: float | int | str, field: str) -> datetime:
    """Seconds since 1970 (values above 10^11 are taken as milliseconds), as UTC."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidField(field, f"not an epoch time: {echo(value)}") from None
    if not math.isfinite(seconds):
        raise InvalidField(field, f"not an epoch time: {echo(value)}")
    if abs(seconds) >= 1e11:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidField(field, f"epoch time out of range: {echo(value)}") from None


def parse_twitter_date(value: str) -> datetime | None:
    """X's legacy ``"Wed Oct 10 20:19:24 +0000 2018"``, or ``None`` when the text is not in that form."""
    m = _TWITTER_DATE.fullmatch(value.strip())
    if not m or m.group(1).lower() not in _MONTHS:
        return None
    month, day, hh, mm, ss, sign, oh, om, year = m.groups()
    iso = (f"{int(year):04d}-{_MONTHS[month.lower()]:02d}-{int(day):02d}T{hh}:{mm}:{ss}"
           f"{sign}{oh}:{om}")
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def parse_datetime(value: Any, field: str, *, platform: bool = False, required: bool = True) -> datetime | None:
    """An ISO 8601 date-time as timezone-aware UTC (naive means UTC; ``Z`` and offsets accepted).

    With ``platform=True`` also epoch seconds (number or digits) and X's ``"Wed Oct 10 20:19:24 +0000 2018"``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidField(field, "required")
        return None
    if isinstance(value, bool):
        raise InvalidField(field, f"must be a string (ISO 8601), not {json_type(value)}")
    if isinstance(value, int | float):
        if platform:
            return parse_epoch(value, field)
        raise InvalidField(field, f"must be a string (ISO 8601), not {json_type(value)}")
    if not isinstance(value, str):
        raise InvalidField(field, f"must be a string (ISO 8601), not {json_type(value)}")
    text = value.strip()
    if platform:
        if _EPOCH.fullmatch(text):
            return parse_epoch(text, field)
        twitter = parse_twitter_date(text)
        if twitter is not None:
            return _utc(twitter, field, value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(field, f"not an ISO 8601 date: {echo(value)}") from None
    return _utc(parsed, field, value)


# ----------------------------------------------------------------------------------------------------------------
# Platforms and privacy


def platform_name(value: str) -> str:
    """Short platform name from a host: ``twitter.com``/``x.com`` -> ``x``, ``facebook.com`` -> ``facebook``."""
    name = value.strip().lower().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    name = name.removeprefix("www.").removeprefix("m.").removeprefix("mobile.")
    if name in ("x", "x.com", "twitter", "twitter.com"):
        return "x"
    if name in ("facebook", "facebook.com", "fb.com"):
        return "facebook"
    return name.removesuffix(".com") or "import"


def default_platform(spec: SourceSpec) -> str:
    """The platform of items from ``spec`` when the item does not say: its connector, or ``import`` for files."""
    return spec.connector if spec.connector and spec.connector != "files" else "import"


def privacy_visibility(text: str) -> str | None:
    """Map a platform's privacy wording to a visibility; refusals win; ``None`` when unrecognised.

    ``PRIVATE``, ``Private group``, ``CLOSED``, ``SECRET`` map to themselves; audiences narrower than the public
    (``Friends``, ``Only me``, ``Custom``, ``Members``) to ``private``; ``PUBLIC``/``OPEN``/``Everyone`` to ``public``.
    """
    low = text.casefold()
    for word in ("secret", "closed", "private"):
        if re.search(rf"\b{word}\b", low):
            return word
    if re.search(r"\b(friends?|only me|custom|members?|restricted)\b", low):
        return "private"
    if re.search(r"\b(public|open|everyone|anyone)\b", low):
        return "public"
    return None


def _privacy_columns(p: Mapping[str, Any], columns: tuple[str, ...]) -> list[str]:
    """The visibilities that an item's privacy columns state (:func:`privacy_visibility`); an unknown wording makes
    the item invalid rather than public."""
    found: list[str] = []
    for column in columns:
        value = text_field(p.get(column), column)
        if value is not None:
            mapped = privacy_visibility(value)
            if mapped is None:
                raise InvalidField(column, f"unknown privacy value {echo(value)}")
            found.append(mapped)
    return found


def _merge_visibility(found: list[str], default: str) -> str:
    for refused in ("secret", "closed", "private"):
        if refused in found:
            return refused
    return "public" if "public" in found else default


# ----------------------------------------------------------------------------------------------------------------
# openear's own records (jsonl and csv)


def item_kind(value: object, field: str, spec: SourceSpec) -> str:
    """An item's kind: the source's, unless the item says ``social`` (allowed in a news source). An item that says
    ``news`` in a social source is invalid: the guard withholds protected topics and scrubs authors' names in
    social posts only, so an item must not opt out of that by calling itself news; a publisher's feed is declared
    a news source (``--kind news``)."""
    kind = choice_field(value, field, KINDS)
    if kind == "news" and spec.kind != "news":
        raise InvalidField(field, f"'news' items belong in a news source (--kind news); {spec.name!r} is social")
    return kind or spec.kind


_NATIVE_PRIVACY_COLUMNS = ("group_privacy", "privacy", "group_visibility")


def normalise_native(raw: RawItem, spec: SourceSpec) -> Post:
    """An openear record (``jsonl`` or ``csv``) as a :class:`Post`. Besides ``visibility``, a ``group_privacy``,
    ``privacy`` or ``group_visibility`` field is read as :func:`privacy_visibility` reads 4CAT's: an item marked
    private, closed or secret in any of them is refused by the guard."""
    p = _payload(raw)
    external_id = id_field(p.get("id"), "id")
    text = text_field(p.get("text"), "text", required=True, multiline=True)
    created = parse_datetime(p.get("created_at"), "created_at")
    kind = item_kind(p.get("kind"), "kind", spec)
    stated = choice_field(p.get("visibility"), "visibility", ITEM_VISIBILITIES)
    # a group's privacy in a converted export's own words ("group_privacy": "closed") counts too: refusals win
    visibility = _merge_visibility(
        _privacy_columns(p, _NATIVE_PRIVACY_COLUMNS) + ([stated] if stated else []), stated or spec.visibility
    )
    author = id_field(p.get("author"), "author", required=False)
    if author is None and kind == "social":
        raise InvalidField("author", "required for social posts")
    return Post(
        source=raw.source,
        external_id=external_id,  # type: ignore[arg-type]
        platform=default_platform(spec),
        kind=kind,  # type: ignore[arg-type]
        visibility=visibility,  # type: ignore[arg-type]
        created_at=created,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        title=text_field(p.get("title"), "title"),
        url=url_field(p.get("url"), "url"),
        author_id=author,
        author_handle=author,
        lang_hint=lang_field(p.get("lang"), "lang") or spec.lang,
        country=country_field(p.get("country"), "country") or spec.country,
        origin=_where(raw),
    )


# ----------------------------------------------------------------------------------------------------------------
# Zeeschuimer


def normalise_zeeschuimer(raw: RawItem, spec: SourceSpec) -> Post:
    """One Zeeschuimer NDJSON item (X/Twitter or Facebook) as a :class:`Post`.

    The envelope: ``source_platform`` (``twitter.com``, ``x.com``, ``facebook.com``), ``item_id``, ``data``.
    X: ``data`` is a GraphQL ``Tweet`` (or ``TweetWithVisibilityResults`` wrapping one in ``tweet``, or the older
    ``adaptive`` shape with a flat ``user``); id from ``rest_id``/``legacy.id_str``, text from
    ``note_tweet.note_tweet_results.result.text`` else ``legacy.full_text`` (HTML entities undone), time from
    ``legacy.created_at``, author from ``core.user_results.result`` (``rest_id``, ``legacy.screen_name``/``name``/
    ``profile_image_url_https`` or the 2025 layout ``core.screen_name``/``core.name``/``avatar.image_url``).
    A protected account (``legacy.protected``/``privacy.protected``) makes the item ``private``.
    Facebook: see :func:`_zeeschuimer_facebook`.
    """
    env = _payload(raw)
    source_platform = env.get("source_platform")
    if source_platform is None:
        raise InvalidField("source_platform", "required (is this a Zeeschuimer item?)")
    if not isinstance(source_platform, str):
        raise InvalidField("source_platform", f"must be a string, not {json_type(source_platform)}")
    data = env.get("data")
    if data is None:
        raise InvalidField("data", "required")
    if not isinstance(data, dict):
        raise InvalidField("data", f"must be an object, not {json_type(data)}")
    name = platform_name(source_platform)
    if name == "x":
        return _zeeschuimer_x(raw, env, data, spec)
    if name == "facebook":
        return _zeeschuimer_facebook(raw, env, data, spec)
    raise InvalidField(
        "source_platform",
        f"unsupported platform {echo(source_platform)} (supported: twitter.com, x.com, facebook.com)",
    )


def _zeeschuimer_x(raw: RawItem, env: dict[str, Any], data: dict[str, Any], spec: SourceSpec) -> Post:
    tweet: Any = data
    prefix = "data"
    if tweet.get("__typename") == "TweetWithVisibilityResults":
        tweet, prefix = tweet.get("tweet"), "data.tweet"
        if not isinstance(tweet, dict):
            raise InvalidField(prefix, f"must be an object, not {json_type(tweet)}")
    typename = tweet.get("__typename")
    if typename in ("TweetTombstone", "TweetUnavailable"):
        raise InvalidField(f"{prefix}.__typename", f"the tweet is not available ({typename})")
    legacy = _obj(tweet, "legacy", prefix, required=True)
    external_id = (id_field(tweet.get("rest_id"), f"{prefix}.rest_id", required=False)
                   or id_field(legacy.get("id_str"), f"{prefix}.legacy.id_str", required=False)
                   or id_field(env.get("item_id"), "item_id"))
    note = _dig(tweet, "note_tweet", "note_tweet_results", "result", "text")
    if isinstance(note, str) and note.strip():
        text = text_field(note, f"{prefix}.note_tweet", required=True, multiline=True)
    else:
        full = legacy.get("full_text", legacy.get("text"))
        field = f"{prefix}.legacy.full_text"
        if isinstance(full, str):
            full = html.unescape(full)  # X escapes &, < and > in legacy text
        text = text_field(full, field, required=True, multiline=True)
    created = parse_datetime(legacy.get("created_at"), f"{prefix}.legacy.created_at", platform=True)

    user: Any = _dig(tweet, "core", "user_results", "result")
    user_field = f"{prefix}.core.user_results.result"
    if user is None and isinstance(tweet.get("user"), dict):  # the "adaptive" shape: a flat legacy user
        user, user_field = {"rest_id": tweet["user"].get("id_str"), "legacy": tweet["user"]}, f"{prefix}.user"
    if user is not None and not isinstance(user, dict):
        raise InvalidField(user_field, f"must be an object, not {json_type(user)}")
    user = user or {}
    ulegacy = _obj(user, "legacy", user_field)
    ucore = _obj(user, "core", user_field)
    author_id = (id_field(user.get("rest_id"), f"{user_field}.rest_id", required=False)
                 or id_field(legacy.get("user_id_str"), f"{prefix}.legacy.user_id_str", required=False))
    if author_id is None and spec.kind == "social":
        raise InvalidField(f"{user_field}.rest_id", "required: the tweet's author")
    handle = (text_field(ucore.get("screen_name"), f"{user_field}.core.screen_name")
              or text_field(ulegacy.get("screen_name"), f"{user_field}.legacy.screen_name"))
    name = (text_field(ucore.get("name"), f"{user_field}.core.name")
            or text_field(ulegacy.get("name"), f"{user_field}.legacy.name"))
    avatar = (url_field(_dig(user, "avatar", "image_url"), f"{user_field}.avatar.image_url")
              or url_field(ulegacy.get("profile_image_url_https"), f"{user_field}.legacy.profile_image_url_https"))
    protected = ulegacy.get("protected") is True or _dig(user, "privacy", "protected") is True
    return Post(
        source=raw.source,
        external_id=external_id,  # type: ignore[arg-type]
        platform="x",
        kind=spec.kind,  # type: ignore[arg-type]
        visibility="private" if protected else spec.visibility,  # type: ignore[arg-type]
        created_at=created,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        url=f"https://x.com/{handle or 'i'}/status/{external_id}",
        author_id=author_id,
        author_handle=handle,
        author_name=name,
        author_url=f"https://x.com/{handle}" if handle else None,
        avatar_url=avatar,
        lang_hint=_lang_hint(legacy.get("lang")) or spec.lang,
        country=spec.country,
        origin=_where(raw),
    )


def _zeeschuimer_facebook(raw: RawItem, env: dict[str, Any], data: dict[str, Any], spec: SourceSpec) -> Post:
    """A Facebook ``Story`` captured by Zeeschuimer's Facebook module.

    Assumed shape (4CAT's ``datasources/facebook/search_facebook.py``; no real capture was available): the post
    in ``data.comet_sections.content.story`` (``post_id``, ``message.text``, ``wwwURL``, ``actors[0]`` with ``id``,
    ``name``, ``url``, ``profile_picture.uri``); the time in a ``data.comet_sections.context_layout.story.
    comet_sections.metadata[].story.creation_time`` (epoch seconds), else ``creation_time`` anywhere in ``data``.
    Privacy: every ``privacy``/``group_privacy``/``privacy_setting``/``visibility`` string,
    ``privacy_scope.description`` and string under ``privacy_info`` anywhere in ``data`` (e.g.
    ``data.group.privacy = "CLOSED"``, the audience entry's ``privacy_scope.description = "Private group"``) is
    mapped by :func:`privacy_visibility`; any private/closed/secret wins. A group post with no privacy
    information keeps the source's visibility.
    """
    story = _dig(data, "comet_sections", "content", "story")
    story_field = "data.comet_sections.content.story"
    if not isinstance(story, dict):
        story, story_field = data, "data"
    external_id = (id_field(story.get("post_id"), f"{story_field}.post_id", required=False)
                   or id_field(data.get("post_id"), "data.post_id", required=False)
                   or id_field(env.get("item_id"), "item_id", required=False)
                   or id_field(data.get("id"), "data.id"))
    text = text_field(_dig(story, "message", "text"), f"{story_field}.message.text", required=True, multiline=True)
    metadata = _dig(data, "comet_sections", "context_layout", "story", "comet_sections", "metadata")
    meta_stories = [m["story"] for m in metadata if isinstance(m, dict) and isinstance(m.get("story"), dict)] \
        if isinstance(metadata, list) else []
    created_raw = next((s["creation_time"] for s in meta_stories if s.get("creation_time") is not None), None)
    if created_raw is None:
        created_raw = next(_find_keys(data, {"creation_time"}), None)
    created = parse_datetime(created_raw, "data.creation_time", platform=True)
    post_url = url_field(story.get("wwwURL"), f"{story_field}.wwwURL") or next(
        (url_field(s.get("url"), "data.metadata.story.url") for s in meta_stories if s.get("url")), None)

    actors = story.get("actors")
    actor: dict[str, Any] = actors[0] if isinstance(actors, list) and actors and isinstance(actors[0], dict) else {}
    author_id = id_field(actor.get("id"), f"{story_field}.actors[0].id", required=False)
    if author_id is None and spec.kind == "social":
        raise InvalidField(f"{story_field}.actors[0].id", "required: the post's author")
    author_url = url_field(actor.get("url"), f"{story_field}.actors[0].url")
    handle = author_url.rstrip("/").rsplit("/", 1)[-1] if author_url else None
    if handle and (handle.startswith("profile.php") or handle.isdigit()):
        handle = None

    found = [v for v in (privacy_visibility(t) for t in _privacy_texts(data)) if v]
    return Post(
        source=raw.source,
        external_id=external_id,  # type: ignore[arg-type]
        platform="facebook",
        kind=spec.kind,  # type: ignore[arg-type]
        visibility=_merge_visibility(found, spec.visibility),  # type: ignore[arg-type]
        created_at=created,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        url=post_url,
        author_id=author_id,
        author_handle=handle,
        author_name=text_field(actor.get("name"), f"{story_field}.actors[0].name"),
        author_url=author_url,
        avatar_url=url_field(_dig(actor, "profile_picture", "uri"), f"{story_field}.actors[0].profile_picture.uri"),
        lang_hint=spec.lang,
        country=spec.country,
        origin=_where(raw),
    )


_PRIVACY_KEYS = {"privacy", "group_privacy", "privacy_setting", "visibility", "group_visibility"}


def _privacy_texts(data: Any) -> Iterator[str]:
    """Every privacy wording in a Facebook item (see :func:`_zeeschuimer_facebook`)."""
    for key, value in _walk(data):
        if key in _PRIVACY_KEYS and isinstance(value, str):
            yield value
        elif key == "privacy_scope" and isinstance(value, dict) and isinstance(value.get("description"), str):
            yield value["description"]
        elif key == "privacy_info":
            yield from (v for _, v in _walk(value) if isinstance(v, str))
            if isinstance(value, str):
                yield value


# ----------------------------------------------------------------------------------------------------------------
# 4CAT


_4CAT_PRIVACY_COLUMNS = ("group_privacy", "privacy", "group_visibility", "visibility")


def normalise_4cat(raw: RawItem, spec: SourceSpec) -> Post:
    """One row of a 4CAT CSV export as a :class:`Post`.

    Columns (4CAT's ``map_item`` keys): ``id``, ``body``, ``unix_timestamp`` (preferred; 4CAT's ``timestamp`` is
    written in the server's local time) else ``timestamp``, ``author``, ``author_id`` (else ``author``),
    ``author_fullname``/``author_name``, ``author_avatar_url``, ``url``/``link``, ``subject`` (title),
    ``language_guess``/``lang``. Platform from a ``platform``/``source_platform`` column, else the post URL's
    host, else the source's connector. A ``group_privacy``/``privacy``/``group_visibility``/``visibility`` column
    is mapped by :func:`privacy_visibility`; a value it does not recognise makes the row invalid.
    """
    p = _payload(raw)
    external_id = id_field(p.get("id"), "id")
    text = text_field(p.get("body"), "body", required=True, multiline=True)
    if p.get("unix_timestamp") is not None:
        created = parse_datetime(p.get("unix_timestamp"), "unix_timestamp", platform=True)
    else:
        created = parse_datetime(p.get("timestamp"), "timestamp", platform=True)
    kind = item_kind(p.get("kind"), "kind", spec)
    handle = id_field(p.get("author"), "author", required=False)
    author_id = id_field(p.get("author_id"), "author_id", required=False) or handle
    if author_id is None and kind == "social":
        raise InvalidField("author", "required for social posts")
    url = url_field(p.get("url"), "url") or url_field(p.get("link"), "link")
    declared = text_field(p.get("platform"), "platform") or text_field(p.get("source_platform"), "source_platform")
    platform = platform_name(declared) if declared else None
    if platform is None and url:
        host = platform_name(url)
        platform = host if host in ("x", "facebook", "reddit", "instagram", "tiktok", "youtube", "telegram") else None
    found = _privacy_columns(p, _4CAT_PRIVACY_COLUMNS)
    return Post(
        source=raw.source,
        external_id=external_id,  # type: ignore[arg-type]
        platform=platform or default_platform(spec),
        kind=kind,  # type: ignore[arg-type]
        visibility=_merge_visibility(found, spec.visibility),  # type: ignore[arg-type]
        created_at=created,  # type: ignore[arg-type]
        text=text,  # type: ignore[arg-type]
        title=text_field(p.get("subject"), "subject"),
        url=url,
        author_id=author_id,
        author_handle=handle,
        author_name=text_field(p.get("author_fullname"), "author_fullname")
        or text_field(p.get("author_name"), "author_name"),
        avatar_url=url_field(p.get("author_avatar_url"), "author_avatar_url"),
        lang_hint=_lang_hint(p.get("language_guess")) or _lang_hint(p.get("lang")) or spec.lang,
        country=country_field(p.get("country"), "country") or spec.country,
        origin=_where(raw),
    )


# ----------------------------------------------------------------------------------------------------------------
# Dispatch and helpers

NORMALISERS: dict[str, Callable[[RawItem, SourceSpec], Post]] = {
    "jsonl": normalise_native,
    "csv": normalise_native,
    "zeeschuimer": normalise_zeeschuimer,
    "4cat": normalise_4cat,
}


def normalise(raw: RawItem, fmt: str, spec: SourceSpec) -> Post:
    """``raw`` (read in format ``fmt``) as a :class:`Post`; raises :class:`InvalidField` for a bad item."""
    try:
        fn = NORMALISERS[fmt]
    except KeyError:
        raise InputFormatError(f"unknown format {fmt!r} (one of: {', '.join(NORMALISERS)})") from None
    post = fn(raw, spec)
    if len(post.text) > MAX_TEXT_CHARS:
        raise InvalidField("text", f"too long ({len(post.text)} characters, limit {MAX_TEXT_CHARS})")
    return post


def _payload(raw: RawItem) -> dict[str, Any]:
    if not isinstance(raw.payload, dict):
        raise InvalidField("json", f"expected a JSON object, got {json_type(raw.payload)}")
    return raw.payload


def _where(raw: RawItem) -> str:
    return f"{raw.origin}:{raw.line}" if raw.line is not None else raw.origin


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _obj(parent: Mapping[str, Any], key: str, prefix: str, *, required: bool = False) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise InvalidField(f"{prefix}.{key}", "required")
        return {}
    if not isinstance(value, dict):
        raise InvalidField(f"{prefix}.{key}", f"must be an object, not {json_type(value)}")
    return value


def _lang_hint(value: Any) -> str | None:
    """A platform's language guess; bad or undetermined values are dropped, not errors."""
    try:
        return lang_field(value, "lang")
    except InvalidField:
        return None


def _walk(value: Any, limit: int = 20_000) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` pair in nested dicts and lists (any order), visiting at most ``limit`` nodes."""
    queue: list[Any] = [value]
    seen = 0
    while queue and seen < limit:
        node = queue.pop()
        seen += 1
        if isinstance(node, dict):
            for k, v in node.items():
                yield k, v
                if isinstance(v, dict | list):
                    queue.append(v)
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, dict | list))


def _find_keys(value: Any, keys: set[str]) -> Iterator[Any]:
    return (v for k, v in _walk(value) if k in keys and v is not None)
