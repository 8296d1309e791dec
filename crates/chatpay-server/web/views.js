// The screens besides the chat: projects, a new project, Integrations, Stripe details with the
// product catalog, orders and an order. Each is a function of the API's answers.

import { h, mount, money, minorDigits, when, day, words, nextId } from './dom.js';
import { api, idempotencyKey } from './api.js';
import { exportButton } from './customers.js';

/** The URL of an embedded asset of this version. */
export function asset(name) {
  return new URL(`./${name}`, import.meta.url).href;
}

let refresher = null; // {flow, run}: the open screen, redrawn when its flow moves on
let menus = [];

/** A `flow` frame arrived live: the screen that shows that flow's outcome reloads. */
export function flowChanged(f) {
  if (refresher && refresher.flow === f.flow && refresher.el.isConnected) refresher.run(f);
}

function watch(flow, el, run) {
  refresher = { flow, el, run };
}

export function closeMenus() {
  for (const close of menus) close();
}

function backendNote(project) {
  return h('div.callout.warn', { role: 'note' },
    h('h2', 'Payments are unavailable in this project'),
    h('p', `"${project.name}" was created without the backend. Payments need a server side (Stripe calls, webhooks, orders), and the backend can only be chosen when a project is created.`),
    h('p', 'To take payments, start a new project with ', h('strong', 'Backend'), ' turned on.'),
    h('a.btn.primary', { href: '#/new' }, 'New backend project'));
}

function errorBox(message) {
  return h('p.error-box', { role: 'alert' }, message);
}

function statusPill(status) {
  const tone = { paid: 'good', partially_refunded: 'info', refunded: 'neutral', open: 'neutral', payment_failed: 'bad', expired: 'neutral' }[status] || 'neutral';
  // An open order is a checkout someone started and has not paid (maybe never will).
  const label = { open: 'Checkout started', expired: 'Checkout expired' }[status] || words(status);
  return h(`span.pill.${tone}`, { dataset: { status } }, label);
}

// ---------- the sidebar's + ----------

export function plusMenu(project, button, go) {
  const note = h('p.menu-note', { hidden: true, role: 'alert' });
  const connect = h('button.menu-item', { type: 'button', role: 'menuitem', dataset: { item: 'connect_stripe' } },
    h('span.menu-label', 'Connect Stripe Account'),
    h('span.menu-sub', project.backend ? 'Take payments with Stripe' : 'Needs a backend project'));
  const menu = h('div.menu#plus-menu', { role: 'menu', hidden: true, 'aria-label': 'Add to this project' }, connect, note);
  const close = () => {
    const inside = menu.contains(document.activeElement);
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (inside) button.focus(); // keyboard users land where they opened it
  };
  menus = [close];
  button.addEventListener('click', () => {
    const open = menu.hidden;
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) connect.focus();
  });
  connect.addEventListener('click', async () => {
    connect.disabled = true;
    try {
      await api('POST', `/v1/projects/${project.id}/integrations/stripe/connect`);
      close();
      go(`#/p/${project.id}`);
    } catch (e) {
      note.textContent = e.message;
      note.hidden = false;
    } finally {
      connect.disabled = false;
    }
  });
  return menu;
}

// ---------- projects ----------

export function projectList(projects) {
  if (!projects.length) {
    return h('div.page.narrow',
      h('div.empty-state',
        h('h2', 'Create your first project'),
        h('p.muted', 'A project is one app. chatpay connects it to Stripe, syncs its products and sells them.'),
        h('a.btn.primary', { href: '#/new' }, 'New project')));
  }
  return h('div.page',
    h('div.page-head', h('h2', 'Your projects'), h('a.btn.primary', { href: '#/new' }, 'New project')),
    h('ul.tiles', projects.map((p) => h('li.tile',
      h('a.tile-link', { href: `#/p/${p.id}` },
        h('span.tile-name', p.name),
        h('span.tile-meta', p.backend ? 'Backend on' : 'No backend', ' · ', p.mode === 'live' ? 'Live' : 'Test', ' · created ', when(p.created_at)))))));
}

