"""The privacy policy (``shared/docs/guardrails.md``), applied to every item before anything is stored.

Rules enforced here:
1. visibility: items marked private, closed or secret are rejected one by one, with a count by reason;
2. pseudonyms: the author becomes ``HMAC-SHA256(key, platform + ":" + author_id)``, truncated; the key lives in a
   file outside the database;
3. scrubbing: e-mail addresses, phone numbers (US, UK, ES), @handles, u/names and profile links become
   placeholders, in text, title and URL;
4. withholding: a social item about a protected topic (collective action; contact with researchers or
   journalists) is not stored, only counted per source and day. News items are kept.
8. transparency: every rejection, withholding and scrub is counted (``guard_counts``).

This module is the only place that builds a :class:`GuardedPost`. It is not a plugin hook: nothing can weaken it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from openear import models
from openear.errors import ConfigError
from openear.models import REFUSED_VISIBILITIES, GuardedPost, Post, Rejection
from openear.textmatch import TermMatcher, fold

_TOKEN = object()
if not models._SEAL:
    models._SEAL.append(_TOKEN)
else:  # pragma: no cover - re-import of this module (importlib.reload)
    _TOKEN = models._SEAL[0]

SHIPPED_FIELDS = tuple(f.name for f in dataclasses.fields(GuardedPost) if f.name != "seal")
PSEUDONYM_HEX = 20  # 80 bits of the HMAC: no collisions at any realistic scale, not reversible

# --------------------------------------------------------------------------------------------------------------
# Pseudonym key


def create_key(path: Path) -> bytes:
    """Write a new random key to ``path`` with mode 0600; refuse to overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    os.chmod(path, 0o600)
    return key


def load_key(path: Path) -> bytes:
    """The pseudonym key: ``$OPENEAR_PSEUDONYM_KEY`` (hex) or the key file."""
    env = os.environ.get("OPENEAR_PSEUDONYM_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError:
            raise ConfigError("OPENEAR_PSEUDONYM_KEY: must be hex") from None
    else:
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            raise ConfigError(f"{path}: pseudonym key missing; run 'openear init'") from None
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"{path}: pseudonym key is not hex") from None
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path}: pseudonym key must be readable by its owner only (chmod 600)")
    if len(key) < 16:
        raise ConfigError("pseudonym key: must be at least 16 bytes")
    return key


def key_fingerprint(key: bytes) -> str:
    """A short name for ``key`` that reveals nothing about it (an HMAC of a constant), kept in the store so that a
    writer with another key is refused (:meth:`openear.store.Store.bind_key`)."""
    return hmac.new(key, b"openear:pseudonym-key-fingerprint:v1", hashlib.sha256).hexdigest()[:16]


def pseudonym(key: bytes, platform: str, author_id: str) -> str:
    """``HMAC-SHA256(key, platform:author_id)``, truncated, prefixed ``p_``."""
    digest = hmac.new(key, f"{platform}:{author_id}".encode(), hashlib.sha256).hexdigest()
    return "p_" + digest[:PSEUDONYM_HEX]


