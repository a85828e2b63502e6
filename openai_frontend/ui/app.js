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

/** Keeps the conversations in localStorage; a failure (QuotaExceededError, storage
 * turned off) is shown, never thrown: the page keeps working with what it holds. */
function save() {
  try {
    store.saveConversations(conversations);
  } catch (error) {
    showError(`Could not save the conversations in this browser: ${error.message}`);
  }
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
  showComposer();
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

/** An answer that failed (an error) or brought nothing (no text, no call: stopped
 * early, or all reasoning): it and the user turn that asked for it are left out of what
 * is sent next, so that completed exchanges alone reach the model (no two user turns in
 * a row, no invented placeholder reply for the model to build on). */
function failed(message) {
  return message.role === "assistant" && Boolean(message.error || (!message.content && !message.tool_calls?.length));
}

/** A stored message as the API's chat message (tool calls and tool results included). */
function apiMessage(message) {
  if (message.role === "tool") return { role: "tool", tool_call_id: message.tool_call_id, content: message.content };
  if (message.role !== "assistant" || !message.tool_calls?.length) return { role: message.role, content: message.content };
  const tool_calls = message.tool_calls.map((call) => ({
    id: call.id,
    type: "function",
    function: { name: call.name, arguments: call.arguments },
  }));
  return { role: "assistant", content: message.content || null, tool_calls };
}

/** The system prompt and the conversation so far, as chat messages. */
function history() {
  const messages = [];
  if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
  for (const message of current.messages) {
    if (!failed(message)) messages.push(apiMessage(message));
    else if (messages.at(-1)?.role === "user") messages.pop();
  }
  return messages;
}

/** The last answer's tool calls that no tool message answers yet. */
function pendingCalls() {
  const answered = new Set();
  for (let i = current.messages.length - 1; i >= 0; i--) {
    const message = current.messages[i];
    if (message.role === "tool") answered.add(message.tool_call_id);
    else if (message.role === "assistant" && !failed(message)) {
      return (message.tool_calls || []).filter((call) => !answered.has(call.id));
    } else return [];
  }
  return [];
}

/** What the composer's ``text`` adds: the result of the first pending tool call, or
 * a user message. */
function nextMessage(text) {
  const [call] = pendingCalls();
  if (call) return { role: "tool", tool_call_id: call.id, name: call.name, content: text };
  return { role: "user", content: text };
}

function showComposer() {
  const [call] = pendingCalls();
  $("input").placeholder = call
    ? `Result of the tool call ${call.name} (${call.id}); Enter sends`
    : "Message (Enter sends, Shift+Enter for a new line)";
}

function applyDelta(answer, delta) {
  if (delta.content) answer.content += delta.content;
  const reasoning = delta.reasoning_content || delta.reasoning;
  if (reasoning) answer.reasoning = (answer.reasoning || "") + reasoning;
  for (const call of delta.tool_calls || []) {
    answer.tool_calls = answer.tool_calls || [];
    const id = call.id || `call_${call.index}`;
    const slot = (answer.tool_calls[call.index] ??= { id, name: "", arguments: "" });
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
  const message = nextMessage(text);
  current.messages.push(message);
  if (current.title === "New chat") current.title = text.slice(0, 40);
  if (pendingCalls().length) {
    // more calls to answer before the model can go on
    save();
    selectConversation(current.id);
    return;
  }
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
  // Markdown is rendered at most once a frame (reads can come far more often), and
  // once more at the end: redrawing the whole answer on every read is quadratic.
  let frame = null;
  const draw = () => {
    frame = null;
    fillMessage(box, answer);
    box.scrollIntoView({ block: "end" });
  };
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
      frame ??= requestAnimationFrame(draw);
    }
  } catch (error) {
    if (error.name === "AbortError") run.stopped = true;
    else answer.error = error.message;
  } finally {
    if (frame !== null) cancelAnimationFrame(frame);
    controller = null;
    setBusy(false);
    run.ended = performance.now();
    answer.figures = figures(run);
    try {
      draw();
      showComposer();
    } finally {
      save();
    }
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
  if (pending) messages.push(apiMessage(nextMessage(pending)));
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
