// Action cards, rendered from the protocol alone: title, body, facts, form fields, buttons by
// style, links. Any card kind renders; the kind only decides whether a card is a step of a
// guided flow (over once the flow moves on) or an answer whose buttons stay usable.

import { h, nextId, linked } from './dom.js';

/** Kinds whose buttons act each time (help, status checks, answers): a click never ends them. */
const REPEATABLE = new Set(['help', 'account_status', 'catalog', 'info', 'order', 'catalog_sync']);

/** The card kinds that are steps of each flow: when a `flow` frame moves it on, they are over. */
const FLOW_KINDS = {
  stripe_connect: new Set(['connect_stripe', 'choose_account', 'connect_existing', 'register', 'business_profile', 'onboarding', 'confirm_disconnect']),
  catalog_sync: new Set(['catalog_sync']),
};

export function isRepeatable(kind) {
  return REPEATABLE.has(kind);
}

export function isStepOf(flow, kind) {
  return FLOW_KINDS[flow]?.has(kind) || false;
}

/**
 * A card element with its behaviour. `onClick(card, action, values)` sends the click; the
 * returned handle sets the card busy, done, or shows errors.
 */
export function renderCard(card, { onClick, orderHref }) {
  const titleId = nextId('card-title');
  const el = h('article.card', { 'aria-labelledby': titleId, dataset: { card: card.id, kind: card.kind } });
  const header = h('header.card-head',
    h('h3.card-title', { id: titleId }, card.title),
    card.mode === 'live' ? h('span.pill.live', 'Live') : null,
    h('span.done-chip', { hidden: true }, 'Done'));
  el.append(header);
  if (card.body) {
    for (const para of card.body.split(/\n{2,}/)) el.append(h('p.card-body', ...linked(para)));
  }
  if (card.facts?.length) {
    el.append(h('dl.facts', card.facts.map((f) => h('div.fact', h('dt', f.label), h('dd', f.value)))));
  }

  const inputs = new Map();
  const errors = new Map();
  let form = null;
  if (card.fields?.length) {
    form = h('form.card-form', { novalidate: true });
    for (const field of card.fields) {
      const id = nextId(`f-${field.name}`);
      const errId = `${id}-err`;
      const helpId = field.help ? `${id}-help` : null;
      let input;
      if (field.kind === 'select') {
        input = h('select', { id, name: field.name, required: field.required },
          field.required && !field.value ? h('option', { value: '' }, 'Choose…') : null,
          (field.options || []).map((o) => h('option', { value: o.value, selected: o.value === field.value }, optionLabel(field, o))));
      } else {
        input = h('input', {
          id, name: field.name, type: field.kind === 'email' ? 'email' : 'text',
          value: field.value || '', required: field.required,
          autocomplete: field.kind === 'email' ? 'email' : field.name === 'legal_name' ? 'name' : 'off',
        });
      }
      input.setAttribute('aria-describedby', [helpId, errId].filter(Boolean).join(' '));
      const err = h('p.field-error', { id: errId, hidden: true });
      inputs.set(field.name, input);
      errors.set(field.name, err);
      form.append(h('div.field',
        h('label', { for: id }, field.label, field.required ? null : h('span.optional', ' (optional)')),
        input,
        helpId ? h('p.field-help', { id: helpId }, field.help) : null,
        err));
    }
    // Enter in a field means the card's primary action (the buttons are outside the form, so
    // the browser's implicit submission does not apply).
    const primary = () => card.actions.find((a) => a.style === 'primary' && !a.url);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (primary()) act(primary());
    });
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target.tagName === 'INPUT' && !ev.isComposing) {
        ev.preventDefault();
        if (primary()) act(primary());
      }
    });
    el.append(form);
  }

  const notice = h('p.card-notice', { role: 'alert', hidden: true });
  const buttons = [];
  const bar = h('div.actions');
  for (const action of card.actions) {
    let btn;
    // Links open Stripe's (or the sandbox's) pages; anything but http(s) is not followed.
    const link = action.url && /^https?:\/\//i.test(action.url);
    if (link) {
      btn = h(`a.btn.${action.style}`, { href: action.url, target: '_blank', rel: 'noopener noreferrer', dataset: { action: action.id } },
        action.label, h('span.ext', { 'aria-hidden': 'true' }, ' ↗'), h('span.sr-only', ' (opens in a new tab)'));
    } else if (action.url) {
      btn = h(`button.btn.${action.style}`, { type: 'button', disabled: true, title: 'This link is not a web address', dataset: { action: action.id } }, action.label);
    } else {
      btn = h(`button.btn.${action.style}`, { type: 'button', dataset: { action: action.id }, onclick: () => act(action) }, action.label);
    }
    buttons.push(btn);
    bar.append(btn);
  }
  const order = card.kind === 'order' || card.kind === 'confirm_refund'
    ? card.facts?.find((f) => f.label === 'Order')?.value?.replace('#', '')
    : null;
  if (order && orderHref) {
    bar.append(h('a.btn.ghost', { href: orderHref(order), dataset: { action: 'view_order' } }, `View order #${order}`));
  }
  if (buttons.length || order) el.append(bar);
  el.append(notice);

  let done = false;
  let busy = null;

  function values() {
    const out = {};
    for (const [name, input] of inputs) out[name] = input.value.trim();
    return out;
  }

  function act(action) {
    if (done || busy) return;
    clearErrors();
    const vals = form ? values() : undefined;
    // Required fields are checked here too, so a missing value is named before anything is sent.
    if (form) {
      const missing = {};
      for (const field of card.fields) {
        if (field.required && !vals[field.name] && action.style === 'primary') missing[field.name] = `Enter ${field.label.toLowerCase()}.`;
      }
      if (Object.keys(missing).length) {
        showErrors(missing);
        return;
      }
    }
    onClick(card, action, vals);
  }

  function setDisabled(disabled) {
    for (const b of buttons) {
      if (b.tagName === 'BUTTON') b.disabled = disabled;
      else if (disabled) {
        b.setAttribute('aria-disabled', 'true');
        b.tabIndex = -1;
        b.removeAttribute('href');
      }
    }
    for (const input of inputs.values()) input.disabled = disabled;
  }

  function clearErrors() {
    notice.hidden = true;
    for (const [name, err] of errors) {
      err.hidden = true;
      err.textContent = '';
      inputs.get(name).removeAttribute('aria-invalid');
    }
  }

  function showErrors(fields, message) {
    let first = null;
    for (const [name, text] of Object.entries(fields || {})) {
      const err = errors.get(name);
      if (!err) continue;
      err.textContent = text;
      err.hidden = false;
      inputs.get(name).setAttribute('aria-invalid', 'true');
      first = first || inputs.get(name);
    }
    if (message && !first) {
      notice.textContent = message;
      notice.hidden = false;
    }
    first?.focus();
  }

  return {
    el,
    card,
    get done() {
      return done;
    },
    /** The click with `actionId` is on its way: the button is busy until its answer. */
    busy(actionId) {
      busy = actionId;
      setDisabled(true);
      const b = buttons.find((x) => x.dataset.action === actionId);
      if (b) {
        b.setAttribute('aria-busy', 'true');
        b.classList.add('busy');
      }
      el.setAttribute('aria-busy', 'true');
    },
    /** The click got its answer: the card takes input again (unless it is over). */
    idle() {
      busy = null;
      el.removeAttribute('aria-busy');
      for (const b of buttons) {
        b.removeAttribute('aria-busy');
        b.classList.remove('busy');
      }
      if (!done) setDisabled(false);
    },
    /**
     * A newer card took this one's place: its controls leave the tab order (they still work
     * with a pointer), so Tab from the composer reaches the current cards, not every old one.
     */
    retire() {
      for (const c of el.querySelectorAll('a[href], button, input, select, textarea')) c.tabIndex = -1;
    },
    /** The card's step is over: shown as done, nothing to click. */
    finish(note) {
      if (done) return;
      done = true;
      this.idle();
      setDisabled(true);
      this.retire();
      el.classList.add('done');
      header.querySelector('.done-chip').hidden = false;
      if (note) {
        notice.textContent = note;
        notice.hidden = false;
        notice.removeAttribute('role');
      }
    },
    error(frame) {
      this.idle();
      if (frame.code === 'invalid_values') showErrors(frame.fields, frame.message);
      else if (frame.code === 'stale_card') this.finish('This step is over. Newer cards below show where things are.');
      else {
        notice.textContent = frame.message;
        notice.hidden = false;
      }
    },
  };
}

/** A country option shows the country's name (the server sends ISO codes: AE, AT, …). */
const regions = typeof Intl !== 'undefined' && Intl.DisplayNames ? new Intl.DisplayNames(['en'], { type: 'region' }) : null;
function optionLabel(field, o) {
  if (regions && /country/.test(field.name) && /^[A-Z]{2}$/.test(o.label || '')) {
    try {
      const name = regions.of(o.label);
      if (name && name !== o.label) return name;
    } catch {
      // not a region code: shown as sent
    }
  }
  return o.label;
}
