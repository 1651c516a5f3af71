"""Stories: cluster reports of one event from several outlets (Item + Decision -> Story).

Weighted headline and lede words decide, unless the events conflict (a wrong merge is
a missed alert). Pure. Figures: docs/BENCHMARKS.md (story clustering)."""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.models import ActorRef, Decision, Event, Item, Story, StorySource

__all__ = [
    "DEFAULT_THRESHOLD",
    "Profile",
    "StoryIndex",
    "clean_lede",
    "clean_title",
    "conflict",
    "person_tokens",
    "profile",
    "report_tokens",
    "similarity",
    "story_id",
    "title_tokens",
]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+")
LEDE_CHARS = 300
_STOP = frozenset(
    """a an the and or of to in on at for with by from as is are was were be been will
    would could should may might has have had its it this that these those after before
    over amid into about than then but not no new says said say via s""".split()
)
# Place names stand for their country in headlines ("Seoul hosts ..."), so they count
# as the same token for similarity.
_ALIASES = {
    "seoul": "korea",
    "s": "korea",
    "skorea": "korea",
    "rok": "korea",
    "korean": "korea",
    "koreans": "korea",
    "tokyo": "japan",
    "japanese": "japan",
    "beijing": "china",
    "chinese": "china",
    "prc": "china",
    "trilateral": "three",
    "threeway": "three",
    "summits": "summit",
    "talks": "meeting",
    "meet": "meeting",
    "meets": "meeting",
    "met": "meeting",
    "hosts": "host",
    "hosted": "host",
    "hosting": "host",
    "visits": "visit",
    "visited": "visit",
    "visiting": "visit",
}


def _stem(word: str) -> str:
    word = _ALIASES.get(word, word)
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


# Words every diplomatic report shares: they count half, so that "Chinese president
# visits Japan" and "Japanese PM visits China" are not one story on them alone.
_GENERIC = frozenset(
    """china japan korea north south us usa united states america russia president
    minister prime pm leader foreign state summit visit meeting host three official
    government fm deputy top trip talk ties relation world news report""".split()
)
PERSON_WEIGHT = 2.0
DEFAULT_THRESHOLD = 0.3
GENERIC_WEIGHT = 0.5
# "SEOUL, Jan 13 (Reuters) - " and "BEIJING (AP) — " open many ledes.
_DATELINE = re.compile(
    r"^\s*[A-Z][A-Z .'-]{1,40}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?"
    r"\s*(?:\([A-Za-z .]{2,20}\))?\s*[-\u2013\u2014]+\s*"
)
# " - Reuters", " | The Korea Times": an outlet's name after the headline.
_OUTLET_SUFFIX = re.compile(r"\s+[-|\u2013\u2014]\s+[A-Z][\w .&']{1,40}$")


def title_tokens(text: str) -> frozenset[str]:
    """Content words of a headline, folded so that outlets' phrasings meet."""
    words = (w.lower() for w in _WORD.findall(text.replace("S.Korea", "South Korea")))
    return frozenset(_stem(w) for w in words if w not in _STOP and len(w) > 1)


def clean_title(title: str) -> str:
    """The headline without a trailing outlet name ("... - Reuters")."""
    return _OUTLET_SUFFIX.sub("", title.strip())


def clean_lede(title: str, summary: str) -> str:
    """The start of the summary without a dateline, and without the headline when
    the summary merely repeats it (feeds that carry no lede)."""
    lede = _DATELINE.sub("", summary[:LEDE_CHARS], count=1)
    head = clean_title(title)
    if head and lede.startswith(head):
        lede = lede[len(head) :]
        if len(lede.split()) <= 3:
            return ""  # the headline and the outlet's name: no lede
    return lede


def report_tokens(title: str, summary: str) -> frozenset[str]:
    """Words of a headline and the first two sentences of its lede."""
    parts = _FIRST_SENTENCE.split(clean_lede(title, summary), maxsplit=2)
    return title_tokens(f"{clean_title(title)} {' '.join(parts[:2])}")


