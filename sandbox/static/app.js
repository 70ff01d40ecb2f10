// The sandbox page: two Telegram-like chats (a customer's, the staff group's) and a control
// panel, kept live by the server's event stream. Plain JS, no build step, nothing fetched
// from the network beyond this server.
"use strict";

const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// --- the server -----------------------------------------------------------------------

const api = {
  async get(path) {
    const response = await fetch(`/sandbox/api/${path}`);
    if (!response.ok) throw new Error(await response.text());
    return response.json();
  },
  async post(path, body, form) {
    const response = await fetch(`/sandbox/api/${path}`, {
      method: "POST",
      headers: form ? { "X-Sandbox": "1" } : { "X-Sandbox": "1", "Content-Type": "application/json" },
      body: form ?? JSON.stringify(body ?? {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  },
};

const app = {
  state: null,
  chats: new Map(), // chat id -> {messages: Map(id -> message), keyboard, topics, pinned}
  customerId: null,
  staffId: null,
  topic: 1, // the forum's General topic
  unread: new Map(), // topic id -> count
  keyboardHidden: false,
  loading: 0, // history loads in flight; chat events wait for them in `queued`
  queued: [],
};

// A history fetched while events arrive may be older than them: hold the events back
// until the history is drawn, then apply them (applying an event twice changes nothing).
async function whileLoading(work) {
  app.loading += 1;
  try {
    await work();
  } finally {
    app.loading -= 1;
  }
  if (!app.loading) app.queued.splice(0).forEach(handle);
}

function chatStore(chatId) {
  if (!app.chats.has(chatId)) {
    app.chats.set(chatId, { messages: new Map(), keyboard: null, topics: [], pinned: [] });
  }
  return app.chats.get(chatId);
}

// --- time -------------------------------------------------------------------------------

function zone() {
  return app.state?.clock.timezone ?? "UTC";
}
function formatTime(seconds) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: zone(), hour: "2-digit", minute: "2-digit" })
    .format(new Date(seconds * 1000));
}
function formatDay(seconds) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: zone(), weekday: "short", day: "numeric", month: "long", year: "numeric" })
    .format(new Date(seconds * 1000));
}
function showClock() {
  if (!app.state) return;
  const offset = app.state.clock.offset_seconds;
  const now = Date.now() / 1000 + offset;
  const days = offset / 86400;
  const ahead = offset ? ` · ${days >= 1 ? `+${Math.round(days * 10) / 10} days` : `+${Math.round(offset / 3600)} h`}` : "";
  $("#clock").textContent = `🕒 ${formatDay(now)}, ${formatTime(now)} (${zone()})${ahead}`;
}

// --- formatted text: Telegram entities to DOM, everything else as text -------------------

