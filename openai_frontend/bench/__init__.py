"""``openai-frontend bench``: a load generator and report for any OpenAI-compatible server.

Modules, in the order a run uses them: ``corpus`` (prompts), ``dialects`` (each API's
bodies and events), ``client`` (one timed request), ``load`` (arrivals, concurrency,
warm-up), ``metrics`` (the arithmetic), ``server_metrics`` (Prometheus deltas),
``report`` (table, JSON, Jinja2, plots), ``cli`` (flags) and ``runner`` (a run).
"""
