"""A Responses stream's framing: numbered named events, and its ``response.failed`` end."""

from __future__ import annotations

from collections.abc import Callable

from openai_frontend.errors import APIError
from openai_frontend.responses.output import Event, OutputBuilder
from openai_frontend.responses.response import snapshot
from openai_frontend.streaming import event_frame

GENERIC_FAILURE = "The server had an error while streaming the response."


class EventNumbering:
    """Gives a stream's events their ``sequence_number`` 0, 1, 2... and frames them."""

    def __init__(self) -> None:
        self.next = 0

    def frame(self, event: Event) -> bytes:
        event["sequence_number"], self.next = self.next, self.next + 1
        return event_frame(event["type"], event)

    def failure(self, head: dict, output: OutputBuilder) -> Callable[[BaseException], bytes]:
        """The stream's ending after a failure: ``response.failed`` with what was made."""

        def failed(exc: BaseException) -> bytes:
            message = exc.message if isinstance(exc, APIError) else GENERIC_FAILURE
            error = {"code": "server_error", "message": message}
            response = snapshot(head, "failed", output.output, error=error)
            return self.frame({"type": "response.failed", "response": response})

        return failed
