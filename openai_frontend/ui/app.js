// The chat page: wires the controls to the API, the stream to the view, and keeps
// conversations in localStorage. Served from this origin only (see routers/ui.py).

import { getJSON, postJSON, streamChat } from "./api.js";
import { exportConversation, newConversation, store } from "./store.js";
import { fillMessage, messageElement } from "./view.js";

const $ = (id) => document.getElementById(id);
const KNOBS = ["system", "temperature", "top_p", "max_tokens", "seed", "stop", "tools", "tool_choice"];
const DEFAULTS = { max_tokens: "512", tool_choice: "auto" };
const keyRequired = document.querySelector('meta[name="api-key"]').content === "required";

let conversations = store.conversations();
let current = null;
let controller = null;

function setState(state) {
  document.body.dataset.state = state;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function save() {
  store.saveConversations(conversations);
}

function saveSettings() {
  const settings = { model: $("model").value || store.settings().model };
  for (const name of KNOBS) settings[name] = $(name).value;
  store.saveSettings(settings);
}

function restoreSettings() {
  const settings = { ...DEFAULTS, ...store.settings() };
  for (const name of KNOBS) $(name).value = settings[name] ?? "";
}

// ---- conversations

function renderList() {
  const items = conversations.map((conversation) => {
    const li = document.createElement("li");
    li.textContent = conversation.title;
    li.dataset.id = conversation.id;
    if (conversation === current) li.className = "current";
    li.addEventListener("click", () => selectConversation(conversation.id));
    return li;
  });
  $("conversations").replaceChildren(...items);
}

function selectConversation(id) {
  current = conversations.find((c) => c.id === id) || conversations[0];
  store.setCurrentId(current.id);
  $("chat-title").value = current.title;
  $("messages").replaceChildren(...current.messages.map(messageElement));
  $("prompt-panel").hidden = true;
  renderList();
}

function startConversation() {
  const conversation = newConversation();
  conversations.unshift(conversation);
  save();
  selectConversation(conversation.id);
}

function deleteConversation() {
  conversations = conversations.filter((c) => c !== current);
  if (!conversations.length) conversations.push(newConversation());
  save();
  selectConversation(conversations[0].id);
}

// ---- requests

async function loadModels() {
  setState("loading");
  try {
    const { data } = await getJSON("/v1/models", store.apiKey());
    const wanted = store.settings().model;
    const options = data.map((card) => {
      const label = card.parent ? `${card.id} (adapter of ${card.parent})` : card.id;
      return new Option(label, card.id, false, card.id === wanted);
    });
    $("model").replaceChildren(...options);
    $("key-form").hidden = true;
    showError("");
    setState("idle");
  } catch (error) {
    showError(error.message);
    $("key-form").hidden = !keyRequired;
    setState(error.status === 401 ? "needs-key" : "error");
  }
}

/** The request's sampling fields from the settings; empty fields are left out. */
function requestFields() {
  const fields = {};
  for (const name of ["temperature", "top_p"]) {
    if ($(name).value !== "") fields[name] = Number($(name).value);
  }
  for (const name of ["max_tokens", "seed"]) {
    if ($(name).value !== "") fields[name] = Number.parseInt($(name).value, 10);
  }
  const stop = $("stop").value.split("\n").filter((s) => s);
  if (stop.length) fields.stop = stop;
  if ($("tools").value.trim()) {
    try {
      fields.tools = JSON.parse($("tools").value);
    } catch (error) {
      throw new Error(`tools is not valid JSON: ${error.message}`);
    }
    fields.tool_choice = $("tool_choice").value;
  }
  return fields;
}

/** The system prompt and the conversation so far, as chat messages. */
function history() {
  const messages = [];
  if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
  for (const message of current.messages) {
    if (message.content) messages.push({ role: message.role, content: message.content });
  }
  return messages;
}

function applyDelta(answer, delta) {
  if (delta.content) answer.content += delta.content;
  const reasoning = delta.reasoning_content || delta.reasoning;
  if (reasoning) answer.reasoning = (answer.reasoning || "") + reasoning;
  for (const call of delta.tool_calls || []) {
    answer.tool_calls = answer.tool_calls || [];
    const slot = (answer.tool_calls[call.index] ??= { id: call.id, name: "", arguments: "" });
    slot.name += call.function?.name || "";
    slot.arguments += call.function?.arguments || "";
  }
}

function figures({ started, first, ended, usage, finish, stopped }) {
  const parts = [];
  if (first !== null) parts.push(`TTFT ${Math.round(first - started)} ms`);
  if (usage) {
    const seconds = (ended - (first ?? started)) / 1000;
    if (usage.completion_tokens > 1 && seconds > 0) {
      parts.push(`${((usage.completion_tokens - 1) / seconds).toFixed(1)} tokens/s`);
    }
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  }
  if (finish) parts.push(`finish: ${finish}`);
  if (stopped) parts.push("stopped");
  return parts.join(" · ");
}

async function sendMessage(text) {
  let fields;
  try {
    fields = requestFields();
  } catch (error) {
    showError(error.message);
    return;
  }
  showError("");
  current.messages.push({ role: "user", content: text });
  if (current.title === "New chat") current.title = text.slice(0, 40);
  const model = $("model").value;
  const body = { model, messages: history(), stream: true, stream_options: { include_usage: true }, ...fields };
  const answer = { role: "assistant", content: "", model };
  current.messages.push(answer);
  save();
  selectConversation(current.id);
  const box = $("messages").lastElementChild;
  controller = new AbortController();
  setBusy(true);
  const run = { started: performance.now(), first: null, usage: null, finish: null, stopped: false };
  try {
    for await (const batch of streamChat(body, { key: store.apiKey(), signal: controller.signal })) {
      for (const chunk of batch) {
        if (chunk.usage) run.usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          applyDelta(answer, choice.delta || {});
          if (choice.finish_reason) run.finish = choice.finish_reason;
        }
      }
      if (run.first === null && (answer.content || answer.reasoning || answer.tool_calls)) run.first = performance.now();
      fillMessage(box, answer);
      box.scrollIntoView({ block: "end" });
    }
  } catch (error) {
    if (error.name === "AbortError") run.stopped = true;
    else answer.error = error.message;
  } finally {
    run.ended = performance.now();
    answer.figures = figures(run);
    fillMessage(box, answer);
    save();
    controller = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop-button").disabled = !busy;
  setState(busy ? "streaming" : "idle");
}

async function showPrompt() {
  const messages = history();
  const pending = $("input").value.trim();
  if (pending) messages.push({ role: "user", content: pending });
  try {
    const fields = requestFields();
    const body = { model: $("model").value, messages, ...(fields.tools ? { tools: fields.tools, tool_choice: fields.tool_choice } : {}) };
    const out = await postJSON("/tokenize", body, store.apiKey());
    $("prompt-summary").textContent = `Rendered prompt (${out.count} tokens)`;
    $("prompt-text").textContent = out.prompt;
    $("prompt-panel").hidden = false;
    $("prompt-panel").open = true;
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

// ---- wiring

function wire() {
  $("new-chat").addEventListener("click", startConversation);
  $("delete-chat").addEventListener("click", deleteConversation);
  $("export-chat").addEventListener("click", () => exportConversation(current));
  $("chat-title").addEventListener("input", () => {
    current.title = $("chat-title").value;
    save();
    renderList();
  });
  $("toggle-settings").addEventListener("click", () => {
    $("settings").hidden = !$("settings").hidden;
  });
  $("toggle-key").addEventListener("click", () => {
    $("key-form").hidden = !$("key-form").hidden;
  });
  $("show-prompt").addEventListener("click", showPrompt);
  $("model").addEventListener("change", saveSettings);
  for (const name of KNOBS) $(name).addEventListener("change", saveSettings);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    store.setApiKey($("api-key").value.trim());
    loadModels();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("input").value.trim();
    if (!text || controller) return;
    $("input").value = "";
    sendMessage(text);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop-button").addEventListener("click", () => controller?.abort());
}

function init() {
  restoreSettings();
  if (!conversations.length) conversations.push(newConversation());
  selectConversation(store.currentId());
  wire();
  $("key-form").hidden = !keyRequired;
  $("toggle-key").hidden = !keyRequired;
  $("api-key").value = store.apiKey();
  if (keyRequired && !store.apiKey()) setState("needs-key");
  else loadModels();
}

init();
