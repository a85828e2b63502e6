"""Engine-neutral output parsing: reasoning, tool calls and the helpers around them.

``make_output_parser`` builds the stage for one choice (see :mod:`.pipeline`);
:mod:`.forced` builds the structured-output schemas for ``tool_choice``;
:mod:`.validation` checks ``tools`` requests; :mod:`.detect` guesses parser names
from a chat template.
"""
