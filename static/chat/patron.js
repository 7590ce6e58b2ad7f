/* refdesk patron chat: the ask page (/ask/{slug}/) and the widget panel (/widget/{slug}/).
 *
 * Speaks PROTOCOL.md: POST /api/v1/libraries/{slug}/conversations, then the patron
 * socket /ws/chat/{id}/?token=…&after_seq=N. The conversation id, token, last seq
 * and unacknowledged messages live in sessionStorage per library, so a reload
 * resumes the same chat. User text is only ever set with textContent; the one
 * exception is an FAQ answer's `answer_html`, which the server sanitises for
 * exactly this use.
 *
 * FAQ suggestions (GET /api/v1/libraries/{slug}/faq?q=…) appear under the
 * question as the patron types and again while they wait; opening one is
 * counted (POST /api/v1/faq/{id}/opened) and, while waiting, "This answered my
 * question" ends the chat as self-served (POST …/conversations/{id}/self-served).
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
  const FAQ_MIN_CHARS = 3;
  const FAQ_DEBOUNCE_MS = 300;
  const FAQ_ASK_LIMIT = 3;
  const FAQ_WAIT_LIMIT = 5;
  const FAQ_URL = config.faqUrl || `/api/v1/libraries/${encodeURIComponent(config.slug)}/faq`;
  const OPENED_URL = config.faqOpenedUrl || "/api/v1/faq/{id}/opened";
  const SELF_SERVED_URL = config.selfServedUrl || "/api/v1/conversations/{id}/self-served";
  const SELF_SERVED_TEXT = "Glad that helped! Your question is closed; you can ask again any time.";
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
  /* FAQ suggestions: under the question, and while waiting               */
  /* ------------------------------------------------------------------ */

  const countedOpens = new Set(); // answers whose opening this page already counted

  function countOpened(answerId) {
    if (countedOpens.has(answerId)) return;
    countedOpens.add(answerId);
    fetch(OPENED_URL.replace("{id}", encodeURIComponent(answerId)), {
      method: "POST",
      headers: { Accept: "application/json" },
      credentials: "omit",
      keepalive: true,
    }).catch(() => {
      countedOpens.delete(answerId); // try again the next time it is opened
    });
  }

  /* A suggestion box: a labelled region, a polite status ("3 suggested answers")
   * and a list of disclosures. Items are kept by answer id, so an answer the
   * patron opened stays open while the results around it change. */
  function suggestionBox(prefix, { offerSelfServe }) {
    const root = $(`${prefix}-suggestions`);
    const status = $(`${prefix}-suggestions-status`);
    const list = $(`${prefix}-suggestions-list`);
    const items = new Map(); // answer id -> <li>
    let request = 0;
    let controller = null;
    let timer = null;
    let lastQuery = null;
    let lastCount = -1;

    function item(answer) {
      const li = document.createElement("li");
      li.className = "suggestion";
      li.dataset.id = String(answer.id);
      const heading = document.createElement(prefix === "wait" ? "h3" : "h4");
      heading.className = "suggestion-question";
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "disclosure";
      toggle.setAttribute("aria-expanded", "false");
      const panelId = `${prefix}-answer-${answer.id}`;
      toggle.setAttribute("aria-controls", panelId);
      const marker = document.createElement("span");
      marker.className = "marker";
      marker.setAttribute("aria-hidden", "true");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = String(answer.question || "");
      toggle.append(marker, label);
      heading.appendChild(toggle);

      const panel = document.createElement("div");
      panel.className = "suggestion-answer";
      panel.id = panelId;
      panel.hidden = true;
      const body = document.createElement("div");
      body.className = "answer-body";
      body.innerHTML = answer.answer_html || ""; // sanitised server-side
      for (const link of body.querySelectorAll("a[href]")) {
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      }
      panel.appendChild(body);
      const actions = document.createElement("div");
      actions.className = "answer-actions";
      if (offerSelfServe) {
        const done = document.createElement("button");
        done.hidden = !chat || chat.status !== "waiting";
        done.type = "button";
        done.className = "small answered";
        done.dataset.selfServed = String(answer.id);
        done.textContent = "This answered my question";
        actions.appendChild(done);
      }
      if (answer.url && /^https?:\/\//i.test(String(answer.url))) {
        const more = document.createElement("a");
        more.href = String(answer.url);
        more.target = "_blank";
        more.rel = "noopener";
        more.textContent = "Open on the FAQ page";
        const hint = document.createElement("span");
        hint.className = "visually-hidden";
        hint.textContent = " (opens in a new tab)";
        more.appendChild(hint);
        actions.appendChild(more);
      }
      panel.appendChild(actions);
      li.append(heading, panel);

      toggle.addEventListener("click", () => {
        const open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
        panel.hidden = !open;
        li.classList.toggle("open", open);
        if (open) {
          countOpened(answer.id);
          revealInBox(li);
        }
      });
      return li;
    }

    // The waiting box scrolls on its own: bring an opened answer (and its
    // "This answered my question" button) into view without scrolling the page.
    function revealInBox(li) {
      if (root.scrollHeight <= root.clientHeight) return;
      const box = root.getBoundingClientRect();
      const rect = li.getBoundingClientRect();
      if (rect.bottom > box.bottom) {
        root.scrollTop += Math.min(rect.bottom - box.bottom + 8, rect.top - box.top);
      }
    }

    function render(results) {
      const wanted = results.filter((a) => a && Number.isInteger(a.id));
      const keep = new Set(wanted.map((a) => String(a.id)));
      const hadFocus = list.contains(document.activeElement);
      for (const [id, li] of items) {
        if (!keep.has(id)) {
          li.remove();
          items.delete(id);
        }
      }
      wanted.forEach((answer, index) => {
        const id = String(answer.id);
        let li = items.get(id);
        if (!li) {
          li = item(answer);
          items.set(id, li);
        }
        if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      });
      root.dataset.empty = wanted.length ? "false" : "true";
      if (hadFocus && !list.contains(document.activeElement)) {
        const first = list.querySelector("button.disclosure");
        if (first) first.focus();
      }
      const count = wanted.length;
      if (count !== lastCount) {
        status.textContent = count
          ? `${count} suggested answer${count === 1 ? "" : "s"}`
          : "";
        lastCount = count;
      }
    }

    function clear() {
      clearTimeout(timer);
      if (controller) controller.abort();
      controller = null;
      request += 1;
      lastQuery = null;
      render([]);
    }

    async function load(query, limit) {
      const text = query.trim().replace(/\s+/g, " ");
      if (codePoints(text) < FAQ_MIN_CHARS) {
        clear();
        return;
      }
      if (text === lastQuery) return;
      lastQuery = text;
      if (controller) controller.abort();
      controller = new AbortController();
      const mine = ++request;
      const url = new URL(FAQ_URL, window.location.href);
      url.searchParams.set("q", text.slice(0, 200));
      url.searchParams.set("limit", String(limit));
      try {
        const response = await fetch(url.href, {
          headers: { Accept: "application/json" },
          credentials: "omit",
          signal: controller.signal,
        });
        if (!response.ok) throw new Error(String(response.status));
        const data = await response.json();
        if (mine !== request) return;
        render(Array.isArray(data.results) ? data.results.slice(0, limit) : []);
      } catch {
        if (mine === request) lastQuery = null; // suggestions are a bonus: fail quietly
      }
    }

    function schedule(query, limit) {
      clearTimeout(timer);
      timer = setTimeout(() => load(query, limit), FAQ_DEBOUNCE_MS);
    }

    return { root, list, heading: $(`${prefix}-suggestions-heading`), load, schedule, clear };
  }

  const askSuggestions = suggestionBox("ask", { offerSelfServe: false });
  const waitSuggestions = suggestionBox("wait", { offerSelfServe: true });
  let selfServing = false;

  /* Shown while waiting; after "This answered my question" the answer stays in
   * view (without the button) so the patron can finish reading it. */
  function showWaitSuggestions(status) {
    const waiting = status === "waiting";
    const helped = status === "closed" && chat && (chat.selfServed || selfServing);
    const helpful = waitSuggestions.list.querySelector(".suggestion.helped");
    const box = waitSuggestions.root;
    box.hidden = !(waiting || (helped && helpful));
    for (const button of waitSuggestions.list.querySelectorAll("button[data-self-served]")) {
      button.hidden = !waiting;
    }
    for (const item of waitSuggestions.list.children) {
      item.hidden = Boolean(helped && helpful && item !== helpful);
    }
    waitSuggestions.heading.textContent =
      helped && helpful ? "The answer that helped" : "While you wait: answers that may help";
    if (helped && helpful) box.scrollTop = 0;
    if (waiting && chat && chat.question) waitSuggestions.load(chat.question, FAQ_WAIT_LIMIT);
  }

  async function selfServe(button) {
    if (!chat || selfServing) return;
    const answerId = Number(button.dataset.selfServed);
    selfServing = true;
    for (const other of waitSuggestions.list.querySelectorAll("button[data-self-served]")) {
      other.disabled = true;
    }
    button.textContent = "Closing your question…";
    const item = button.closest(".suggestion");
    if (item) item.classList.add("helped"); // kept in view when the chat closes
    el.chatError.hidden = true;
    try {
      const response = await fetch(SELF_SERVED_URL.replace("{id}", encodeURIComponent(chat.id)), {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: `Bearer ${chat.token}`,
        },
        credentials: "omit",
        body: JSON.stringify(Number.isInteger(answerId) && answerId > 0 ? { answer: answerId } : {}),
      });
      if (response.ok) {
        chat.selfServed = true;
        chat.selfServedAnswer = answerId;
        saveChat();
        waitSuggestions.root.querySelector(".suggestions-status").textContent = "";
        applyStatus({ status: "closed", library: null }, { quiet: false });
        el.stateLine.focus();
        return;
      }
      if (item) item.classList.remove("helped");
      const error = await readError(response);
      el.chatError.textContent =
        error.code === "state_conflict" && chat.status === "active"
          ? "A librarian has just joined your chat, so it stays open. You can tell them the answer helped."
          : error.code === "state_conflict"
          ? "Your question is no longer waiting, so it was not closed here."
          : sentence(error.detail) || "We could not close your question. Please try again.";
      el.chatError.hidden = false;
    } catch {
      if (item) item.classList.remove("helped");
      el.chatError.textContent = "We could not reach the chat service. Check your connection and try again.";
      el.chatError.hidden = false;
    } finally {
      selfServing = false;
      button.textContent = "This answered my question";
      for (const other of waitSuggestions.list.querySelectorAll("button[data-self-served]")) {
        other.disabled = false;
      }
    }
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
          question,
          status: data.status,
        };
        saveChat();
        el.askForm.reset();
        askSuggestions.clear();
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
        text = chat.selfServed || selfServing ? SELF_SERVED_TEXT : "This chat has ended. Thank you for asking!";
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
    showWaitSuggestions(status);
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
    if (seq === 1 && frame.sender === "patron" && !chat.question) {
      // The question is the first message (PROTOCOL.md): suggest answers for it.
      chat.question = String(frame.body ?? "");
      saveChat();
      if (chat.status === "waiting") waitSuggestions.load(chat.question, FAQ_WAIT_LIMIT);
    }
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
    waitSuggestions.root.hidden = true;
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
    waitSuggestions.clear();
    waitSuggestions.root.hidden = true;
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

  el.question.addEventListener("input", () => {
    updateCounter();
    askSuggestions.schedule(el.question.value, FAQ_ASK_LIMIT);
  });
  waitSuggestions.list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-self-served]");
    if (button && !button.disabled) selfServe(button);
  });
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
