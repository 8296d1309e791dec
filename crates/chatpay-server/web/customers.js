// The Customers screen: everyone who paid (a buyer's email within the project and mode), found
// by search, with a customer's orders, subscriptions, refunds and disputes; and the CSV export
// buttons of Orders and Customers. Each is a function of the API's answers.

import { h, mount, money, when, day, words, nextId } from './dom.js';
import { api, ApiError, download } from './api.js';
import { subscriptionPill } from './billing.js';

const ORDER_TONES = { paid: 'good', partially_refunded: 'info', refunded: 'neutral', open: 'neutral', payment_failed: 'bad', expired: 'neutral' };
const DISPUTE_TONES = { disputed: 'bad', won: 'good', lost: 'bad' };

function pill(tones, status, label) {
  return h(`span.pill.${tones[status] || 'neutral'}`, { dataset: { status } }, label || words(status));
}

/** "$98.00 + €20.00". */
function spent(c) {
  return (c.lifetime_value || []).map((a) => a.display || money(a.amount, a.currency)).join(' + ') || '—';
}

/**
 * "Export CSV": a link to a CSV export. Opened in this browser it is signed in by the session
 * cookie; a tab signed in with a pasted API token fetches the file with the token instead (a
 * link can't carry the Authorization header).
 */
export function exportButton(path, file, label = 'Export CSV') {
  const a = h('a.btn.secondary', { href: path, download: file, dataset: { export: file } }, label);
  const status = h('span.inline-status', { role: 'status' });
  a.addEventListener('click', async (ev) => {
    if (!download.needed()) return;
    ev.preventDefault();
    status.textContent = '';
    a.setAttribute('aria-busy', 'true');
    try {
      await download(a.getAttribute('href'), file);
    } catch (e) {
      status.textContent = e.message;
      status.classList.add('bad');
    } finally {
      a.removeAttribute('aria-busy');
    }
  });
  return h('span.with-status', a, status);
}

// ---------- customers ----------

export async function customers({ project }) {
  const searchId = nextId('search');
  const input = h('input', { id: searchId, name: 'q', type: 'search', autocomplete: 'off', placeholder: 'ana@', 'aria-describedby': `${searchId}-help` });
  const body = h('div.customer-list');
  const count = h('p.muted.small', { role: 'status' });
  const csv = (q) => `/v1/projects/${project.id}/customers.csv${q ? `?q=${encodeURIComponent(q)}` : ''}`;
  const exporter = exportButton(csv(''), `customers-${project.id}.csv`);
  const link = exporter.querySelector('a');
  const row = (c) => h('tr', { dataset: { customer: c.email } },
    h('td', h('a.strong', { href: `#/p/${project.id}/customers/${encodeURIComponent(c.email)}` }, c.email)),
    h('td.num', spent(c)),
    h('td.num', String(c.orders.length)),
    h('td.muted', day(c.first_paid_at)),
    h('td.muted', day(c.last_paid_at)),
    h('td.num', c.disputes ? pill(DISPUTE_TONES, 'disputed', String(c.disputes)) : '0'));
  const draw = async () => {
    const q = input.value.trim();
    link.setAttribute('href', csv(q));
    const list = await api('GET', `/v1/projects/${project.id}/customers${q ? `?q=${encodeURIComponent(q)}` : ''}`);
    const rows = list.data || [];
    count.textContent = `${rows.length} customer${rows.length === 1 ? '' : 's'}${q ? ` matching "${q}"` : ''}.`;
    if (!rows.length) {
      mount(body, h('div.empty-state', h('h2', q ? 'No customer matches' : 'No customers yet'),
        h('p.muted', q ? 'Search is by any part of an email.' : 'A customer appears here when they pay an order.')));
      return;
    }
    mount(body, h('table.table.customers',
      h('caption.sr-only', 'Customers, the biggest spenders first'),
      h('thead', h('tr', ['Customer', 'Lifetime value', 'Orders', 'First paid', 'Last paid', 'Disputes']
        .map((c) => h('th', { scope: 'col', class: ['Lifetime value', 'Orders', 'Disputes'].includes(c) ? 'num' : null }, c)))),
      h('tbody', rows.map(row))));
  };
  const form = h('form.search', { role: 'search', novalidate: true },
    h('div.field.inline-field', h('label', { for: searchId }, 'Search'), input,
      h('button.btn.secondary', { type: 'submit' }, 'Search')),
    h('p.field-help.sr-only', { id: `${searchId}-help` }, 'Any part of an email address.'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    draw().catch((e) => mount(body, h('p.error-box', { role: 'alert' }, e.message)));
  });
  await draw();
  return h('div.page',
    h('section.panel.flush', { 'aria-labelledby': 'customers-head' },
      h('div.panel-head.pad-head',
        h('div', h('h2#customers-head', 'Customers'), count),
        exporter),
      h('div.pad-head', form),
      body),
    h('p.muted.small', 'A customer is a buyer\'s email in this project and mode. Lifetime value is what they paid, less refunds and lost disputes, per currency.'));
}