const AUTO_LINKS = /(?<![\w/])(\/[a-zA-Z0-9_]{1,32})(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])|(https?:\/\/[^\s<>"]+)/g;

function addPlain(parent, text, pane, auto) {
  if (!text) return;
  if (!auto) {
    parent.append(text);
    return;
  }
  let last = 0;
  for (const match of text.matchAll(AUTO_LINKS)) {
    parent.append(text.slice(last, match.index));
    if (match[1]) parent.append(commandNode(match[0], match[1], pane));
    else parent.append(linkNode(match[2], match[2]));
    last = match.index + match[0].length;
  }
  parent.append(text.slice(last));
}

function commandNode(text, command, pane) {
  return el("span", { class: "cmd", title: `Send ${command}`, onclick: () => pane.send(command) }, text);
}

function linkNode(href, text) {
  const safe = /^(https?:|tg:|mailto:)/i.test(href);
  return safe ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text) : el("span", { class: "link" }, text);
}

function entityNodes(entity, text, pane) {
  switch (entity.type) {
    case "bold": return [el("b")];
    case "italic": return [el("i")];
    case "underline": return [el("u")];
    case "strikethrough": return [el("s")];
    case "code": return [el("code")];
    case "pre": {
      const code = el("code", { class: entity.language ? `language-${entity.language}` : null });
      return [el("pre", {}, code), code];
    }
    case "spoiler": {
      const node = el("span", { class: "spoiler", title: "Spoiler" });
      node.addEventListener("click", () => node.classList.add("revealed"));
      return [node];
    }
    case "blockquote": return [el("blockquote")];
    case "expandable_blockquote": {
      const node = el("blockquote", { class: "expandable" });
      node.addEventListener("click", () => node.classList.toggle("expanded"));
      return [node];
    }
    case "text_link": return [linkNode(entity.url, "")];
    case "url": return [linkNode(/^\w+:/.test(text) ? text : `http://${text}`, "")];
    case "email": return [linkNode(`mailto:${text}`, "")];
    case "bot_command": return [commandNode("", text.split("@")[0], pane)];
    default: return [el("span", { class: entity.type === "mention" || entity.type === "hashtag" ? "link" : null })];
  }
}

// Entities nest (HTML-parsed ones always do); offsets are UTF-16 units, as JS strings count.
function renderText(text, entities, pane) {
  const root = document.createDocumentFragment();
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const noAuto = new Set(["code", "pre", "text_link", "url", "email", "bot_command"]);
  const build = (parent, start, end, list, auto) => {
    let pos = start;
    while (list.length) {
      const entity = list.shift();
      const from = Math.max(entity.offset, pos);
      const to = Math.min(entity.offset + entity.length, end);
      if (to <= from) continue;
      addPlain(parent, text.slice(pos, from), pane, auto);
      const inner = [];
      while (list.length && list[0].offset < to) inner.push(list.shift());
      const [outer, target = outer] = entityNodes(entity, text.slice(from, to), pane);
      build(target, from, to, inner, auto && !noAuto.has(entity.type));
      parent.append(outer);
      pos = to;
    }
    addPlain(parent, text.slice(pos, end), pane, auto);
  };
  build(root, 0, text.length, sorted, true);
  return root;
}

// --- one message ------------------------------------------------------------------------

function serviceText(service) {
  switch (service.type) {
    case "forum_topic_created": return `Topic created: ${service.name}`;
    case "forum_topic_edited": return `Topic renamed: ${service.name ?? ""}`;
    case "forum_topic_closed": return "Topic closed";
    case "forum_topic_reopened": return "Topic reopened";
    default: return service.type;
  }
}

function mediaNode(message) {
  const file = message.file;
  if (message.kind === "photo" && file) {
    return el("a", { href: file.url, target: "_blank", class: "photo" }, el("img", { src: file.url, alt: "Photo", loading: "lazy" }));
  }
  if (file && (message.kind === "document" || message.kind === "audio" || message.kind === "video")) {
    const size = file.size > 1024 ? `${Math.round(file.size / 1024)} KB` : `${file.size} B`;
    return el("a", { href: file.url, download: file.name, class: "document" },
      el("span", { class: "doc-icon" }, "📄"), el("span", {}, el("b", {}, file.name), el("small", {}, size)));
  }
  if (message.contact) {
    return el("div", { class: "contact" }, el("span", { class: "doc-icon" }, "👤"),
      el("span", {}, el("b", {}, message.contact.name || "Contact"), el("small", {}, message.contact.phone)));
  }
  const placeholders = { sticker: "🙂 Sticker", voice: "🎤 Voice message", animation: "🎞 GIF", video_note: "⏺ Video message" };
  return placeholders[message.kind] ? el("div", { class: "placeholder" }, placeholders[message.kind]) : null;
}

function messageNode(message, pane) {
  if (message.service) {
    return el("div", { class: "service", dataset: { id: message.id } }, el("span", {}, serviceText(message.service)));
  }
  const outgoing = pane.isOutgoing(message);
  const bubble = el("div", { class: "bubble" });
  if (pane.showSenders && !outgoing) bubble.append(el("div", { class: "sender" }, message.from.name));
  if (message.forwarded_from) bubble.append(el("div", { class: "forwarded" }, `Forwarded from ${message.forwarded_from}`));
  if (message.reply_to) {
    bubble.append(el("button", { type: "button", class: "quote", onclick: () => pane.scrollTo(message.reply_to.id) },
      el("b", {}, message.reply_to.from), el("span", {}, message.reply_to.text)));
  }
  bubble.append(mediaNode(message) ?? "");
  if (message.text) bubble.append(el("div", { class: "text" }, renderText(message.text, message.entities, pane)));
  bubble.append(el("span", { class: "meta" }, message.edited ? "edited " : "", formatTime(message.date)));
  const row = el("div", { class: `msg ${outgoing ? "out" : "in"}`, dataset: { id: message.id } },
    bubble, el("button", { type: "button", class: "reply-action", title: "Reply", onclick: () => pane.replyTo(message) }, "↩"));
  if (!message.inline_keyboard.length) return row;
  const keyboard = el("div", { class: "inline-kb" });
  for (const buttons of message.inline_keyboard) {
    const line = el("div", { class: "kb-row" });
    for (const button of buttons) {
      if (button.url) line.append(el("a", { class: "kb-button", href: button.url, target: "_blank", rel: "noopener noreferrer" }, button.text, " ↗"));
      else line.append(el("button", { type: "button", class: "kb-button", disabled: button.data === undefined,
        onclick: () => pane.press(message, button.data) }, button.text));
    }
    keyboard.append(line);
  }
  return el("div", { class: "msg-group", dataset: { id: message.id } }, row, keyboard);
}

// --- a chat pane: the customer's private chat or the staff group -------------------------

class Pane {
  constructor(name, { showSenders, chatId, actorId, accepts }) {
    Object.assign(this, { name, showSenders, chatIdOf: chatId, actorIdOf: actorId, acceptsOf: accepts });
    this.list = $(`#${name}-messages`);
    this.input = $(`#${name}-input`);
    this.replyStrip = $(`#${name}-reply`);
    this.commands = $(`#${name}-commands`);
    this.file = $(`#${name}-file`);
    this.reply = null;
    this.commandsTicket = 0;
    $(`#${name}-send`).addEventListener("click", () => this.sendInput());
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); this.sendInput(); }
      if (event.key === "Escape") { this.replyTo(null); this.hideCommands(); }
    });
    this.input.addEventListener("input", () => {
      if (this.input.value.startsWith("/") && !this.input.value.includes(" ")) this.showCommands(this.input.value);
      else this.hideCommands();
    });
    $(`#${name}-menu`).addEventListener("click", () => (this.commands.hidden ? this.showCommands("/") : this.hideCommands()));
    $(`#${name}-attach`).addEventListener("click", () => this.file.click());
    this.file.addEventListener("change", () => this.upload());
  }

  get chatId() { return this.chatIdOf(); }
  get actorId() { return this.actorIdOf(); }
  accepts(message) { return message.chat_id === this.chatId && this.acceptsOf(message); }
  isOutgoing(message) { return message.from.id === this.actorId; }

  render() {
    this.list.replaceChildren();
    this.lastDay = null;
    const store = chatStore(this.chatId);
    [...store.messages.values()].sort((a, b) => a.id - b.id).filter((m) => this.accepts(m)).forEach((m) => this.append(m));
    this.list.scrollTop = this.list.scrollHeight;
  }

  append(message) {
    const day = formatDay(message.date);
    if (day !== this.lastDay) {
      this.list.append(el("div", { class: "day" }, el("span", {}, day)));
      this.lastDay = day;
    }
    this.list.append(messageNode(message, this));
  }

  upsert(message) {
    if (!this.accepts(message)) return false;
    const old = this.list.querySelector(`:scope > [data-id="${message.id}"]`);
    if (old) {
      old.replaceWith(messageNode(message, this));
      return true;
    }
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
    this.append(message);
    if (nearBottom || this.isOutgoing(message)) this.list.scrollTop = this.list.scrollHeight;
    return true;
  }

  remove(id) {
    this.list.querySelector(`:scope > [data-id="${id}"]`)?.remove();
  }

  scrollTo(id) {
    const node = this.list.querySelector(`:scope > [data-id="${id}"]`);
    if (!node) return;
    node.scrollIntoView({ block: "center", behavior: "smooth" });
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), 1200);
  }

  replyTo(message) {
    this.reply = message;
    this.replyStrip.hidden = !message;
    if (!message) return;
    this.replyStrip.replaceChildren(
      el("span", {}, "Reply to ", el("b", {}, message.from.name), ": ", (message.text || message.kind).slice(0, 80)),
      el("button", { type: "button", class: "icon", title: "Cancel the reply", onclick: () => this.replyTo(null) }, "✕"));
    this.input.focus();
  }

  threadId() { return null; }

  async send(text) {
    await act(() => api.post("send", { user_id: this.actorId, text, thread_id: this.threadId(), reply_to: this.reply?.id }));
    this.replyTo(null);
  }

  async sendInput() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    this.hideCommands();
    await this.send(text);
  }

  async press(message, data) {
    await act(() => api.post("press", { user_id: this.actorId, message_id: message.id, data }));
  }

  async upload() {
    const file = this.file.files[0];
    this.file.value = "";
    if (!file) return;
    const form = new FormData();
    form.append("user_id", this.actorId);
    form.append("as", file.type.startsWith("image/") ? "photo" : "document");
    form.append("caption", this.input.value.trim());
    if (this.threadId()) form.append("thread_id", this.threadId());
    form.append("file", file);
    this.input.value = "";
    await act(() => api.post("upload", null, form));
  }

  async showCommands(prefix) {
    const ticket = ++this.commandsTicket;
    const { commands } = await api.get(`commands?chat_id=${this.chatId}&user_id=${this.actorId}`);
    if (ticket !== this.commandsTicket) return; // sent or closed while the list was loading
    const shown = commands.filter((c) => `/${c.command}`.startsWith(prefix));
    this.commands.replaceChildren(...shown.map((c) => el("button", { type: "button", onclick: () => {
      this.input.value = "";
      this.hideCommands();
      this.send(`/${c.command}`);
    } }, el("b", {}, `/${c.command}`), el("span", {}, c.description))));
    if (!shown.length) this.commands.append(el("p", { class: "note" }, "No command of the bot matches."));
    this.commands.hidden = false;
  }

  hideCommands() {
    this.commandsTicket += 1;
    this.commands.hidden = true;
  }
}

