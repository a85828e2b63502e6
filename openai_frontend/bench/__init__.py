"""``openai-frontend bench``: a load generator and report for any OpenAI-compatible server.

Modules, in the order a run uses them: ``corpus`` (prompts), ``client`` (one timed
request), ``load`` (arrivals, concurrency, warm-up), ``metrics`` (the arithmetic),
``server_metrics`` (Prometheus deltas), ``report`` (table, JSON, Jinja2, plots), ``cli``
(flags) and ``runner`` (a run).
"""

#: The endpoints a run can load, by the name ``--endpoint`` takes.
ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "messages": "/v1/messages",
}
