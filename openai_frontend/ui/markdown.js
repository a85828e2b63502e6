// A small Markdown renderer that builds DOM nodes and sets only textContent: model and
// user text never reach an HTML parser, so "<img src=x onerror=...>" stays text.
// Covers what chat answers use: fenced code, inline code, bold, italic, headings,
// lists and paragraphs. An unclosed fence (mid-stream) renders as code so far.

const FENCE = /^\s*```\s*([\w+#.-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const ITEM = /^\s*([-*+]|\d+[.)])\s+(.*)$/;
const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*|__[^_\n]+__)|(\*[^*\s][^*\n]*\*|_[^_\s][^_\n]*_)/;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

/** Inline spans of one line: code, strong, em, and plain text nodes. */
export function renderInline(text, parent) {
  let rest = text;
  for (let match = INLINE.exec(rest); match; match = INLINE.exec(rest)) {
    if (match.index > 0) parent.append(document.createTextNode(rest.slice(0, match.index)));
    const [whole, code, strong] = match;
    if (code) {
      const node = el("code");
      node.textContent = whole.slice(1, -1);
      parent.append(node);
    } else {
      const node = el(strong ? "strong" : "em");
      const cut = strong ? 2 : 1;
      renderInline(whole.slice(cut, -cut), node);
      parent.append(node);
    }
    rest = rest.slice(match.index + whole.length);
  }
  if (rest) parent.append(document.createTextNode(rest));
}

function codeBlock(lang, lines) {
  const pre = el("pre");
  if (lang) {
    const label = el("span", "lang");
    label.textContent = lang;
    pre.append(label);
  }
  const code = el("code");
  code.textContent = lines.join("\n");
  pre.append(code);
  return pre;
}

function listFrom(items, ordered) {
  const list = el(ordered ? "ol" : "ul");
  for (const item of items) {
    const li = el("li");
    renderInline(item, li);
    list.append(li);
  }
  return list;
}

function paragraph(lines) {
  const p = el("p");
  lines.forEach((line, i) => {
    if (i > 0) p.append(el("br"));
    renderInline(line, p);
  });
  return p;
}

function isPlain(line) {
  return line.trim() && !FENCE.test(line) && !HEADING.test(line) && !ITEM.test(line);
}

/** The blocks of ``text`` as a DocumentFragment. */
export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      for (i += 1; i < lines.length && !FENCE.test(lines[i]); i += 1) body.push(lines[i]);
      out.append(codeBlock(fence[1], body));
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const h = el(`h${Math.min(heading[1].length + 2, 6)}`);
      renderInline(heading[2], h);
      out.append(h);
      i += 1;
      continue;
    }
    if (ITEM.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const items = [];
      while (i < lines.length && ITEM.test(lines[i]) && /^\s*\d/.test(lines[i]) === ordered) {
        items.push(ITEM.exec(lines[i])[2]);
        i += 1;
      }
      out.append(listFrom(items, ordered));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const body = [];
    while (i < lines.length && isPlain(lines[i])) {
      body.push(lines[i]);
      i += 1;
    }
    out.append(paragraph(body));
  }
  return out;
}