const customerPane = new Pane("customer", {
  showSenders: false,
  chatId: () => app.customerId,
  actorId: () => app.customerId,
  accepts: () => true,
});

const staffPane = new Pane("staff", {
  showSenders: true,
  chatId: () => app.state?.group.id,
  actorId: () => app.staffId,
  accepts: (message) => topicOf(message) === app.topic,
});
staffPane.threadId = () => (app.topic === 1 ? null : app.topic);

function topicOf(message) {
  return message.thread_id ?? 1;
}

// --- the customer's reply keyboard and Start button -------------------------------------

function customer() {
  return app.state?.customers.find((c) => c.id === app.customerId);
}

function showKeyboard() {
  const store = chatStore(app.customerId);
  const keyboard = store.keyboard;
  const box = $("#customer-keyboard");
  $("#customer-kb-toggle").hidden = !keyboard || !app.keyboardHidden;
  box.hidden = !keyboard || app.keyboardHidden;
  if (!keyboard) return;
  if (keyboard.placeholder) customerPane.input.placeholder = keyboard.placeholder;
  box.replaceChildren(...keyboard.rows.map((row) => el("div", { class: "kb-row" }, ...row.map((button) =>
    el("button", { type: "button", class: `kb-button${button.contact ? " contact" : ""}`,
      title: button.contact ? "Shares this customer's phone number" : null,
      onclick: () => pressReplyButton(button, keyboard) }, button.text)))));
}

