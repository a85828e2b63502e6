"""The rules of state for ``--api-server-count`` (openai_frontend.api_servers)."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from openai_frontend.api_servers import process_config, refusal, reserve_port, share_of
from openai_frontend.config import ServerConfig

CONFIG = ServerConfig(Path("/m"), "m", api_server_count=3)


@pytest.mark.parametrize("limit", [3, 4, 5, 7, 100])
def test_shares_add_up_to_the_limit_and_differ_by_one_at_most(limit):
    shares = [share_of(limit, index, 3) for index in range(3)]
    assert sum(shares) == limit
    assert max(shares) - min(shares) <= 1


def test_no_limit_is_no_limit_in_every_process():
    assert share_of(None, 1, 3) is None


def test_each_process_gets_its_index_and_its_share():
    config = dataclasses.replace(CONFIG, max_concurrent_requests=7, max_queued_requests=2)
    shares = [process_config(config, index) for index in range(3)]
    assert [c.api_server_index for c in shares] == [0, 1, 2]
    assert [c.max_concurrent_requests for c in shares] == [3, 2, 2]
    assert [c.max_queued_requests for c in shares] == [1, 1, 0]
    assert all(c.multiprocess for c in shares)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"enable_lora_management": True}, "--enable-lora-management"),
        ({"lora_on_demand": True}, "--lora-on-demand"),
        ({"max_concurrent_requests": 2}, "--max-concurrent-requests"),
    ],
)
def test_what_cannot_be_divided_is_refused_by_name(change, word):
    problem = refusal(dataclasses.replace(CONFIG, **change))
    assert problem is not None and word in problem


def test_a_divisible_configuration_is_accepted():
    assert refusal(dataclasses.replace(CONFIG, max_concurrent_requests=3)) is None


def test_a_port_another_server_holds_is_refused_not_shared():
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError):
        reserve_port("127.0.0.1", taken.getsockname()[1])


def test_a_free_port_is_held_for_the_api_processes():
    with reserve_port("127.0.0.1", 0) as held:
        port = held.getsockname()[1]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))  # an API process joins it
        sock.close()
