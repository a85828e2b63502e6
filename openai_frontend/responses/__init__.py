"""OpenAI's Responses API as a dialect of the chat pipeline (see chat_run.py)."""
