// The chat connection: protocol v1 over /v1/chat. It remembers the last `seq` it has and, when
// the connection drops, reconnects with `resume_after` so nothing is lost or shown twice; frames
// sent but not yet answered are sent again with the same `id` (the server answers an id once).

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 5000];

export class ChatSocket extends EventTarget {
  constructor(project, token) {
    super();
    this.project = project;
    this.token = token;
    this.lastSeq = 0;
    this.pending = new Map(); // id -> frame, until a frame or error replies to it
    this.state = 'connecting';
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.drop('offline');
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    if (this.ws) this.ws.close(1000, 'page left');
  }

  setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/chat`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let welcomed = false;
    // The first connection replays the stored transcript (history); a reconnection's backlog
    // is what was missed, as new as live frames.
    const firstOpen = this.lastSeq === 0;
    ws.onopen = () => {
      // Without a token (signed in by the cookie), the upgrade's cookie says who this is.
      const hello = { type: 'hello', project: this.project, resume_after: this.lastSeq };
      if (this.token) hello.token = this.token;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        welcomed = true;
        this.attempt = 0;
        this.backlogUntil = frame.last_seq;
        this.setState('open', { welcome: frame });
        for (const f of this.pending.values()) ws.send(JSON.stringify(f));
        if (frame.last_seq <= this.lastSeq) this.dispatchEvent(new CustomEvent('caught-up'));
        return;
      }
      if (frame.type === 'error' && !welcomed) {
        // A refused hello: a wrong or revoked token, or a project that is not this token's.
        this.stopped = true;
        ws.close(1000, 'refused');
        this.setState('refused', { error: frame });
        return;
      }
      if (typeof frame.seq === 'number') {
        if (frame.seq <= this.lastSeq) return; // already shown
        this.lastSeq = frame.seq;
      }
      if (frame.reply_to) this.pending.delete(frame.reply_to);
      const backlog = firstOpen && typeof frame.seq === 'number' && frame.seq <= (this.backlogUntil || 0);
      this.dispatchEvent(new CustomEvent('frame', { detail: { frame, backlog } }));
      if (typeof frame.seq === 'number' && frame.seq === this.backlogUntil) this.dispatchEvent(new CustomEvent('caught-up'));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.setState('reconnecting', { attempt: this.attempt });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Closes the connection as a network loss would (the browser went offline). */
  drop(reason) {
    if (!this.ws || this.stopped) return;
    const ws = this.ws;
    this.ws = null;
    ws.close(1000, reason);
    clearTimeout(this.timer);
    this.setState('reconnecting', { offline: true });
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  /** Sends a client frame (say or click); kept until answered, and sent again after a drop. */
  send(frame) {
    this.pending.set(frame.id, frame);
    if (this.ws && this.state === 'open') this.ws.send(JSON.stringify(frame));
  }
}

/** A client frame id, unique within the conversation across tabs and reloads. */
export function frameId(prefix) {
  return `${prefix}-${crypto.randomUUID()}`;
}