# --------------------------------------------------------------------------------------------------------------
# Scrubbing

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Obfuscated e-mails: "john [at] gmail [dot] com", "john(at)gmail(dot)com", "john @ gmail . com", "john@gmail dot com",
# "john dot smith at gmail dot com". A bare " at " counts only with a spelled-out dot or a mail provider's domain
# ("prices at walmart.com" is not an address), and the top-level domain must look like one ("home. It" is not).
_OB_AT = r"\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*"
_OB_DOT = r"(?:\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*|\s+(?i:dot)\s+)"
_ANY_DOT = r"(?:\s*\.\s*|" + _OB_DOT + r")"
_TLDS = "com|net|org|edu|gov|info|biz|io|co|me|uk|es|us|de|fr|it|nl|ie|mx|ar|cl|co|pe|br|ca|au"
_TLD = f"(?:{_TLDS}|{_TLDS.upper()})(?![A-Za-z0-9])"
# At most 16 dotted parts after the first: unbounded, "a dot a dot ..." (no "at") took quadratic time (40 min a MB).
_LOCAL = r"(?<![\w.+-])[A-Za-z0-9_%+-]+(?:" + _ANY_DOT + r"[A-Za-z0-9_%+-]+){0,16}?"
_MAIL_PROVIDERS = r"(?i:gmail|googlemail|yahoo|hotmail|outlook|live|icloud|aol|protonmail|proton|gmx|yandex|msn)"
OBFUSCATED_EMAIL = re.compile(
    _LOCAL + "(?:"
    + "(?:" + _OB_AT + r"|\s+@\s+)(?:[A-Za-z0-9-]+" + _ANY_DOT + ")+" + _TLD  # [at], (at), " @ "
    + r"|@(?:[A-Za-z0-9-]+" + _OB_DOT + ")+" + _TLD  # john@gmail dot com
    + r"|\s+(?i:at)\s+(?:[A-Za-z0-9-]+" + _OB_DOT + ")+" + _TLD  # john at gmail dot com
    + r"|\s+(?i:at)\s+" + _MAIL_PROVIDERS + _ANY_DOT + _TLD  # john at gmail.com
    + ")"
)
_OBFUSCATION_HINT = re.compile(r"(?i)dot|[\[({<]\s*at\s*[\])}>]|\s@\s|\sat\s+" + _MAIL_PROVIDERS)
_SEP = r"[ .\-\u00a0]?"
PHONE = re.compile(
    "|".join(
        [
            # international: +1 555 123 4567, +44 7700 900123, +34 612 34 56 78, 0034 612345678
            r"(?<![\w+])(?:\+|00)\d{1,3}[ .\-\u00a0]?(?:\(?\d{1,4}\)?[ .\-\u00a0]?){2,5}\d{2,4}(?!\w)",
            # US: (555) 123-4567, 555-123-4567, 555.123.4567, 5551234567, and with the trunk 1: 1-555-123-4567
            r"(?<![\w$])(?:1[ .\-]?)?\(?[2-9]\d{2}\)?" + _SEP + r"[2-9]\d{2}" + _SEP + r"\d{4}(?![\w])",
            # UK: 07700 900123, 020 7946 0958, 0161 496 0000, 01632 960000
            r"(?<![\w$])0\d{2,4}" + _SEP + r"\d{3,4}" + _SEP + r"\d{3,4}(?![\w])",
            # ES, nine digits: 612 345 678, 612 34 56 78, 612345678 (not the last 7 digits of an order number)
            r"(?<![\w$])[6789]\d{2}" + _SEP + r"(?:\d{3}" + _SEP + r"\d{3}|\d{2}" + _SEP + r"\d{2}" + _SEP
            + r"\d{2})(?![\w])",
            r"(?<![\w$])[89]\d" + _SEP + r"\d{3}" + _SEP + r"\d{2}" + _SEP + r"\d{2}(?![\w])",
        ]
    )
)
# A chat link that is a phone number: wa.me/34612345678, api.whatsapp.com/send?phone=34612345678
WHATSAPP = re.compile(
    r"(?i)(?:https?://)?(?:wa\.me/|(?:api\.|web\.)?whatsapp\.com/send/?\?(?:[^\s#]*&)?phone=|whatsapp://send/?\?"
    r"(?:[^\s#]*&)?phone=)(?:\+|%2B)?\d[\d\-]{5,}[^\s<>()\[\]]*"
)
_PROFILE_HOSTS = (
    r"(?:www\.|m\.|mobile\.|old\.|new\.|web\.)?"
    r"(?:twitter\.com|x\.com|facebook\.com|fb\.com|instagram\.com|tiktok\.com|linkedin\.com|threads\.net|"
    r"threads\.com|reddit\.com|bsky\.app|youtube\.com|t\.me|telegram\.me|snapchat\.com|pinterest\.com|twitch\.tv)"
)
# First path segments that are not a person: site pages, and the name-free forms of post links.
_NOT_A_NAME = (
    r"(?:i|r|p|reel|reels|tv|hashtag|search|explore|home|intent|share|sharer|sharer\.php|groups|watch|comments|"
    r"status|statuses|events|pages|company|school|jobs|legal|help|about|privacy|settings|login|signup|tag|discover|"
    r"shorts|playlist|results|embed|feed|joinchat|notifications|messages|compose|tos|photo\.php|story\.php|"
    r"permalink\.php|video|videos)"
)
PROFILE_URL = re.compile(
    r"(?<![\w.\-@])(?:https?://)?(?P<host>" + _PROFILE_HOSTS + r")/"
    r"(?P<prefix>u/|user/|in/|profile/|@|people/|c/|channel/|add/|s/|stories/)?"
    r"(?!" + _NOT_A_NAME + r"(?:[/?#]|(?![\w.\-])))"
    r"(?P<name>[A-Za-z0-9_%\-](?:[A-Za-z0-9_.\-:%]*[A-Za-z0-9_\-%])?)"
    r"(?P<rest>/[^\s<>()\[\]\"'?#]*)?(?P<query>[?#][^\s<>()\[\]\"']*[^\s<>()\[\]\"'.,;:!?])?",
    re.IGNORECASE,
)
FEDI_PROFILE_URL = re.compile(
    r"(?P<host>https?://[A-Za-z0-9.-]+\.[a-z]{2,})/(?P<prefix>@|users/)(?P<name>[A-Za-z0-9_.]*[A-Za-z0-9_])"
    r"(?:@[A-Za-z0-9.-]+[A-Za-z0-9])?(?P<rest>/[^\s<>()\[\]\"'?#]*)?(?![\w@])"
)
HANDLE = re.compile(
    r"(?<![\w.@/])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?"
)
FEDI_HANDLE = re.compile(r"(?<![\w.])@[A-Za-z0-9_.]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
U_NAME = re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]{2,}")
# Facebook links that carry the author's numeric id in their query: permalink.php?story_fbid=1&id=USERID
FB_USER_ID = re.compile(r"(?i)((?:https?://)?(?:[a-z]+\.)?(?:facebook|fb)\.com/[^\s?#]*\?[^\s#]*?(?<=[?&])"
                        r"(?:id|profile_id|user_id)=)\d+")
_AT_SIGNS = str.maketrans({"\uff20": "@", "\ufe6b": "@"})  # fullwidth and small commercial at

USER = "[user]"
_DIGIT_RUN = re.compile(r"\d{2}")  # every phone pattern has two digits in a row