async function pressReplyButton(button, keyboard) {
  if (keyboard.one_time) {
    app.keyboardHidden = true;
    showKeyboard();
  }
  if (button.contact) await act(() => api.post("contact", { user_id: app.customerId }));
  else await customerPane.send(button.text);
}

function showStart() {
  const persona = customer();
  const empty = chatStore(app.customerId).messages.size === 0;
  const blocked = Boolean(persona?.blocked);
  const start = $("#customer-start");
  start.hidden = !(empty || blocked);
  start.textContent = blocked ? "RESTART (unblock the bot)" : "START";
  $("#customer-composer").hidden = !start.hidden;
  $("#fault-block").textContent = blocked ? "Unblock the bot" : "Block the bot";
  $("#customer-persona").textContent = persona ? `as ${persona.name}${persona.phone ? ` · ${persona.phone}` : ""}` : "";
}

$("#customer-start").addEventListener("click", async () => {
  if (customer()?.blocked) await act(() => api.post("faults", { action: "unblock", user_id: app.customerId }));
  else await customerPane.send("/start");
});
$("#customer-kb-toggle").addEventListener("click", () => {
  app.keyboardHidden = false;
  showKeyboard();
});

// --- the staff group's topics and pinned message ----------------------------------------

function showTopics() {
  const store = chatStore(app.state.group.id);
  const entries = [{ id: 1, name: "General" }, ...store.topics];
  $("#topics").replaceChildren(...entries.map((topic) => {
    const unread = app.unread.get(topic.id);
    return el("button", {
      type: "button",
      class: `topic${topic.id === app.topic ? " active" : ""}${topic.closed ? " closed" : ""}`,
      onclick: () => selectTopic(topic.id),
    }, el("span", { class: "dot", style: topic.color ? `background:#${topic.color.toString(16).padStart(6, "0")}` : null }),
    el("span", { class: "name" }, topic.name), topic.closed ? el("span", { title: "Closed" }, "🔒") : null,
    unread ? el("span", { class: "badge" }, String(unread)) : null);
  }));
  $("#staff-subtitle").textContent = `${store.topics.length} topic${store.topics.length === 1 ? "" : "s"} · ${app.state.staff.length} staff`;
  showPinned();
}