export function newProject({ go, refresh }) {
  const nameId = nextId('name');
  const name = h('input', { id: nameId, name: 'name', required: true, maxlength: 100, autocomplete: 'off', 'aria-describedby': `${nameId}-err` });
  const nameErr = h('p.field-error', { id: `${nameId}-err`, hidden: true });
  const backend = h('input#backend', { type: 'checkbox', role: 'switch', checked: true, 'aria-describedby': 'backend-note' });
  const problem = h('p.error-box', { role: 'alert', hidden: true });
  const submit = h('button.btn.primary', { type: 'submit' }, 'Create project');
  const form = h('form.panel.form', { novalidate: true },
    h('div.field', h('label', { for: nameId }, 'Project name'), name, nameErr),
    h('div.toggle-row',
      h('label.toggle', { for: 'backend' }, backend, h('span.track', { 'aria-hidden': 'true' }), h('span.toggle-label', 'Backend')),
      h('p.field-help#backend-note', 'Payments need the backend (Stripe calls, webhooks, orders). ', h('strong', 'It can\'t be turned on later:'), ' a project created without it never takes payments.')),
    problem,
    h('div.form-actions', h('a.btn.secondary', { href: '#/' }, 'Cancel'), submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    nameErr.hidden = true;
    name.removeAttribute('aria-invalid');
    problem.hidden = true;
    if (!name.value.trim()) {
      nameErr.textContent = 'Give the project a name.';
      nameErr.hidden = false;
      name.setAttribute('aria-invalid', 'true');
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const p = await api('POST', '/v1/projects', { name: name.value.trim(), backend: backend.checked });
      await refresh();
      go(`#/p/${p.id}`);
    } catch (e) {
      problem.textContent = e.message;
      problem.hidden = false;
      submit.disabled = false;
    }
  });
  setTimeout(() => name.focus(), 0);
  return h('div.page.narrow', h('p.muted', 'A project is one app you are building.'), form);
}

// ---------- chat ----------

export function chatPage({ project, chat }) {
  return h('div.chat-page', project.backend ? null : backendNote(project), chat.el);
}

// ---------- Integrations ----------

const STATES = {
  onboarding: ['Onboarding not finished', 'Stripe still needs the details from its onboarding page.', 'neutral'],
  verification_pending: ['Verification pending', 'Stripe is checking the details. This usually takes a few minutes, sometimes a few days. Nothing to do now.', 'info'],
  restricted: ['Restricted', 'Stripe needs more information before the account can take payments or pay out.', 'warn'],
  rejected: ['Rejected', 'Stripe will not work with this account.', 'bad'],
  active: ['Active', 'The account can take payments and receive payouts.', 'good'],
};

