// The live stream: one WebSocket to /api/v1/live on the page's own origin,
// reconnected with capped exponential backoff, and a watchdog that calls the
// stream lost when nothing (not even a heartbeat) arrived for `staleMs`.

export function liveURL(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/live`;
}

export class LiveStream {
  /**
   * @param {string} url
   * @param {{onMessage: (msg: object) => void, onState: (state: "up"|"down") => void,
   *          staleMs?: number, minBackoffMs?: number, maxBackoffMs?: number}} options
   */
  constructor(url, { onMessage, onState, staleMs = 15000, minBackoffMs = 1000, maxBackoffMs = 30000 }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.staleMs = staleMs;
    this.minBackoffMs = minBackoffMs;
    this.maxBackoffMs = maxBackoffMs;
    this.backoffMs = minBackoffMs;
    this.socket = null;
    this.lastMessageAt = 0;
    this.state = null;
    this.reconnectTimer = null;
    this.watchdogTimer = null;
  }

  start() {
    this.connect(); // the page starts "down"/"connecting" until the first message

    this.watchdogTimer = setInterval(() => this.checkStale(), 1000);
  }

  stop() {
    clearInterval(this.watchdogTimer);
    clearTimeout(this.reconnectTimer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
    this.setState("down");
  }

  connect() {
    this.reconnectTimer = null;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    this.lastMessageAt = performance.now(); // the connect attempt starts the stale clock
    socket.onmessage = (message) => this.receive(message);
    socket.onclose = () => this.closed(socket);
    // onerror is always followed by onclose, which does the work.
  }

  receive(message) {
    this.lastMessageAt = performance.now();
    this.backoffMs = this.minBackoffMs; // a talking server earns a fast reconnect next time
    this.setState("up");
    let parsed;
    try {
      parsed = JSON.parse(message.data);
    } catch {
      console.warn("honeyatlas: ignoring a live message that is not JSON");
      return;
    }
    if (parsed && typeof parsed === "object") this.onMessage(parsed);
  }

  closed(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.setState("down");
    const jitter = 0.5 + Math.random() / 2;
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs * jitter);
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
  }

  checkStale() {
    if (!this.socket || performance.now() - this.lastMessageAt < this.staleMs) return;
    this.setState("down");
    // A silent socket may be half-open: drop it so the reconnect path takes over.
    const socket = this.socket;
    socket.close();
    this.closed(socket);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }
}