def _profile_link(m: re.Match[str]) -> str:
    """A profile link becomes ``[user]``; a link to a post under a profile keeps the post and loses the name."""
    rest = (m.group("rest") or "").rstrip("/")
    if not rest or (m.group("name").lower() == "profile.php"):
        return USER
    host = m.group("host").lower()
    status = re.match(r"/status(?:es)?/(\d+)", rest)
    if status and re.search(r"(?:^|\.)(?:twitter|x)\.com$", host):
        return f"https://x.com/i/status/{status.group(1)}"
    post = re.match(r"/(p|reel|tv)/([\w-]+)", rest)
    if post and host.endswith("instagram.com"):
        return f"https://www.instagram.com/{post.group(1)}/{post.group(2)}/"
    return f"https://{host}/{m.group('prefix') or ''}{USER}{rest}"


def _fedi_link(m: re.Match[str]) -> str:
    rest = (m.group("rest") or "").rstrip("/")
    return f"{m.group('host')}/{m.group('prefix')}{USER}{rest}" if rest else USER


@dataclass
class ScrubResult:
    text: str
    kinds: list[str] = field(default_factory=list)


def scrub_text(text: str, names: Iterable[str] = ()) -> ScrubResult:
    """Replace e-mails, phones, profile links, @handles, u/names and the author's own names with placeholders."""
    kinds: list[str] = []

    def sub(pattern: re.Pattern[str], repl: Any, kind: str, value: str) -> str:
        new, n = pattern.subn(repl, value)
        if n:
            kinds.extend([kind] * n)
        return new

    out = text
    if "\uff20" in out or "\ufe6b" in out:
        out = out.translate(_AT_SIGNS)
    # Cheap substring tests decide which patterns can match at all; most posts need none of them.
    if "@" in out:
        out = sub(FEDI_HANDLE, USER, "handle", out)
        out = sub(EMAIL, "[email]", "email", out)
    if _OBFUSCATION_HINT.search(out):
        out = sub(OBFUSCATED_EMAIL, "[email]", "email", out)
    if "/" in out:
        if "wa.me" in out or "hatsapp" in out:
            out = sub(WHATSAPP, "[phone]", "phone", out)
        out = sub(PROFILE_URL, _profile_link, "profile_url", out)
        out = sub(FEDI_PROFILE_URL, _fedi_link, "profile_url", out)
        if "id=" in out:
            out = sub(FB_USER_ID, r"\g<1>[user]", "profile_url", out)
    if "@" in out:
        out = sub(HANDLE, USER, "handle", out)
    if "u/" in out:
        out = sub(U_NAME, USER, "handle", out)
    if _DIGIT_RUN.search(out):
        out = sub(PHONE, "[phone]", "phone", out)
    lowered = out.lower()
    for name in sorted({n.strip().lstrip("@") for n in names if n and len(n.strip().lstrip("@")) >= 3}, key=len,
                       reverse=True):
        if name.lower() in lowered:  # cheap test first: compiling a pattern per author is the slow part
            out = sub(re.compile(r"(?<!\w)@?" + re.escape(name) + r"(?!\w)", re.IGNORECASE), USER, "name", out)
            lowered = out.lower()
    return ScrubResult(out, kinds)


_SOCIAL_HOST = re.compile(_PROFILE_HOSTS, re.IGNORECASE)


def scrub_url(url: str | None, names: Iterable[str] = ()) -> tuple[str | None, list[str]]:
    """A post URL without any user name in it: known patterns are rewritten, others dropped if they name one."""
    if not url:
        return None, []
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, ["url"]
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None, ["url"]
    host = parts.netloc.lower().rsplit("@", 1)[-1]
    path = parts.path
    segs = [s for s in path.split("/") if s]
    rewritten: str | None = None
    if re.search(r"(^|\.)(twitter\.com|x\.com)$", host) and len(segs) >= 3 and segs[1] == "status":
        rewritten = urlunsplit(("https", "x.com", f"/i/status/{segs[2]}", "", ""))
    elif host.endswith("bsky.app") and len(segs) >= 4 and segs[0] == "profile" and segs[2] == "post":
        rewritten = None  # handle or DID names the author; the post id alone does not resolve
        return None, ["url"]
    elif host.endswith("reddit.com") and segs and segs[0] in ("u", "user"):
        return None, ["url"]
    elif _SOCIAL_HOST.fullmatch(host.split(":")[0]):
        if host.endswith("facebook.com") and re.search(r"(?:^|&)(?:id|profile_id|user_id)=", parts.query):
            return None, ["url"]  # profile.php?id=, permalink.php?story_fbid=...&id=: the author's numeric id
        if segs and not re.fullmatch(_NOT_A_NAME, segs[0], re.IGNORECASE):
            if host.endswith("instagram.com") and len(segs) >= 3 and segs[1] in ("p", "reel", "tv"):
                rewritten = f"https://www.instagram.com/{segs[1]}/{segs[2]}/"
            else:
                return None, ["url"]  # a name first (tiktok.com/@name/video/1, facebook.com/name/posts/1)
    elif segs and segs[0].startswith("@"):  # Mastodon and other fediverse: /@user/123
        rewritten = urlunsplit((parts.scheme, parts.netloc, "/statuses/" + "/".join(segs[1:]), "", ""))
    if rewritten is not None:
        return rewritten, ["url"]
    # Any user name left anywhere in the URL: drop it rather than guess.
    lowered = url.lower()
    for n in names:
        n = (n or "").strip().lstrip("@").lower()
        if len(n) >= 3 and n in lowered and re.search(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])", lowered):
            return None, ["url"]
    if PROFILE_URL.fullmatch(url) or FEDI_PROFILE_URL.fullmatch(url) or EMAIL.search(url):
        return None, ["url"]
    return url, []