export async function integrations({ project, go }) {
  const el = h('div.page');
  const draw = async () => {
    const s = await api('GET', `/v1/projects/${project.id}/integrations/stripe`);
    const body = h('div.integration-body');
    const problem = h('p.error-box', { role: 'alert', hidden: true });
    const connectBtn = (label) => {
      const b = h('button.btn.primary', { type: 'button', dataset: { action: 'connect' } }, label);
      b.addEventListener('click', async () => {
        b.disabled = true;
        b.setAttribute('aria-busy', 'true');
        try {
          await api('POST', `/v1/projects/${project.id}/integrations/stripe/connect`);
          go(`#/p/${project.id}`);
        } catch (e) {
          problem.textContent = e.message;
          problem.hidden = false;
          b.disabled = false;
          b.removeAttribute('aria-busy');
        }
      });
      return b;
    };
    if (!project.backend) {
      body.append(h('p', 'Not available: this project has no backend.'));
    } else if (!s.connected) {
      const step = s.flow ? ` Connecting is under way (${words(s.flow.state)}); Connect shows the current step in the chat.` : '';
      body.append(h('p.state-line', h('span.pill.neutral', 'Not connected')),
        h('p', `Connect a Stripe account to take payments.${step}`), h('div.actions', connectBtn(s.flow ? 'Continue connecting' : 'Connect')));
    } else {
      const a = s.account || {};
      const [label, text, tone] = STATES[a.state] || [words(a.state), '', 'neutral'];
      body.append(h('p.state-line', h(`span.pill.${tone}`, { dataset: { state: a.state } }, label)), h('p', text));
      if (a.state === 'rejected' && a.disabled_reason_text) body.append(h('p', h('strong', 'Why: '), a.disabled_reason_text));
      if (a.needs?.length) body.append(h('div', h('h3.small-head', 'Stripe needs'), h('ul.needs', a.needs.map((n) => h('li', n)))));
      if (a.current_deadline) body.append(h('p.muted', `Due by ${when(a.current_deadline)}.`));
      body.append(h('dl.facts',
        h('div.fact', h('dt', 'Account'), h('dd', h('code', a.id || ''))),
        h('div.fact', h('dt', 'Mode'), h('dd', s.mode === 'live' ? 'Live' : 'Test')),
        h('div.fact', h('dt', 'Payments'), h('dd', a.charges_enabled ? 'Enabled' : 'Not yet')),
        h('div.fact', h('dt', 'Payouts'), h('dd', a.payouts_enabled ? 'Enabled' : 'Not yet')),
        s.connected_at ? h('div.fact', h('dt', 'Connected'), h('dd', when(s.connected_at))) : null));
      const actions = h('div.actions');
      if (a.state === 'restricted' || a.state === 'onboarding') actions.append(connectBtn('Fix now'));
      if (a.state === 'rejected') actions.append(connectBtn('See how to resubmit'));
      actions.append(h('a.btn.secondary', { href: `#/p/${project.id}/settings/stripe` }, 'Stripe details'));
      body.append(actions);
    }
    mount(el,
      project.backend ? null : backendNote(project),
      h('section.panel.integration', { 'aria-labelledby': 'stripe-head' },
        h('div.integration-head', h('span.logo.stripe', { 'aria-hidden': 'true' }, 'S'), h('div', h('h2#stripe-head', 'Stripe'), h('p.muted', 'Payments, payouts and the product catalog'))),
        body, problem));
  };
  await draw();
  watch('stripe_connect', el, () => draw().catch(() => {}));
  return el;
}

// ---------- Settings -> Integrations -> Stripe details -> Product catalog ----------

/** The last sync's report: `{products, sellable, diff: {added, changed, removed}, attention: [[name, [why…]]]}`. */
function reportView(r) {
  if (!r) return h('p.muted', 'Not synced yet.');
  const list = (title, items) => (items?.length ? h('div.report-part', h('h4', title), h('ul', items.map((x) => h('li', x)))) : null);
  const attention = (r.attention || []).map(([name, why]) => `${name}: ${why.join(' ')}`);
  return h('div.report',
    h('p.report-summary', `${r.sellable} of ${r.products} product${r.products === 1 ? '' : 's'} ready to sell.`),
    list('Added', r.diff?.added), list('Changed', r.diff?.changed), list('Removed', r.diff?.removed),
    list('Needs attention', attention));
}

