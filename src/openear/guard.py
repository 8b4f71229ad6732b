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
_SEP = r"[ .\-\u00a0]?"
PHONE = re.compile(
    "|".join(
        [
            # international: +1 555 123 4567, +44 7700 900123, +34 612 34 56 78, 0034 612345678
            r"(?<![\w+])(?:\+|00)\d{1,3}[ .\-\u00a0]?(?:\(?\d{1,4}\)?[ .\-\u00a0]?){2,5}\d{2,4}(?!\w)",
            # US: (555) 123-4567, 555-123-4567, 555.123.4567, 5551234567
            r"(?<![\w$])\(?[2-9]\d{2}\)?" + _SEP + r"[2-9]\d{2}" + _SEP + r"\d{4}(?![\w])",
            # UK: 07700 900123, 020 7946 0958, 0161 496 0000, 01632 960000
            r"(?<![\w$])0\d{2,4}" + _SEP + r"\d{3,4}" + _SEP + r"\d{3,4}(?![\w])",
            # ES: 612 345 678, 612 34 56 78, 91 123 45 67, 912345678
            r"(?<![\w$])[6789]\d{2}" + _SEP + r"\d{2,3}" + _SEP + r"\d{2,3}(?:" + _SEP + r"\d{2})?(?![\w])",
            r"(?<![\w$])[89]\d" + _SEP + r"\d{3}" + _SEP + r"\d{2}" + _SEP + r"\d{2}(?![\w])",
        ]
    )
)
_PROFILE_HOSTS = (
    r"(?:www\.|m\.|mobile\.|old\.|new\.)?"
    r"(?:twitter\.com|x\.com|facebook\.com|fb\.com|instagram\.com|tiktok\.com|linkedin\.com|threads\.net|"
    r"reddit\.com|bsky\.app|youtube\.com)"
)
PROFILE_URL = re.compile(
    r"(?:https?://)?" + _PROFILE_HOSTS + r"/"
    r"(?:u/|user/|in/|profile/|@|people/)?"
    r"(?!(?:i|r|hashtag|search|explore|home|intent|share|sharer|groups|watch|comments|status|statuses)(?:[/?#]|\b))"
    r"[A-Za-z0-9_.\-:%]+(?:/?(?=[\s)\]>,;!]|$)|(?=[?#]))",
)
FEDI_PROFILE_URL = re.compile(r"https?://[A-Za-z0-9.-]+\.[a-z]{2,}/@[A-Za-z0-9_.]+(?:@[A-Za-z0-9.-]+)?/?(?![\w/])")
HANDLE = re.compile(
    r"(?<![\w.@/])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?"
)
FEDI_HANDLE = re.compile(r"(?<![\w.])@[A-Za-z0-9_.]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
U_NAME = re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]{2,}")

USER = "[user]"
_DIGIT_RUN = re.compile(r"\d{2}")  # every phone pattern has two digits in a row


@dataclass
class ScrubResult:
    text: str
    kinds: list[str] = field(default_factory=list)


def scrub_text(text: str, names: Iterable[str] = ()) -> ScrubResult:
    """Replace e-mails, phones, profile links, @handles, u/names and the author's own names with placeholders."""
    kinds: list[str] = []

    def sub(pattern: re.Pattern[str], repl: str, kind: str, value: str) -> str:
        new, n = pattern.subn(repl, value)
        if n:
            kinds.extend([kind] * n)
        return new

    out = text
    # Cheap substring tests decide which patterns can match at all; most posts need none of them.
    if "@" in out:
        out = sub(FEDI_HANDLE, USER, "handle", out)
        out = sub(EMAIL, "[email]", "email", out)
    if "/" in out:
        out = sub(PROFILE_URL, USER, "profile_url", out)
        out = sub(FEDI_PROFILE_URL, USER, "profile_url", out)
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
    if PROFILE_URL.fullmatch(url) or EMAIL.search(url):
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
    "get organized", "get organised", "self organi*", "organizer*", "organiser*", "organizarnos", "organicemos",
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
    "strike", "strikes", "striking", "striker*", "on strike", "go on strike", "huelga*", "huelguista*",
    "un paro", "paros", "paro de", "paro nacional", "paro general", "paro indefinido", "paro total",
    "jornada de paro", "paron", "work stoppage*", "stoppage*", "stop work", "walkout*", "walk out", "walk outs",
    "walked out", "walking out", "sickout*", "sick out", "call out sick", "calling out sick", "mass call out",
    "log off together", "logging off together", "log off day", "mass log off", "mass logoff", "desconexion masiva",
    "apagon digital", "apagon de apps", "tumbar la app", "refuse to deliver", "refuse to work",
    "refusing to deliver", "refusing to work", "negarse a repartir", "nos negamos", "se niegan a repartir",
    "dejar de trabajar todos", "dejamos de trabajar",
    # protests, rallies, petitions, boycotts
    "protest*", "protesta*", "manifestacion*", "manifestar*", "manifestad*", "manifestaron", "manifestamos",
    "manifestantes", "se manifiest*", "concentracion*", "concentraron", "movilizacion*", "movilizar*",
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
    "my research", "academic research", "secondary research", "investigador*", "investigacion academica",
    "proyecto de investigacion", "academic*", "academico*", "phd", "doctoral", "doctorado", "doctorand*",
    "dissertation*", "thesis", "tesis", "tfg", "tfm", "trabajo de fin de", "ethnograph*", "etnograf*",
    "sociolog*", "anthropolog*", "antropolog*", "professor*", "catedratic*", "university of", "universidad de",
    "student research*", "student project", "student journalist*", "graduate student*", "grad student*",
    "phd student*", "university student*", "estudiante* de doctorado", "estudiante* de periodismo",
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
]

# Crowds of workers acting together ("cientos de repartidores", "más de 20 mensajeros", "hundreds of drivers").
_CROWD = (
    r"(?<![a-z0-9])(?:(?:mas de|unos|cientos de|centenares de|decenas de|miles de)(?: \d+)?"
    r"|(?:hundreds|dozens|thousands) of)"
    r" (?:repartidores|riders|mensajeros|domiciliarios|trabajadores|drivers|couriers|workers)(?![a-z0-9])"
)


class ProtectedTopicDetector:
    """Flags text about collective action or contact with researchers and journalists (English and Spanish).

    Tuned for recall: a false positive withholds one harmless post; a false negative stores what must not be.
    """

    name = "protected-topics"
    version = "1"

    def __init__(self) -> None:
        self._topics = ("collective_action", "research_press_contact")
        self._matcher = TermMatcher(
            [(t, 0) for t in COLLECTIVE_ACTION] + [(t, 1) for t in RESEARCH_PRESS_CONTACT]
        )
        self._crowd = re.compile(_CROWD)

    def detect(self, text: str) -> str | None:
        """The protected topic the text is about, or ``None``."""
        folded = fold(text)
        found = {target for target, _ in self._matcher.find(folded)}
        if 0 in found or self._crowd.search(folded):
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