def person_tokens(event: Event | None) -> frozenset[str]:
    """The people an event names, as tokens (``@xi jinping``): they identify an
    event better than any word."""
    if event is None:
        return frozenset()
    return frozenset(f"@{a.name.lower()}" for a in event.actors if a.kind == "person")


def _weight(token: str) -> float:
    if token.startswith("@"):
        return PERSON_WEIGHT
    return GENERIC_WEIGHT if token in _GENERIC else 1.0


def story_id(item: Item) -> str:
    """Stable id of the story an item starts: derived from where it came from."""
    key = f"{item.feed_url or ''}|{item.id}".encode()
    return "st_" + hashlib.sha256(key).hexdigest()[:20]


@functools.lru_cache(maxsize=16384)
def _total(tokens: frozenset[str]) -> float:
    # Weights are 0.5, 1 and 2: sums are exact in any order, so equal sets give
    # equal totals whatever their iteration order.
    return sum(map(_weight, tokens))


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Weighted overlap coefficient: shared weight over the lighter side's weight."""
    if not a or not b:
        return 0.0
    common = a & b
    if not common:
        return 0.0
    return sum(map(_weight, common)) / min(_total(a), _total(b))


def _event_affinity(a: Event | None, b: Event | None) -> float:
    if a is None or b is None:
        return 0.0
    ca, cb = set(a.countries), set(b.countries)
    if not ca or not cb:
        return 0.0
    countries = len(ca & cb) / len(ca | cb)
    kinds = 1.0 if set(a.kinds) & set(b.kinds) else 0.5
    return countries * kinds


def _named(actor: ActorRef) -> bool:
    # The gazetteer's canonical names are capitalised; "leaders", "president",
    # "counterparts" are unnamed people of a country and identify nobody.
    return actor.kind == "person" and actor.name[:1].isupper()


# "Stocks rise as Trump meets Xi", "Russia strikes Ukraine as ...", "North Korea
# tests a missile before Xi's visit": what follows is background, not the subject.
_SUBORDINATE = re.compile(
    r"\b(?:as|after|before|ahead of|amid|while|on eve of)\b", re.IGNORECASE
)
# How headlines name the countries that are most often a party, as title tokens
# ("Seoul", "South Korean" -> korea); other countries are not looked for.
_COUNTRY_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(_stem(w) for w in words.split())
    for code, words in {
        "CN": "china chinese beijing",
        "JP": "japan japanese tokyo",
        "KR": "korea korean seoul",
        "KP": "korea korean pyongyang",
        "US": "us usa america american washington",
        "RU": "russia russian moscow kremlin",
        "TW": "taiwan taiwanese taipei",
        "CA": "canada canadian ottawa",
        "FR": "france french paris",
        "GB": "britain british uk london",
        "IN": "india indian delhi",
        "AU": "australia australian canberra",
    }.items()
}
MENTION_MIN_WORDS = 3


@dataclass(frozen=True, slots=True)
class Profile:
    """What identifies the event of one report, from its headline and its event."""

    mention: bool
    """The headline's main clause is about something else ("Stocks rise as Trump
    meets Xi"): the event is only its background."""
    subjects: frozenset[str]
    """Named people with a part in the event whom the headline's main clause names."""
    people: dict[str, frozenset[str]]
    """Named people with a part in the event, by country."""
    parties: frozenset[str]
    """Countries with a part in the event (merely mentioned ones left out)."""
    countries: frozenset[str]
    """Every country the event names, parties or not."""
    kinds: frozenset[str]
    """Summit, visit."""