export async function customer({ project }, email) {
  const base = `/v1/projects/${project.id}`;
  const q = encodeURIComponent(email);
  let c = null;
  try {
    c = await api('GET', `${base}/customers/${q}`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  const [orders, subs] = await Promise.all([
    api('GET', `${base}/orders?customer=${q}&limit=100`),
    api('GET', `${base}/subscriptions?customer=${q}&limit=100`),
  ]);
  const os = orders.data || [];
  const ss = subs.data || [];
  const refunds = os.flatMap((o) => (o.refunds || []).map((r) => ({ o, r })));
  const disputes = os.filter((o) => o.dispute);
  const table = (label, cols, rows) => (rows.length
    ? h('table.table', h('caption.sr-only', label),
      h('thead', h('tr', cols.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', rows))
    : h('p.muted', `No ${label.toLowerCase()}.`));
  const section = (id, title, content) => h('section.panel', { 'aria-labelledby': id }, h('h3.small-head', { id }, title), content);
  return h('div.page',
    h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('ol', h('li', h('a', { href: `#/p/${project.id}/customers` }, 'Customers')), h('li', { 'aria-current': 'page' }, email))),
    h('section.panel', { 'aria-labelledby': 'customer-head' },
      h('div.panel-head', h('h2#customer-head', email), exportButton(`${base}/orders.csv?customer=${q}`, `orders-${email}.csv`, 'Export orders CSV')),
      c ? h('dl.facts',
        h('div.fact', h('dt', 'Lifetime value'), h('dd', spent(c))),
        h('div.fact', h('dt', 'Paid orders'), h('dd', String(c.orders.length))),
        h('div.fact', h('dt', 'First paid'), h('dd', when(c.first_paid_at))),
        h('div.fact', h('dt', 'Last paid'), h('dd', when(c.last_paid_at))),
        h('div.fact', h('dt', 'Disputes'), h('dd', String(c.disputes))))
        : h('p.muted', `${email} hasn't paid for anything in ${project.mode} mode yet.`)),
    section('customer-orders', 'Orders', table('Orders', ['Order', 'Status', 'Amount', 'Date'], os.map((o) => h('tr', { dataset: { order: o.number } },
      h('td', h('a.strong', { href: `#/p/${project.id}/orders/${o.number}` }, `#${o.number}`)),
      h('td', pill(ORDER_TONES, o.status)),
      h('td', o.display?.total || money(o.amount_total, o.currency)),
      h('td.muted', when(o.created_at)))))),
    section('customer-subs', 'Subscriptions', table('Subscriptions', ['Subscription', 'Plan', 'Status', 'Started'], ss.map((s) => h('tr', { dataset: { subscription: s.id } },
      h('td', h('a', { href: `#/p/${project.id}/subscriptions/${s.id}` }, h('code', s.id))),
      h('td', s.display?.plan || '—'),
      h('td', subscriptionPill(s)),
      h('td.muted', s.created ? day(s.created) : '—'))))),
    section('customer-refunds', 'Refunds', table('Refunds', ['Order', 'Amount', 'Status', 'When'], refunds.map(({ o, r }) => h('tr',
      h('td', h('a', { href: `#/p/${project.id}/orders/${o.number}` }, `#${o.number}`)),
      h('td', money(r.amount, o.currency)),
      h('td', words(r.status)),
      h('td.muted', r.created_at ? when(r.created_at) : '—'))))),
    section('customer-disputes', 'Disputes', table('Disputes', ['Order', 'Amount', 'Reason', 'Outcome'], disputes.map((o) => h('tr',
      h('td', h('a', { href: `#/p/${project.id}/orders/${o.number}` }, `#${o.number}`)),
      h('td', money(o.dispute.amount, o.currency)),
      h('td', o.dispute.reason_text || words(o.dispute.reason)),
      h('td', pill(DISPUTE_TONES, o.dispute.outcome)))))));
}