function selectTopic(id) {
  app.topic = id;
  app.unread.delete(id);
  staffPane.replyTo(null);
  staffPane.render();
  showTopics();
}

function showPinned() {
  const store = chatStore(app.state.group.id);
  const pinned = [...store.pinned].reverse().map((id) => store.messages.get(id)).find((m) => m && topicOf(m) === app.topic);
  const bar = $("#staff-pinned");
  bar.hidden = !pinned;
  if (!pinned) return;
  bar.replaceChildren(el("b", {}, "📌 Pinned message"), el("span", {}, (pinned.text || pinned.kind).split("\n")[0].slice(0, 120)));
  bar.onclick = () => staffPane.scrollTo(pinned.id);
}

// --- personas and state -----------------------------------------------------------------

function applyState(state) {
  app.state = state;
  $("#bot-title").textContent = state.bot.name;
  $("#bot-avatar").textContent = state.bot.name.slice(0, 1);
  $("#customer-subtitle").textContent = state.bot.username ? `@${state.bot.username} · bot` : "bot";
  $("#group-title").textContent = state.group.title;
  if (!state.customers.some((c) => c.id === app.customerId)) app.customerId = state.customers[0]?.id ?? null;
  if (!state.staff.some((s) => s.id === app.staffId)) app.staffId = state.staff[0]?.id ?? null;
  fillPersonas();
  showJobs();
  showFaults();
  showDemo();
  showClock();
  showStart();
  $("#staff-persona").textContent = `as ${state.staff.find((s) => s.id === app.staffId)?.name ?? "—"}`;
}

function fillPersonas() {
  const select = $("#customer-select");
  const own = app.state.customers.filter((c) => !c.demo);
  const demo = app.state.customers.filter((c) => c.demo);
  const option = (c) => el("option", { value: c.id, selected: c.id === app.customerId },
    `${c.blocked ? "⛔ " : ""}${c.name} (${c.language}${c.phone ? `, ${c.phone}` : ""})`);
  const groups = [...own.map(option)];
  if (demo.length) groups.push(el("optgroup", { label: `Demo shop (${demo.length})` }, ...demo.map(option)));
  select.replaceChildren(...groups);
  $("#staff-select").replaceChildren(...app.state.staff.map((s) =>
    el("option", { value: s.id, selected: s.id === app.staffId }, `${s.name} (${s.status})`)));
}