def profile(title: str, event: Event | None) -> Profile:
    """The report's profile, from what a stored story keeps too (title and event),
    so that a story loaded from the store compares as it did in memory."""
    if event is None:
        return Profile(False, frozenset(), {}, frozenset(), frozenset(), frozenset())
    cut = _SUBORDINATE.search(title)
    main = title[: cut.start()] if cut else title
    rest = title[cut.end() :] if cut else ""
    # Named only in the background clause ("... days after Trump's trip"): not a
    # party to this event, whatever part the classifier gave them.
    principals = [
        a
        for a in event.actors
        if (a.role is not None or _named(a))
        and not (a.mention and a.mention in rest and a.mention not in main)
    ]
    named = [a for a in principals if _named(a)]
    subjects = [a for a in named if a.mention and a.mention in main]
    people: dict[str, set[str]] = {}
    for a in named:
        people.setdefault(a.country, set()).add(a.name)
    parties = frozenset(a.country for a in principals) | people.keys()
    mention = False
    if cut is not None and not subjects:
        later = any(_named(a) and a.mention and a.mention in rest for a in event.actors)
        words = title_tokens(main)
        named_party = any(words & _COUNTRY_WORDS.get(c, frozenset()) for c in parties)
        mention = later and not named_party and len(words) >= MENTION_MIN_WORDS
    return Profile(
        mention=mention,
        subjects=frozenset(a.name for a in subjects),
        people={c: frozenset(p) for c, p in people.items()},
        parties=parties,
        countries=frozenset(event.countries),
        kinds=frozenset(event.kinds),
    )


