// One chat message as DOM nodes. Only textContent and the safe Markdown renderer touch
// message text; the user's own text is shown verbatim.

import { renderMarkdown } from "./markdown.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function reasoningBlock(text, wasOpen) {
  const details = el("details", "reasoning");
  details.open = wasOpen;
  details.append(el("summary", "", "Reasoning"), renderMarkdown(text));
  return details;
}

function toolCallBlock(call) {
  const block = el("div", "tool-call");
  const pre = el("pre");
  pre.append(el("code", "", call.arguments));
  block.append(el("div", "name", `Tool call: ${call.name}`), pre);
  return block;
}

/** Redraws ``box`` from ``message`` (keeping an opened reasoning block open). */
export function fillMessage(box, message) {
  const wasOpen = Boolean(box.querySelector("details.reasoning")?.open);
  const parts = [el("div", "role", message.role)];
  if (message.role === "tool") parts.push(el("div", "name", `Result of ${message.name} (${message.tool_call_id})`));
  if (message.reasoning) parts.push(reasoningBlock(message.reasoning, wasOpen));
  const content = el("div", "content");
  if (message.role === "assistant") content.append(renderMarkdown(message.content));
  else content.append(el("div", "plain", message.content));
  parts.push(content);
  for (const call of message.tool_calls || []) parts.push(toolCallBlock(call));
  if (message.error) parts.push(el("div", "error", message.error));
  if (message.figures) parts.push(el("div", "figures", message.figures));
  box.replaceChildren(...parts);
}

export function messageElement(message) {
  const box = el("div", `message ${message.role}`);
  fillMessage(box, message);
  return box;
}
