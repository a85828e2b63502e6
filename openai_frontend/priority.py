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


#: A request's priority is clamped to [-PRIORITY_LIMIT, PRIORITY_LIMIT]. Every client
#: may ask to go sooner (the gateway ties no priority to a key), so no value may put a
#: request out of reach: two that ask for the extreme are served in arrival order.
PRIORITY_LIMIT = 100


def request_priority(
    priority: int | None, service_tier: str | None, policy: SchedulingPolicy
) -> int:
    """The priority to schedule by: ``priority`` when given (clamped), else the tier's.
    The tier is checked either way: a tier this server does not offer is a 400 even
    beside a ``priority``."""
    tier_priority = _tier_priority(service_tier)
    if priority is None:
        param, asked, priority = "service_tier", f"service_tier '{service_tier}'", tier_priority
    else:
        param, asked = "priority", f"priority {priority}"
    if priority != 0 and policy == "fcfs":
        raise _needs_priority_policy(param, asked)
    return max(-PRIORITY_LIMIT, min(priority, PRIORITY_LIMIT))


def _tier_priority(service_tier: str | None) -> int:
    if service_tier is None:
        return 0
    if service_tier not in TIER_PRIORITY:
        raise APIError(
            f"service_tier '{service_tier}' is not offered by this server; use auto, "
            "default, flex or priority.",
            param="service_tier",
            code="unsupported_parameter",
        )
    return TIER_PRIORITY[service_tier]


def served_tier(service_tier: str | None, priority: int) -> str | None:
    """The tier a reply reports when the request named one, as OpenAI's reports the
    tier that served it: the tier asked for when ``priority`` is its own (``auto`` as
    ``default``); else, when an explicit ``priority`` overrode it, the tier that
    priority was scheduled as (sooner: ``priority``, later: ``flex``)."""
    if service_tier is None:
        return None
    if TIER_PRIORITY[service_tier] == priority:
        return "default" if service_tier == "auto" else service_tier
    return "priority" if priority < 0 else "flex" if priority > 0 else "default"


def _needs_priority_policy(param: str, asked: str) -> APIError:
    return APIError(
        f"{asked} needs a server started with --scheduling-policy priority; this one "
        "serves requests in arrival order (--scheduling-policy fcfs).",
        param=param,
        code="unsupported_parameter",
    )