async function selectCustomer(id) {
  app.customerId = id;
  app.keyboardHidden = false;
  customerPane.replyTo(null);
  customerPane.input.placeholder = "Message";
  await whileLoading(async () => {
    await loadChat(id);
    customerPane.render();
    showKeyboard();
    showStart();
  });
}

async function loadChat(chatId) {
  const { chat, messages } = await api.get(`chats/${chatId}`);
  const store = chatStore(chatId);
  store.messages = new Map(messages.map((m) => [m.id, m]));
  Object.assign(store, { keyboard: chat.keyboard, topics: chat.topics, pinned: chat.pinned });
}

$("#customer-select").addEventListener("change", (event) => selectCustomer(Number(event.target.value)));
$("#staff-select").addEventListener("change", (event) => {
  app.staffId = Number(event.target.value);
  applyState(app.state);
  staffPane.render();
});

$("#customer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = Object.fromEntries(new FormData(form));
  const persona = await act(() => api.post("customers", body), `New customer ${body.name}`);
  if (!persona) return;
  form.reset();
  $("#new-customer").open = false;
  // The stream's state event may come before or after this answer.
  if (!app.state.customers.some((c) => c.id === persona.id)) app.state.customers.push({ ...persona, blocked: false });
  await selectCustomer(persona.id);
  fillPersonas();
});

$("#staff-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = Object.fromEntries(new FormData(event.target));
  const persona = await act(() => api.post("staff", body), `New staff member ${body.name}`);
  if (!persona) return;
  event.target.reset();
  if (!app.state.staff.some((s) => s.id === persona.id)) app.state.staff.push({ ...persona, status: "member" });
  app.staffId = persona.id;
  applyState(app.state);
  staffPane.render();
});

// --- control panel ----------------------------------------------------------------------

function log(text, detail, kind = "info") {
  const time = formatTime(Date.now() / 1000 + (app.state?.clock.offset_seconds ?? 0));
  const item = el("li", { class: kind }, el("time", {}, time), " ", text);
  if (detail) item.append(el("details", {}, el("summary", {}, "output"), el("pre", {}, detail)));
  $("#log").prepend(item);
}

// Runs a control action; failures are shown, never thrown at the caller.
async function act(action, done) {
  try {
    const result = await action();
    if (done) log(done);
    return result;
  } catch (error) {
    log(error.message, null, "error");
    toast(error.message);
    return null;
  }
}

function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 3000);
}

function showJobs() {
  const jobs = app.state.jobs;
  const box = $("#jobs");
  if (box.childElementCount !== jobs.names.length) {
    box.replaceChildren(...jobs.names.map((name) => el("button", { type: "button", dataset: { job: name },
      onclick: () => act(() => api.post(`jobs/${name}`)) }, name)));
  }
  for (const button of box.children) button.disabled = !jobs.available || button.classList.contains("running");
  $("#jobs-note").textContent = jobs.available
    ? "Runs a job once, at the sandbox time; \"sender\" delivers what jobs put in the outbox."
    : "Scheduled jobs are not part of this build yet (no `carebot jobs` command).";
}

function showFaults() {
  const { storm, errors } = app.state.faults;
  const active = [storm && "rate-limit storm", errors && "server errors"].filter(Boolean);
  $("#faults-note").textContent = active.length ? `Active: ${active.join(", ")}.` : "No faults injected.";
}

function showDemo() {
  const demo = app.state.demo;
  $("#demo-load").disabled = Boolean(demo);
  if (demo) {
    $("#demo-note").textContent = `Loaded: ${demo.customers} customers (${demo.on_telegram} on Telegram), ${demo.purchases} purchases, `
      + `${demo.tickets} tickets (${demo.open_tickets} open), ${demo.survey_responses} survey responses, `
      + `${demo.birthdays_this_week} birthdays this week. Run "segmentation" to classify them.`;
  }
}