export async function stripeDetails({ project, chat, go }) {
  const el = h('div.page');
  // Products are made by talking: this box sends the same chat turn ("add a product called …"),
  // and the chat shows the confirmation card.
  const describe = h('input#new-product', { type: 'text', name: 'product', autocomplete: 'off',
    placeholder: 'Yoga class, $25 — or: membership at $12 a month or $120 a year', 'aria-describedby': 'new-product-help' });
  const addForm = h('form.add-product', { 'aria-labelledby': 'add-product-head' },
    h('h3#add-product-head.small-head', 'Add a product'),
    h('label', { for: 'new-product' }, 'What do you sell, and for how much?'),
    h('div.row', describe, h('button.btn.secondary', { type: 'submit' }, 'Add in the chat')),
    h('p.muted.small#new-product-help', 'chatpay shows what it understood, with Create and Edit, in the chat.'));
  addForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = describe.value.trim();
    if (!text || !chat) return;
    chat.say(/\b(add|create|new|sell|offer|make)\b/i.test(text) ? text : `add a product called ${text}`);
    go(`#/p/${project.id}`);
  });
  const problem = h('p.error-box', { role: 'alert', hidden: true });
  const syncing = h('p.muted#sync-status', { role: 'status' });
  const sync = h('button.btn.primary#sync', { type: 'button' }, 'Sync');
  const draw = async () => {
    const [c, stripe] = await Promise.all([
      api('GET', `/v1/projects/${project.id}/catalog`),
      api('GET', `/v1/projects/${project.id}/integrations/stripe`),
    ]);
    const products = c.products || [];
    const account = stripe.account;
    const [stateLabel, , tone] = (account && STATES[account.state]) || ['Not connected', '', 'neutral'];
    const dashboard = account?.dashboard_url
      ? h('a.btn.secondary.small', { href: account.dashboard_url, target: '_blank', rel: 'noopener noreferrer', dataset: { dashboard: '' } },
        'Manage products in Stripe', h('span', { 'aria-hidden': 'true' }, ' ↗'), h('span.sr-only', ' (opens in a new tab)'))
      : null;
    const details = h('section.panel', { 'aria-labelledby': 'details-head' },
      h('div.panel-head', h('h2#details-head', 'Stripe details'), h('div.head-right', h(`span.pill.${tone}`, stateLabel), dashboard)),
      account
        ? h('dl.facts',
          h('div.fact', h('dt', 'Account'), h('dd', h('code', account.id))),
          h('div.fact', h('dt', 'Mode'), h('dd', stripe.mode === 'live' ? 'Live' : 'Test')),
          h('div.fact', h('dt', 'Payments'), h('dd', account.charges_enabled ? 'Enabled' : 'Not yet')),
          account.payout_schedule ? h('div.fact', h('dt', 'Payouts'), h('dd', `${words(account.payout_schedule.interval)}, ${account.payout_schedule.delay_days} days after payment`)) : null)
        : h('p.muted', 'Connect Stripe from ', h('a', { href: `#/p/${project.id}/integrations` }, 'Integrations'), ' to sync a catalog.'));
    const table = products.length ? h('table.table.catalog',
      h('caption.sr-only', 'Products'),
      h('thead', h('tr', h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col' }, 'Prices'), h('th', { scope: 'col' }, 'Status'))),
      h('tbody', products.map((p) => h('tr', { dataset: { product: p.id, sellable: String(p.sellable) } },
        h('td', h('div.strong', p.name || '(no name)'), p.description ? h('div.muted.small', p.description) : null),
        h('td', p.prices.length ? h('ul.plain', p.prices.map((pr) => h('li', pr.display || money(pr.amount, pr.currency), pr.default ? h('span.muted', ' · default') : null, pr.active ? null : h('span.muted', ' · archived'),
          // A buy link opens a fresh checkout: the way to sell without writing code.
          pr.buy_url ? h('a.buy-link', { href: pr.buy_url, target: '_blank', rel: 'noopener noreferrer', dataset: { buy: pr.id } }, 'Buy link', h('span', { 'aria-hidden': 'true' }, ' ↗'), h('span.sr-only', ` for ${p.name}, opens a checkout in a new tab`)) : null))) : h('span.muted', 'No price')),
        h('td',
          p.sellable ? h('span.pill.good', 'Sellable') : h('span.pill.warn', 'Needs attention'),
          p.problems.length ? h('ul.problems', p.problems.map((x) => h('li', { class: x.blocking ? 'blocking' : 'hint' }, x.message)))
            : null))))) : h('p.muted', c.synced_at ? 'The Stripe account has no products.' : 'Press Sync to read the products from Stripe.');
    mount(el,
      project.backend ? null : backendNote(project),
      h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('ol',
        h('li', h('a', { href: `#/p/${project.id}/integrations` }, 'Settings')), h('li', h('a', { href: `#/p/${project.id}/integrations` }, 'Integrations')), h('li', h('a', { href: `#/p/${project.id}/settings/stripe` }, 'Stripe details')), h('li', { 'aria-current': 'page' }, 'Product catalog'))),
      details,
      h('section.panel', { 'aria-labelledby': 'catalog-head' },
        h('div.panel-head', h('div', h('h2#catalog-head', 'Product catalog'), h('p.muted', c.synced_at ? `Last synced ${when(c.synced_at)} · ${c.mode === 'live' ? 'Live' : 'Test'} mode` : 'Never synced')), sync),
        syncing, problem,
        project.backend && account ? addForm : null,
        c.last_sync ? h('div.sync-report', h('h3.small-head', 'Last sync'), reportView(c.last_sync)) : null,
        table));
  };
  sync.addEventListener('click', async () => {
    sync.disabled = true;
    sync.setAttribute('aria-busy', 'true');
    problem.hidden = true;
    syncing.textContent = 'Syncing with Stripe…';
    try {
      await api('POST', `/v1/projects/${project.id}/integrations/stripe/catalog/sync`);
    } catch (e) {
      problem.textContent = e.message;
      problem.hidden = false;
      syncing.textContent = '';
      sync.disabled = false;
      sync.removeAttribute('aria-busy');
    }
  });
  await draw();
  watch('catalog_sync', el, async (f) => {
    if (f.state === 'syncing') return;
    await draw().catch(() => {});
    sync.disabled = false;
    sync.removeAttribute('aria-busy');
    syncing.textContent = f.state === 'done' ? 'Sync finished.' : 'The sync stopped: see the chat for why, and Retry.';
  });
  return el;
}

