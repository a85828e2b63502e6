"""Where a chat template comes from: request, server flag, model folder, or nowhere.

The order follows the issue: a request's own template (only when the server trusts
request templates), then ``--chat-template`` (a file or a bundled name), then the
model's ``chat_template.jinja`` or ``tokenizer_config.json``. With none, a 400 says how
to give one.

A request's template is capped in size (``--max-chat-template-bytes``) before anything
parses it, because compiling cannot be interrupted: it costs up to ~16 ms of CPU per KB
(1 s for the worst 64 KB shape measured), while the largest real template we test
against (gpt-oss) is 17 KB. The server's and the model's templates are trusted and
not capped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from templates.errors import ChatTemplateError

BUNDLED_DIR = Path(__file__).parent
DEFAULT_MAX_REQUEST_TEMPLATE_BYTES = 64 * 1024


def bundled_names() -> list[str]:
    return sorted(path.stem for path in BUNDLED_DIR.glob("*.jinja"))


def load_template_option(value: str) -> str:
    """``--chat-template``: a file path, or the name of a bundled template."""
    path = Path(value)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    bundled = BUNDLED_DIR / f"{value}.jinja"
    if bundled.is_file():
        return bundled.read_text(encoding="utf-8")
    raise ValueError(
        f"--chat-template {value!r} is neither a file nor a bundled template "
        f"({', '.join(bundled_names())})"
    )


@dataclass(frozen=True)
class ModelTemplates:
    """The model's own chat template(s) and special tokens, read once at start-up."""

    template: str | list[dict] | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)


def read_model_templates(model_dir: Path | None) -> ModelTemplates:
    if model_dir is None:
        return ModelTemplates()
    config = _read_json(model_dir / "tokenizer_config.json")
    template: str | list[dict] | None = config.get("chat_template")
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
    return ModelTemplates(template=template, special_tokens=_special_tokens(config))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _special_tokens(config: dict) -> dict[str, str]:
    """``bos_token``, ``eos_token``, ... as strings (AddedToken dicts unwrapped)."""
    tokens = {}
    for key, value in config.items():
        if not key.endswith("_token"):
            continue
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


@dataclass(frozen=True)
class TemplateResolver:
    """Chooses the template for each request, in the documented order."""

    model: ModelTemplates
    server_template: str | None = None
    trust_request_template: bool = False
    max_request_template_bytes: int = DEFAULT_MAX_REQUEST_TEMPLATE_BYTES

    def resolve(self, request_template: str | None) -> str | list[dict]:
        if request_template is not None:
            self._check_request_template(request_template)
            return request_template
        if self.server_template is not None:
            return self.server_template
        if self.model.template is not None:
            return self.model.template
        raise ChatTemplateError(
            "this model has no chat template; start the server with --chat-template FILE "
            f"or one of the bundled templates ({', '.join(bundled_names())}), or use "
            "/v1/completions with a plain prompt",
            param="messages",
        )

    def _check_request_template(self, template: str) -> None:
        if not self.trust_request_template:
            raise ChatTemplateError(
                "chat_template in a request is refused: start the server with "
                "--trust-request-chat-template to allow it",
                param="chat_template",
            )
        limit = self.max_request_template_bytes
        # A str of more characters than the limit has more bytes too: no encoding needed.
        if len(template) > limit or len(template.encode("utf-8", "surrogatepass")) > limit:
            raise ChatTemplateError(
                f"chat_template is larger than this server's limit of {limit} bytes "
                "(--max-chat-template-bytes)",
                param="chat_template",
            )