# --------------------------------------------------------------------------------------------------------------
# Protected topics


# Terms are folded (lower case, no accents) and match whole words. A trailing ``*`` on a word allows any ending;
# a phrase matches its words in order, separated by spaces or hyphens. English and Spanish; favour recall, but
# leave out words that ordinary driver talk uses in another sense ("paro" is also unemployment and "se paró",
# "organize" is also sorting packages, "student" also student loans, "interview" also a job interview).
COLLECTIVE_ACTION = [
    # unions and organising
    "union", "unions", "unionis*", "unioniz*", "union rep*", "union representative*", "labor union*",
    "labour union*", "trade union*", "sindica*", "syndicat*", "afiliacion sindical",
    "labor organiz*", "labour organis*", "organiz* a union", "organis* a union", "organizing drivers",
    "organizing workers", "organising drivers", "organising workers", "organiz* ourselves", "organis* ourselves",
    "get organized", "get organised", "self organi*", "let's organi*", "lets organi*", "let's all organi*",
    "time to organi*", "we need to organi*", "we should organi*", "we have to organi*", "we must organi*",
    "organizer*", "organiser*", "organizarnos", "organicemos",
    "organizarse", "organizaron", "organizacion sindical", "organizacion de repartidores",
    "organizacion de trabajadores", "nos organiz*", "nos coordin*", "coordinarnos", "coordinarse",
    "collective action", "accion colectiva", "acciones colectivas", "collective bargaining", "bargaining",
    "negociacion colectiva", "convenio colectivo", "representante* de los trabajadores", "comite de empresa",
    "teamsters", "iwgb", "adcu", "gmb", "app drivers and couriers union", "riders x derechos", "ridersxderechos",
    "ccoo", "comisiones obreras", "ugt", "cgt", "cnt", "intersindical", "gig workers rising",
    "rideshare drivers united", "mobile workers alliance", "working washington", "los deliveristas",
    "deliveristas unidos", "workers alliance", "drivers alliance", "drivers association", "workers association",
    "asociacion de repartidores", "asociacion de riders", "cooperativa*", "co op", "worker coop*",
    "platform coop*",
    # strikes, walkouts, stoppages
    "strike", "strikes", "striking", "striker*", "on strike", "go on strike", "huelg*", "huelguista*",
    "huleg*", "huega", "uelga", "guelga",  # typos and spaced-out variants of "huelga"
    "un paro", "paros", "paro de", "paro nacional", "paro general", "paro indefinido", "paro total",
    "jornada de paro", "paron", "work stoppage*", "stoppage*", "stop work", "walkout*", "walk out", "walk outs",
    "walked out", "walking out", "sickout*", "sick out", "call out sick", "calling out sick", "mass call out",
    "log off together", "logging off together", "log off day", "mass log off", "mass logoff", "desconexion masiva",
    "apagon digital", "apagon de apps", "tumbar la app", "refuse to deliver", "refuse to work",
    "refusing to deliver", "refusing to work", "negarse a repartir", "nos negamos", "se niegan a repartir",
    "dejar de trabajar todos", "dejamos de trabajar", "nos plantamos", "plantemonos", "planton*",
    "paro de brazos caidos", "hacemos paro", "hagamos paro", "hacer paro", "hacemos un paro", "hagamos un paro",
    "go dark", "going dark", "go offline together", "stay offline", "delete day",
    # protests, rallies, petitions, boycotts
    "protest*", "protesta*", "manifestacion*", "manifestar*", "manifestad*", "manifestaron", "manifestamos",
    "manifestantes", "se manifiest*", "manifa*", "concentracion*", "concentraron", "movilizacion*", "movilizar*",
    "movilizad*", "rally", "rallies", "rallied", "rallying", "demonstration*", "demonstrator*", "march on",
    "marched", "marching", "una marcha", "marcha de protesta", "picket*", "piquete*", "chant*", "corear*",
    "corearon", "coreaban", "coreando", "pancarta*", "placard*", "petition*", "peticion*", "change org",
    "recogida de firmas", "recoger firmas", "boycott*", "boicot*", "estall*", "caravana de protesta",
    "frente a las oficinas", "frente a la sede", "outside the offices", "outside the headquarters",
    "outside headquarters", "exigir mejores", "exigen mejores", "exigieron", "exigiendo", "exigimos",
    "para exigir", "reivindica*", "demand better", "demanding better", "demand higher", "demands higher",
    "demanding higher", "mejores condiciones", "better conditions", "derechos laborales", "nuestros derechos",
    "sus derechos", "our rights", "workers rights", "worker rights", "labor rights", "labour rights",
    "living wage", "salario digno", "lucha obrera", "lucha sindical", "en masa", "en masse",
    # solidarity and collective voice
    "solidarity", "solidaridad", "stand together", "standing together", "united we", "unidos somos",
    "todos unidos", "todos juntos", "unite", "movement", "movimiento obrero", "movimiento de repartidores",
    "colectivo de repartidores", "colectivo de riders", "asamblea*", "convoca*", "quorum",
    "private group*", "private facebook group*", "social media group*", "grupo* privado*",
    "class action", "demanda colectiva", "lawsuit together", "legislation", "legislacion", "ley rider",
    "prop 22", "ab5", "ab 5",
]
RESEARCH_PRESS_CONTACT = [
    # researchers, students, studies, surveys
    "researcher*", "research project*", "research study", "research team", "this research", "our research",
    "my research", "academic research", "secondary research", "a project on", "a project about",
    "project on delivery", "investigacion sobre", "investigador*", "investigacion academica",
    "proyecto de investigacion", "academic*", "academico*", "phd", "doctoral", "doctorado", "doctorand*",
    "dissertation*", "thesis", "tesis", "tfg", "tfm", "trabajo de fin de", "ethnograph*", "etnograf*",
    "sociolog*", "anthropolog*", "antropolog*", "professor*", "catedratic*", "university of", "universidad de",
    "student research*", "student project", "student journalist*", "graduate student*", "grad student*",
    "phd student*", "university student*", "masters student*", "master's student*", "msc student*",
    "uni study", "uni project", "university study", "college study", "estudio de la universidad",
    "estudio de la uni", "estudio universitario", "trabajo de la uni", "trabajo para la uni",
    "trabajo de la universidad", "trabajo para la universidad", "estudiante* de doctorado", "estudiante* de periodismo",
    "estudiante* de master", "survey*", "encuesta*", "questionnaire*", "cuestionario*", "focus group*",
    "grupo focal", "grupos focales", "participant observation", "study participant*", "research participant*",
    "participate in this research", "participate in a study", "participate in our study",
    "participar en un estudio", "participar en nuestro estudio", "participantes en el estudio",
    "invited to participate", "take part in a study", "take part in our", "estudio sobre", "study on",
    "study about", "our study", "nuestro estudio", "un estudio", "a study", "paid study",
    "gift card for your time", "compensated for your time", "compensation for your time",
    # journalists, interviews, the press
    "journalis*", "periodis*", "reporter*", "reportero*", "reportera*", "reportaje*", "corresponsal*",
    "the press", "la prensa", "press contact*", "press inquir*", "media inquir*", "newspaper*", "periodico*",
    "este diario", "este medio", "este periodico", "this newspaper", "readers", "lectores", "documentary",
    "documental*", "interviewed", "interviewing", "be interviewed", "in an interview", "an interview with",
    "interview with a", "interview an", "interview drivers", "interview couriers", "interview riders",
    "said in an interview", "entrevistad*", "entrevistamos", "entrevistar a", "entrevista a", "entrevistas a",
    "en una entrevista", "en entrevista con", "una entrevista con", "concedio una entrevista",
    "me entrevist*", "nos entrevist*", "me hicieron una entrevista", "me hizo una entrevista",
    "nos hicieron una entrevista", "di una entrevista", "dar una entrevista", "gave an interview",
    "writer at", "writer for", "writer from", "para la tele", "en la tele",
    "writing a story", "writing an article", "writing a piece", "escribiendo un articulo",
    "escribiendo un reportaje", "your article", "your recent article", "your story", "your piece",
    "your reporting", "tu articulo", "su articulo", "tu reportaje", "su reportaje", "write in with",
    "writing in to", "wrote in to",
    "shar* their stor*", "shar* their own stor*", "shar* your stor*", "compart* su* historia*",
    "cont* su* historia*", "testimonio*", "testimonies", "on the record", "off the record", "anonymity",
    "anonymous*", "anonimato", "anonim*", "pseudonym*", "seudonimo*", "pseudonimo*", "nombre ficticio",
    "asked not to be identified", "not to be identified", "not be identified", "not to be named",
    "declined to be named", "pidio no ser identificad*", "no ser identificad*", "me identificarian",
    "identificarian", "no ha querido declarar", "no quiso declarar", "querido declarar", "en declaraciones",
    "declaraciones a", "ha hablado con", "han hablado con", "hemos hablado con", "hablado con varios",
    "hablado con algunos", "ha querido acompanar", "on the news", "en las noticias", "our podcast",
    "podcast host*", "podcast interview*", "for a podcast", "para un podcast", "camera crew", "tv crew",
    "equipo de television", "televis*", "cbc", "bbc", "nbc", "cnn", "cadena ser", "la ser",
    # someone from an outlet ("someone from ProPublica", "un chico de eldiario.es"); a bare outlet name is not contact
    *[f"{by} {outlet}" for by in ("from", "from the", "at", "at the", "for", "for the", "with", "with the")
      for outlet in ("guardian", "new york times", "nyt", "washington post", "wall street journal", "propublica",
                     "vice", "the verge", "bloomberg", "reuters", "bbc news")],
    *[f"{by} {outlet}" for by in ("de", "del", "de el", "de la", "en", "en el", "en la")
      for outlet in ("eldiario", "el diario", "el confidencial", "sexta", "antena 3", "telecinco", "rtve",
                     "tve")],
]

