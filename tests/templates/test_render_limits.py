"""Render limits: a deadline the template itself checks, a cap on request templates,
and caches bounded by their own byte count."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable

import pytest

from templates import prepared as prepared_module
from templates import renderer
from templates.budget import interruptible, render_deadline
from templates.errors import ChatTemplateError, RenderBudgetExceeded
from templates.lru import ByteBoundedLRU
from templates.sandbox import TOJSON_MEMO
from templates.sources import ModelTemplates, TemplateResolver

USER = [{"role": "user", "content": "hi"}]
SHORT_DEADLINE = 0.1
#: A tick can only fire between operations; the slowest single operation here is
#: one C-level pass over a 4,000,000 character string (wordwrap's regex split).
#: Times are CPU seconds of this thread, so neither a loaded machine nor threads
#: that earlier tests left running count.
MARGIN = 1.0

#: Each writes nothing (or only at the end) for far longer than any deadline.
SILENT_LOOPS = {
    "nested for over a long string (the issue's payload)": (
        "{% set s='a'*4000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    ),
    "filtered loop skipping every item": (
        "{% set s='a'*4000000 %}{% for a in s %}{% for b in s if false %}{% endfor %}{% endfor %}"
    ),
    "recursive macro": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(80) }}"
    ),
    "recursive for loop": (
        "{% for x in [1, 2] recursive %}{{ loop([1, 2]) if loop.depth < 80 }}{% endfor %}"
    ),
    "chain of lazy filters": (
        "{% set s='a'*4000000 %}{{ s" + "|map('upper')|map('lower')" * 40 + "|join }}"
    ),
    "chain of string filters": (
        "{% set s='a'*4000000 %}{{ s" + "|replace('a', 'b')|replace('b', 'a')" * 40 + " }}"
    ),
}

#: One filter call whose jinja code loops in Python over 4 MB of message content:
#: 16 s (urlize) to 40 s (sort, case-folding key) before the profile hook.
HEAVY_FILTERS = ["sort|join", "urlize", "wordwrap", "unique|join", "list|tojson(indent=2)"]

GROWING = {
    "~ doubling in a loop": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    ),
    "+ doubling in a loop": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}"
    ),
    "replace doubling in a loop": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}"
    ),
}


@pytest.mark.parametrize("template", SILENT_LOOPS.values(), ids=SILENT_LOOPS.keys())
def test_a_render_that_writes_nothing_still_stops_at_the_deadline(template: str) -> None:
    started = time.thread_time()
    with (
        pytest.raises(ChatTemplateError, match="exceeded") as caught,
        render_deadline(SHORT_DEADLINE),
    ):
        renderer.render(template, USER)
    assert time.thread_time() - started < SHORT_DEADLINE + MARGIN
    assert caught.value.param == "chat_template"


@pytest.mark.parametrize("chain", HEAVY_FILTERS)
def test_one_heavy_filter_call_stops_at_the_deadline(chain: str) -> None:
    content = ("word <b>x</b> http://a.b " * 200_000)[:4_000_000]
    started = time.thread_time()
    with (
        pytest.raises(ChatTemplateError, match="exceeded"),
        render_deadline(SHORT_DEADLINE),
    ):
        renderer.render(
            "{{ (messages[0].content|" + chain + ")|length }}",
            [{"role": "user", "content": content}],
        )
    assert time.thread_time() - started < SHORT_DEADLINE + MARGIN


def test_a_finalizer_run_inside_a_filter_past_the_deadline_does_not_disarm_it() -> None:
    """CI saw ``sort|join`` run 9 s: a collection ran a ``weakref.finalize`` callback
    inside the sort once the deadline had passed, the hook raised there, Python swallowed
    it and unset the hook. The filter below does that on purpose, then keeps calling."""

    class Collectable:
        pass

    def step() -> None:
        pass

    def spin(iterations: int) -> None:
        done = 0
        while done < iterations:  # bytecode only: no call for the hook to see
            done += 1

    calibration = 200_000
    started = time.thread_time()
    spin(calibration)
    past_the_deadline = int(calibration * 3 * SHORT_DEADLINE / (time.thread_time() - started))

    def busy_filter(value: str) -> int:
        doomed = Collectable()
        weakref.finalize(doomed, step)
        spin(past_the_deadline)  # its call event comes before the deadline
        del doomed  # the finalizer's call event is the first one after it
        calls = 0
        started = time.thread_time()
        while time.thread_time() - started < 5 * MARGIN:
            step()
            calls += 1
        return calls

    started = time.thread_time()
    with pytest.raises(RenderBudgetExceeded), render_deadline(SHORT_DEADLINE):
        interruptible(busy_filter, skip_small_input=False)("x")
    assert time.thread_time() - started < SHORT_DEADLINE * 3 + MARGIN


@pytest.mark.parametrize("template", GROWING.values(), ids=GROWING.keys())
def test_values_cannot_grow_past_the_output_cap(template: str) -> None:
    with pytest.raises(ChatTemplateError, match="over 4000000") as caught:
        renderer.render(template, USER)
    assert caught.value.param == "chat_template"


def test_each_thread_keeps_its_own_deadline() -> None:
    """A slow render on one thread must not cut short (or extend) another's."""
    outcome: dict[str, object] = {}

    def slow() -> None:
        try:
            with render_deadline(SHORT_DEADLINE):
                renderer.render(SILENT_LOOPS["recursive macro"], USER)
        except ChatTemplateError as exc:
            outcome["slow"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(SHORT_DEADLINE + 0.1)
    template = "{% for i in range(3) %}{{ i }}{% endfor %}"
    assert renderer.render(template, USER) == "012"
    thread.join(timeout=5)
    assert not thread.is_alive(), "the slow render's thread ends by itself"
    assert isinstance(outcome["slow"], ChatTemplateError)


def test_request_template_over_the_cap_is_refused_before_parsing() -> None:
    resolver = TemplateResolver(
        model=ModelTemplates(template="{{ model }}" * 100),
        server_template=None,
        trust_request_template=True,
        max_request_template_bytes=100,
    )
    assert resolver.resolve("x" * 100) == "x" * 100
    for template in ("x" * 101, "€" * 34, "{% for %}" * 20):  # "€" is 3 bytes in UTF-8
        with pytest.raises(ChatTemplateError, match="limit of 100 bytes") as caught:
            resolver.resolve(template)
        assert caught.value.param == "chat_template"
    assert resolver.resolve(None) == "{{ model }}" * 100, "the model's own is not capped"


def test_lru_evicts_by_bytes_and_skips_oversized_entries() -> None:
    cache: ByteBoundedLRU[str, str] = ByteBoundedLRU(
        max_bytes=1000, max_entry_bytes=400, max_entries=100
    )
    for i in range(10):
        cache.put(f"k{i}", "v", 300)
        assert cache.bytes <= 1000
    assert len(cache) == 3 and cache.get("k9") == "v" and cache.get("k0") is None
    cache.put("big", "v", 401)
    assert cache.get("big") is None and cache.bytes == 900


def test_unique_templates_count_their_text_and_stay_within_the_cache_bytes(monkeypatch) -> None:
    """The issue's flood: many unique big templates (``{# ... #}x``) each rendered once."""
    compiled = ByteBoundedLRU(max_bytes=2_000_000, max_entry_bytes=1_000_000, max_entries=64)
    renders = ByteBoundedLRU(max_bytes=2_000_000, max_entry_bytes=1_000_000, max_entries=1024)
    monkeypatch.setattr(prepared_module, "_PREPARED", compiled)
    monkeypatch.setattr(renderer, "_RENDERS", renders)
    size = 200_000
    for i in range(30):
        template = "{# " + f"{i:06d}" * (size // 6) + " #}x"
        assert renderer.render(template, USER) == "x"
        assert compiled.bytes <= compiled.max_bytes and renders.bytes <= renders.max_bytes
    assert compiled.bytes >= len(compiled) * size, "each entry counts its template text"
    assert len(compiled) < 30


def test_render_memo_counts_the_inputs_it_keys_on(monkeypatch) -> None:
    renders = ByteBoundedLRU(max_bytes=1_000_000, max_entry_bytes=500_000, max_entries=1024)
    monkeypatch.setattr(renderer, "_RENDERS", renders)
    content = "y" * 100_000
    renderer.render("{{ messages[0].content|length }}", [{"role": "user", "content": content}])
    assert len(renders) == 1 and renders.bytes >= len(content), "the key's JSON is counted"


#: How Qwen2.5's template writes the tools (no trust flag needed: a model's own template).
TOOLS_AS_JSON = "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"


def _tool(description: str) -> dict:
    return {"type": "function", "function": {"name": "f", "description": description}}


def _retained_bytes(work: Callable[[], None]) -> int:
    """What ``work`` left allocated once it returned (Python's own allocations)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_tojson_memo_holds_at_most_its_byte_cap() -> None:
    """The issue's flood: 60 requests, each with its own 3 MB tool description, held
    343 MiB in a memo counted in entries (512 of any size)."""
    TOJSON_MEMO.clear()

    def flood() -> None:
        for n in range(60):
            tools = [_tool(f"{n:02d}" + "x" * 3_000_000)]
            assert renderer.render(TOOLS_AS_JSON, USER, tools=tools).startswith("{")

    retained = _retained_bytes(flood)
    assert 0 < TOJSON_MEMO.bytes <= TOJSON_MEMO.max_bytes
    assert retained < TOJSON_MEMO.max_bytes + 4 * 1024 * 1024, retained  # + its own books


@pytest.mark.parametrize(
    "tools",
    [[_tool("x" * 5_000_000)], [_tool("x" * 2_500_000), _tool("y" * 2_500_000)]],
    ids=["one value past the cap", "two values under it, their render past it"],
)
def test_a_render_past_its_output_cap_keeps_no_tojson_result(tools, monkeypatch) -> None:
    renders = ByteBoundedLRU(max_bytes=1_000_000, max_entry_bytes=500_000, max_entries=1024)
    monkeypatch.setattr(renderer, "_RENDERS", renders)  # no earlier render hit
    TOJSON_MEMO.clear()

    def refused() -> None:
        with pytest.raises(ChatTemplateError, match="4000000"):
            renderer.render(TOOLS_AS_JSON, USER, tools=tools)

    assert _retained_bytes(refused) < 1024 * 1024
    assert len(TOJSON_MEMO) == 0
    renderer.render(TOOLS_AS_JSON, USER, tools=[_tool("kept once its render succeeds")])
    assert len(TOJSON_MEMO) == 1


@pytest.mark.parametrize("depth", [50, 150, 250, 5000])
def test_deep_nesting_compiles_quickly_or_is_a_400(depth: int) -> None:
    """Not a 500 (Python's parser limits), and never jinja's cubic constant folding
    (190 chained filters took 4.8 s to compile with it)."""
    for template in (
        "{{ " + "(" * depth + "1" + ")" * depth + " }}",
        "{{ x" + "|e" * depth + " }}",
        "{{ x" + ".a" * depth + " }}",
    ):
        started = time.thread_time()
        with contextlib.suppress(ChatTemplateError):  # a 400, whatever the reason
            renderer.render(template, USER)
        assert time.thread_time() - started < 1.5  # folding took 4.8 s; margin for slow CPUs