// ---------- orders ----------

export async function orders({ project }) {
  const path = (after) => `/v1/projects/${project.id}/orders?limit=50${after ? `&starting_after=${after}` : ''}`;
  const list = await api('GET', path());
  const rows = list.data || [];
  const row = (o) => h('tr', { dataset: { order: o.number } },
    h('td', h('a.strong', { href: `#/p/${project.id}/orders/${o.number}` }, `#${o.number}`)),
    h('td', statusPill(o.status)),
    h('td.num', o.display?.total || money(o.amount_total, o.currency)),
    h('td', o.customer_email || h('span.muted', '—')),
    h('td.muted', when(o.created_at)),
    h('td.muted', o.funds_available_on ? day(o.funds_available_on) : '—'));
  if (!rows.length) {
    return h('div.page', project.backend ? null : backendNote(project), h('section.panel.flush', { 'aria-label': 'Orders' },
      h('div.empty-state', h('h2', 'No orders yet'), h('p.muted', 'Orders appear here when a checkout is created, and the chat tells you when one is paid.'))));
  }
  const tbody = h('tbody', rows.map(row));
  let next = list.has_more ? list.next_starting_after : null;
  const more = h('button.btn.secondary', { type: 'button', hidden: !next }, 'Older orders');
  more.addEventListener('click', async () => {
    more.disabled = true;
    const page = await api('GET', path(next));
    tbody.append(...(page.data || []).map(row));
    next = page.has_more ? page.next_starting_after : null;
    more.hidden = !next;
    more.disabled = false;
  });
  return h('div.page', project.backend ? null : backendNote(project),
    h('div.actions', exportButton(`/v1/projects/${project.id}/orders.csv`, `orders-${project.id}.csv`)),
    h('section.panel.flush', { 'aria-label': 'Orders' },
      h('table.table.orders',
        h('caption.sr-only', 'Orders, newest first'),
        h('thead', h('tr', ['Order', 'Status', 'Amount', 'Customer', 'Date', 'Funds available'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody)),
    h('div.actions', more));
}

// An order's dispute as the order page says it: the amount and reason, then the evidence
// deadline while Stripe waits for an answer, or how it ended.
function disputeText(d, currency) {
  const what = `${money(d.amount, currency)} disputed (${d.reason_text})`;
  if (d.outcome === 'won') return `${what}: won, the money was returned`;
  if (d.outcome === 'lost') return `${what}: lost${d.fee ? `, with a ${money(d.fee, currency)} fee` : ''}`;
  return d.evidence_due_by && d.awaits_response ? `${what}: evidence due ${day(d.evidence_due_by)}` : `${what}: under review`;
}

export async function order({ project }, number) {
  const el = h('div.page');
  // `fresh`: the order as a refund's answer returned it (newer than a read made right after).
  const draw = async (notice, fresh) => {
    const o = fresh || (await api('GET', `/v1/projects/${project.id}/orders/${encodeURIComponent(number)}`));
    const lines = h('table.table.lines',
      h('caption.sr-only', 'Lines'),
      h('thead', h('tr', h('th', { scope: 'col' }, 'Item'), h('th.num', { scope: 'col' }, 'Qty'), h('th.num', { scope: 'col' }, 'Amount'))),
      h('tbody', (o.lines || []).map((l) => h('tr', h('td', l.name), h('td.num', l.quantity), h('td.num', l.display?.amount || money(l.amount_total ?? l.amount, o.currency))))));
    const facts = h('dl.facts',
      h('div.fact', h('dt', 'Total'), h('dd', o.display?.total || money(o.amount_total, o.currency))),
      o.amount_discount ? h('div.fact', h('dt', 'Discount'), h('dd', { dataset: { discount: '' } }, `${money(o.amount_discount, o.currency)} off with a code`)) : null,
      o.amount_refunded ? h('div.fact', h('dt', 'Refunded'), h('dd', money(o.amount_refunded, o.currency))) : null,
      o.dispute ? h('div.fact', h('dt', 'Dispute'), h('dd', { dataset: { dispute: o.dispute.outcome } }, disputeText(o.dispute, o.currency))) : null,
      h('div.fact', h('dt', 'Customer'), h('dd', o.customer_email || '—')),
      h('div.fact', h('dt', 'Created'), h('dd', when(o.created_at))),
      o.funds_available_on ? h('div.fact', h('dt', 'Funds available'), h('dd', { dataset: { funds: '' } }, day(o.funds_available_on))) : null,
      o.last_payment_error ? h('div.fact', h('dt', 'Last payment attempt'), h('dd', o.last_payment_error.message || String(o.last_payment_error))) : null);
    const links = h('div.actions',
      o.receipt_url ? h('a.btn.secondary', { href: o.receipt_url, target: '_blank', rel: 'noopener noreferrer' }, 'Receipt', h('span.sr-only', ' (opens in a new tab)')) : null,
      o.invoice?.hosted_invoice_url ? h('a.btn.secondary', { href: o.invoice.hosted_invoice_url, target: '_blank', rel: 'noopener noreferrer' }, 'Invoice', h('span.sr-only', ' (opens in a new tab)')) : null,
      o.url && o.status === 'open' ? h('a.btn.secondary', { href: o.url, target: '_blank', rel: 'noopener noreferrer' }, 'Checkout page', h('span.sr-only', ' (opens in a new tab)')) : null);
    if (o.receipt_url && o.customer_email) links.append(resendButton(o));
    const refunds = o.refunds?.length ? h('section', h('h3.small-head', 'Refunds'), h('ul.plain', o.refunds.map((r) => h('li', money(r.amount, o.currency), ' · ', words(r.status), r.created_at ? ` · ${when(r.created_at)}` : '')))) : null;
    mount(el,
      h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('ol', h('li', h('a', { href: `#/p/${project.id}/orders` }, 'Orders')), h('li', { 'aria-current': 'page' }, `#${o.number}`))),
      notice ? h('p.success-box', { role: 'status', tabindex: '-1' }, notice) : null,
      h('section.panel', { 'aria-labelledby': 'order-head' },
        h('div.panel-head', h('h2#order-head', `Order #${o.number}`), statusPill(o.status)),
        facts, lines, links, refunds,
        o.amount_refundable > 0 ? refundForm(o, () => draw) : null));
    // The confirmed refund's button is gone with the redraw: focus goes to what happened, not
    // to the top of the page.
    if (notice) el.querySelector('.success-box')?.focus();
  };
  await draw();
  return el;

  function resendButton(o) {
    const b = h('button.btn.secondary', { type: 'button', dataset: { action: 'resend_receipt' } }, 'Resend receipt');
    const status = h('span.inline-status', { role: 'status' });
    b.addEventListener('click', async () => {
      b.disabled = true;
      b.setAttribute('aria-busy', 'true');
      status.textContent = '';
      try {
        const out = await api('POST', `/v1/projects/${project.id}/orders/${o.number}/receipt`, undefined, { 'idempotency-key': idempotencyKey() });
        status.textContent = `Sent the receipt to ${out.sent_to} again.`;
      } catch (e) {
        status.textContent = e.message;
        status.classList.add('bad');
      } finally {
        b.disabled = false;
        b.removeAttribute('aria-busy');
      }
    });
    return h('span.with-status', b, status);
  }

  function refundForm(o, redraw) {
    const amountId = nextId('amount');
    const digits = minorDigits(o.currency);
    const amount = h('input', { id: amountId, name: 'amount', inputmode: 'decimal', autocomplete: 'off', placeholder: (o.amount_refundable / 10 ** digits).toFixed(digits), 'aria-describedby': `${amountId}-help ${amountId}-err` });
    const err = h('p.field-error', { id: `${amountId}-err`, hidden: true });
    const confirmBox = h('div.confirm', { hidden: true, role: 'group', 'aria-label': 'Confirm the refund' });
    const start = h('button.btn.danger', { type: 'submit' }, 'Refund…');
    const form = h('form.refund', { novalidate: true },
      h('h3.small-head', 'Refund'),
      h('div.field', h('label', { for: amountId }, `Amount (${o.currency.toUpperCase()})`), amount,
        h('p.field-help', { id: `${amountId}-help` }, `Leave empty to refund everything left: ${money(o.amount_refundable, o.currency)}.`), err),
      h('div.actions', start), confirmBox);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      err.hidden = true;
      amount.removeAttribute('aria-invalid');
      let minor = o.amount_refundable;
      const text = amount.value.trim().replace(/^[$€£]/, '');
      if (text) {
        const shape = digits ? new RegExp(`^\\d+(\\.\\d{1,${digits}})?$`) : /^\d+$/;
        if (!shape.test(text) || Number(text) <= 0) return fieldError(digits ? 'Enter an amount like 5 or 12.50.' : 'Enter a whole amount like 500.');
        minor = Math.round(Number(text) * 10 ** digits);
        if (minor > o.amount_refundable) return fieldError(`At most ${money(o.amount_refundable, o.currency)} is left to refund.`);
      }
      // The same confirmation as the chat's: what, to whom, what remains; one click acts once.
      const key = idempotencyKey();
      const yes = h('button.btn.danger', { type: 'button' }, `Refund ${money(minor, o.currency)}`);
      const no = h('button.btn.secondary', { type: 'button' }, 'Keep the payment');
      const problem = h('p.error-box', { role: 'alert', hidden: true });
      mount(confirmBox,
        h('p', h('strong', `Refund ${money(minor, o.currency)} of order #${o.number}`), ` to ${o.customer_email || 'the customer'}? `,
          `${money(o.amount_refundable - minor, o.currency)} will remain refundable. Refunds can't be undone.`),
        h('div.actions', yes, no), problem);
      confirmBox.hidden = false;
      start.disabled = true;
      yes.focus();
      no.addEventListener('click', () => {
        confirmBox.hidden = true;
        start.disabled = false;
        start.focus();
      });
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        no.disabled = true;
        yes.setAttribute('aria-busy', 'true');
        try {
          const out = await api('POST', `/v1/projects/${project.id}/orders/${o.number}/refunds`, { amount: minor }, { 'idempotency-key': key });
          await redraw()(`Refunded ${money(minor, o.currency)} of order #${o.number}.`, out.order);
        } catch (e) {
          problem.textContent = e.message;
          problem.hidden = false;
          yes.disabled = false;
          no.disabled = false;
          yes.removeAttribute('aria-busy');
        }
      });
    });
    function fieldError(text) {
      err.textContent = text;
      err.hidden = false;
      amount.setAttribute('aria-invalid', 'true');
      amount.focus();
    }
    return form;
  }
}

