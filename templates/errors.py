"""The one error a template problem becomes: a 400 naming the request parameter."""

from __future__ import annotations


class ChatTemplateError(ValueError):
    """A template could not be rendered for this request; the client sees a 400."""

    def __init__(self, message: str, *, param: str | None = "messages") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RenderBudgetExceeded(ChatTemplateError):
    """The render ran past its time or size bound (the template's fault, not the messages')."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="chat_template")
