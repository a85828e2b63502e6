"""Templates are untrusted code and message content is data: known SSTI payloads fail safely."""

from __future__ import annotations

import pytest

from templates.renderer import ChatTemplateError, render
from templates.sources import load_template_option

CHATML = load_template_option("chatml")
USER = [{"role": "user", "content": "hi"}]

#: Server-side template injection payloads seen against Jinja2 (PayloadsAllTheThings and
#: the jinja2 sandbox's own test suite): attribute escapes, globals, mutation, DoS.
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{{ raise_exception.__globals__['os'] }}",
    "{{ raise_exception.__code__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ request.application.__globals__ }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ messages.append(1) }}{{ messages }}",
    "{% set x = messages.pop() %}",
    "{{ {}.update(a=1) }}",
    "{{ ''.format.__globals__ }}",
    "{{ 'a'.__mul__(10**9) }}",
    "{{ range.__self__ }}",
    "{{ tojson.__globals__['json'] }}",
    "{{ strftime_now.__globals__['datetime'] }}",
]

DOS = [
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 9 ** 999999 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(99999) %}{{ 'y' * 99 }}{% endfor %}",
]


def _assert_harmless(output: str) -> None:
    for leak in ("<class", "function", "module", "built-in", "uid="):
        assert leak not in output, output[:200]


@pytest.mark.parametrize("payload", ESCAPES)
def test_escape_payload_as_template_is_refused_or_inert(payload: str) -> None:
    try:
        output = render(payload, [dict(m) for m in USER])
    except ChatTemplateError:
        return
    _assert_harmless(output)


@pytest.mark.parametrize("payload", DOS)
def test_resource_payloads_are_bounded(payload: str) -> None:
    with pytest.raises(ChatTemplateError):
        render(payload, USER)


@pytest.mark.parametrize("payload", ESCAPES + DOS + ["{{ 7*7 }}", "{% if true %}x{% endif %}"])
def test_payload_in_content_is_literal_text(payload: str) -> None:
    output = render(CHATML, [{"role": "user", "content": payload}], add_generation_prompt=True)
    assert output == f"<|im_start|>user\n{payload}<|im_end|>\n<|im_start|>assistant\n"


def test_raise_exception_message_is_kept() -> None:
    template = "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
    with pytest.raises(ChatTemplateError, match="^Conversation roles must alternate"):
        render(template, USER)


def test_runtime_error_names_the_line() -> None:
    template = "line one\n{{ messages[0]['content'] + 1 }}"
    with pytest.raises(ChatTemplateError, match="at line 2"):
        render(template, USER)


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ChatTemplateError, match="line 2"):
        render("ok\n{% for %}", USER)


def test_continue_with_generation_prompt_is_refused() -> None:
    with pytest.raises(ChatTemplateError) as caught:
        render(CHATML, USER, add_generation_prompt=True, continue_final_message=True)
    assert caught.value.param == "continue_final_message"


def test_render_memo_keys_on_every_input() -> None:
    first = render(CHATML, USER, add_generation_prompt=True)
    assert render(CHATML, USER, add_generation_prompt=False) != first
    assert (
        render(CHATML, [{"role": "user", "content": "other"}], add_generation_prompt=True) != first
    )
    assert render(CHATML, USER, add_generation_prompt=True) == first


def test_clock_reading_templates_are_not_memoised() -> None:
    from templates.renderer import is_deterministic

    assert is_deterministic(CHATML)
    assert not is_deterministic("{{ strftime_now('%H:%M:%S.%f') }}")
    first = render("{{ strftime_now('%H:%M:%S.%f') }}", USER)
    import time

    time.sleep(0.002)
    assert render("{{ strftime_now('%H:%M:%S.%f') }}", USER) != first
