"""The environment a CPU pooling engine starts with (engines.builds.pooling_engine_env)."""

from __future__ import annotations

import os

import pytest

from engines.builds import pooling_engine_env


@pytest.fixture(autouse=True)
def no_wait_policy(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


def test_cpu_pooling_engines_start_with_passive_openmp_and_it_is_put_back():
    with pooling_engine_env(cpu_build=True):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pooling_engine_env(cpu_build=True):
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_other_builds_are_left_alone():
    with pooling_engine_env(cpu_build=False):
        assert "OMP_WAIT_POLICY" not in os.environ
