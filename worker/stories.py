"""Stories: cluster reports of one event from several outlets (Item + Decision -> Story).

A report joins a recent story when its headline shares enough words with one of the
story's headlines and its event names the same kind and parties. Pure: the poll shell
loads recent stories and records the links.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.models import Decision, Event, Item, Story, StorySource

__all__ = ["StoryIndex", "report_tokens", "similarity", "story_id", "title_tokens"]

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


def title_tokens(text: str) -> frozenset[str]:
    """Content words of a headline, folded so that outlets' phrasings meet."""
    words = (w.lower() for w in _WORD.findall(text.replace("S.Korea", "South Korea")))
    return frozenset(_stem(w) for w in words if w not in _STOP and len(w) > 1)


def report_tokens(title: str, summary: str) -> frozenset[str]:
    """Words of a headline and the first sentence of its lede."""
    lede = _FIRST_SENTENCE.split(summary[:LEDE_CHARS], maxsplit=1)[0]
    return title_tokens(f"{title} {lede}")


def story_id(item: Item) -> str:
    """Stable id of the story an item starts: derived from where it came from."""
    key = f"{item.feed_url or ''}|{item.id}".encode()
    return "st_" + hashlib.sha256(key).hexdigest()[:20]


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _event_affinity(a: Event | None, b: Event | None) -> float:
    if a is None or b is None:
        return 0.0
    ca, cb = set(a.countries), set(b.countries)
    if not ca or not cb:
        return 0.0
    countries = len(ca & cb) / len(ca | cb)
    kinds = 1.0 if set(a.kinds) & set(b.kinds) else 0.5
    return countries * kinds


def similarity(tokens: frozenset[str], event: Event | None, story: _Cluster) -> float:
    """How likely a report is about the story: shared headline words, weighed by
    whether the events name the same kind and parties (half weight if they don't).

    Two events of the same countries are common (many China-Korea visits), so the
    event only scales the word evidence and never stands in for it.
    """
    words = max((_overlap(tokens, t) for t in story.tokens), default=0.0)
    return words * (0.5 + 0.5 * _event_affinity(event, story.story.event))


@dataclass
class _Cluster:
    story: Story
    tokens: list[frozenset[str]] = field(default_factory=list)


class StoryIndex:
    """Recent stories, updated in memory as a poll pass assigns reports to them."""

    def __init__(
        self, stories: Iterable[Story], *, window: timedelta, threshold: float
    ) -> None:
        self.window = window
        self.threshold = threshold
        self._clusters: dict[str, _Cluster] = {}
        for story in stories:
            self._clusters[story.id] = _Cluster(
                story,
                [title_tokens(s.title) for s in story.sources]
                or [title_tokens(story.title)],
            )

    def __len__(self) -> int:
        return len(self._clusters)

    def _near(self, item: Item, story: Story, now: datetime) -> bool:
        # Publication dates when both sides have them (a backlog polled today is
        # not one story with today's news); otherwise when feedwatch saw them.
        dates = [s.published for s in story.sources if s.published is not None]
        if item.published is not None and dates:
            return min(abs(item.published - d) for d in dates) <= self.window
        return abs(now - story.last_seen) <= self.window

    def assign(self, item: Item, decision: Decision, now: datetime) -> Story:
        """The story this report belongs to (an existing one, or a new one), updated."""
        tokens = report_tokens(item.title, item.summary)
        seen = now
        best: _Cluster | None = None
        best_score = 0.0
        for cluster in self._clusters.values():
            if not self._near(item, cluster.story, now):
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
            if any(
                s.item_id == item.id and s.feed_url == item.feed_url
                for s in old.sources
            ):
                return old
            best.story = old.model_copy(
                update={
                    "last_seen": max(old.last_seen, seen),
                    "first_seen": min(old.first_seen, seen),
                    "sources": (*old.sources, source),
                    "event": old.event or decision.event,
                }
            )
            best.tokens.append(tokens)
            return best.story
        story = Story(
            id=story_id(item),
            title=item.title,
            first_seen=seen,
            last_seen=seen,
            event=decision.event,
            sources=(source,),
        )
        self._clusters[story.id] = _Cluster(story, [tokens])
        return story