$("#clock-buttons").addEventListener("click", (event) => {
  const step = event.target.dataset?.step;
  if (step) act(() => api.post("clock", { step }), `Clock moved forward: ${step}`);
});

document.querySelectorAll("[data-fault]").forEach((button) => button.addEventListener("click", () =>
  act(() => api.post("faults", { action: button.dataset.fault, user_id: app.customerId }), `Faults: ${button.textContent}`)));

$("#fault-block").addEventListener("click", () => {
  const action = customer()?.blocked ? "unblock" : "block";
  act(() => api.post("faults", { action, user_id: app.customerId }), `${customer()?.name} ${action}ed the bot`);
});

$("#demo-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const customers = Number(new FormData(event.target).get("customers"));
  $("#demo-load").disabled = true;
  $("#demo-note").textContent = "Loading…";
  const summary = await act(() => api.post("demo-data", { customers }), "Demo shop loaded");
  if (!summary) $("#demo-load").disabled = false;
});

// --- live events ------------------------------------------------------------------------

const typingTimers = new Map();

const CHAT_EVENTS = new Set(["message", "deleted", "pinned"]);

function handle(item) {
  if (app.loading && CHAT_EVENTS.has(item.type)) {
    app.queued.push(item);
    return;
  }
  switch (item.type) {
    case "hello":
      applyState(item.state);
      resync();
      break;
    case "state":
      applyState(item.state);
      break;
    case "message": {
      const message = item.message;
      const store = chatStore(item.chat_id);
      store.messages.set(message.id, message);
      if (item.topics) store.topics = item.topics;
      if ("keyboard" in item) {
        if (message.reply_keyboard) app.keyboardHidden = false;
        store.keyboard = item.keyboard;
      }
      if (item.chat_id === app.customerId) {
        customerPane.upsert(message);
        showKeyboard();
        showStart();
      } else if (item.chat_id === app.state?.group.id) {
        if (!staffPane.upsert(message) && !message.edited && !message.service) {
          app.unread.set(topicOf(message), (app.unread.get(topicOf(message)) ?? 0) + 1);
        }
        showTopics();
      }
      break;
    }
    case "deleted":
      chatStore(item.chat_id).messages.delete(item.message_id);
      (item.chat_id === app.customerId ? customerPane : staffPane).remove(item.message_id);
      break;
    case "pinned":
      chatStore(item.chat_id).pinned = item.pinned;
      if (item.chat_id === app.state?.group.id) showPinned();
      break;
    case "typing":
      if (item.chat_id === app.customerId) {
        $("#customer-subtitle").textContent = "typing…";
        clearTimeout(typingTimers.get(item.chat_id));
        typingTimers.set(item.chat_id, setTimeout(() => applyState(app.state), 4000));
      }
      break;
    case "toast":
      if (!item.text || (item.user_id !== app.customerId && item.user_id !== app.staffId)) break;
      if (item.alert) {
        $("#alert-text").textContent = item.text;
        $("#alert").showModal();
      } else toast(item.text);
      break;
    case "clock":
      app.state.clock = item.clock;
      showClock();
      break;
    case "job": {
      const button = document.querySelector(`[data-job="${item.name}"]`);
      button?.classList.toggle("running", item.running);
      showJobs();
      if (!item.running) log(`Job ${item.name} ${item.ok ? "done" : "failed"}`, item.output, item.ok ? "info" : "error");
      break;
    }
  }
}

async function resync() {
  await whileLoading(async () => {
    await Promise.all([loadChat(app.state.group.id), app.customerId ? loadChat(app.customerId) : null]);
    customerPane.render();
    staffPane.render();
    showTopics();
    showKeyboard();
    showStart();
  });
}

function connect() {
  const source = new EventSource("/sandbox/api/events");
  const status = $("#conn");
  source.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; };
  source.onerror = () => { status.dataset.state = "down"; status.textContent = "reconnecting…"; };
  source.onmessage = (event) => handle(JSON.parse(event.data));
}

setInterval(showClock, 15000);
connect();
