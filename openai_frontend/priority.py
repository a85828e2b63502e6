"""A request's scheduling priority: vLLM's ``priority`` or OpenAI's ``service_tier``.

Lower is sooner, as in vLLM. The gateway's admission queue serves by it, then by
arrival; the engine schedules by it when started with ``--scheduling-policy priority``.
Under ``fcfs`` (the default) nothing schedules by priority, so asking for one is a 400
naming the flag rather than a request quietly served in arrival order.
"""

from __future__ import annotations

from typing import Literal

from openai_frontend.errors import APIError

SchedulingPolicy = Literal["fcfs", "priority"]

#: OpenAI's service tiers as priorities. ``auto`` and ``default`` are the neutral 0;
#: ``flex`` (cheaper, slower) waits behind it; ``priority`` (and ``fast``, which OpenAI
#: documents as the same opt-in) goes ahead of it. ``scale`` (reserved capacity) has no
#: meaning here, so it is refused.
TIER_PRIORITY = {"auto": 0, "default": 0, "flex": 1, "priority": -1, "fast": -1}


def request_priority(
    priority: int | None, service_tier: str | None, policy: SchedulingPolicy
) -> int:
    """The priority to schedule by: ``priority`` when given, else the tier's."""
    if priority is not None:
        if priority != 0 and policy == "fcfs":
            raise _needs_priority_policy("priority", f"priority {priority}")
        return priority
    if service_tier is None:
        return 0
    if service_tier not in TIER_PRIORITY:
        raise APIError(
            f"service_tier '{service_tier}' is not offered by this server; use auto, "
            "default, flex or priority.",
            param="service_tier",
            code="unsupported_parameter",
        )
    tier_priority = TIER_PRIORITY[service_tier]
    if tier_priority != 0 and policy == "fcfs":
        raise _needs_priority_policy("service_tier", f"service_tier '{service_tier}'")
    return tier_priority


def served_tier(service_tier: str | None) -> str | None:
    """The tier a reply reports, as OpenAI's does when the request named one: ``auto``
    resolves to ``default``; the others were served as asked."""
    return "default" if service_tier == "auto" else service_tier


def _needs_priority_policy(param: str, asked: str) -> APIError:
    return APIError(
        f"{asked} needs a server started with --scheduling-policy priority; this one "
        "serves requests in arrival order (--scheduling-policy fcfs).",
        param=param,
        code="unsupported_parameter",
    )