# Crowds of workers acting together ("cientos de repartidores", "más de 20 mensajeros", "hundreds of drivers").
_CROWD = (
    r"(?<![a-z0-9])(?:(?:mas de|unos|cientos de|centenares de|decenas de|miles de)(?: \d+)?"
    r"|(?:hundreds|dozens|thousands) of)"
    r" (?:repartidores|riders|mensajeros|domiciliarios|trabajadores|drivers|couriers|workers)(?![a-z0-9])"
)

# Coordinated refusal in drivers' own words: a mass log-off needs no word like "strike". Three shapes:
# a collective subject and a switch-off ("everyone go dark", "let's all log off", "nadie acepta pedidos"),
# a plural first person or imperative ("apagamos la app", "no cogemos pedidos", "apagad la app"), and a bare
# imperative at the start of a sentence with a time ("Shut the app off at 5", "Don't take any orders Friday").
_OFF = (
    r"(?:log(?:ging)? ?(?:off|out)|go(?:ing)? (?:dark|offline)|stay(?:ing)? (?:offline|off|home|logged off)"
    r"|(?:turn|shut|switch)(?:ing)? (?:(?:it|them|the apps?|your apps?|our apps?) )?(?:off|down)"
    r"(?: (?:the|your|our) apps?)?|pause(?: (?:the|your|our) apps?)?|sit(?:ting)? (?:out|it out)"
    r"|declin(?:e|ing)(?: (?:everything|all|every))?|reject(?:ing)? (?:everything|all|every)"
    r"|(?:don'?t|do not|stop) (?:accept|take|work|drive|log|dash|deliver)\w*)"
)
_TIME = (
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|tomorrow|tonight|noon|midnight"
    r"|(?:at|from|between|until|till) \d|\d ?(?:am|pm)|(?:the|this|next) \d+(?:st|nd|rd|th)?)"
)
_REFUSAL = (
    r"(?<![a-z0-9'])(?:"
    r"(?:everyone|everybody|all of us|all of you|all drivers|all dashers|all riders|every driver|every dasher"
    r"|we all|let'?s all|lets all|y'?all|ya'?ll|you all) (?:\w+ )?" + _OFF +
    r"|(?:nobody|no one|noone|no drivers?|no dashers?|no riders?|not one driver|zero drivers) (?:please )?"
    r"(?:accept|take|work|drive|deliver|dash|log ?on|log in|go online|sign in|pick up|grab)(?![a-z])"
    r"|" + _OFF + r" (?:\w+ ){0,3}(?:together|at the same time|as one|in solidarity|with us)(?![a-z])"
    r"|(?:^|(?<=[.!?:;\n]) *|(?<=[.!?:;\n]))" + _OFF + r"(?: [^.!?\n]*?)??(?<![a-z])" + _TIME +
    r"|nadie (?:se )?(?:acept|coge|coja|cogemos|conect|trabaj|repart|sale |salga|curr|enciend|pill|encend)"
    r"|(?:no )?(?:apagamos|apaguemos|apagad|desconectamos|desconectemos|desconectaos|nos desconectamos"
    r"|nos desconectemos)(?![a-z])"
    r"|no (?:nos )?(?:aceptamos|aceptemos|aceptes|cogemos|cojamos|cojais|conectamos|conectemos|trabajamos"
    r"|trabajemos|repartimos|repartamos|salimos|salgamos|curramos|curremos)(?![a-z])"
    r"|(?:paro|huelga|apagon|desconexion) (?:el |este |esta |del |los |las |de |a las )?"
    r"(?:lunes|martes|miercoles|jueves|viernes|sabado|domingo|finde|fin de semana|manana|dia \d|\d+ de)"
    r")"
)

