"""Anthropic's Messages API (``/v1/messages``): a dialect over the chat pipeline.

``translate`` turns a Messages request into a chat request, ``encode`` turns the chat
run's parsed deltas into Anthropic's content blocks and events, and ``errors`` gives
every failure on these paths Anthropic's error shape.
"""
