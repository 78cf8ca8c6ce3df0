/* Collab Hub case-activity widget: a live, resumable case timeline for customers.
 *
 * No build step, no dependency: graphql-transport-ws is spoken by hand over one WebSocket.
 * Embed:  <div data-collabhub-widget data-hub="https://hub.example.com" data-case-id="case_…"
 *              data-token="<customer JWT>"></div> <script src="widget.js"></script>
 * or pass them in the page's hash: #token=…&case=…&hub=… (see index.html).
 * Bodies are plain text: everything is rendered with text nodes, never as markup.
 */
(function () {
  "use strict";

  const ACTIVITY = `subscription Activity($caseId: ID!, $after: String) {
    caseActivity(caseId: $caseId, after: $after) { id seq cursor kind summary occurredAt data }
  }`;
  const HISTORY = `query History($stream: ID!, $after: String) {
    activity(stream: $stream, after: $after, first: 100) {
      edges { node { id seq cursor kind summary occurredAt data } } pageInfo { hasNextPage }
    }
  }`;
  const PRESENCE = `subscription Presence($caseId: ID!) {
    presenceChanged(resourceId: $caseId) { kind presences { role anonymous state user { id } } }
  }`;
  const CASE = "query Case($caseId: ID!) { case(id: $caseId) { subject status } }";
  const PRESENCE_TEXT = { COMPOSING: "An agent is typing…", EDITING: "An agent is working on your case",
                          VIEWING: "An agent is viewing", IDLE: "An agent is viewing" };
  const RANK = { COMPOSING: 3, EDITING: 2, VIEWING: 1, IDLE: 0 };

  function h(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  class Widget {
    constructor(root, options) {
      this.root = root;
      this.caseId = options.caseId;
      this.token = options.token;
      const hub = new URL("/graphql", options.hub || location.href);
      hub.protocol = hub.protocol === "https:" ? "wss:" : "ws:";
      this.url = hub.toString();
      this.cursor = options.after || null; // the last event's cursor: where a reconnect resumes
      this.lastSeq = 0;
      this.attempt = 0;
      this.maxDelay = options.maxDelayMs || 15000;
      this.reconnects = -1;
      this.ops = 0;
      this.ws = null;
      this.stopped = false;
      root.classList.add("chw");
      root.replaceChildren();
      const header = root.appendChild(h("header", "chw-header"));
      this.subject = header.appendChild(h("h2", "chw-subject", "Your case"));
      this.status = header.appendChild(h("span", "chw-case-status"));
      this.presence = root.appendChild(h("p", "chw-presence"));
      this.presence.hidden = true;
      this.timeline = root.appendChild(h("ol", "chw-timeline"));
      this.connection = root.appendChild(h("p", "chw-connection"));
      this.connect();
    }

    setState(state, text) {
      this.root.dataset.state = state;
      this.connection.textContent = text;
    }

    connect() {
      this.reconnects += 1;
      this.setState("connecting", "Connecting…");
      const ws = (this.ws = new WebSocket(this.url, "graphql-transport-ws"));
      ws.onopen = () => this.send({ type: "connection_init", payload: { authorization: "Bearer " + this.token } });
      ws.onmessage = (event) => ws === this.ws && this.onMessage(JSON.parse(event.data));
      ws.onclose = (event) => ws === this.ws && this.onClose(event);
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    subscribe(kind, query, variables) {
      const id = `${kind}-${++this.ops}`;
      this.send({ id, type: "subscribe", payload: { query, variables } });
    }

    onMessage(message) {
      const kind = (message.id || "").split("-")[0];
      if (message.type === "connection_ack") {
        this.attempt = 0;
        this.setState("live", "Live");
        this.subscribe("case", CASE, { caseId: this.caseId });
        this.subscribe("presence", PRESENCE, { caseId: this.caseId });
        // first the history (a subscription without `after` starts from now), then live from its end
        if (this.cursor) this.follow();
        else this.subscribe("history", HISTORY, { stream: "case:" + this.caseId, after: null });
      } else if (message.type === "ping") {
        this.send({ type: "pong" });
      } else if (message.type === "next" && message.payload.errors) {
        this.onErrors(kind, message.payload.errors);
      } else if (message.type === "next") {
        const data = message.payload.data;
        if (kind === "activity") this.onEvent(data.caseActivity);
        else if (kind === "history") this.onHistory(data.activity);
        else if (kind === "presence") this.onPresence(data.presenceChanged.presences);
        else if (kind === "case" && data.case) this.onCase(data.case);
        else if (kind === "case") this.fail("This case is not available.");
      } else if (message.type === "error") {
        this.onErrors(kind, message.payload);
      } else if (message.type === "complete" && kind === "activity") {
        this.dropConnection(); // the hub ended the stream (e.g. shutting down): resume elsewhere
      }
    }

    onErrors(kind, errors) {
      const code = ((errors[0] || {}).extensions || {}).code;
      if (code === "EVENTS_PRUNED") {
        // our cursor is older than the hub keeps: start the timeline over
        this.cursor = null;
        this.lastSeq = 0;
        this.timeline.replaceChildren();
        this.subscribe("history", HISTORY, { stream: "case:" + this.caseId, after: null });
      } else if (code === "NOT_FOUND" || code === "FORBIDDEN" || code === "UNAUTHENTICATED") {
        this.fail("This case is not available.");
      } else if (kind === "activity" || kind === "history") {
        this.dropConnection(); // anything else: reconnect and resume from the cursor
      }
    }

    follow() {
      this.subscribe("activity", ACTIVITY, { caseId: this.caseId, after: this.cursor });
    }

    onHistory(page) {
      page.edges.forEach((edge) => this.onEvent(edge.node));
      if (page.pageInfo.hasNextPage) {
        this.subscribe("history", HISTORY, { stream: "case:" + this.caseId, after: this.cursor });
      } else {
        this.follow();
      }
    }

    onEvent(event) {
      if (event.seq <= this.lastSeq) return; // already shown (a replay overlapping the live feed)
      this.lastSeq = event.seq;
      this.cursor = event.cursor;
      this.root.dataset.lastSeq = String(event.seq);
      const data = event.data || {};
      if (event.kind === "comment.removed" || event.kind === "comment.deleted") {
        for (const item of this.timeline.querySelectorAll("li[data-comment-id]")) {
          if (item.dataset.commentId === data.commentId) item.classList.add("chw-removed");
        }
      }
      if (event.kind === "case.status_changed" && data.to) this.status.textContent = data.to;
      const item = h("li", "chw-event");
      item.dataset.seq = String(event.seq);
      item.dataset.kind = event.kind;
      item.dataset.eventId = event.id;
      if (data.commentId && event.kind === "comment.added") item.dataset.commentId = data.commentId;
      const time = item.appendChild(h("time", "chw-time", new Date(event.occurredAt).toLocaleString()));
      time.dateTime = event.occurredAt;
      item.appendChild(h("span", "chw-summary", event.summary));
      if (typeof data.body === "string" && event.kind.startsWith("comment.")) {
        item.appendChild(h("blockquote", "chw-body", data.body));
      }
      this.timeline.appendChild(item);
    }

    onPresence(presences) {
      let state = null;
      for (const entry of presences) {
        if (entry.role === "customer") continue; // staff only: "an agent is viewing"
        if (state === null || RANK[entry.state] > RANK[state]) state = entry.state;
      }
      this.presence.hidden = state === null;
      this.presence.textContent = state === null ? "" : PRESENCE_TEXT[state];
    }

    onCase(found) {
      this.subject.textContent = found.subject;
      this.status.textContent = found.status;
    }

    onClose(event) {
      this.ws = null;
      this.onPresence([]); // unknown while offline
      if (event.code === 4401 || event.code === 4403) return this.fail("Your session has expired.");
      if (this.stopped) return;
      // exponential backoff with jitter: 0.5 s, 1 s, 2 s, … up to maxDelay
      const delay = Math.min(this.maxDelay, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.setState("offline", "Reconnecting…");
      this.timer = setTimeout(() => this.connect(), delay);
    }

    fail(text) {
      this.stop();
      this.setState("failed", text);
    }

    /** Drops the socket as a network failure would (the widget reconnects by itself). */
    dropConnection() {
      if (this.ws) this.ws.close();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close();
    }
  }

  function mount(root, options) {
    const hash = new URLSearchParams(location.hash.slice(1));
    const opts = Object.assign({
      hub: root.dataset.hub || hash.get("hub") || undefined,
      caseId: root.dataset.caseId || hash.get("case"),
      token: root.dataset.token || hash.get("token"),
    }, options || {});
    if (!opts.caseId || !opts.token) {
      root.textContent = "Missing case id or token.";
      return null;
    }
    const widget = new Widget(root, opts);
    CollabHubWidget.instances.push(widget);
    return widget;
  }

  const CollabHubWidget = (window.CollabHubWidget = { mount, instances: [] });
  function mountAll() {
    document.querySelectorAll("[data-collabhub-widget]").forEach((root) => mount(root));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
