/* refdesk librarian desk (/desk/): presence, the shared queue, several chats in tabs.
 *
 * Speaks the desk socket of PROTOCOL.md (/ws/desk/, session cookie) and the desk's
 * JSON endpoints (suggestions, canned responses, local info search, outdated
 * reports, FAQ drafts; unsafe methods send the CSRF token). Every string from the
 * server is set with textContent, except three fields the server sanitises for
 * exactly this use: local info sections' and FAQ answers' `body_html` /
 * `answer_html`, and search hits' `snippet_html` (escaped text with <mark>).
 */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("desk-config").textContent);
  const $ = (id) => document.getElementById(id);
  const BASE_TITLE = document.title;
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 5000;
  const MAX_MESSAGE = 4000;
  const CANNED_DEBOUNCE_MS = 120;
  const KB_DEBOUNCE_MS = 400;
  const API = {
    suggestions: config.suggestionsUrl || "/api/v1/desk/suggestions",
    canned: config.cannedUrl || "/api/v1/canned-responses/",
    localInfoSearch: config.localInfoSearchUrl || "/api/v1/local-info/search",
    outdated: config.outdatedUrl || "/api/v1/local-info/{id}/outdated",
    drafts: config.draftsUrl || "/api/v1/faq/drafts",
  };
  const libraryNames = new Map(config.libraries.map((lib) => [lib.slug, lib.name]));
  const libraryName = (slug) => libraryNames.get(slug) || slug || "";

  const el = {
    connection: $("connection-state"),
    soundHint: $("sound-hint"),
    notifyButton: $("notify-button"),
    notifyStatus: $("notify-status"),
    queueList: $("queue-list"),
    queueEmpty: $("queue-empty"),
    queueCount: $("queue-count"),
    queueNotice: $("queue-notice"),
    tablist: $("tablist"),
    panels: $("panels"),
    chatsEmpty: $("chats-empty"),
    announcer: $("announcer"),
    template: $("chat-template"),
    presenceInputs: document.querySelectorAll('input[name="presence"]'),
    kbForm: $("kb-search-form"),
    kbInput: $("kb-search-input"),
    kbStatus: $("kb-search-status"),
    kbResults: $("kb-search-results"),
  };

  const state = {
    socket: null,
    retries: 0,
    retryTimer: null,
    stopped: false,
    heartbeatTimer: null,
    heartbeatSeconds: 10,
    presence: "available",
    queue: new Map(), // conversation id -> queue entry
    queueItems: new Map(), // conversation id -> <li>
    chats: new Map(), // conversation id -> chat
    selected: null,
    acceptRequested: new Set(),
  };
  let chatCounter = 0;

  /* ------------------------------------------------------------------ */
  /* Helpers                                                             */
  /* ------------------------------------------------------------------ */

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

  function formatTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : timeFormat.format(date);
  }

  function formatElapsed(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = String(total % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
  }

  function announce(text) {
    if (!text) return;
    const line = make("p", "", text);
    el.announcer.appendChild(line);
    setTimeout(() => line.remove(), 15000);
  }

  /* The desk's JSON endpoints: same origin, session cookie, CSRF token on writes.
   * Resolves to {ok, status, data}; a network failure is status 0. */
  function csrfToken() {
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  async function api(url, { method = "GET", body, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      return { ok: false, status: 0, data: { detail: "The desk could not reach the server." } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  function apiErrorText(result, fallback) {
    if (result.status === 401) return "You are signed out. Sign in again to keep working the desk.";
    if (result.status === 0) return "The desk could not reach the server. Check the connection and try again.";
    if (result.status === 429) return "Too many requests just now. Try again in a moment.";
    const errors = result.data && result.data.errors;
    if (errors && typeof errors === "object") {
      const first = Object.values(errors)[0];
      if (first) return [].concat(first).join(" ");
    }
    return fallback;
  }

  function queryUrl(base, params) {
    const url = new URL(base, window.location.origin);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
    return url.pathname + url.search;
  }

  function showQueueNotice(text, kind = "") {
    el.queueNotice.textContent = text;
    el.queueNotice.className = `notice ${kind}`.trim();
    el.queueNotice.hidden = false;
    clearTimeout(showQueueNotice.timer);
    showQueueNotice.timer = setTimeout(() => {
      el.queueNotice.hidden = true;
    }, 12000);
  }

  /* ------------------------------------------------------------------ */
  /* Alerts: sound (WebAudio, unlocked by the first click or key),       */
  /* desktop notifications, the count in the tab title                   */
  /* ------------------------------------------------------------------ */

  const sound = { context: null };

  function unlockSound() {
    if (sound.context && sound.context.state === "running") return;
    const AudioContext = window.AudioContext || window.webkitAudioContext;
    if (!AudioContext) {
      el.soundHint.hidden = true;
      return;
    }
    try {
      sound.context = sound.context || new AudioContext();
      sound.context.resume().then(() => {
        if (sound.context.state === "running") {
          el.soundHint.hidden = true;
          document.removeEventListener("click", unlockSound, true);
          document.removeEventListener("keydown", unlockSound, true);
        }
      });
    } catch {
      /* sound stays off; the hint stays visible */
    }
  }

  function beep(kind) {
    const context = sound.context;
    if (!context || context.state !== "running") return;
    // Offers: a rising two-tone chime; patron messages: one short soft tone.
    const tones = kind === "offer" ? [784, 1047, 1319] : [660];
    const start = context.currentTime + 0.01;
    tones.forEach((frequency, index) => {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      const at = start + index * 0.16;
      oscillator.type = "sine";
      oscillator.frequency.setValueAtTime(frequency, at);
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(kind === "offer" ? 0.3 : 0.15, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.16);
    });
  }

  function updateNotifyControls() {
    if (!("Notification" in window)) {
      el.notifyButton.hidden = true;
      el.notifyStatus.textContent = "";
      return;
    }
    const permission = Notification.permission;
    el.notifyButton.hidden = permission !== "default";
    el.notifyStatus.textContent =
      permission === "granted"
        ? "Desktop notifications on."
        : permission === "denied"
          ? "Desktop notifications are blocked in this browser's site settings."
          : "";
  }

  async function askNotificationPermission() {
    try {
      await Notification.requestPermission();
    } catch {
      /* old browsers: callback form only; ignore */
    }
    updateNotifyControls();
  }

  function notify(title, body, tag) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    if (!document.hidden && document.hasFocus()) return;
    try {
      const notification = new Notification(title, { body, tag });
      notification.onclick = () => {
        window.focus();
        notification.close();
      };
    } catch {
      /* some platforms allow notifications only from a service worker */
    }
  }

  function updateTitle() {
    const waiting = state.queue.size;
    document.title = waiting ? `(${waiting}) ${BASE_TITLE}` : BASE_TITLE;
    el.queueCount.textContent = String(waiting);
  }

  function alertNewOffers(entries) {
    if (!entries.length) return;
    beep("offer");
    const first = entries[0];
    const text =
      entries.length === 1
        ? `New chat waiting from ${libraryName(first.origin_library)}: ${first.question}`
        : `${entries.length} new chats waiting.`;
    announce(text);
    notify("New chat waiting", text, "refdesk-offer");
  }

  /* ------------------------------------------------------------------ */
  /* The socket                                                          */
  /* ------------------------------------------------------------------ */

  function setConnection(text, kind) {
    el.connection.textContent = text;
    el.connection.className = `connection-state ${kind || ""}`.trim();
  }

  function send(frame) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    if (state.stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}${config.socket}`);
    } catch {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    socket.addEventListener("open", () => {
      if (state.socket !== socket) return;
      state.retries = 0;
      setConnection("Connected", "ok");
      if (state.presence === "away") send({ type: "presence", status: "away" });
      for (const chat of state.chats.values()) {
        if (chat.closed) continue;
        send({ type: "resume", conversation: chat.id, after_seq: chat.lastSeq });
        for (const pending of chat.pending.values()) {
          send({ type: "message", conversation: chat.id, body: pending.body, client_id: pending.client_id });
        }
      }
      startHeartbeat();
    });
    socket.addEventListener("message", (event) => {
      if (state.socket !== socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handleFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      document.body.dataset.desk = "offline";
      stopHeartbeat();
      if (event.code === 4401) {
        stop("You are signed out. Sign in again to keep working the desk.");
      } else if (event.code === 4403) {
        stop("This account may not use the desk.");
      } else {
        scheduleReconnect();
      }
    });
  }

  function scheduleReconnect() {
    if (state.stopped) return;
    const delay = Math.min(15, 2 ** state.retries) * 1000;
    state.retries += 1;
    setConnection(`Connection lost. Reconnecting… (next try in ${delay / 1000} s)`, "bad");
    if (state.retries === 1) announce("Desk connection lost. Reconnecting…");
    state.retryTimer = setTimeout(connect, delay);
  }

  function stop(text) {
    state.stopped = true;
    clearTimeout(state.retryTimer);
    setConnection(text, "bad");
    const link = make("a", "", "Sign in");
    link.href = `/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`;
    el.connection.append(" ", link);
    announce(text);
  }

  function startHeartbeat() {
    stopHeartbeat();
    const every = Math.max(1000, state.heartbeatSeconds * 1000 - 500);
    state.heartbeatTimer = setInterval(() => send({ type: "heartbeat" }), every);
  }

  function stopHeartbeat() {
    clearInterval(state.heartbeatTimer);
    state.heartbeatTimer = null;
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "presence":
        applyPresence(frame);
        break;
      case "queue":
        replaceQueue(Array.isArray(frame.conversations) ? frame.conversations : []);
        document.body.dataset.desk = "ready"; // the desk is live (tests and styles may rely on it)
        break;
      case "offer":
        if (frame.conversation && frame.conversation.id) offer(frame.conversation);
        break;
      case "withdraw":
        withdraw(frame.conversation, frame.reason);
        break;
      case "accepted":
        openChat(frame);
        break;
      case "message": {
        const chat = state.chats.get(frame.conversation);
        if (chat) addMessage(chat, frame, { live: true });
        break;
      }
      case "typing": {
        const chat = state.chats.get(frame.conversation);
        if (chat && frame.sender === "patron") showTyping(chat);
        break;
      }
      case "closed":
        markClosed(frame.conversation, frame.by);
        break;
      case "error":
        showError(frame);
        break;
      default:
        break; // "resumed" and future frame types
    }
  }

  /* ------------------------------------------------------------------ */
  /* Presence                                                            */
  /* ------------------------------------------------------------------ */

  function applyPresence(frame) {
    if (frame.status === "available" || frame.status === "away") {
      state.presence = frame.status;
      for (const input of el.presenceInputs) input.checked = input.value === frame.status;
    }
    const seconds = Number(frame.heartbeat_seconds);
    if (Number.isFinite(seconds) && seconds > 0 && seconds !== state.heartbeatSeconds) {
      state.heartbeatSeconds = seconds;
      if (state.heartbeatTimer) startHeartbeat();
    }
  }

  function choosePresence(event) {
    const status = event.target.value;
    state.presence = status;
    send({ type: "presence", status });
    announce(status === "available" ? "You are available for chats." : "You are away.");
  }

  /* ------------------------------------------------------------------ */
  /* The queue                                                           */
  /* ------------------------------------------------------------------ */

  function queueItem(entry) {
    const item = make("li", "queue-item");
    item.dataset.id = entry.id;
    fillQueueItem(item, entry);
    return item;
  }

  function fillQueueItem(item, entry) {
    item.classList.toggle("overflow", entry.queue === "overflow");
    const origin = libraryName(entry.origin_library);
    const facts = make("div", "facts");
    const waited = make("span", "waited");
    waited.dataset.since = entry.waiting_since || "";
    waited.title = "Waiting time";
    facts.append(waited, make("span", "", `from ${origin}`));
    facts.append(
      make("span", `badge ${entry.queue === "overflow" ? "warn" : ""}`, entry.queue === "overflow" ? "overflow" : "local"),
    );
    if (entry.in_area === true) facts.append(make("span", "badge ok", "in area"));
    else if (entry.in_area === false) facts.append(make("span", "badge warn", "out of area"));

    const children = [facts, make("p", "question", entry.question || "")];
    if (entry.home_library) {
      children.push(make("p", "small", `Home library: ${libraryName(entry.home_library)}`));
    }
    if (entry.transfer_note) {
      children.push(make("p", "transfer-note", `Transfer note: ${entry.transfer_note}`));
    }
    if (entry.escalate_at) {
      children.push(
        make(
          "p",
          "small muted",
          `${entry.queue === "overflow" ? "Goes to email" : "Moves on"} at ${formatTime(entry.escalate_at)}`,
        ),
      );
    }
    const actions = make("div", "actions");
    const accept = make("button", "small", "Accept");
    accept.type = "button";
    accept.dataset.accept = entry.id;
    const extra = make("span", "visually-hidden", ` chat from ${origin}: ${(entry.question || "").slice(0, 80)}`);
    accept.appendChild(extra);
    if (state.acceptRequested.has(entry.id)) accept.disabled = true;
    actions.appendChild(accept);
    children.push(actions);

    const hadFocus = item.contains(document.activeElement);
    item.replaceChildren(...children);
    if (hadFocus) accept.focus();
  }

  function sortedIds() {
    return [...state.queue.values()]
      .sort((a, b) => String(a.waiting_since).localeCompare(String(b.waiting_since)) || String(a.id).localeCompare(String(b.id)))
      .map((entry) => entry.id);
  }

  function renderQueue() {
    for (const [id, item] of state.queueItems) {
      if (!state.queue.has(id)) {
        const hadFocus = item.contains(document.activeElement);
        item.remove();
        state.queueItems.delete(id);
        if (hadFocus) focusAfterQueueRemoval();
      }
    }
    const ids = sortedIds();
    ids.forEach((id, index) => {
      let item = state.queueItems.get(id);
      if (!item) {
        item = queueItem(state.queue.get(id));
        state.queueItems.set(id, item);
      }
      const atIndex = el.queueList.children[index];
      if (atIndex !== item) el.queueList.insertBefore(item, atIndex || null);
    });
    el.queueEmpty.hidden = state.queue.size > 0;
    tickQueue();
    updateTitle();
  }

  function focusAfterQueueRemoval() {
    const next = el.queueList.querySelector("button[data-accept]:not([disabled])");
    if (next) {
      next.focus();
    } else {
      $("queue-heading").tabIndex = -1;
      $("queue-heading").focus();
    }
  }

  function replaceQueue(entries) {
    const fresh = entries.filter((entry) => entry && entry.id && !state.queue.has(entry.id));
    state.queue = new Map(entries.filter((e) => e && e.id).map((entry) => [entry.id, entry]));
    for (const [id, item] of state.queueItems) {
      if (state.queue.has(id)) fillQueueItem(item, state.queue.get(id));
    }
    renderQueue();
    alertNewOffers(fresh);
  }

  function offer(entry) {
    const isNew = !state.queue.has(entry.id);
    state.queue.set(entry.id, entry);
    const item = state.queueItems.get(entry.id);
    if (item) fillQueueItem(item, entry);
    renderQueue();
    if (isNew) alertNewOffers([entry]);
  }

  function withdraw(id, reason) {
    if (!state.queue.has(id)) return; // ids this desk never saw are ignored
    state.queue.delete(id);
    const requested = state.acceptRequested.has(id);
    // An accept in flight is settled by its `accepted` or `error` frame.
    if (reason !== "accepted") state.acceptRequested.delete(id);
    renderQueue();
    if (reason === "accepted" && requested) return;
    const why = {
      accepted: "another librarian accepted it",
      abandoned: "the patron left",
      escalated: "it moved on to other libraries",
      offline: "it became an email question",
      transferred: "it was transferred",
      self_served: "the patron found the answer in the FAQ",
    }[reason];
    if (why) announce(`A waiting chat left the queue: ${why}.`);
  }

  function acceptClicked(event) {
    const button = event.target.closest("button[data-accept]");
    if (!button) return;
    const id = button.dataset.accept;
    if (!send({ type: "accept", conversation: id })) {
      showQueueNotice("Not connected right now; try again when the desk reconnects.", "warn");
      return;
    }
    state.acceptRequested.add(id);
    button.disabled = true;
    button.firstChild.textContent = "Accepting…";
  }

  function tickQueue() {
    const now = Date.now();
    for (const waited of el.queueList.querySelectorAll(".waited")) {
      const since = Date.parse(waited.dataset.since);
      waited.textContent = Number.isNaN(since) ? "" : `waiting ${formatElapsed(now - since)}`;
    }
  }

  /* ------------------------------------------------------------------ */
  /* Chats in tabs                                                       */
  /* ------------------------------------------------------------------ */

  function createChat(id) {
    chatCounter += 1;
    const prefix = `chat-${chatCounter}`;
    const fragment = el.template.content.cloneNode(true);
    const panel = fragment.querySelector(".chat-panel");
    const refs = {};
    for (const node of fragment.querySelectorAll("[data-ref]")) refs[node.dataset.ref] = node;
    for (const label of fragment.querySelectorAll("label[data-for]")) {
      const target = refs[label.dataset.for];
      target.id = `${prefix}-${label.dataset.for}`;
      label.htmlFor = target.id;
    }
    refs.hint.id = `${prefix}-hint`;
    refs.input.setAttribute("aria-describedby", refs.hint.id);
    refs.canned.id = `${prefix}-canned`;
    refs.canned.setAttribute("aria-label", "Canned responses");
    refs.input.setAttribute("aria-controls", refs.canned.id);
    panel.id = `${prefix}-panel`;

    for (const outcome of config.outcomes) {
      const option = make("option", "", outcome.label);
      option.value = outcome.value;
      refs.outcome.appendChild(option);
    }
    for (const library of config.libraries) {
      const option = make("option", "", library.name);
      option.value = library.slug;
      if (library.slug === config.library.slug) option.textContent = `${library.name} (my library)`;
      refs.toLibrary.appendChild(option);
    }
    const firstOther = config.libraries.find((lib) => lib.slug !== config.library.slug);
    if (firstOther) refs.toLibrary.value = firstOther.slug;
    else refs.transferForm.remove(); // a consortium of one has nobody to transfer to

    const tab = make("button", "");
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.id = `${prefix}-tab`;
    tab.setAttribute("aria-controls", panel.id);
    tab.setAttribute("aria-selected", "false");
    tab.tabIndex = -1;
    const tabLabel = make("span", "", "Patron");
    const unread = make("span", "unread", "");
    unread.hidden = true;
    tab.append(tabLabel, unread);
    panel.setAttribute("aria-labelledby", tab.id);
    panel.hidden = true;

    const chat = {
      id,
      prefix,
      tab,
      tabLabel,
      unread,
      unreadCount: 0,
      panel,
      refs,
      held: new Set(),
      lastSeq: 0,
      pending: new Map(),
      closed: false,
      transferTo: null,
      lastTypingSent: 0,
      typingTimer: null,
      patronName: "",
      origin: "",
      cardsKey: "",
      cards: make("div", "cards"),
      suggest: null,
      suggestionsLoaded: false,
      drafted: false,
      canned: {
        items: [],
        active: -1,
        timer: null,
        controller: null,
        request: 0,
        pending: false,
        insertWhenReady: false,
        dismissedAt: -1,
      },
    };
    chat.suggest = buildSuggestPanel(chat);
    refs.suggestSlot.appendChild(chat.suggest.root);
    refs.info.appendChild(chat.cards);
    refs.info.setAttribute("aria-label", "Local information");

    refs.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage(chat);
    });
    refs.input.addEventListener("keydown", (event) => {
      if (cannedKeydown(chat, event)) return;
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage(chat);
      }
    });
    refs.input.addEventListener("blur", () => {
      setTimeout(() => {
        if (document.activeElement !== refs.input) closeCanned(chat);
      }, 150);
    });
    refs.input.addEventListener("click", () => cannedInput(chat));
    refs.canned.addEventListener("mousedown", (event) => event.preventDefault()); // keep focus in the reply
    refs.canned.addEventListener("click", (event) => {
      const option = event.target.closest('[role="option"]');
      if (option) insertCanned(chat, Number(option.dataset.index));
    });
    refs.draftButton.addEventListener("click", () => draftFaq(chat));
    refs.input.addEventListener("input", () => {
      cannedInput(chat);
      const now = Date.now();
      if (!chat.closed && refs.input.value.trim() && now - chat.lastTypingSent >= TYPING_EVERY_MS) {
        if (send({ type: "typing", conversation: chat.id })) chat.lastTypingSent = now;
      }
    });
    refs.closeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      closeChat(chat);
    });
    refs.transferForm.addEventListener("submit", (event) => {
      event.preventDefault();
      transferChat(chat);
    });
    refs.dismiss.addEventListener("click", () => removeChat(chat));
    tab.addEventListener("click", () => selectChat(chat.id, { focusTab: false }));

    el.tablist.appendChild(tab);
    el.panels.appendChild(fragment);
    state.chats.set(id, chat);
    el.chatsEmpty.hidden = true;
    return chat;
  }

  function tabText(chat) {
    const who = chat.patronName || "Patron";
    return chat.origin ? `${who} · ${chat.origin}` : who;
  }

  function updateTab(chat) {
    chat.tabLabel.textContent = `${tabText(chat)}${chat.closed ? " (closed)" : ""}`;
    chat.tab.classList.toggle("closed", chat.closed);
    chat.unread.hidden = chat.unreadCount === 0;
    chat.unread.replaceChildren(
      document.createTextNode(String(chat.unreadCount)),
      make("span", "visually-hidden", " unread"),
    );
  }

  function selectChat(id, { focusTab }) {
    const chosen = state.chats.get(id);
    if (!chosen) return;
    state.selected = id;
    for (const chat of state.chats.values()) {
      const on = chat.id === id;
      chat.tab.setAttribute("aria-selected", on ? "true" : "false");
      chat.tab.tabIndex = on ? 0 : -1;
      chat.panel.hidden = !on;
    }
    chosen.unreadCount = 0;
    updateTab(chosen);
    if (focusTab) chosen.tab.focus();
  }

  function tabKeydown(event) {
    const tabs = [...el.tablist.querySelectorAll('[role="tab"]')];
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = tabs[(index + 1) % tabs.length];
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = tabs[(index - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    if (!next) return;
    event.preventDefault();
    const chat = [...state.chats.values()].find((c) => c.tab === next);
    if (chat) selectChat(chat.id, { focusTab: true });
  }

  function renderPatronFacts(chat, patron, entry) {
    const facts = chat.refs.facts;
    const items = [];
    const add = (label, value) => {
      if (!value) return;
      const span = make("span", "");
      span.append(make("strong", "", `${label}: `), document.createTextNode(String(value)));
      items.push(span);
    };
    add("Patron", patron.name || "not given");
    add("From", chat.origin);
    add("Home library", patron.home_library ? libraryName(patron.home_library) : "");
    add("Postal code", patron.postal_code);
    const inArea = typeof patron.in_area === "boolean" ? patron.in_area : entry && entry.in_area;
    if (typeof inArea === "boolean") {
      items.push(make("span", `badge ${inArea ? "ok" : "warn"}`, inArea ? "in area" : "out of area"));
    }
    facts.replaceChildren(...items);
  }

  /* ------------------------------------------------------------------ */
  /* Local info cards: verification, today's hours, "Report outdated"    */
  /* ------------------------------------------------------------------ */

  const KIND_LABELS = {
    cards: "Library cards",
    borrowing: "Borrowing",
    ill: "Interlibrary loan",
    databases: "Databases",
    contacts: "Contacts",
    alerts: "Alerts",
    other: "Other",
  };

  function verifiedText(info) {
    const days = info.verified_days_ago;
    if (Number.isInteger(days)) {
      if (days <= 0) return "Last verified today";
      return `Last verified ${days} day${days === 1 ? "" : "s"} ago`;
    }
    if (info.verified_at) return `Last verified ${dateFormat.format(new Date(info.verified_at))}`;
    return "Not verified yet";
  }

  // A time of day as the library's clock shows it: the ISO string carries its offset.
  function libraryClock(iso) {
    const match = /T(\d{2}):(\d{2})/.exec(String(iso || ""));
    if (!match) return "";
    const hour = Number(match[1]);
    const minutes = match[2] === "00" ? "" : `:${match[2]}`;
    return `${hour % 12 || 12}${minutes} ${hour < 12 ? "am" : "pm"}`;
  }

  function hoursTodayText(spans) {
    if (!Array.isArray(spans)) return "";
    if (!spans.length) return "Closed today";
    const first = spans[0];
    if (spans.length === 1 && Date.parse(first.closes) - Date.parse(first.opens) >= 23 * 3600 * 1000) {
      return "Open 24 hours today";
    }
    const list = spans.map((span) => `${libraryClock(span.opens)}–${libraryClock(span.closes)}`);
    return `Open today ${list.join(" and ")} (library time)`;
  }

  function renderLocalInfo(info, heading, chat) {
    const card = make("section", "local-info");
    const libraryLabel = info.library && info.library.name ? info.library.name : "";
    const title = make("h3", "", `${heading}: ${libraryLabel}`);
    card.setAttribute("aria-label", `${heading}: ${libraryLabel}`);
    const meta = make("p", "card-meta");
    meta.appendChild(make("span", "verified", verifiedText(info)));
    if (info.is_stale) meta.appendChild(make("span", "badge warn", "may be out of date"));
    card.append(title, meta);
    const hours = hoursTodayText(info.hours_today);
    if (hours) card.appendChild(make("p", "hours-today", hours));
    const sections = Array.isArray(info.sections) ? info.sections : [];
    if (!sections.length) card.appendChild(make("p", "empty", "No local information recorded."));
    for (const section of sections) card.appendChild(renderSection(section, info, chat));
    return card;
  }

  function renderSection(section, info, chat) {
    const part = make("section", "local-info-section");
    const hasId = Number.isInteger(section.id);
    const base = hasId ? `${chat.prefix}-li-${section.id}` : "";
    const head = make("div", "section-head");
    const title = make("h4", "", section.title || "");
    head.appendChild(title);
    if (hasId) {
      part.id = base;
      part.tabIndex = -1;
      title.id = `${base}-title`;
      part.setAttribute("aria-labelledby", title.id);
    }
    part.appendChild(head);
    const body = make("div", "local-info-body");
    body.innerHTML = section.body_html || ""; // sanitised server-side (PROTOCOL.md)
    part.appendChild(body);
    if (hasId) head.appendChild(reportControls(section, info, part, base));
    return part;
  }

  function reportControls(section, info, part, base) {
    const button = make("button", "small link report-button");
    button.type = "button";
    button.append(
      document.createTextNode("Report outdated"),
      make("span", "visually-hidden", `: ${section.title || "this section"}`),
    );
    button.setAttribute("aria-expanded", "false");
    const form = make("form", "report-form");
    form.id = `${base}-report`;
    form.hidden = true;
    form.noValidate = true;
    button.setAttribute("aria-controls", form.id);
    const label = make("label", "", "What looks outdated? ");
    label.appendChild(make("span", "optional", "(optional)"));
    const note = make("textarea", "");
    note.rows = 2;
    note.maxLength = 2000;
    note.id = `${base}-note`;
    label.htmlFor = note.id;
    const error = make("p", "field-error");
    error.id = `${base}-report-error`;
    error.setAttribute("role", "alert");
    note.setAttribute("aria-describedby", error.id);
    const send = make("button", "small", "Send report");
    send.type = "submit";
    const cancel = make("button", "small secondary", "Cancel");
    cancel.type = "button";
    const actions = make("div", "report-actions");
    actions.append(send, cancel);
    form.append(label, note, error, actions);
    const done = make("p", "report-done");
    done.setAttribute("role", "status");
    done.tabIndex = -1;
    part.append(form, done);

    const toggle = (open) => {
      form.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        done.textContent = "";
        error.textContent = "";
        note.focus();
      }
    };
    button.addEventListener("click", () => toggle(form.hidden));
    cancel.addEventListener("click", () => {
      toggle(false);
      button.focus();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        toggle(false);
        button.focus();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      send.disabled = true;
      send.textContent = "Sending…";
      const result = await api(API.outdated.replace("{id}", encodeURIComponent(section.id)), {
        method: "POST",
        body: { note: note.value.trim() },
      });
      send.disabled = false;
      send.textContent = "Send report";
      if (result.ok) {
        const library = (result.data.library && result.data.library.name) || (info.library && info.library.name) || "the library";
        note.value = "";
        toggle(false);
        done.textContent = `Thank you. ${library} has been told that “${section.title}” looks outdated; their library admin will check it.`;
        done.focus();
      } else {
        error.textContent = apiErrorText(result, "The report could not be sent. Try again.");
        note.setAttribute("aria-invalid", result.status === 400 ? "true" : "false");
        note.focus();
      }
    });
    return button;
  }

  function showSectionInCard(chat, sectionId) {
    const target = $(`${chat.prefix}-li-${sectionId}`);
    if (!target || !chat.panel.contains(target)) return false;
    target.scrollIntoView({ block: "start", behavior: "auto" });
    target.focus({ preventScroll: true });
    target.classList.add("flash");
    setTimeout(() => target.classList.remove("flash"), 2500);
    return true;
  }

  /* ------------------------------------------------------------------ */
  /* Suggestions beside a chat: FAQ answers and local info sections      */
  /* ------------------------------------------------------------------ */

  function buildSuggestPanel(chat) {
    const root = make("section", "suggest-panel");
    const headingId = `${chat.prefix}-suggest-heading`;
    root.setAttribute("aria-labelledby", headingId);
    const head = make("div", "panel-head");
    const heading = make("h3", "", "Suggestions");
    heading.id = headingId;
    const refresh = make("button", "small link", "Refresh");
    refresh.type = "button";
    refresh.appendChild(make("span", "visually-hidden", " suggestions"));
    refresh.addEventListener("click", () => loadSuggestions(chat));
    head.append(heading, refresh);
    const status = make("p", "small muted suggest-status", "Looking for matching answers…");
    status.setAttribute("role", "status");
    const faqHeading = make("h4", "faq-heading", "FAQ answers");
    const faqList = make("ul", "suggest-faq");
    faqHeading.id = `${chat.prefix}-suggest-faq`;
    faqList.setAttribute("aria-labelledby", faqHeading.id);
    const localHeading = make("h4", "local-heading", "Local info");
    const localList = make("ul", "suggest-local");
    localHeading.id = `${chat.prefix}-suggest-local`;
    localList.setAttribute("aria-labelledby", localHeading.id);
    faqHeading.hidden = faqList.hidden = localHeading.hidden = localList.hidden = true;
    root.append(head, status, faqHeading, faqList, localHeading, localList);
    return { root, status, faqHeading, faqList, localHeading, localList, request: 0 };
  }

  function absoluteUrl(url) {
    try {
      const resolved = new URL(String(url), window.location.origin);
      return /^https?:$/.test(resolved.protocol) ? resolved.href : "";
    } catch {
      return "";
    }
  }

  function insertIntoComposer(chat, text) {
    const input = chat.refs.input;
    if (chat.closed || input.disabled) return;
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    const before = input.value.slice(0, start);
    const after = input.value.slice(end);
    const lead = before && !/\s$/.test(before) ? " " : "";
    const trail = after && !/^\s/.test(after) ? " " : "";
    input.setRangeText(`${lead}${text}${trail}`, start, end, "end");
    input.focus();
  }

  function faqSuggestion(chat, answer) {
    const item = make("li", "suggest-item");
    const base = `${chat.prefix}-faq-${answer.id}`;
    const toggle = make("button", "disclosure");
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-controls", `${base}-answer`);
    const marker = make("span", "marker");
    marker.setAttribute("aria-hidden", "true");
    toggle.append(marker, make("span", "label", answer.question || ""));
    const facts = make("p", "suggest-facts");
    facts.appendChild(
      make("span", "badge", answer.library ? libraryName(answer.library) : "Consortium-wide"),
    );
    if (!answer.is_public) facts.appendChild(make("span", "badge warn", "staff only"));
    const body = make("div", "suggest-answer");
    body.id = `${base}-answer`;
    body.hidden = true;
    const html = make("div", "answer-body");
    html.innerHTML = answer.answer_html || ""; // sanitised server-side
    body.appendChild(html);
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      body.hidden = !open;
    });
    item.append(toggle, facts, body);
    const url = answer.url ? absoluteUrl(answer.url) : "";
    if (url) {
      const insert = make("button", "small secondary insert-link", "Insert link");
      insert.type = "button";
      insert.appendChild(make("span", "visually-hidden", ` to “${answer.question || "this answer"}” into the reply`));
      insert.addEventListener("click", () => {
        if (chat.closed) return;
        insertIntoComposer(chat, url);
        announce("Link inserted into the reply.");
      });
      facts.appendChild(insert);
    }
    return item;
  }

  function localSuggestion(chat, hit) {
    const item = make("li", "suggest-item");
    const head = make("p", "suggest-local-title");
    head.append(make("strong", "", hit.title || ""), document.createTextNode(" "));
    head.appendChild(make("span", "muted", hit.library && hit.library.name ? `· ${hit.library.name}` : ""));
    const snippet = make("p", "snippet");
    snippet.innerHTML = hit.snippet_html || ""; // escaped text with <mark> only (server-side)
    item.append(head, snippet);
    if (Number.isInteger(hit.id)) {
      const show = make("button", "small link", "Show in card");
      show.type = "button";
      show.appendChild(make("span", "visually-hidden", `: ${hit.title || ""}`));
      show.addEventListener("click", () => {
        if (!showSectionInCard(chat, hit.id)) announce("That section is not on this chat's cards.");
      });
      item.appendChild(show);
    }
    return item;
  }

  async function loadSuggestions(chat) {
    const panel = chat.suggest;
    const mine = ++panel.request;
    panel.status.textContent = "Looking for matching answers…";
    const result = await api(queryUrl(API.suggestions, { conversation: chat.id }));
    if (mine !== panel.request || !state.chats.has(chat.id)) return;
    if (!result.ok) {
      panel.status.textContent = apiErrorText(result, "Suggestions could not be loaded.");
      return;
    }
    chat.suggestionsLoaded = true;
    const faq = Array.isArray(result.data.faq) ? result.data.faq : [];
    const local = Array.isArray(result.data.local_info) ? result.data.local_info : [];
    panel.faqList.replaceChildren(...faq.map((answer) => faqSuggestion(chat, answer)));
    panel.localList.replaceChildren(...local.map((hit) => localSuggestion(chat, hit)));
    panel.faqHeading.hidden = panel.faqList.hidden = !faq.length;
    panel.localHeading.hidden = panel.localList.hidden = !local.length;
    const parts = [];
    if (faq.length) parts.push(`${faq.length} FAQ answer${faq.length === 1 ? "" : "s"}`);
    if (local.length) parts.push(`${local.length} local info section${local.length === 1 ? "" : "s"}`);
    panel.status.textContent = parts.length
      ? `${parts.join(" and ")} match the patron's question.`
      : "No FAQ answer or local info matches the patron's question.";
  }

  /* ------------------------------------------------------------------ */
  /* Canned responses: "/" and a few letters in the composer             */
  /* ------------------------------------------------------------------ */

  const CANNED_TRIGGER = /(^|\s)\/([A-Za-z][\w-]*)$/;

  function cannedTrigger(input) {
    if (input.selectionStart !== input.selectionEnd) return null;
    const before = input.value.slice(0, input.selectionStart);
    const match = CANNED_TRIGGER.exec(before);
    if (!match) return null;
    return { start: before.length - match[2].length - 1, end: before.length, query: match[2] };
  }

  function cannedOpen(chat) {
    return !chat.refs.canned.hidden && chat.canned.items.length > 0;
  }

  function closeCanned(chat) {
    const canned = chat.canned;
    clearTimeout(canned.timer);
    if (canned.controller) canned.controller.abort();
    canned.controller = null;
    canned.request += 1;
    canned.pending = false;
    canned.insertWhenReady = false;
    canned.items = [];
    canned.active = -1;
    chat.refs.canned.hidden = true;
    chat.refs.canned.replaceChildren();
    chat.refs.input.removeAttribute("aria-activedescendant");
  }

  function cannedInput(chat) {
    const canned = chat.canned;
    const trigger = chat.closed ? null : cannedTrigger(chat.refs.input);
    if (!trigger) canned.dismissedAt = -1;
    if (!trigger || trigger.start === canned.dismissedAt) {
      if (canned.pending || cannedOpen(chat)) closeCanned(chat);
      return;
    }
    clearTimeout(canned.timer);
    canned.pending = true;
    canned.timer = setTimeout(() => fetchCanned(chat, trigger.query), CANNED_DEBOUNCE_MS);
  }

  async function fetchCanned(chat, query) {
    const canned = chat.canned;
    if (canned.controller) canned.controller.abort();
    canned.controller = new AbortController();
    const mine = ++canned.request;
    let result;
    try {
      result = await api(queryUrl(API.canned, { conversation: chat.id, q: query }), {
        signal: canned.controller.signal,
      });
    } catch {
      return; // aborted: a newer request or a close took over
    }
    if (mine !== canned.request) return;
    const trigger = cannedTrigger(chat.refs.input);
    if (!trigger || trigger.query !== query) return; // typed on: the next request follows
    canned.pending = false;
    if (!result.ok) {
      closeCanned(chat);
      showChatError(chat, apiErrorText(result, "Canned responses could not be loaded."));
      return;
    }
    const results = Array.isArray(result.data.results) ? result.data.results : [];
    const insertNow = canned.insertWhenReady;
    canned.insertWhenReady = false;
    renderCanned(chat, results, query);
    if (insertNow && results.length) insertCanned(chat, 0);
  }

  function renderCanned(chat, results, query) {
    const canned = chat.canned;
    const list = chat.refs.canned;
    const wasOpen = cannedOpen(chat);
    canned.items = results;
    canned.active = results.length ? 0 : -1;
    list.replaceChildren(
      ...results.map((response, index) => {
        const option = make("li", "canned-option");
        option.id = `${chat.prefix}-canned-${index}`;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.dataset.index = String(index);
        const text = String(response.body_filled ?? response.body ?? "");
        option.append(
          make("span", "shortcut", `/${response.shortcut}`),
          make("span", "title", response.title || ""),
          make("span", "preview", text.length > 120 ? `${text.slice(0, 119)}…` : text),
        );
        return option;
      }),
    );
    if (!results.length) {
      list.hidden = true;
      chat.refs.input.removeAttribute("aria-activedescendant");
      if (wasOpen) announce(`No canned response matches /${query}.`);
      return;
    }
    list.hidden = false;
    highlightCanned(chat);
    if (!wasOpen) {
      announce(
        `${results.length} canned response${results.length === 1 ? "" : "s"}. ` +
          "Up and down arrows to choose, Enter or Tab to insert, Escape to close.",
      );
    }
  }

  function highlightCanned(chat) {
    const canned = chat.canned;
    const options = chat.refs.canned.children;
    [...options].forEach((option, index) => {
      option.setAttribute("aria-selected", index === canned.active ? "true" : "false");
    });
    const active = options[canned.active];
    if (active) {
      chat.refs.input.setAttribute("aria-activedescendant", active.id);
      active.scrollIntoView({ block: "nearest" });
    } else {
      chat.refs.input.removeAttribute("aria-activedescendant");
    }
  }

  function insertCanned(chat, index) {
    const canned = chat.canned;
    const response = canned.items[index];
    const input = chat.refs.input;
    const trigger = cannedTrigger(input);
    if (!response || !trigger) {
      closeCanned(chat);
      return;
    }
    const text = String(response.body_filled ?? response.body ?? "");
    input.setRangeText(text, trigger.start, trigger.end, "end");
    closeCanned(chat);
    input.focus();
    announce(`Inserted “${response.title || response.shortcut}”.`);
  }

  /* Keys for the canned list; true when the key was used here. */
  function cannedKeydown(chat, event) {
    const canned = chat.canned;
    if (event.isComposing) return false;
    if (cannedOpen(chat)) {
      const count = canned.items.length;
      switch (event.key) {
        case "ArrowDown":
          canned.active = (canned.active + 1) % count;
          highlightCanned(chat);
          event.preventDefault();
          return true;
        case "ArrowUp":
          canned.active = (canned.active - 1 + count) % count;
          highlightCanned(chat);
          event.preventDefault();
          return true;
        case "Enter":
        case "Tab":
          if (event.shiftKey) return false;
          event.preventDefault();
          insertCanned(chat, Math.max(0, canned.active));
          return true;
        case "Escape": {
          const trigger = cannedTrigger(chat.refs.input);
          canned.dismissedAt = trigger ? trigger.start : -1;
          closeCanned(chat);
          event.preventDefault();
          event.stopPropagation();
          announce("Canned responses closed.");
          return true;
        }
        default:
          return false;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && canned.pending && cannedTrigger(chat.refs.input)) {
      // "/hours" and Enter typed faster than the list loads: insert when it arrives.
      canned.insertWhenReady = true;
      event.preventDefault();
      return true;
    }
    return false;
  }

  /* ------------------------------------------------------------------ */
  /* FAQ drafts from closed chats                                        */
  /* ------------------------------------------------------------------ */

  async function draftFaq(chat) {
    const button = chat.refs.draftButton;
    const out = chat.refs.draftResult;
    button.disabled = true;
    button.textContent = "Saving draft…";
    out.replaceChildren();
    const result = await api(API.drafts, { method: "POST", body: { conversation: chat.id } });
    button.disabled = false;
    button.textContent = "Draft FAQ entry";
    if (result.ok) {
      chat.drafted = true;
      out.appendChild(document.createTextNode("Draft saved — a library admin can publish it. "));
      const adminUrl = String(result.data.admin_url || "");
      if (adminUrl.startsWith("/")) {
        const link = make("a", "", "Open the draft");
        link.href = adminUrl;
        link.target = "_blank";
        link.rel = "noopener";
        link.appendChild(make("span", "visually-hidden", " (opens in a new tab)"));
        out.appendChild(link);
      }
      button.hidden = true;
      out.tabIndex = -1;
      out.focus();
    } else {
      const detail = String((result.data && result.data.detail) || "");
      out.textContent =
        result.status === 409 && detail
          ? `No draft: ${detail}.`
          : apiErrorText(result, "The draft could not be saved. Try again.");
    }
  }

  /* ------------------------------------------------------------------ */
  /* Staff search across every library's local info (sidebar)            */
  /* ------------------------------------------------------------------ */

  const kb = { timer: null, controller: null, request: 0, last: "" };

  function kbHit(hit) {
    const item = make("li", "kb-hit");
    const title = make("h3", "", hit.title || "");
    const facts = make("p", "kb-facts");
    facts.append(
      make("span", "kb-library", hit.library && hit.library.name ? hit.library.name : ""),
      make("span", "badge", KIND_LABELS[hit.kind] || "Other"),
    );
    const snippet = make("p", "snippet");
    snippet.innerHTML = hit.snippet_html || ""; // escaped text with <mark> only (server-side)
    item.append(title, facts, snippet);
    return item;
  }

  async function searchLocalInfo(raw, { submitted }) {
    const q = raw.trim().replace(/\s+/g, " ");
    if (!q) {
      kb.request += 1;
      kb.last = "";
      el.kbResults.replaceChildren();
      el.kbStatus.textContent = submitted ? "Type a few words to search." : "";
      return;
    }
    if (!submitted && q === kb.last) return;
    kb.last = q;
    if (kb.controller) kb.controller.abort();
    kb.controller = new AbortController();
    const mine = ++kb.request;
    let result;
    try {
      result = await api(queryUrl(API.localInfoSearch, { q, limit: 20 }), { signal: kb.controller.signal });
    } catch {
      return;
    }
    if (mine !== kb.request) return;
    if (!result.ok) {
      el.kbStatus.textContent = apiErrorText(result, "The search failed. Try again.");
      kb.last = "";
      return;
    }
    const hits = Array.isArray(result.data.results) ? result.data.results : [];
    el.kbResults.replaceChildren(...hits.map(kbHit));
    el.kbStatus.textContent = hits.length
      ? `${hits.length} section${hits.length === 1 ? "" : "s"} match “${q}”, best first.`
      : `No local info matches “${q}”.`;
  }

  function openChat(frame) {
    const id = frame.conversation;
    if (!id) return;
    const entry = state.queue.get(id);
    let chat = state.chats.get(id);
    const isNew = !chat;
    if (!chat) chat = createChat(id);
    if (chat.closed) {
      // Accepted again (a transfer came back): the chat is live once more.
      chat.closed = false;
      chat.transferTo = null;
      setClosedUi(chat, false, "");
    }
    const patron = frame.patron || {};
    chat.patronName = patron.name || chat.patronName || "";
    const info = frame.local_info || {};
    chat.origin =
      (frame.origin_library && frame.origin_library.name) ||
      (info.library && info.library.name) ||
      (entry && libraryName(entry.origin_library)) ||
      chat.origin;
    renderPatronFacts(chat, patron, entry);

    // A reconnect sends `accepted` again: keep open report forms unless the card changed.
    const cardsKey = JSON.stringify([frame.local_info || null, frame.home_local_info || null]);
    if (cardsKey !== chat.cardsKey) {
      chat.cardsKey = cardsKey;
      const cards = [];
      if (frame.local_info) cards.push(renderLocalInfo(frame.local_info, "Local info", chat));
      if (frame.home_local_info) {
        cards.push(renderLocalInfo(frame.home_local_info, "Patron's home library", chat));
      }
      chat.cards.replaceChildren(...cards);
    }
    if (!chat.suggestionsLoaded) loadSuggestions(chat);

    for (const message of Array.isArray(frame.history) ? frame.history : []) {
      addMessage(chat, { ...message, conversation: id }, { live: false });
    }
    updateTab(chat);

    const requestedHere = state.acceptRequested.has(id);
    state.acceptRequested.delete(id);
    if (state.queue.has(id)) {
      state.queue.delete(id);
      renderQueue();
    }
    if (isNew && (requestedHere || state.selected === null)) {
      selectChat(id, { focusTab: false });
      if (requestedHere) chat.refs.input.focus();
    }
    if (isNew) announce(`Chat accepted: ${tabText(chat)}.`);
  }

  function messageItem(frame, { pending }) {
    const mine = frame.sender === "librarian";
    const item = make("li", `message ${mine ? "mine" : frame.sender === "system" ? "system" : ""}`.trim());
    const meta = make("div", "meta");
    const who =
      frame.sender === "patron"
        ? frame.name || "Patron"
        : frame.sender === "system"
          ? "System"
          : frame.name || config.librarian;
    meta.appendChild(make("span", "who", who));
    if (frame.sent_at) {
      const time = make("time", "", formatTime(frame.sent_at));
      time.dateTime = frame.sent_at;
      meta.appendChild(time);
    }
    item.append(meta, make("p", "body", frame.body ?? ""));
    if (pending) {
      item.classList.add("pending");
      item.dataset.clientId = frame.client_id;
      item.appendChild(make("span", "delivery", "sending…"));
    } else {
      item.dataset.seq = String(frame.seq);
    }
    return item;
  }

  function addMessage(chat, frame, { live }) {
    const log = chat.refs.log;
    if (frame.sender === "librarian" && frame.client_id && chat.pending.has(frame.client_id)) {
      chat.pending.delete(frame.client_id);
      for (const item of log.querySelectorAll("li.pending")) {
        if (item.dataset.clientId === frame.client_id) item.remove();
      }
    }
    const seq = Number(frame.seq);
    if (!Number.isInteger(seq) || chat.held.has(seq)) return;
    chat.held.add(seq);
    chat.lastSeq = Math.max(chat.lastSeq, seq);
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const item = messageItem(frame, { pending: false });
    let placed = false;
    for (const child of log.children) {
      if (child.classList.contains("pending") || Number(child.dataset.seq) > seq) {
        log.insertBefore(item, child);
        placed = true;
        break;
      }
    }
    if (!placed) log.appendChild(item);
    if (stick || !live || frame.sender === "librarian") log.scrollTop = log.scrollHeight;

    if (live && frame.sender === "patron") {
      chat.refs.typing.textContent = "";
      const name = frame.name || chat.patronName || "Patron";
      announce(`New message from ${name} (${chat.origin}): ${frame.body}`);
      const visible = state.selected === chat.id && !document.hidden;
      if (!visible) {
        chat.unreadCount += 1;
        updateTab(chat);
        beep("message");
        notify(`Message from ${name}`, String(frame.body ?? ""), `refdesk-${chat.id}`);
      }
    }
  }

  function showTyping(chat) {
    chat.refs.typing.textContent = `${chat.patronName || "The patron"} is typing…`;
    clearTimeout(chat.typingTimer);
    chat.typingTimer = setTimeout(() => {
      chat.refs.typing.textContent = "";
    }, TYPING_SHOWN_MS);
  }

  function showChatError(chat, text) {
    chat.refs.error.textContent = text;
    chat.refs.error.hidden = false;
    clearTimeout(chat.errorTimer);
    chat.errorTimer = setTimeout(() => {
      chat.refs.error.hidden = true;
    }, 12000);
  }

  function sendMessage(chat) {
    const body = chat.refs.input.value.trim();
    if (!body || chat.closed) return;
    if ([...body].length > MAX_MESSAGE) {
      showChatError(chat, `Messages can be up to ${MAX_MESSAGE} characters.`);
      return;
    }
    const clientId = newClientId();
    chat.pending.set(clientId, { client_id: clientId, body });
    const item = messageItem({ sender: "librarian", name: config.librarian, body, client_id: clientId }, { pending: true });
    chat.refs.log.appendChild(item);
    chat.refs.log.scrollTop = chat.refs.log.scrollHeight;
    chat.refs.input.value = "";
    send({ type: "message", conversation: chat.id, body, client_id: clientId });
  }

  function closeChat(chat) {
    if (chat.closed) return;
    const tags = chat.refs.tags.value
      .split(",")
      .map((tag) => tag.trim())
      .filter(Boolean);
    const frame = { type: "close", conversation: chat.id, outcome: chat.refs.outcome.value, tags };
    const note = chat.refs.closeNote.value.trim();
    if (note) frame.note = note;
    if (!send(frame)) {
      showChatError(chat, "Not connected right now; try again when the desk reconnects.");
      return;
    }
    chat.closingOutcome = frame.outcome;
    chat.refs.closeButton.disabled = true;
    chat.refs.closeButton.textContent = "Closing…";
  }

  function transferChat(chat) {
    if (chat.closed) return;
    const toLibrary = chat.refs.toLibrary.value;
    const frame = { type: "transfer", conversation: chat.id, to_library: toLibrary };
    const note = chat.refs.transferNote.value.trim();
    if (note) frame.note = note;
    if (!send(frame)) {
      showChatError(chat, "Not connected right now; try again when the desk reconnects.");
      return;
    }
    chat.transferTo = toLibrary;
    chat.refs.transferButton.disabled = true;
    chat.refs.transferButton.textContent = "Transferring…";
  }

  function setClosedUi(chat, closed, text) {
    const refs = chat.refs;
    refs.closedBanner.hidden = !closed;
    refs.closedText.textContent = text;
    for (const control of [refs.input, refs.send, refs.outcome, refs.tags, refs.closeNote, refs.closeButton,
      refs.toLibrary, refs.transferNote, refs.transferButton]) {
      control.disabled = closed;
    }
    refs.closeButton.textContent = "Close chat";
    refs.transferButton.textContent = "Transfer";
    if (closed) closeCanned(chat);
    chat.panel.classList.toggle("is-closed", closed);
    // A transferred chat is still going on elsewhere: nothing to draft from yet.
    refs.draftButton.hidden = !closed || Boolean(chat.transferTo) || chat.drafted;
    if (!closed) refs.draftResult.replaceChildren();
    refs.composer.hidden = closed;
    refs.hint.hidden = closed;
    refs.closeForm.hidden = closed;
    refs.transferForm.hidden = closed;
    if (closed) refs.typing.textContent = "";
    updateTab(chat);
  }

  function markClosed(id, by) {
    const chat = state.chats.get(id);
    if (!chat || chat.closed) return;
    const hadFocus = chat.panel.contains(document.activeElement);
    chat.closed = true;
    let text;
    if (by === "patron") text = "The patron ended the chat.";
    else if (by === "librarian" && chat.transferTo) text = `Transferred to ${libraryName(chat.transferTo)}.`;
    else if (by === "librarian") {
      const outcome = config.outcomes.find((o) => o.value === chat.closingOutcome);
      text = outcome ? `You closed this chat: ${outcome.label.toLowerCase()}.` : "Chat closed.";
    }
    else text = "This chat was closed by the system.";
    setClosedUi(chat, true, text);
    for (const item of chat.refs.log.querySelectorAll("li.pending")) {
      item.classList.replace("pending", "failed");
      item.querySelector(".delivery").textContent = "Not sent: the chat had ended.";
    }
    chat.pending.clear();
    announce(`${tabText(chat)}: ${text}`);
    if (hadFocus) chat.refs.dismiss.focus();
  }

  function removeChat(chat) {
    const tabs = [...el.tablist.querySelectorAll('[role="tab"]')];
    const index = tabs.indexOf(chat.tab);
    chat.tab.remove();
    chat.panel.remove();
    state.chats.delete(chat.id);
    if (state.selected === chat.id) {
      state.selected = null;
      const remaining = [...state.chats.values()];
      const next = remaining[Math.min(index, remaining.length - 1)];
      if (next) {
        selectChat(next.id, { focusTab: true });
      } else {
        $("chats-heading").tabIndex = -1;
        $("chats-heading").focus();
      }
    }
    el.chatsEmpty.hidden = state.chats.size > 0;
  }

  /* ------------------------------------------------------------------ */
  /* Errors                                                              */
  /* ------------------------------------------------------------------ */

  const FRIENDLY = {
    already_taken: "Another librarian accepted that chat first.",
    not_yours: "That chat is not offered to your library any more.",
    conversation_closed: "That chat has already ended.",
    rate_limited: "Slow down a little: too many frames in a short time.",
    not_found: "That chat no longer exists.",
  };

  function showError(frame) {
    const text = FRIENDLY[frame.code] || frame.detail || "Something went wrong.";
    const id = frame.conversation;
    if (id && state.acceptRequested.has(id)) {
      state.acceptRequested.delete(id);
      if (frame.code === "already_taken" || frame.code === "not_yours" || frame.code === "not_found") {
        state.queue.delete(id);
        renderQueue();
      } else {
        const item = state.queueItems.get(id);
        if (item) fillQueueItem(item, state.queue.get(id));
      }
      showQueueNotice(text, "warn");
      announce(text);
      return;
    }
    const chat = id ? state.chats.get(id) : null;
    if (chat) {
      showChatError(chat, text);
      if (frame.code === "conversation_closed" || frame.code === "not_yours") markClosed(id, "system");
      else if (!chat.closed) {
        chat.refs.closeButton.disabled = false;
        chat.refs.closeButton.textContent = "Close chat";
        chat.refs.transferButton.disabled = false;
        chat.refs.transferButton.textContent = "Transfer";
        chat.transferTo = null;
      }
      return;
    }
    showQueueNotice(text, "warn");
  }

  /* ------------------------------------------------------------------ */
  /* Wiring                                                              */
  /* ------------------------------------------------------------------ */

  document.addEventListener("click", unlockSound, true);
  document.addEventListener("keydown", unlockSound, true);
  el.soundHint.addEventListener("click", () => setTimeout(() => beep("message"), 50));
  el.notifyButton.addEventListener("click", askNotificationPermission);
  for (const input of el.presenceInputs) input.addEventListener("change", choosePresence);
  el.queueList.addEventListener("click", acceptClicked);
  el.tablist.addEventListener("keydown", tabKeydown);
  el.kbForm.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(kb.timer);
    searchLocalInfo(el.kbInput.value, { submitted: true });
  });
  el.kbInput.addEventListener("input", () => {
    clearTimeout(kb.timer);
    const value = el.kbInput.value;
    if (value.trim().length >= 3 || !value.trim()) {
      kb.timer = setTimeout(() => searchLocalInfo(value, { submitted: false }), KB_DEBOUNCE_MS);
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.selected) {
      const chat = state.chats.get(state.selected);
      if (chat) {
        chat.unreadCount = 0;
        updateTab(chat);
      }
    }
  });
  window.addEventListener("online", () => {
    if (!state.socket && !state.stopped) {
      state.retries = 0;
      connect();
    }
  });
  setInterval(tickQueue, 1000);

  updateNotifyControls();
  updateTitle();
  connect();
})();
