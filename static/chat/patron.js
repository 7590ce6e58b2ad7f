/* refdesk patron chat: the ask page (/ask/{slug}/) and the widget panel (/widget/{slug}/).
 *
 * Speaks PROTOCOL.md: POST /api/v1/libraries/{slug}/conversations, then the patron
 * socket /ws/chat/{id}/?token=…&after_seq=N. The conversation id, token, last seq
 * and unacknowledged messages live in sessionStorage per library, so a reload
 * resumes the same chat. User text is only ever set with textContent.
 */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("patron-config").textContent);
  const $ = (id) => document.getElementById(id);
  const STORAGE_KEY = `refdesk.chat.${config.slug}`;
  const MAX_QUESTION = 2000;
  const MAX_MESSAGE = 4000;
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 5000;
  const ACTIVE_STATES = new Set(["waiting", "active"]);
  const FOLLOW_UP_STATES = new Set(["waiting", "offline", "abandoned"]);

  const el = {
    announcer: $("announcer"),
    askView: $("ask-view"),
    askForm: $("ask-form"),
    askSubmit: $("ask-submit"),
    formError: $("form-error"),
    question: $("question"),
    counter: $("question-counter"),
    name: $("name"),
    email: $("email"),
    place: $("place"),
    availabilityDot: $("availability-dot"),
    availabilityText: $("availability-text"),
    hoursText: $("hours-text"),
    chatView: $("chat-view"),
    stateLine: $("state-line"),
    connectionLine: $("connection-line"),
    messages: $("messages"),
    typing: $("typing"),
    chatError: $("chat-error"),
    followUp: $("follow-up"),
    followUpForm: $("follow-up-form"),
    followUpIntro: $("follow-up-intro"),
    followUpEmail: $("follow-up-email"),
    followUpError: $("follow-up-error"),
    followUpSubmit: $("follow-up-submit"),
    followUpResult: $("follow-up-result"),
    composer: $("composer"),
    composerInput: $("composer-input"),
    composerSend: $("composer-send"),
    chatActions: $("chat-actions"),
    endChat: $("end-chat"),
    endedActions: $("ended-actions"),
    newQuestion: $("new-question"),
    minimise: $("minimise"),
  };

  /* ------------------------------------------------------------------ */
  /* Small helpers                                                       */
  /* ------------------------------------------------------------------ */

  const codePoints = (text) => [...text].length;
  const sentence = (text) => {
    const value = String(text || "").trim();
    return value ? value[0].toUpperCase() + value.slice(1) + (/[.!?]$/.test(value) ? "" : ".") : "";
  };

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // Not a secure context (plain http on a LAN address): same shape, same randomness.
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

  function formatTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : timeFormat.format(date);
  }

  function libraryTime(iso) {
    const date = new Date(iso);
    try {
      return new Intl.DateTimeFormat(undefined, {
        hour: "numeric",
        minute: "2-digit",
        timeZone: config.timezone,
      }).format(date);
    } catch {
      return timeFormat.format(date);
    }
  }

  function formatDue(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    return new Intl.DateTimeFormat(undefined, {
      weekday: "short",
      day: "numeric",
      month: "short",
      hour: "numeric",
      minute: "2-digit",
    }).format(date);
  }

  function formatWait(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const minutes = Math.max(1, Math.round(seconds / 60));
    return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
  }

  function announce(text) {
    if (!text) return;
    const line = document.createElement("p");
    line.textContent = text;
    el.announcer.appendChild(line);
    setTimeout(() => line.remove(), 15000);
  }

  function toParent(type) {
    if (config.embedded && window.parent !== window) {
      window.parent.postMessage({ source: "refdesk", type }, "*");
    }
  }

  /* ------------------------------------------------------------------ */
  /* Stored conversation (sessionStorage, per library)                   */
  /* ------------------------------------------------------------------ */

  let chat = null; // {id, token, websocket, lastSeq, pending: [{client_id, body}], email, status}

  function loadChat() {
    try {
      const data = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
      if (data && typeof data.id === "string" && typeof data.token === "string") {
        data.pending = Array.isArray(data.pending) ? data.pending : [];
        return data;
      }
    } catch {
      /* storage blocked or corrupt: start afresh */
    }
    return null;
  }

  function saveChat() {
    if (!chat) return;
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(chat));
    } catch {
      /* storage blocked (third-party iframe): the chat still works until reload */
    }
  }

  function forgetChat() {
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      /* ignore */
    }
    chat = null;
  }

  /* ------------------------------------------------------------------ */
  /* Availability and the question form                                  */
  /* ------------------------------------------------------------------ */

  let statusTimer = null;

  async function refreshAvailability() {
    try {
      const response = await fetch(config.statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "omit",
      });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      showAvailability(data);
    } catch {
      el.availabilityDot.className = "dot";
      el.availabilityText.textContent =
        "We could not check whether a librarian is available. You can still ask.";
    }
  }

  function showAvailability(data) {
    if (data.chat_available) {
      el.availabilityDot.className = "dot on";
      const wait = formatWait(data.estimated_wait_seconds);
      el.availabilityText.textContent = wait
        ? `A librarian is available — usual wait ${wait}.`
        : "A librarian is available.";
    } else {
      el.availabilityDot.className = "dot off";
      const due = data.answer_by ? formatDue(data.answer_by) : "";
      el.availabilityText.textContent = `No librarian is available right now. Ask anyway and leave your email: we'll answer by email${due ? ` by ${due}` : ""}.`;
    }
    const spans = Array.isArray(data.hours_today) ? data.hours_today : [];
    if (!spans.length) {
      el.hoursText.textContent = `${config.name} is closed today.`;
    } else if (
      spans.length === 1 &&
      new Date(spans[0].closes) - new Date(spans[0].opens) >= 23 * 3600 * 1000
    ) {
      el.hoursText.textContent = `${config.name} is open around the clock today.`;
    } else {
      const list = spans.map((s) => `${libraryTime(s.opens)}–${libraryTime(s.closes)}`);
      el.hoursText.textContent = `${config.name} hours today: ${list.join(", ")}.`;
    }
  }

  function updateCounter() {
    const count = codePoints(el.question.value.trim());
    el.counter.textContent = `${count} / ${MAX_QUESTION} characters`;
    el.counter.classList.toggle("over", count > MAX_QUESTION);
  }

  const FIELD_FOR_ERROR = {
    question: "question",
    name: "name",
    email: "email",
    home_library: "place",
    postal_code: "place",
  };

  function setFieldError(field, message) {
    const input = el[field];
    const error = $(`${field === "place" ? "place" : field}-error`);
    if (!input || !error) return false;
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return true;
  }

  function clearErrors() {
    for (const field of ["question", "name", "email", "place"]) setFieldError(field, "");
    el.formError.textContent = "";
  }

  // "Home library or postal code" is one field; obvious postal codes go to postal_code.
  const POSTAL_PATTERNS = [
    /^\d{3,10}(-\d{1,6})?$/, // US ZIP, ZIP+4 and other digit-only codes
    /^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$/, // Canada
    /^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$/, // UK
  ];

  function splitPlace(value) {
    const text = value.trim().replace(/\s+/g, " ");
    if (!text) return {};
    if (POSTAL_PATTERNS.some((pattern) => pattern.test(text))) return { postal_code: text };
    return { home_library: text };
  }

  async function readError(response) {
    try {
      const data = await response.json();
      if (data && typeof data === "object") return data;
    } catch {
      /* not JSON */
    }
    return { code: "http_error", detail: `The server answered with error ${response.status}.` };
  }

  async function submitQuestion(event) {
    event.preventDefault();
    clearErrors();
    const question = el.question.value.trim();
    let firstInvalid = null;
    if (!question) {
      setFieldError("question", "Please type your question.");
      firstInvalid = el.question;
    } else if (codePoints(question) > MAX_QUESTION) {
      setFieldError(
        "question",
        `Please shorten your question to ${MAX_QUESTION} characters; you can add more once the chat starts.`,
      );
      firstInvalid = el.question;
    }
    const email = el.email.value.trim();
    if (email && !el.email.checkValidity()) {
      setFieldError("email", "Enter an email address like name@example.org, or leave it empty.");
      firstInvalid = firstInvalid || el.email;
    }
    if (firstInvalid) {
      firstInvalid.focus();
      return;
    }
    const body = { question, ...splitPlace(el.place.value) };
    const name = el.name.value.trim();
    if (name) body.name = name;
    if (email) body.email = email;

    el.askSubmit.disabled = true;
    el.askSubmit.textContent = "Starting…";
    try {
      const response = await fetch(config.startUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "omit",
        body: JSON.stringify(body),
      });
      if (response.status === 201 || response.ok) {
        const data = await response.json();
        chat = {
          id: data.id,
          token: data.token,
          websocket: data.websocket,
          lastSeq: 0,
          pending: [],
          email,
          status: data.status,
        };
        saveChat();
        el.askForm.reset();
        updateCounter();
        startChat();
        return;
      }
      showStartError(response, await readError(response));
    } catch {
      el.formError.textContent =
        "We could not reach the chat service. Check your connection and try again.";
    } finally {
      el.askSubmit.disabled = false;
      el.askSubmit.textContent = "Start chat";
    }
  }

  function showStartError(response, error) {
    let firstField = null;
    if (error.errors && typeof error.errors === "object") {
      for (const [key, messages] of Object.entries(error.errors)) {
        const field = FIELD_FOR_ERROR[key];
        const text = [].concat(messages).map(sentence).join(" ");
        if (field && setFieldError(field, text)) {
          firstField = firstField || el[field];
        }
      }
    }
    if (response.status === 429) {
      const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      el.formError.textContent = Number.isFinite(wait)
        ? `Many questions are coming from your network just now. Please try again in ${wait} seconds.`
        : "Many questions are coming from your network just now. Please try again shortly.";
    } else if (firstField) {
      el.formError.textContent = "Please check the highlighted fields.";
      firstField.focus();
    } else {
      el.formError.textContent = sentence(error.detail) || "Something went wrong. Please try again.";
    }
  }

  function showAsk() {
    el.chatView.hidden = true;
    el.askView.hidden = false;
    refreshAvailability();
    clearInterval(statusTimer);
    statusTimer = setInterval(refreshAvailability, 30000);
  }

  /* ------------------------------------------------------------------ */
  /* The conversation                                                    */
  /* ------------------------------------------------------------------ */

  let socket = null;
  let retries = 0;
  let retryTimer = null;
  let openedAt = 0;
  let lastTypingSent = 0;
  let typingTimer = null;
  let lastStateText = "";
  let stopped = false;
  const held = new Set();
  let lastSeq = 0; // highest seq shown on this page

  function startChat() {
    clearInterval(statusTimer);
    stopped = false;
    el.askView.hidden = true;
    el.chatView.hidden = false;
    el.endedActions.hidden = true;
    el.followUp.hidden = true;
    el.followUpResult.hidden = true;
    el.chatError.hidden = true;
    setStateLine("Connecting…", "");
    for (const item of chat.pending) el.messages.appendChild(pendingItem(item));
    if (chat.status) applyStatus({ status: chat.status, library: null }, { quiet: true });
    connect();
    if (!config.embedded || document.hasFocus()) el.composerInput.focus();
  }

  function socketUrl() {
    const url = new URL(chat.websocket, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after_seq", String(lastSeq));
    return url.href;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (!chat || stopped) return;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      retries = 0;
      openedAt = performance.now();
      el.connectionLine.hidden = true;
      // Re-send what the server has not acknowledged, with the same client_id.
      for (const item of chat.pending) send({ type: "message", body: item.body, client_id: item.client_id });
    });
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handleFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4401 || event.code === 4403) {
        endForGood("This chat can no longer be resumed. You can ask a new question.");
        return;
      }
      if (stopped || !chat || !ACTIVE_STATES.has(chat.status || "waiting")) return;
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (stopped) return;
    const delay = Math.min(15, 2 ** retries) * 1000;
    retries += 1;
    el.connectionLine.hidden = false;
    el.connectionLine.textContent = `Connection lost. Reconnecting… (next try in ${delay / 1000} s)`;
    if (retries === 1) announce("Connection lost. Reconnecting…");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "status":
        applyStatus(frame, { quiet: false });
        break;
      case "message":
        addMessage(frame);
        break;
      case "typing":
        if (frame.sender === "librarian") showTyping();
        break;
      case "error":
        showFrameError(frame);
        break;
      default:
        break; // "resumed" and future frame types need nothing here
    }
  }

  function setStateLine(text, kind) {
    el.stateLine.textContent = text;
    el.stateLine.className = `state-line ${kind}`.trim();
  }

  function applyStatus(frame, { quiet }) {
    const status = frame.status;
    chat.status = status;
    saveChat();
    el.chatView.dataset.status = status;
    const library = frame.library;
    const otherLibrary = library && library.slug && library.slug !== config.slug;
    let text;
    let kind;
    switch (status) {
      case "waiting": {
        const wait = formatWait(frame.estimated_wait_seconds);
        text = `Waiting for a librarian from our network${wait ? ` — ${wait}` : "…"}`;
        kind = "waiting";
        break;
      }
      case "active":
        text = `You're chatting with a librarian from ${otherLibrary ? config.consortiumName : (library && library.name) || config.name}`;
        kind = "active";
        break;
      case "offline": {
        const due = frame.answer_by ? formatDue(frame.answer_by) : "";
        text = `No librarian is available right now. Leave your email and we'll answer by email${due ? ` by ${due}` : ""}.`;
        kind = "ended";
        break;
      }
      case "closed":
        text = "This chat has ended. Thank you for asking!";
        kind = "ended";
        break;
      case "abandoned": {
        const due = frame.answer_by ? formatDue(frame.answer_by) : "";
        text = `This chat ended before a librarian joined. Leave your email and we'll answer by email${due ? ` by ${due}` : ""}.`;
        kind = "ended";
        break;
      }
      default:
        text = "Connecting…";
        kind = "";
    }
    setStateLine(text, kind);
    if (!quiet && text !== lastStateText) announce(text);
    lastStateText = text;

    const live = ACTIVE_STATES.has(status);
    el.composer.hidden = !live;
    el.chatActions.hidden = !live;
    el.endedActions.hidden = live;
    if (!live) {
      el.typing.textContent = "";
      el.connectionLine.hidden = true;
    }
    const offerFollowUp = status === "offline" || status === "abandoned";
    el.followUp.hidden = !offerFollowUp;
    if (offerFollowUp && !el.followUpEmail.value && chat.email) el.followUpEmail.value = chat.email;
  }

  function senderName(frame) {
    if (frame.sender === "patron") return "You";
    if (frame.sender === "system") return config.consortiumName;
    return frame.name || "Librarian";
  }

  function messageItem({ sender, who, body, sentAt, seq }) {
    const item = document.createElement("li");
    item.className = `message ${sender === "patron" ? "mine" : sender}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    meta.appendChild(name);
    if (sentAt) {
      const time = document.createElement("time");
      time.dateTime = sentAt;
      time.textContent = formatTime(sentAt);
      meta.appendChild(time);
    }
    const text = document.createElement("p");
    text.className = "body";
    text.textContent = body;
    item.append(meta, text);
    if (seq) item.dataset.seq = String(seq);
    return item;
  }

  function pendingItem(pending) {
    const item = messageItem({ sender: "patron", who: "You", body: pending.body });
    item.classList.add("pending");
    item.dataset.clientId = pending.client_id;
    const delivery = document.createElement("span");
    delivery.className = "delivery";
    delivery.textContent = "sending…";
    item.appendChild(delivery);
    return item;
  }

  function findPendingItem(clientId) {
    for (const item of el.messages.querySelectorAll("li.pending")) {
      if (item.dataset.clientId === clientId) return item;
    }
    return null;
  }

  function nearBottom() {
    const list = el.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function insertBySeq(item, seq) {
    for (const child of el.messages.children) {
      if (child.classList.contains("pending") || Number(child.dataset.seq) > seq) {
        el.messages.insertBefore(item, child);
        return;
      }
    }
    el.messages.appendChild(item);
  }

  function addMessage(frame) {
    const seq = Number(frame.seq);
    if (frame.sender === "patron" && frame.client_id) {
      const before = chat.pending.length;
      chat.pending = chat.pending.filter((p) => p.client_id !== frame.client_id);
      if (chat.pending.length !== before) saveChat();
      const item = findPendingItem(frame.client_id);
      if (item) item.remove();
    }
    if (!Number.isInteger(seq) || held.has(seq)) return;
    held.add(seq);
    if (seq > lastSeq) {
      lastSeq = seq;
      chat.lastSeq = seq;
      saveChat();
    }
    const stick = nearBottom();
    insertBySeq(
      messageItem({
        sender: frame.sender,
        who: senderName(frame),
        body: String(frame.body ?? ""),
        sentAt: frame.sent_at,
        seq,
      }),
      seq,
    );
    if (stick || frame.sender === "patron") el.messages.scrollTop = el.messages.scrollHeight;

    if (frame.sender === "librarian") {
      el.typing.textContent = "";
      const recent = Date.now() - Date.parse(frame.sent_at) < 30000;
      if (recent || performance.now() - openedAt > 1500) {
        announce(`${senderName(frame)}: ${frame.body}`);
        toParent("attention");
      }
    } else if (frame.sender === "system") {
      announce(String(frame.body ?? ""));
    }
  }

  function showTyping() {
    el.typing.textContent = "The librarian is typing…";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      el.typing.textContent = "";
    }, TYPING_SHOWN_MS);
  }

  const FRIENDLY_ERRORS = {
    rate_limited: "You're sending messages very quickly. Please wait a moment and try again.",
    conversation_closed: "This chat has ended, so the message was not sent.",
    too_large: "That message is too long. Please split it into shorter messages.",
  };

  function showFrameError(frame) {
    const text = FRIENDLY_ERRORS[frame.code] || frame.detail || "Something went wrong.";
    if (frame.client_id) {
      chat.pending = chat.pending.filter((p) => p.client_id !== frame.client_id);
      saveChat();
      const item = findPendingItem(frame.client_id);
      if (item) {
        item.classList.remove("pending");
        item.classList.add("failed");
        item.querySelector(".delivery").textContent = `Not sent: ${text}`;
      }
    }
    el.chatError.textContent = text;
    el.chatError.hidden = false;
    setTimeout(() => {
      el.chatError.hidden = true;
    }, 10000);
  }

  function sendMessage(event) {
    if (event) event.preventDefault();
    const body = el.composerInput.value.trim();
    if (!body || !chat) return;
    if (codePoints(body) > MAX_MESSAGE) {
      el.chatError.textContent = `Messages can be up to ${MAX_MESSAGE} characters. Please split it up.`;
      el.chatError.hidden = false;
      return;
    }
    const pending = { client_id: newClientId(), body };
    chat.pending.push(pending);
    saveChat();
    el.messages.appendChild(pendingItem(pending));
    el.messages.scrollTop = el.messages.scrollHeight;
    el.composerInput.value = "";
    send({ type: "message", body, client_id: pending.client_id });
  }

  function composerKeydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  }

  function composerInput() {
    const now = Date.now();
    if (el.composerInput.value.trim() && now - lastTypingSent >= TYPING_EVERY_MS) {
      if (send({ type: "typing" })) lastTypingSent = now;
    }
  }

  function endChat() {
    if (!send({ type: "close" })) {
      el.chatError.textContent = "Not connected right now. Try again when the chat reconnects.";
      el.chatError.hidden = false;
    }
  }

  function endForGood(text) {
    stopped = true;
    clearTimeout(retryTimer);
    setStateLine(text, "ended");
    announce(text);
    el.composer.hidden = true;
    el.chatActions.hidden = true;
    el.connectionLine.hidden = true;
    el.endedActions.hidden = false;
    forgetChat();
  }

  function askAnother() {
    stopped = true;
    clearTimeout(retryTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close(1000);
    }
    forgetChat();
    held.clear();
    lastSeq = 0;
    lastStateText = "";
    el.messages.replaceChildren();
    el.followUpForm.hidden = false;
    el.followUpResult.hidden = true;
    el.followUpEmail.value = "";
    showAsk();
    el.question.focus();
  }

  async function submitFollowUp(event) {
    event.preventDefault();
    el.followUpError.textContent = "";
    el.followUpEmail.removeAttribute("aria-invalid");
    const email = el.followUpEmail.value.trim();
    if (!email || !el.followUpEmail.checkValidity()) {
      el.followUpError.textContent = "Enter an email address like name@example.org.";
      el.followUpEmail.setAttribute("aria-invalid", "true");
      el.followUpEmail.focus();
      return;
    }
    if (!chat) return;
    el.followUpSubmit.disabled = true;
    try {
      const response = await fetch(config.followUpUrl.replace("{id}", encodeURIComponent(chat.id)), {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: `Bearer ${chat.token}`,
        },
        credentials: "omit",
        body: JSON.stringify({ email }),
      });
      if (response.ok) {
        const data = await response.json();
        const ticket = data.ticket || {};
        const due = ticket.due_by ? formatDue(ticket.due_by) : "";
        el.followUpResult.textContent =
          `Thank you. A librarian will answer by email${due ? ` by ${due}` : ""}.` +
          (ticket.reference ? ` Your reference is ${ticket.reference}.` : "");
        el.followUpResult.className = "notice";
        el.followUpResult.hidden = false;
        el.followUpForm.hidden = true;
        announce(el.followUpResult.textContent);
        chat.email = email;
        saveChat();
      } else {
        const error = await readError(response);
        const fieldErrors = error.errors && error.errors.email;
        el.followUpError.textContent = fieldErrors
          ? [].concat(fieldErrors).map(sentence).join(" ")
          : sentence(error.detail) || "We could not save your email. Please try again.";
        el.followUpEmail.setAttribute("aria-invalid", "true");
      }
    } catch {
      el.followUpError.textContent =
        "We could not reach the chat service. Check your connection and try again.";
    } finally {
      el.followUpSubmit.disabled = false;
    }
  }

  /* ------------------------------------------------------------------ */
  /* Wiring                                                              */
  /* ------------------------------------------------------------------ */

  el.question.addEventListener("input", updateCounter);
  el.askForm.addEventListener("submit", submitQuestion);
  el.composer.addEventListener("submit", sendMessage);
  el.composerInput.addEventListener("keydown", composerKeydown);
  el.composerInput.addEventListener("input", composerInput);
  el.endChat.addEventListener("click", endChat);
  el.newQuestion.addEventListener("click", askAnother);
  el.followUpForm.addEventListener("submit", submitFollowUp);
  window.addEventListener("online", () => {
    if (chat && !socket && !stopped) {
      retries = 0;
      connect();
    }
  });

  if (config.embedded) {
    if (el.minimise) el.minimise.addEventListener("click", () => toParent("close"));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") toParent("close");
    });
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent || !event.data || event.data.source !== "refdesk") return;
      if (event.data.type === "focus") {
        const target = el.askView.hidden ? el.composerInput : el.question;
        if (target && !target.closest("[hidden]")) target.focus();
        else el.minimise?.focus();
      }
    });
  }

  updateCounter();
  chat = loadChat();
  if (chat) startChat();
  else showAsk();
})();
