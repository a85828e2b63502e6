// Requests to this server (same origin only) and the chat stream's SSE parsing.

/** An error in OpenAI's shape, or a transport failure, as one readable message. */
export class ApiError extends Error {
  constructor(status, error) {
    const param = error.param ? ` (parameter: ${error.param})` : "";
    super(`${status ? `${status}: ` : ""}${error.message || "request failed"}${param}`);
    this.status = status;
    this.code = error.code;
  }
}

function headers(key) {
  const out = { "Content-Type": "application/json" };
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return new ApiError(response.status, body.error);
  } catch {
    // not JSON: the text itself says what went wrong
  }
  return new ApiError(response.status, { message: text || response.statusText });
}

async function send(path, { key, body, signal }) {
  const init = { method: body === undefined ? "GET" : "POST", headers: headers(key), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJSON(path, key) {
  return (await send(path, { key })).json();
}

export async function postJSON(path, body, key) {
  return (await send(path, { key, body })).json();
}

/** The data payloads of the complete SSE events in ``buffer``, and what is left over. */
export function splitEvents(buffer) {
  const events = buffer.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = events.pop();
  const payloads = events
    .map((event) => event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n"))
    .filter((data) => data);
  return { payloads, rest };
}

/**
 * Streams a chat completion: yields the chunks of each network read as one batch, so
 * the page redraws once per read. An error event mid-stream is thrown as an ApiError.
 */
export async function* streamChat(body, { key, signal }) {
  const response = await send("/v1/chat/completions", { key, body, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const { payloads, rest } = splitEvents(buffer + value);
    buffer = rest;
    const batch = [];
    for (const data of payloads) {
      if (data === "[DONE]") {
        if (batch.length) yield batch;
        return;
      }
      const chunk = JSON.parse(data);
      if (chunk.error) {
        if (batch.length) yield batch; // what came before the error in the same read
        throw new ApiError(0, chunk.error);
      }
      batch.push(chunk);
    }
    if (batch.length) yield batch;
  }
}