# Uses of protected words in another sense, cut out before matching (only these spans: any other cue in the
# post still counts). Narrow on purpose: "drivers went on strike" must never look like "my app went on strike".
_BENIGN_HINT = re.compile(r"stri|huelg|union")
_BENIGN = re.compile(
    r"(?<![a-z])(?:strike prices?|lightning strikes?|bowl(?:ed|ing)? (?:a )?strikes?|strikes? (?:out|through)"
    r"|(?:a|another|one|two|three|first|second|third|final) strikes? on (?:my|your|his|her|their) (?:account|record)"
    r"|(?:my|the|this) (?:app|apps|phone|car|van|gps|scanner|battery|printer|tablet|back|knees?|legs?|body|brain"
    r"|wifi|internet) (?:just |has |finally |officially |decided to )?(?:went|is|goes|gone|has gone|go|going) "
    r"on strike"
    r"|(?:la|mi|el) (?:app|aplicacion|movil|telefono|coche|moto|gps|bateria|espalda|cuerpo) (?:se ha puesto"
    r"|esta|se puso|se declaro|se ha declarado) en huelga"
    r"|union of (?:two|2|both|three|3|the two) |drone strikes?|air ?strikes?)"
)

# Obfuscation, undone before a second look: invisible characters, Cyrillic and Greek letters that look Latin,
# CamelCase hashtags, spaced-out letters ("s t r i k e", "u.n.i.o.n"), digits and symbols for letters
# ("str1ke", "$trike", "b0yc0tt") and stretched letters ("striiiike"). Fullwidth and styled letters are already
# undone by ``fold`` (NFKD).
_INVISIBLE = {cp: None for cp in [0x00AD, 0x034F, 0x061C, 0x180E, 0xFEFF, *range(0x200B, 0x2010),
                                 *range(0x202A, 0x202F), *range(0x2060, 0x2070), *range(0xFE00, 0xFE10)]}
