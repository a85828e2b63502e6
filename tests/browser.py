"""Headless Chromium (Debian's chromium + chromedriver) driving the chat page.

``ChatPage`` speaks in the page's own terms (enter a key, set a knob, send, stop) and
reads back what a user would see, or what the page keeps in localStorage. Without a
browser, ``chromium_or_skip`` skips with the reason and the command that installs one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser")
INSTALL_HINT = "needs Chromium and chromedriver: apt-get install chromium chromium-driver"
WAIT_S = 120
#: Test artifacts (screenshots) land here; the folder is git-ignored.
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium_or_skip() -> tuple[str, str]:
    """Paths of the browser and its driver, or a skip naming how to get them."""
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(INSTALL_HINT)
    pytest.importorskip("selenium", reason="needs selenium: pip install -e '.[test]'")
    return browser, driver


def start_chromium(downloads: Path):
    """One headless Chromium whose console log the tests can read."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1200,800")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


class ChatPage:
    """The page at ``base_url`` in ``driver``."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    # ---- navigation and state

    def open_fresh(self) -> None:
        """The page as a first-time visitor sees it: nothing in localStorage."""
        self.driver.get(self.base_url + "/")
        self.driver.execute_script("localStorage.clear()")
        self.reload()

    def reload(self) -> None:
        self.driver.get(self.base_url + "/")
        self.wait_until(lambda: self.state() != "loading", "the page to load")

    def state(self) -> str:
        return self.driver.execute_script("return document.body.dataset.state") or ""

    def wait_until(self, condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := condition():
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def console_errors(self) -> list[dict]:
        """SEVERE console entries since the last call (reading the log empties it)."""
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    # ---- controls

    def by_id(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def all(self, selector: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def enter_key(self, key: str) -> None:
        if not self.by_id("key-form").is_displayed():
            self.by_id("toggle-key").click()
        field = self.by_id("api-key")
        field.clear()
        field.send_keys(key)
        self.all("#key-form button")[0].click()
        self.wait_until(lambda: self.state() in {"idle", "needs-key", "error"}, "the models")

    def configure(self, **knobs: object) -> None:
        """Sets settings fields as a user would (each fires its change event)."""
        if self.by_id("settings").get_attribute("hidden") is not None:
            self.by_id("toggle-settings").click()
        for name, value in knobs.items():
            self.driver.execute_script(
                "const field = document.getElementById(arguments[0]);"
                "field.value = arguments[1];"
                "field.dispatchEvent(new Event('change'));",
                name,
                "" if value is None else str(value),
            )

    def choose_model(self, model: str) -> None:
        from selenium.webdriver.support.select import Select

        Select(self.by_id("model")).select_by_value(model)

    def model_options(self) -> list[str]:
        return [option.get_attribute("value") for option in self.all("#model option")]

    def type_message(self, text: str) -> None:
        field = self.by_id("input")
        field.clear()
        field.send_keys(text)

    def send(self, text: str) -> None:
        """Sends ``text``; the page is "streaming" once the click returns (its handler
        marks it so before its first await)."""
        self.type_message(text)
        self.by_id("send").click()

    def wait_idle(self) -> None:
        self.wait_until(lambda: self.state() == "idle", "the answer to end")

    # ---- what the page shows and keeps

    def messages(self) -> list[str]:
        return [box.text for box in self.all("#messages .message")]

    def last_answer(self):
        return self.all("#messages .message.assistant")[-1]

    def answer_content(self) -> str:
        """The last answer's textContent (as the growth records see it)."""
        return self.driver.execute_script(
            "const boxes = document.querySelectorAll('#messages .message.assistant .content');"
            "return boxes[boxes.length - 1].textContent"
        )

    def stored(self) -> list[dict]:
        raw = self.driver.execute_script(
            "return localStorage.getItem('openai-frontend.conversations')"
        )
        return json.loads(raw or "[]")

    def store_conversations(self, conversations: list[dict]) -> None:
        self.driver.execute_script(
            "localStorage.setItem('openai-frontend.conversations', arguments[0]);"
            "localStorage.setItem('openai-frontend.current', arguments[1]);",
            json.dumps(conversations),
            conversations[0]["id"],
        )

    def record_answer_growth(self) -> None:
        """Records the last answer's text at every DOM change of the message list."""
        self.driver.execute_script(
            "window.answerTexts = [];"
            "new MutationObserver(() => {"
            "  const boxes = document.querySelectorAll('#messages .message.assistant .content');"
            "  const text = boxes.length ? boxes[boxes.length - 1].textContent : '';"
            "  if (text && window.answerTexts.at(-1) !== text) window.answerTexts.push(text);"
            "}).observe(document.getElementById('messages'),"
            "  {childList: true, subtree: true, characterData: true});"
        )

    def record_requests(self) -> None:
        """Keeps the body of every chat request the page sends from here on, as the
        page hands it to ``fetch`` (the page calls the global ``fetch``)."""
        self.driver.execute_script(
            "window.sentBodies = [];"
            "const original = window.fetch;"
            "window.fetch = (path, init) => {"
            "  if (String(path).endsWith('/v1/chat/completions'))"
            "    window.sentBodies.push(JSON.parse(init.body));"
            "  return original(path, init);"
            "};"
        )

    def sent_requests(self) -> list[dict]:
        return self.driver.execute_script("return window.sentBodies")

    def fail_saves(self, after: int = 0) -> None:
        """Storage full: every save of the conversations after the first ``after``
        throws a QuotaExceededError, as localStorage does (until the page reloads)."""
        self.driver.execute_script(
            "const original = Storage.prototype.setItem;"
            "let allowed = arguments[0];"
            "Storage.prototype.setItem = function (name, value) {"
            "  if (name === 'openai-frontend.conversations' && allowed-- <= 0)"
            "    throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');"
            "  return original.call(this, name, value);"
            "};",
            after,
        )

    def answers_done(self, count: int) -> bool:
        """``count`` answers shown, each finished (its figures line), and the page idle."""
        finished = self.all("#messages .message.assistant .figures")
        return len(finished) >= count and self.state() == "idle"

    def count_renders_and_frames(self) -> None:
        """From here on counts the redraws of answer boxes (each is one replaceChildren
        of the box) and the animation frames, until ``renders_and_frames``."""
        self.driver.execute_script(
            "window.counts = {renders: 0, frames: 0, counting: true};"
            "new MutationObserver((records) => {"
            "  for (const r of records)"
            "    if (r.target.matches?.('.message.assistant')) window.counts.renders++;"
            "}).observe(document.getElementById('messages'), {childList: true, subtree: true});"
            "const tick = () => {"
            "  if (!window.counts.counting) return;"
            "  window.counts.frames++;"
            "  requestAnimationFrame(tick);"
            "};"
            "requestAnimationFrame(tick);"
        )

    def renders_and_frames(self) -> dict:
        return self.driver.execute_script("window.counts.counting = false; return window.counts")

    def answer_growth(self) -> list[str]:
        return self.driver.execute_script("return window.answerTexts")

    def alert_open(self) -> bool:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            self.driver.switch_to.alert  # noqa: B018 (the lookup is the check)
        except NoAlertPresentException:
            return False
        return True

    def screenshot_conversation(self, name: str) -> Path:
        """The conversation with the settings folded away, saved under artifacts/."""
        if self.by_id("settings").get_attribute("hidden") is None:
            self.by_id("toggle-settings").click()
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.driver.save_screenshot(str(path))
        return path
