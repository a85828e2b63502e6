// Conversations and settings, kept in this browser's localStorage only.

const CONVERSATIONS = "openai-frontend.conversations";
const CURRENT = "openai-frontend.current";
const SETTINGS = "openai-frontend.settings";
const KEY = "openai-frontend.api-key";

function read(name, fallback) {
  try {
    return JSON.parse(localStorage.getItem(name)) ?? fallback;
  } catch {
    return fallback;
  }
}

export function newConversation() {
  const id = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return { id, title: "New chat", created: new Date().toISOString(), messages: [] };
}

export const store = {
  conversations: () => read(CONVERSATIONS, []),
  saveConversations: (list) => localStorage.setItem(CONVERSATIONS, JSON.stringify(list)),
  currentId: () => localStorage.getItem(CURRENT),
  setCurrentId: (id) => localStorage.setItem(CURRENT, id),
  settings: () => read(SETTINGS, {}),
  saveSettings: (settings) => localStorage.setItem(SETTINGS, JSON.stringify(settings)),
  apiKey: () => localStorage.getItem(KEY) || "",
  setApiKey: (key) => localStorage.setItem(KEY, key),
};

/** Offers ``conversation`` as a JSON file download. */
export function exportConversation(conversation) {
  const blob = new Blob([JSON.stringify(conversation, null, 2)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${conversation.title.replace(/[^\w.-]+/g, "_") || "chat"}.json`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