_CONFUSABLE = str.maketrans(
    "аеорсуххіјѕԁһԛԝАВЕКМНОРСТХУІЈЅαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxxijsdhqwABEKMHOPCTXYIJSabeikvoptuxABEZHIKMNOPTYX",
)
_UNMASK = str.maketrans({"_": None, **_INVISIBLE})
_MASKING = re.compile("[" + "".join(map(chr, _INVISIBLE)) + "\u0370-\u03ff\u0400-\u052f]")
_LEET = str.maketrans("013457@$!|", "oieastasii")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_HASHTAG_ROOT = re.compile(
    r"^(?:delete|boycott|boicot|logoff|godark|huelg|paro)|huelg|(?<!drone)(?<!air)strike|unioni[sz]|sindica"
    r"|boycott|boicot|logoff|godark|walkout|protest|petition|picket|manifa|movilizacion|desconexion|apagon"
    r"|(?:drivers|riders|workers|dashers|couriers|repartidores)(?:unite|unidos|enlucha|xderechos)"
    r"|collectivebargaining|classaction|union$"
)
_SPACED = re.compile(r"(?<![^\W_])[^\W_](?:[ .\-_*\u00b7]{1,2}[^\W_](?![^\W_])){2,}")
_SPACED_SEP = re.compile(r"[ .\-_*\u00b7]")
_LEET_WORD = re.compile(r"(?<![\w@$!|])\$?[a-z0-9]+(?:[!|@$]+[a-z0-9]+)*")
# a digit or symbol inside a word, or one standing for its first letter before 4 more ("5trike", "$trike");
# not "4pm", "2nd", "@user"
_LEET_HINT = re.compile(r"[a-z][0-9!|@$]+[a-z]|(?<![\w$])\$[a-z]|(?<![\w$])[013457][a-z]{4}")
# One cheap first test for all three (most posts have none): stretched letter, digit or symbol after a letter or
# "$" before one, and a one-letter word followed by a separator and another letter.
_TRICK_GATE = re.compile(
    r"([a-z])\1\1|[0-9!|@$](?<=[a-z][0-9!|@$])|\$[a-z]|(?<![\w$])[013457][a-z]{4}"
    r"|[ .\-_*\u00b7](?<=(?<![^\W_])[^\W_][ .\-_*\u00b7])[^\W_][ .\-_*\u00b7]"
)
_STRETCH = re.compile(r"([a-z])\1{2,}")
_FIST = ("\u270a", "\U0001faa7")  # raised fist, placard
_WORKERS = re.compile(
    r"(?<![a-z])(?:drivers|riders|couriers|dashers|shoppers|repartidores|trabajadores|workers|companeros|compas"
    r"|flexers|mensajeros)(?![a-z])"
)


def _unspace(m: re.Match[str]) -> str:
    """``"s t r i k e"`` -> ``"strike"``; a leading one-letter word is also kept apart (``"a j o b"``)."""
    run = m.group()
    joined = _SPACED_SEP.sub("", run)
    return f"{run[0]} {joined[1:]} {joined}" if run[0] in "aeiouy" else joined


def _deleet(m: re.Match[str]) -> str:
    word = m.group()
    return word.translate(_LEET) if _LEET_HINT.search(word) else word


def unmask(text: str, folded: str | None = None) -> str:
    """``text`` folded with common obfuscations undone (see above; hashtags apart, :func:`hashtag_words`), for a
    second look by the detector; ``folded`` is ``fold(text)`` when the caller has it already."""
    if not text.isascii() and _MASKING.search(text):
        folded = fold(text.translate(_UNMASK).translate(_CONFUSABLE))
    out = fold(text) if folded is None else folded
    if not _TRICK_GATE.search(out):
        return out
    out = _SPACED.sub(_unspace, out)
    if _LEET_HINT.search(out):
        out = _LEET_WORD.sub(_deleet, out)
    return _STRETCH.sub(r"\1", out)


def hashtag_words(text: str) -> str:
    """The CamelCase hashtags of ``text`` as words (``#MassLogOff`` -> ``"mass log off"``), one per line."""
    return fold("\n".join(_CAMEL.sub(" ", tag) for tag in _HASHTAG.findall(text) if _CAMEL.search(tag)))