def _nested(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a or not b or a <= b or b <= a


def conflict(a: Profile, b: Profile) -> str | None:
    """Why two reports cannot tell one event, or None. Each reason is something one
    event cannot be: a wrong merge silences an alert, a wrong split repeats one."""
    if a.mention or b.mention:
        # What such a report is about (markets, a war) is not what its event
        # says; sharing the background event is no evidence of one story.
        return "a headline only mentions the event"
    for country in a.people.keys() & b.people.keys():
        if not a.people[country] & b.people[country]:
            return f"other people speak for {country}"
    if not _nested(a.subjects, b.subjects):
        return "the headlines are about other people"
    if not _nested(a.parties, b.parties):
        return "other parties"
    if (
        a.kinds
        and b.kinds
        and not a.kinds & b.kinds
        and not _nested(a.countries, b.countries)
    ):
        return "another kind of event between other countries"
    return None


def similarity(tokens: frozenset[str], event: Event | None, story: _Cluster) -> float:
    """How likely a report is about the story: shared headline words, weighed by
    whether the events name the same kind and parties (half weight if they don't).

    Two events of the same countries are common (many China-Korea visits), so the
    event only scales the word evidence and never stands in for it.
    """
    # Reports of one story often share a headline: each distinct token set once.
    words = max((_overlap(tokens, t) for t in story.distinct()), default=0.0)
    return words * (0.5 + 0.5 * _event_affinity(event, story.story.event))


@dataclass
class _Cluster:
    story: Story
    profile: Profile
    tokens: list[frozenset[str]] = field(default_factory=list)
    seq: int = 0
    """Position among the index's clusters (ties go to the older cluster)."""
    dates: list[datetime] = field(default_factory=list)
    """The sources' publication dates, sorted (for ``_near``)."""
    _distinct: dict[frozenset[str], None] = field(default_factory=dict)
    _counted: int = 0

    def __post_init__(self) -> None:
        self.dates = sorted(
            s.published for s in self.story.sources if s.published is not None
        )

    def distinct(self) -> Iterable[frozenset[str]]:
        """The distinct token sets of ``tokens`` (kept up to date as it grows)."""
        if self._counted < len(self.tokens):
            self._distinct.update(dict.fromkeys(self.tokens[self._counted :]))
            self._counted = len(self.tokens)
        return self._distinct


class StoryIndex:
    """Recent stories, updated in memory as a poll pass assigns reports to them.

    A report joins the most similar story near it in time, unless their events
    conflict (``conflict``): precision first, since a wrong merge is a missed alert.
    Only stories sharing a token with the report can score above zero, so an
    inverted index from tokens to stories picks the candidates.
    """

    def __init__(
        self, stories: Iterable[Story], *, window: timedelta, threshold: float
    ) -> None:
        self.window = window
        self.threshold = threshold
        self._clusters: dict[str, _Cluster] = {}
        self._by_token: dict[str, list[_Cluster]] = {}
        self._by_source: dict[tuple[str, str | None], _Cluster] = {}
        for story in stories:
            self._add(
                _Cluster(
                    story,
                    profile(story.title, story.event),
                    [
                        report_tokens(s.title, s.lede) | person_tokens(story.event)
                        for s in story.sources
                    ]
                    or [title_tokens(story.title) | person_tokens(story.event)],
                )
            )

    def __len__(self) -> int:
        return len(self._clusters)

    def _add(self, cluster: _Cluster) -> None:
        old = self._clusters.get(cluster.story.id)
        # A replaced id keeps its place in the order, as a dict key does.
        cluster.seq = old.seq if old is not None else len(self._clusters)
        self._clusters[cluster.story.id] = cluster
        for tokens in cluster.tokens:
            self._index(cluster, tokens)
        for s in cluster.story.sources:
            self._by_source.setdefault((s.item_id, s.feed_url), cluster)

    def _index(self, cluster: _Cluster, tokens: frozenset[str]) -> None:
        for token in tokens:
            holders = self._by_token.setdefault(token, [])
            if not holders or holders[-1] is not cluster:
                holders.append(cluster)

    def _candidates(self, tokens: frozenset[str]) -> list[_Cluster]:
        """Clusters sharing a token with ``tokens``, oldest first."""
        found: dict[int, _Cluster] = {}
        for token in tokens:
            for cluster in self._by_token.get(token, ()):
                # Skip entries left by a cluster whose id a newer one took over.
                if self._clusters.get(cluster.story.id) is cluster:
                    found[id(cluster)] = cluster
        return sorted(found.values(), key=lambda c: c.seq)

    def _near(self, item: Item, cluster: _Cluster, now: datetime) -> bool:
        # Publication dates when both sides have them (a backlog polled today is
        # not one story with today's news); otherwise when feedwatch saw them.
        dates = cluster.dates
        if item.published is not None and dates:
            i = bisect.bisect_left(dates, item.published)
            nearest = min(abs(item.published - d) for d in dates[max(i - 1, 0) : i + 1])
            return nearest <= self.window
        return abs(now - cluster.story.last_seen) <= self.window

    def assign(self, item: Item, decision: Decision, now: datetime) -> Story:
        """The story this report belongs to (an existing one, or a new one), updated."""
        known = self._by_source.get((item.id, item.feed_url))
        if known is not None:
            if self._clusters.get(known.story.id) is known:
                return known.story
            # Its cluster was replaced by a newer one with the same id: look again.
            for cluster in self._clusters.values():
                if any(
                    s.item_id == item.id and s.feed_url == item.feed_url
                    for s in cluster.story.sources
                ):
                    return cluster.story
        tokens = report_tokens(item.title, item.summary) | person_tokens(decision.event)
        own = profile(item.title, decision.event)
        best: _Cluster | None = None
        best_score = 0.0
        for cluster in self._candidates(tokens):
            if not self._near(item, cluster, now):
                continue
            if conflict(own, cluster.profile) is not None:
                continue
            score = similarity(tokens, decision.event, cluster)
            if score > best_score:
                best, best_score = cluster, score
        source = StorySource(
            item_id=item.id,
            source=item.source,
            title=item.title,
            lede=item.summary[:LEDE_CHARS],
            url=item.url,
            published=item.published,
            feed_url=item.feed_url,
        )
        if best is not None and best_score >= self.threshold:
            old = best.story
            best.story = old.model_copy(
                update={
                    "last_seen": max(old.last_seen, now),
                    "first_seen": min(old.first_seen, now),
                    "sources": (*old.sources, source),
                    "event": old.event or decision.event,
                }
            )
            if old.event is None and decision.event is not None:
                best.profile = profile(old.title, decision.event)
            best.tokens.append(tokens)
            if item.published is not None:
                bisect.insort(best.dates, item.published)
            self._index(best, tokens)
            self._by_source.setdefault((item.id, item.feed_url), best)
            return best.story
        story = Story(
            id=story_id(item),
            title=item.title,
            first_seen=now,
            last_seen=now,
            event=decision.event,
            sources=(source,),
        )
        self._add(_Cluster(story, own, [tokens]))
        return story
