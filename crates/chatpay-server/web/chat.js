// The chat: the message list (an ARIA log: each finished message is announced once; the
// transcript replayed on opening is not), the composer, and the cards' life cycle (busy while
// a click is answered, done when their step is over).

import { h, mount, linked } from './dom.js';
import { renderCard, isRepeatable, isStepOf } from './cards.js';
import { frameId } from './socket.js';

/** What this tab typed, by frame id, so its own lines survive a reload of the tab. */
function sentStore(project) {
  const key = `chatpay.sent.${project}`;
  const read = () => {
    try {
      return JSON.parse(sessionStorage.getItem(key) || '{}');
    } catch {
      return {};
    }
  };
  return {
    get: (id) => read()[id],
    put(id, text) {
      const all = read();
      all[id] = text;
      const ids = Object.keys(all);
      for (const old of ids.slice(0, Math.max(0, ids.length - 200))) delete all[old];
      sessionStorage.setItem(key, JSON.stringify(all));
    },
  };
}

export class ChatView {
  constructor({ project, socket, orderHref, onFlow }) {
    this.project = project;
    this.socket = socket;
    this.orderHref = orderHref;
    this.onFlow = onFlow || (() => {});
    this.cards = new Map(); // card id -> handle of its latest copy
    this.clicks = new Map(); // click id -> card handle
    this.said = new Set(); // say ids already shown
    this.sent = sentStore(project.id);

    this.log = h('div.log', { role: 'log', 'aria-live': 'off', 'aria-relevant': 'additions', 'aria-label': 'Conversation', tabindex: '0' });
    this.empty = h('div.empty',
      h('h2', 'Ask chatpay'),
      h('p.muted', 'Type what you want to do with payments. For example:'),
      h('div.suggestions', ['I want to add payments', 'Sync my products', 'Show my recent payments'].map((s) =>
        h('button.chip', { type: 'button', onclick: () => this.say(s) }, s))));
    this.input = h('textarea', { id: 'composer-input', rows: 1, placeholder: 'Message chatpay…', 'aria-label': 'Message', maxlength: 4000, autocomplete: 'off' });
    this.sendBtn = h('button.btn.primary.send', { type: 'submit' }, 'Send');
    this.composer = h('form.composer', { 'aria-label': 'Send a message' }, this.input, this.sendBtn);
    this.composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.say(this.input.value);
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.say(this.input.value);
      }
    });
    this.input.addEventListener('input', () => this.grow());
    this.el = h('section.chat', { 'aria-label': 'Chat' }, h('div.scroller', this.empty, this.log), this.composer);

    socket.addEventListener('frame', (ev) => this.frame(ev.detail.frame, ev.detail.backlog));
    // Once the stored transcript has been replayed, new messages are announced.
    socket.addEventListener('caught-up', () => this.log.setAttribute('aria-live', 'polite'));
  }

  grow() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  scroll() {
    const s = this.el.querySelector('.scroller');
    s.scrollTop = s.scrollHeight;
  }

  add(el) {
    this.empty.hidden = true;
    // The first of consecutive messages from chatpay carries its avatar.
    const prev = this.log.lastElementChild;
    if (el.classList.contains('bot') && !prev?.classList.contains('bot')) el.classList.add('first');
    this.log.append(el);
    this.scroll();
  }

  say(text) {
    text = (text || '').trim();
    if (!text) return;
    const id = frameId('say');
    this.sent.put(id, text);
    this.showSaid(id, text, true);
    this.socket.send({ type: 'say', id, text });
    this.input.value = '';
    this.grow();
    this.input.focus();
  }

  /**
   * Says `text`, then presses `action` on the card of `kind` that answers it (a page's button
   * for something only the chat's card can start: the Go live page's fixes).
   */
  sayThen(text, kind, action) {
    this.then = { kind, action };
    this.say(text);
  }

  showSaid(id, text, sending) {
    if (this.said.has(id)) return;
    this.said.add(id);
    const el = h('div.msg.me', { dataset: { id } },
      h('div.bubble', h('span.sr-only', 'You: '), text),
      sending ? h('span.status', 'Sending…') : null);
    this.add(el);
  }

  click(card, action, values) {
    const handle = this.cards.get(card.id);
    const id = frameId('click');
    this.clicks.set(id, handle);
    if (handle) {
      // Where the answer's messages start, and which button to give the focus back to.
      handle.answeredFrom = this.log.childElementCount;
      handle.pressed = action.id;
    }
    handle?.busy(action.id);
    const frame = { type: 'click', id, card: card.id, action: action.id };
    if (values && Object.keys(values).length) frame.values = values;
    this.socket.send(frame);
  }

  /** A frame from the server, live or replayed (`backlog`). */
  frame(f, backlog) {
    if (f.type === 'said') {
      // The person's own message, from this tab or another (or before a reload).
      this.showSaid(f.reply_to, f.text, false);
      this.log.querySelector(`.msg.me[data-id="${CSS.escape(f.reply_to)}"] .status`)?.remove();
      return;
    }
    if (f.reply_to) {
      const mine = this.sent.get(f.reply_to);
      if (mine) this.showSaid(f.reply_to, mine, false);
      const status = this.log.querySelector(`.msg.me[data-id="${CSS.escape(f.reply_to)}"] .status`);
      if (status) status.remove();
    }
    if (f.type === 'error') return this.error(f);
    const clicked = f.reply_to && this.clicks.get(f.reply_to);
    if (f.type === 'flow') {
      for (const handle of this.cards.values()) {
        if (isStepOf(f.flow, handle.card.kind)) handle.finish();
      }
      this.onFlow(f, backlog);
    } else if (f.type === 'reply') {
      this.add(h('div.msg.bot', { dataset: { seq: f.seq } }, h('div.bubble', h('span.sr-only', 'chatpay: '), ...linked(f.text))));
    } else if (f.type === 'card') {
      const previous = this.cards.get(f.card.id);
      const handle = renderCard(f.card, { onClick: (c, a, v) => this.click(c, a, v), orderHref: this.orderHref });
      if (previous) previous.finish('Shown again below.');
      // Older cards of the same kind are history: out of the tab order.
      for (const other of this.cards.values()) {
        if (other.card.kind === f.card.kind && other.card.id !== f.card.id) other.retire();
      }
      this.cards.set(f.card.id, handle);
      handle.el.dataset.seq = f.seq;
      this.add(h('div.msg.bot.with-card', { dataset: { seq: f.seq } }, handle.el));
      const then = !backlog && this.then;
      if (then && f.card.kind === then.kind) {
        this.then = null;
        const action = f.card.actions.find((a) => a.id === then.action);
        if (action) this.click(f.card, action);
      }
    }
    if (clicked) {
      this.clicks.delete(f.reply_to);
      clicked.idle();
      // A step card's click is answered: that step is over (answers keep their buttons).
      if (!isRepeatable(clicked.card.kind) && this.cards.get(clicked.card.id) === clicked) clicked.finish();
      this.refocus = { id: f.reply_to, handle: clicked, placed: null };
    }
    // Each frame of the click's answer (they come one by one) may bring the card to focus.
    if (this.refocus && f.reply_to === this.refocus.id) this.keepFocus(this.refocus);
  }

  /**
   * The clicked button was disabled while its answer came (and may stay so): focus would drop
   * to the top of the page. It goes to the newest card's first control, or to the composer.
   */
  keepFocus(refocus) {
    const clicked = refocus.handle;
    const active = document.activeElement;
    const lost = !active || active === document.body || active === refocus.placed;
    if (!lost && (!clicked.el.contains(active) || !active.disabled)) {
      this.refocus = null; // the person moved on
      return;
    }
    const usable = 'button:not([disabled]), a[href], input:not([disabled]), select:not([disabled])';
    // A card that is still current (an answer, repeatable): its button again.
    let target = clicked.done ? null : clicked.el.querySelector(`[data-action="${CSS.escape(clicked.pressed || '')}"]:not([disabled])`);
    // Otherwise the newest current card the answer brought, or the composer.
    if (!target) {
      const cards = [...this.log.children].slice(clicked.answeredFrom || 0)
        .map((m) => m.querySelector('article.card:not(.done)')).filter(Boolean);
      target = cards.pop()?.querySelector(usable);
    }
    refocus.placed = target || this.input;
    refocus.placed.focus({ preventScroll: true });
  }

  error(f) {
    const clicked = this.clicks.get(f.reply_to);
    if (clicked) {
      this.clicks.delete(f.reply_to);
      clicked.error(f);
      return;
    }
    this.add(h('div.msg.bot.error', h('div.bubble', { role: 'alert' }, f.message)));
  }

  focus() {
    this.input.focus();
  }

  clear() {
    mount(this.log);
  }
}