class ProtectedTopicDetector:
    """Flags text about collective action or contact with researchers and journalists (English and Spanish).

    Tuned for recall: a false positive withholds one harmless post; a false negative stores what must not be.
    Text is matched as written (folded) and, when they differ, again with obfuscations undone (:func:`unmask`);
    hashtags are also read as words and searched for protected roots (``#driversunite``, ``#DeleteUber``).
    """

    name = "protected-topics"
    version = "2"

    def __init__(self) -> None:
        self._topics = ("collective_action", "research_press_contact")
        self._matcher = TermMatcher(
            [(t, 0) for t in COLLECTIVE_ACTION] + [(t, 1) for t in RESEARCH_PRESS_CONTACT]
        )
        self._crowd = re.compile(_CROWD + "|" + _REFUSAL)
        self._hashtag_matcher = TermMatcher(
            [(t, 0) for t in COLLECTIVE_ACTION if " " in t] + [(t, 1) for t in RESEARCH_PRESS_CONTACT if " " in t]
        )

    def _find(self, folded: str) -> set[int]:
        if _BENIGN_HINT.search(folded):
            folded = _BENIGN.sub(" ", folded)
        found = {target for target, _ in self._matcher.find(folded)}
        if 0 not in found and self._crowd.search(folded):
            found.add(0)
        return found

    def detect(self, text: str) -> str | None:
        """The protected topic the text is about, or ``None``."""
        folded = fold(text)
        found = self._find(folded)
        if 0 not in found:
            unmasked = unmask(text, folded)
            if unmasked != folded:
                found |= self._find(unmasked)
            if "#" in text:
                if any(_HASHTAG_ROOT.search(tag) for tag in _HASHTAG.findall(folded)):
                    found.add(0)
                else:  # CamelCase hashtags as words, for phrases ("#MassLogOff"); bare words stay out ("#UniteBlue")
                    found |= {t for t, _ in self._hashtag_matcher.find(hashtag_words(text))}
            if any(f in text for f in _FIST) and (_FIST[1] in text or _WORKERS.search(unmasked)):
                found.add(0)
        if 0 in found:
            return self._topics[0]
        if 1 in found:
            return self._topics[1]
        return None


# --------------------------------------------------------------------------------------------------------------
# The guard


@dataclass(frozen=True)
class Verdict:
    """What the guard decided about one post: exactly one of ``post`` and ``rejection`` is set."""

    post: GuardedPost | None
    rejection: Rejection | None
    scrubbed: tuple[str, ...] = ()


class Guard:
    """Applies the policy to one normalised :class:`Post` at a time."""

    def __init__(self, key: bytes, detector: ProtectedTopicDetector | None = None) -> None:
        if len(key) < 16:
            raise ValueError("pseudonym key must be at least 16 bytes")
        self._key = key
        self.detector = detector or ProtectedTopicDetector()

    def __repr__(self) -> str:
        return "Guard(key=***)"

    def ship(self, post: GuardedPost) -> tuple[tuple[Any, ...], bytes]:
        """A guarded post as plain fields and a MAC under the key, to cross a process boundary (Ray workers)."""
        fields = tuple(getattr(post, f) for f in SHIPPED_FIELDS)
        return fields, self._mac(fields)

    def receive(self, fields: tuple[Any, ...], mac: bytes) -> GuardedPost:
        """The guarded post :meth:`ship` sent, sealed again only if its MAC verifies under this guard's key: a
        worker's guard built it, and nothing changed it on the way."""
        if not hmac.compare_digest(self._mac(fields), mac):
            raise ValueError("a shipped guarded post failed its MAC check: not built by a guard with this key")
        return GuardedPost(*fields, seal=_TOKEN)

    def _mac(self, fields: tuple[Any, ...]) -> bytes:
        return hmac.new(self._key, b"ship:" + repr(fields).encode(), hashlib.sha256).digest()

    def item_digest(self, source: str, external_id: str) -> str:
        """A keyed digest of an item's identity, so a re-delivered rejected item is counted once."""
        return hmac.new(self._key, f"seen:{source}:{external_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, post: Post, source_visibility: str) -> Verdict:
        day = post.created_at.strftime("%Y-%m-%d")

        def refuse(action: str, reason: str) -> Verdict:
            digest = self.item_digest(post.source, post.external_id)
            return Verdict(None, Rejection(post.source, day, action, reason, digest))  # type: ignore[arg-type]

        if source_visibility not in ("public", "consented"):
            return refuse("rejected", "source_not_public")
        visibility = post.visibility or source_visibility
        if visibility in REFUSED_VISIBILITIES:
            return refuse("rejected", visibility)
        if visibility not in ("public", "consented"):
            return refuse("rejected", "unknown_visibility")
        if post.kind == "social":
            topic = self.detector.detect(" ".join(x for x in (post.title, post.text) if x))
            if topic is not None:
                return refuse("withheld", topic)
        names = [n for n in (post.author_handle, post.author_name) if n]
        if post.kind == "news":
            names = []  # a publisher's byline is not a private person's handle; links in articles are kept
        text = scrub_text(post.text, names)
        title = scrub_text(post.title, names) if post.title else None
        url, url_kinds = scrub_url(post.url, [n for n in (post.author_handle,) if n])
        kinds = tuple(text.kinds + (title.kinds if title else []) + url_kinds)
        author = pseudonym(self._key, post.platform, post.author_id) if post.author_id else None
        guarded = GuardedPost(
            source=post.source,
            external_id=post.external_id,
            platform=post.platform,
            kind=post.kind,
            visibility=visibility,  # type: ignore[arg-type]
            created_at=post.created_at,
            text=text.text,
            title=title.text if title else None,
            url=url,
            author_pseudonym=author,
            lang_hint=post.lang_hint,
            country=post.country,
            scrubbed=kinds,
            seal=_TOKEN,
        )
        return Verdict(guarded, None, kinds)
