"""Which upstream serves a request: prefix affinity by consistent hashing, with bounded loads.

Upstreams keep a prefix cache; a conversation whose turns all land on one upstream has
its history cached there, while least-outstanding routing scatters the turns and throws
those caches away. So requests are routed on a key that stays the same across turns:
OpenAI's ``prompt_cache_key`` when the client gives one, else a hash of the prompt's
first :data:`PREFIX_TOKENS` tokens (OpenAI routes on the same prefix length). Keys map
to upstreams by a consistent-hash ring with virtual nodes, so an upstream that joins or
leaves moves only its own share of the keys, and the others keep their caches.

Affinity must not pile work on one upstream (one hot key, or a system prompt longer
than the prefix that every request shares): if the chosen upstream already holds more
than ``load_factor`` times the mean load, the request goes to the least-outstanding
upstream instead (the bounded-load rule of Mirrokni, Thorup and Zadimoghaddam,
"Consistent Hashing with Bounded Loads", 2018).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol

#: How many leading prompt tokens make the routing key when no prompt_cache_key is given.
PREFIX_TOKENS = 256
#: Points per upstream on the ring: enough for an even split of the keys.
VIRTUAL_NODES = 160
#: An upstream may hold up to this times the mean load before affinity yields.
LOAD_FACTOR = 1.25

Policy = Literal["affinity", "least-outstanding"]
POLICIES: tuple[Policy, ...] = ("affinity", "least-outstanding")


class Routed(Protocol):
    """What routing reads of an upstream."""

    url: str
    outstanding: int
    healthy: bool


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def routing_key(cache_key: str | None, prompt_token_ids: Sequence[int]) -> int:
    """The request's place on the ring: its ``prompt_cache_key``, else its prompt prefix.

    The two are hashed in separate namespaces, so a key never collides with a prefix.
    """
    if cache_key:
        return _hash(b"key:" + cache_key.encode())
    prefix = array("q", prompt_token_ids[:PREFIX_TOKENS]).tobytes()
    return _hash(b"tokens:" + prefix)


class HashRing:
    """Upstream URLs placed on a ring of 64-bit hashes, each at many virtual points."""

    def __init__(self, urls: Sequence[str], virtual_nodes: int = VIRTUAL_NODES) -> None:
        points = sorted(
            (_hash(f"{url}#{i}".encode()), url) for url in urls for i in range(virtual_nodes)
        )
        self._hashes = [point for point, _ in points]
        self._urls = [url for _, url in points]

    def owners(self, key: int) -> Iterator[str]:
        """Every URL once, in the order met walking clockwise from ``key``."""
        start = bisect.bisect(self._hashes, key)
        seen: set[str] = set()
        for i in range(len(self._urls)):
            url = self._urls[(start + i) % len(self._urls)]
            if url not in seen:
                seen.add(url)
                yield url

    def owner(self, key: int, usable: Callable[[str], bool]) -> str | None:
        """The first usable URL clockwise from ``key`` (an unhealthy one is skipped, so
        its keys go to their next owner and come back when it does)."""
        return next((url for url in self.owners(key) if usable(url)), None)


def load_bound(loads: Sequence[int], load_factor: float = LOAD_FACTOR) -> int:
    """Most requests one upstream may hold once the new one is counted in."""
    total = sum(loads) + 1
    return math.ceil(load_factor * total / len(loads))


def least_outstanding(candidates: Sequence[Routed], turn: int) -> Routed:
    """The candidate with the fewest requests in flight; ``turn`` rotates among ties."""
    least = min(u.outstanding for u in candidates)
    tied = [u for u in candidates if u.outstanding == least]
    return tied[turn % len(tied)]


def choose(
    candidates: Sequence[Routed],
    ring: HashRing,
    key: int | None,
    turn: int,
    load_factor: float = LOAD_FACTOR,
) -> Routed:
    """The key's owner among ``candidates`` while within its load bound, else the least
    outstanding. ``key`` None (least-outstanding policy) skips the ring."""
    if key is not None:
        by_url = {u.url: u for u in candidates}
        owner = by_url.get(ring.owner(key, by_url.__contains__) or "")
        bound = load_bound([u.outstanding for u in candidates], load_factor)
        if owner is not None and owner.outstanding + 1 <= bound:
            return owner
    return least_outstanding(candidates, turn)
