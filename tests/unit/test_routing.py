"""Prefix-affinity routing (engines.routing) and the remote engine's use of it.

The ring and the load bound are pure, so their properties are checked with hypothesis;
the remote engine's choice is checked with a fake upstream pool (no network)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from engines.base import GenerateRequest, SamplingParams
from engines.routing import PREFIX_TOKENS, HashRing, choose, load_bound, routing_key

URLS = st.lists(
    st.from_regex(r"http://[a-z]{1,8}:[1-9][0-9]{3}", fullmatch=True),
    min_size=1,
    max_size=6,
    unique=True,
)
KEYS = st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50)


def owner(ring: HashRing, key: int, urls) -> str:
    return ring.owner(key, set(urls).__contains__)


@settings(max_examples=60, deadline=None)
@given(urls=URLS, new=st.from_regex(r"http://new[0-9]{1,3}:80", fullmatch=True), keys=KEYS)
def test_adding_an_upstream_moves_only_keys_to_it(urls, new, keys):
    before = HashRing(urls)
    after = HashRing([*urls, new])
    for key in keys:
        moved_to = owner(after, key, [*urls, new])
        assert moved_to in (owner(before, key, urls), new)


@settings(max_examples=60, deadline=None)
@given(urls=URLS, keys=KEYS, data=st.data())
def test_an_unhealthy_upstream_moves_only_its_own_keys(urls, keys, data):
    ring = HashRing(urls)
    if len(urls) < 2:
        return
    gone = data.draw(st.sampled_from(urls))
    rest = [url for url in urls if url != gone]
    for key in keys:
        was = owner(ring, key, urls)
        now = owner(ring, key, rest)
        assert now != gone
        if was != gone:
            assert now == was  # everyone else keeps their keys (and caches)


def test_keys_spread_evenly_over_the_ring():
    urls = [f"http://u{i}:8000" for i in range(4)]
    ring = HashRing(urls)
    counts = dict.fromkeys(urls, 0)
    for i in range(4000):
        counts[owner(ring, routing_key(f"conversation-{i}", []), urls)] += 1
    assert all(700 < count < 1300 for count in counts.values()), counts


@dataclass
class FakeUpstream:
    url: str
    outstanding: int = 0
    healthy: bool = True


@settings(max_examples=100, deadline=None)
@given(
    loads=st.lists(st.integers(0, 20), min_size=1, max_size=6),
    key=st.integers(0, 2**64 - 1),
    factor=st.sampled_from([1.0, 1.25, 2.0]),
)
def test_the_choice_never_exceeds_the_load_bound(loads, key, factor):
    pool = [FakeUpstream(f"http://u{i}", load) for i, load in enumerate(loads)]
    ring = HashRing([u.url for u in pool])
    chosen = choose(pool, ring, key, turn=0, load_factor=factor)
    bound = load_bound(loads, factor)
    if chosen.outstanding + 1 > bound:  # only when every upstream is past it
        assert chosen.outstanding == min(loads)
    owner_url = owner(ring, key, [u.url for u in pool])
    owner_load = loads[int(owner_url.rsplit("u", 1)[1])]
    if owner_load + 1 <= bound:
        assert chosen.url == owner_url  # affinity holds while within the bound


def test_an_overloaded_owner_yields_to_the_least_outstanding():
    pool = [FakeUpstream("http://a"), FakeUpstream("http://b"), FakeUpstream("http://c")]
    ring = HashRing([u.url for u in pool])
    key = routing_key("chat-1", [])
    home = next(u for u in pool if u.url == owner(ring, key, ["http://a", "http://b", "http://c"]))
    assert choose(pool, ring, key, turn=0) is home
    home.outstanding = 3  # bound: ceil(1.25 * 4 / 3) = 2
    others = [u for u in pool if u is not home]
    others[0].outstanding = 1
    assert choose(pool, ring, key, turn=0) is others[1]


def test_the_key_is_the_cache_key_else_the_prompt_prefix():
    history = list(range(PREFIX_TOKENS))
    turn_1 = routing_key(None, history + [1, 2])
    turn_2 = routing_key(None, history + [1, 2, 3, 4, 5])
    assert turn_1 == turn_2  # later turns resend the same first block
    assert routing_key(None, [9, *history]) != turn_1
    assert routing_key("user-7", [1]) == routing_key("user-7", [2, 3])
    assert routing_key("user-7", [1]) != routing_key("user-8", [1])


def request(prompt: list[int], cache_key: str | None = None) -> GenerateRequest:
    return GenerateRequest("r", prompt, SamplingParams(max_tokens=1), prompt_cache_key=cache_key)


def remote(routing: str, urls: tuple[str, ...] = ("http://a", "http://b", "http://c")):
    from pathlib import Path

    from engines.remote import RemoteEngine

    engine = RemoteEngine(Path("unused"), "m", list(urls), routing=routing)
    for upstream in engine._pool:
        upstream.healthy = True
    return engine


def test_the_remote_engine_keeps_a_conversation_on_one_upstream():
    engine = remote("affinity")
    conversations = [[1000 + c] * (PREFIX_TOKENS + 10) for c in range(12)]
    homes = [engine._route(request(prompt)) for prompt in conversations]
    for upstream in engine._pool:  # later turns, with requests in flight everywhere
        upstream.outstanding = 2
    assert [engine._route(request(p + [5, 6])) for p in conversations] == homes
    assert len({u.url for u in homes}) > 1  # different conversations spread out
    keyed = {engine._route(request([t], cache_key="user-1")).url for t in range(20)}
    assert len(keyed) == 1


def test_least_outstanding_routing_ignores_the_prefix():
    engine = remote("least-outstanding")
    prompt = [7] * 20
    seen = {engine._route(request(prompt)).url for _ in range(6)}
    assert seen == {"http://a", "http://b", "http://c"}  # idle ties take turns


def test_every_choice_carries_the_requests_prompt_cache_key():
    from openai_frontend.generation import choice_requests

    requests = choice_requests("id", [[1], [2]], SamplingParams(max_tokens=1), 2, None, "user-7")
    assert [r.prompt_cache_key for r in requests] == ["user-7"] * 4