/** Settings → API tokens: the workspace's tokens (named, last use), a new one shown once, revoke. */
export async function apiTokens() {
  const el = h('div.page.narrow');
  const render = async (fresh) => {
    const { data } = await api('GET', '/v1/tokens');
    const name = h('input#token-name', { name: 'name', required: true, maxlength: 100, placeholder: 'ci, my laptop…', 'aria-describedby': 'token-name-error' });
    const err = h('p.field-error#token-name-error', { hidden: true });
    const form = h('form.token-form', { novalidate: true },
      h('div.field', h('label', { for: 'token-name' }, 'Name'), name, err),
      h('button.btn.primary', { type: 'submit' }, 'Create token'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const made = await api('POST', '/v1/tokens', { name: name.value });
        await render(made);
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
        name.setAttribute('aria-invalid', 'true');
        name.focus();
      }
    });
    const shown = fresh ? h('section.panel.new-token', { role: 'status' },
      h('h3', `New token “${fresh.name}”`),
      h('p', 'Copy it now: it is stored only as a hash and will not be shown again.'),
      h('code.secret#new-token', { tabindex: '-1' }, fresh.token)) : null;
    const rows = data.map((t) => h('tr', { dataset: { token: t.id } },
      h('td', t.name),
      h('td', when(t.created_at)),
      h('td', t.last_used_at ? when(t.last_used_at) : 'Never'),
      h('td', t.revoked_at ? `Revoked ${when(t.revoked_at)}` : h('button.btn.secondary.small.revoke', {
        type: 'button',
        'aria-label': `Revoke ${t.name}`,
        onclick: async () => {
          await api('DELETE', `/v1/tokens/${t.id}`);
          await render(null);
        },
      }, 'Revoke'))));
    mount(el,
      h('p.muted', 'API tokens let scripts and other programs use chatpay as you: send one as ', h('code', 'Authorization: Bearer'), '. A revoked token stops working at once.'),
      shown,
      form,
      data.length ? h('table.data.tokens', h('thead', h('tr', h('th', 'Name'), h('th', 'Created'), h('th', 'Last used'), h('th', h('span.sr-only', 'Revoke')))), h('tbody', rows)) : h('p.muted', 'No API tokens yet.'),
      inviteBox());
    (shown ? el.querySelector('#new-token') : name)?.focus?.();
  };
  // A teammate joins by a one-time link: they choose their own email and password.
  function inviteBox() {
    const out = h('div.invite-out', { role: 'status' });
    const make = h('button.btn.secondary#make-invite', { type: 'button' }, 'Make an invite link');
    make.addEventListener('click', async () => {
      make.disabled = true;
      try {
        const inv = await api('POST', '/v1/invites');
        mount(out, h('p', 'Send this link to one teammate. It works once, until ', when(inv.expires_at), '.'),
          h('code.secret#invite-link', { tabindex: '-1' }, inv.url));
        out.querySelector('#invite-link').focus();
      } catch (e) {
        mount(out, h('p.error-box', e.message));
      } finally {
        make.disabled = false;
      }
    });
    return h('section.panel.invite', { 'aria-labelledby': 'invite-head' },
      h('h2#invite-head.section-title', 'Invite a teammate'),
      h('p.muted', 'They sign in to this workspace with their own email and password, and see all of its projects.'),
      make, out);
  }
  await render(null);
  return el;
}
