// The money screens beside Orders: subscriptions (list, detail with invoices, cancel and
// resume), the balance and payouts, and going live. Each is a function of the API's answers.

import { h, mount, money, when, day, words, nextId } from './dom.js';
import { api, idempotencyKey, ApiError } from './api.js';
import { revenueChart } from './chart.js';

const SUB_TONES = { active: 'good', trialing: 'info', past_due: 'bad', unpaid: 'bad', incomplete: 'warn', canceled: 'neutral', incomplete_expired: 'neutral', paused: 'neutral' };
const INVOICE_TONES = { paid: 'good', open: 'warn', draft: 'neutral', uncollectible: 'bad', void: 'neutral' };
const PAYOUT_TONES = { paid: 'good', pending: 'neutral', in_transit: 'info', failed: 'bad', canceled: 'neutral' };

function pill(tones, status, label) {
  return h(`span.pill.${tones[status] || 'neutral'}`, { dataset: { status } }, label || words(status));
}

/** A subscription's status, with "Canceling" when it ends at the period's end. */
export function subscriptionPill(s) {
  const status = pill(SUB_TONES, s.status, s.status === 'past_due' ? 'Past due' : null);
  if (!s.cancel_at_period_end || s.ended_at || s.status === 'canceled') return status;
  // Still active (or past due) until the period's end, then canceled.
  const canceling = h('span.pill.warn', { dataset: { status: 'canceling' } }, 'Canceling');
  return s.status === 'active' ? canceling : h('span.pills', status, canceling);
}

/** When the subscription renews or ends, in words. */
function renewal(s) {
  if (s.ended_at) return `Ended ${day(s.ended_at)}`;
  if (s.status === 'canceled') return s.canceled_at ? `Canceled ${day(s.canceled_at)}` : 'Canceled';
  if (s.cancel_at_period_end || s.cancel_at) return `Ends on ${day(s.cancel_at || s.current_period_end)}`;
  if (s.status === 'trialing' && s.trial_end) return `Trial ends ${day(s.trial_end)}`;
  if (s.current_period_end) return `Renews on ${day(s.current_period_end)}`;
  return '—';
}

function perPeriod(s) {
  const interval = s.items?.[0]?.interval;
  const count = s.items?.[0]?.interval_count || 1;
  const amount = s.display?.amount || money(s.amount_per_period, s.currency);
  if (!interval) return amount;
  return `${amount} / ${count > 1 ? `${count} ${interval}s` : interval}`;
}

function plan(s) {
  return s.display?.plan || (s.items || []).map((i) => i.name).join(', ') || '—';
}

function external(href, label, extra) {
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', ...extra }, label, h('span.sr-only', ' (opens in a new tab)'));
}

// ---------- subscriptions ----------

const STATUSES = ['all', 'active', 'trialing', 'past_due', 'unpaid', 'canceled', 'incomplete'];

export async function subscriptions({ project }) {
  const filterId = nextId('status');
  const select = h('select', { id: filterId, name: 'status' }, STATUSES.map((s) => h('option', { value: s === 'all' ? '' : s }, s === 'all' ? 'All statuses' : words(s))));
  const body = h('div.sub-list');
  const count = h('p.muted.small', { role: 'status' });
  const path = (status, after) => `/v1/projects/${project.id}/subscriptions?limit=50${status ? `&status=${status}` : ''}${after ? `&starting_after=${after}` : ''}`;
  const row = (s) => h('tr', { dataset: { subscription: s.id, status: s.status } },
    h('td', h('a.strong', { href: `#/p/${project.id}/subscriptions/${s.id}` }, s.customer_email || s.customer || s.id), h('div.muted.small', h('code', s.id))),
    h('td', plan(s)),
    h('td.num', perPeriod(s)),
    h('td', subscriptionPill(s)),
    h('td', renewal(s)));
  const draw = async () => {
    const status = select.value;
    const list = await api('GET', path(status));
    const rows = list.data || [];
    count.textContent = `${rows.length}${list.has_more ? '+' : ''} subscription${rows.length === 1 ? '' : 's'}${status ? ` ${words(status).toLowerCase()}` : ''}.`;
    if (!rows.length) {
      mount(body, h('div.empty-state', h('h2', status ? `No ${words(status).toLowerCase()} subscriptions` : 'No subscriptions yet'),
        h('p.muted', 'A subscription starts when a customer pays for a monthly or yearly price.')));
      return;
    }
    const tbody = h('tbody', rows.map(row));
    let next = list.has_more ? rows[rows.length - 1].id : null;
    const more = h('button.btn.secondary', { type: 'button', hidden: !next }, 'Older subscriptions');
    more.addEventListener('click', async () => {
      more.disabled = true;
      const page = await api('GET', path(status, next));
      const got = page.data || [];
      tbody.append(...got.map(row));
      next = page.has_more && got.length ? got[got.length - 1].id : null;
      more.hidden = !next;
      more.disabled = false;
    });
    mount(body,
      h('table.table.subscriptions',
        h('caption.sr-only', 'Subscriptions, newest first'),
        h('thead', h('tr', ['Customer', 'Plan', 'Amount', 'Status', 'Renews or ends'].map((c) => h('th', { scope: 'col', class: c === 'Amount' ? 'num' : null }, c)))),
        tbody),
      h('div.actions.pad-actions', more));
  };
  select.addEventListener('change', () => draw().catch((e) => mount(body, h('p.error-box', { role: 'alert' }, e.message))));
  await draw();
  return h('div.page',
    h('section.panel.flush', { 'aria-labelledby': 'subs-head' },
      h('div.panel-head.pad-head',
        h('div', h('h2#subs-head', 'Subscriptions'), count),
        h('div.field.inline-field', h('label', { for: filterId }, 'Status'), select)),
      body));
}

export async function subscription({ project }, id) {
  const el = h('div.page');
  const draw = async (notice, fresh) => {
    const s = fresh || (await api('GET', `/v1/projects/${project.id}/subscriptions/${encodeURIComponent(id)}`));
    const invoices = s.invoices?.length ? h('table.table.invoices',
      h('caption.sr-only', 'Invoices, newest first'),
      h('thead', h('tr', h('th', { scope: 'col' }, 'Invoice'), h('th', { scope: 'col' }, 'Status'), h('th.num', { scope: 'col' }, 'Amount'), h('th', { scope: 'col' }, 'Date'), h('th', { scope: 'col' }, h('span.sr-only', 'Links')))),
      h('tbody', s.invoices.map((i) => h('tr', { dataset: { invoice: i.id, status: i.status, reason: i.billing_reason || '' } },
        h('td', h('div.strong', i.number || i.id), h('div.muted.small', i.billing_reason === 'subscription_cycle' ? 'Renewal' : i.billing_reason === 'subscription_create' ? 'First payment' : words(i.billing_reason || ''))),
        h('td', pill(INVOICE_TONES, i.status),
          i.status === 'open' && i.next_payment_attempt ? h('div.muted.small', `Retry ${day(i.next_payment_attempt)} (attempt ${i.attempt_count})`) : null),
        h('td.num', i.display?.amount || money(i.amount_due, i.currency)),
        h('td', day(i.paid_at || i.created)),
        h('td.links',
          i.hosted_invoice_url ? external(i.hosted_invoice_url, 'Invoice page', { dataset: { hosted: i.id } }) : null,
          i.invoice_pdf ? external(i.invoice_pdf, 'PDF', { dataset: { pdf: i.id } }) : null))))) : h('p.muted', 'No invoices yet.');
    const facts = h('dl.facts',
      h('div.fact', h('dt', 'Customer'), h('dd', s.customer_email || s.customer || '—')),
      h('div.fact', h('dt', 'Plan'), h('dd', plan(s))),
      h('div.fact', h('dt', 'Amount'), h('dd', perPeriod(s))),
      h('div.fact', h('dt', s.ended_at || s.cancel_at_period_end || s.status === 'canceled' ? 'Ends' : 'Renews'), h('dd', { dataset: { renewal: '' } }, renewal(s))),
      h('div.fact', h('dt', 'Started'), h('dd', day(s.created))),
      s.order_number ? h('div.fact', h('dt', 'First order'), h('dd', h('a', { href: `#/p/${project.id}/orders/${s.order_number}` }, `#${s.order_number}`))) : null);
    mount(el,
      h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('ol', h('li', h('a', { href: `#/p/${project.id}/subscriptions` }, 'Subscriptions')), h('li', { 'aria-current': 'page' }, s.customer_email || s.id))),
      notice ? h('p.success-box', { role: 'status', tabindex: '-1' }, notice) : null,
      h('section.panel', { 'aria-labelledby': 'sub-head' },
        h('div.panel-head', h('div', h('h2#sub-head', plan(s)), h('p.muted.small', h('code', s.id))), subscriptionPill(s)),
        facts,
        changeControls(s, draw)),
      h('section.panel', { 'aria-labelledby': 'inv-head' }, h('h2#inv-head.section-title', 'Invoices'), invoices));
  };
  await draw();
  return el;

  /** Cancel (at the period's end or now) or Resume, each through a confirmation. */
  function changeControls(s, redraw) {
    if (s.status === 'canceled' || s.ended_at) return h('p.muted', 'This subscription has ended.');
    const confirmBox = h('div.confirm', { hidden: true, role: 'group', 'aria-label': 'Confirm the change' });
    const buttons = [];
    const ask = (label, text, yesLabel, path, body, done) => {
      const key = idempotencyKey();
      const errId = nextId('change-err');
      const problem = h('p.error-box', { id: errId, role: 'alert', hidden: true });
      const yes = h('button.btn.danger', { type: 'button', 'aria-describedby': errId, dataset: { confirm: '' } }, yesLabel);
      const no = h('button.btn.secondary', { type: 'button' }, 'Keep it as it is');
      mount(confirmBox, h('p', h('strong', label), ' ', text), h('div.actions', yes, no), problem);
      confirmBox.hidden = false;
      for (const b of buttons) b.disabled = true;
      yes.focus();
      no.addEventListener('click', () => {
        confirmBox.hidden = true;
        for (const b of buttons) b.disabled = false;
        buttons[0].focus();
      });
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        no.disabled = true;
        yes.setAttribute('aria-busy', 'true');
        try {
          const out = await api('POST', `/v1/projects/${project.id}/subscriptions/${encodeURIComponent(s.id)}/${path}`, body, { 'idempotency-key': key });
          await redraw(done(out), out);
          // The buttons are gone: keyboard users land on what happened.
          el.querySelector('.success-box')?.focus();
        } catch (e) {
          problem.textContent = explain(e);
          problem.hidden = false;
          no.disabled = false;
          yes.removeAttribute('aria-busy');
          no.focus();
        }
      });
    };
    const who = s.customer_email || 'the customer';
    if (s.cancel_at_period_end) {
      const resume = h('button.btn.primary', { type: 'button', dataset: { action: 'resume' } }, 'Resume…');
      buttons.push(resume);
      resume.addEventListener('click', () => ask('Resume this subscription?', `It will renew on ${day(s.current_period_end)} and ${who} will be charged ${perPeriod(s)} again.`, 'Resume subscription', 'resume', undefined,
        (out) => `Resumed: it renews on ${day(out.current_period_end)}.`));
      return h('div', h('div.actions', resume), confirmBox);
    }
    const atEnd = h('button.btn.secondary', { type: 'button', dataset: { action: 'cancel_at_period_end' } }, 'Cancel at period end…');
    const now = h('button.btn.danger', { type: 'button', dataset: { action: 'cancel_now' } }, 'Cancel now…');
    buttons.push(atEnd, now);
    atEnd.addEventListener('click', () => ask('Cancel at the end of the period?', `${who} keeps access until ${day(s.current_period_end)} and is not charged again. You can resume it until then.`, 'Cancel at period end', 'cancel', { at_period_end: true },
      (out) => `Canceled at the period's end: it ends on ${day(out.cancel_at || out.current_period_end)}.`));
    now.addEventListener('click', () => ask('Cancel now?', `${who} loses access today and is not refunded for the rest of the period. This can't be undone.`, 'Cancel now', 'cancel', { at_period_end: false },
      () => 'Canceled now.'));
    return h('div', h('div.actions', atEnd, now), confirmBox);
  }
}

function explain(e) {
  if (e instanceof ApiError && e.code === 'subscription_ended') return `This subscription has already ended, so it can't be changed. ${e.message}`;
  if (e instanceof ApiError && e.code === 'not_canceling') return `This subscription isn't set to cancel, so there is nothing to resume. ${e.message}`;
  return e.message;
}

// ---------- balance and payouts ----------

export async function payouts({ project }) {
  const [balance, list, orders] = await Promise.all([
    api('GET', `/v1/projects/${project.id}/balance`),
    api('GET', `/v1/projects/${project.id}/payouts?limit=50`),
    api('GET', `/v1/projects/${project.id}/orders?limit=50`),
  ]);
  // Currencies with nothing in them, available or pending, are left out (unless all are).
  const held = new Set([...(balance.available || []), ...(balance.pending || [])].filter((a) => a.amount !== 0).map((a) => a.currency));
  const shown = (xs) => (held.size ? (xs || []).filter((a) => held.has(a.currency)) : (xs || []).slice(0, 1));
  const amounts = (xs) => (xs?.length ? h('ul.plain.amounts', xs.map((a) => h('li', { dataset: { currency: a.currency } }, h('span.big-amount', a.display || money(a.amount, a.currency))))) : h('p.big-amount', money(0, 'usd')));
  const balanceView = h('section.panel', { 'aria-labelledby': 'balance-head' },
    h('h2#balance-head.section-title', 'Balance'),
    h('div.balance',
      h('div.balance-part', { dataset: { balance: 'available' } }, h('h3.small-head', 'Available'), amounts(shown(balance.available)),
        // Below zero: the same explanation the chat gives.
        shown(balance.available).some((a) => a.amount < 0)
          ? h('p.small.note', { dataset: { negative: '' } }, 'Below zero because refunds are taken from the available balance at once, while the payments they refund are still pending. It evens out as those become available; payouts wait until it is above zero.')
          : h('p.muted.small', 'Paid out on the next payout date.')),
      h('div.balance-part', { dataset: { balance: 'pending' } }, h('h3.small-head', 'Pending'), amounts(shown(balance.pending)), h('p.muted.small', 'Payments not yet available to pay out.'))));
  const rows = list.data || [];
  const payoutsView = h('section.panel.flush', { 'aria-labelledby': 'payouts-head' },
    h('div.pad-head', h('h2#payouts-head.section-title', 'Payouts')),
    rows.length ? h('table.table.payouts',
      h('caption.sr-only', 'Payouts, newest first'),
      h('thead', h('tr', h('th.num', { scope: 'col' }, 'Amount'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Arrives'), h('th', { scope: 'col' }, 'Details'))),
      h('tbody', rows.flatMap((p) => {
        const failedId = nextId('payout-failure');
        const row = h('tr', { dataset: { payout: p.id, status: p.status }, class: p.status === 'failed' ? 'has-failure' : null },
          h('td.num.strong', p.display?.amount || money(p.amount, p.currency)),
          h('td', pill(PAYOUT_TONES, p.status, p.status === 'in_transit' ? 'In transit' : null)),
          h('td.date', day(p.arrival_date)),
          h('td', h('span.muted.small', `${p.payments?.length || 0} payment${p.payments?.length === 1 ? '' : 's'}`)));
        if (p.status !== 'failed') return [row];
        // Why it failed and what to do, on its own line under the payout.
        row.setAttribute('aria-describedby', failedId);
        return [row, h('tr.failure-row', { dataset: { status: 'failed', failureOf: p.id } },
          h('td', { colspan: 4, id: failedId }, h('div.failure', { role: 'note' },
            h('strong', 'Why it failed: '), p.failure_explained || p.failure_message || words(p.failure_code))))];
      })))
      : h('div.empty-state', h('h2', 'No payouts yet'), h('p.muted', 'Stripe pays the available balance out to the bank account on the payout schedule.')));
  const paid = (orders.data || []).filter((o) => ['paid', 'partially_refunded', 'refunded'].includes(o.status));
  const fundsView = h('section.panel.flush', { 'aria-labelledby': 'funds-head' },
    h('div.pad-head', h('h2#funds-head.section-title', 'When paid orders become available'), h('p.muted.small', 'Each payment is available to pay out from its date.')),
    paid.length ? h('table.table.funds',
      h('caption.sr-only', 'Paid orders and when their money becomes available'),
      h('thead', h('tr', h('th', { scope: 'col' }, 'Order'), h('th.num', { scope: 'col' }, 'Amount'), h('th', { scope: 'col' }, 'Available'))),
      h('tbody', paid.map((o) => h('tr', { dataset: { order: o.number } },
        h('td', h('a.strong', { href: `#/p/${project.id}/orders/${o.number}` }, `#${o.number}`), o.customer_email ? h('div.muted.small', o.customer_email) : null),
        // What stays with the business: the total less what was refunded.
        h('td.num', o.amount_refunded ? [money(o.amount_total - o.amount_refunded, o.currency), h('div.muted.small', `${money(o.amount_total, o.currency)} less ${money(o.amount_refunded, o.currency)} refunded`)] : o.display?.total || money(o.amount_total, o.currency)),
        h('td', o.funds_available_on ? day(o.funds_available_on) : h('span.muted', 'Not known yet')))))) : h('p.muted.pad-text', 'No paid orders yet.'));
  // The chart is an extra: the page stands without it.
  const chart = await revenueChart(project).catch(() => null);
  return h('div.page', balanceView, chart, payoutsView, fundsView);
}

// ---------- going live ----------

/** The go-live page: the checklist's answer, and the switch back. `onMode(project)` updates the shell. */
export async function goLive({ project, chat, go }, onMode) {
  const el = h('div.page.narrow');
  const draw = (p, checklist, notice, problem) => {
    const live = p.mode === 'live';
    const action = live
      ? h('button.btn.secondary#back-to-test', { type: 'button' }, 'Back to test mode')
      : h('button.btn.primary#go-live', { type: 'button' }, checklist ? 'Check again and go live' : 'Go live');
    action.addEventListener('click', async () => {
      action.disabled = true;
      action.setAttribute('aria-busy', 'true');
      try {
        const out = await api('POST', `/v1/projects/${p.id}/mode`, { mode: live ? 'test' : 'live' });
        onMode(out);
        draw(out, null, out.mode === 'live' ? 'You\'re live: real customers can pay, and real money moves.' : 'Back in test mode: no real money moves.');
      } catch (e) {
        if (e instanceof ApiError && e.code === 'not_ready' && Array.isArray(e.body?.checklist)) draw(p, e.body.checklist, null, e.message);
        else draw(p, checklist, null, e.message);
      }
      el.querySelector('.success-box, .error-box, #go-live, #back-to-test')?.focus();
    });
    const list = checklist ? h('ol.checklist', checklist.map((c) => h('li', { class: c.ok ? 'ok' : 'missing', dataset: { item: c.item, ok: String(c.ok) } },
      h('span.check-mark', { 'aria-hidden': 'true' }, c.ok ? '✓' : '!'),
      h('div',
        h('div.strong', c.label, h('span.sr-only', c.ok ? ': ready' : ': missing')),
        c.detail ? h('p.small.muted', c.detail) : null,
        !c.ok && c.fix ? h('p.small.fix', h('strong', 'How to fix: '), c.fix) : null,
        // The button the fix names: the chat's checklist card's own action, pressed there.
        !c.ok && c.action && chat ? h('div.actions', h('button.btn.secondary.small', { type: 'button', dataset: { fix: c.action }, onclick: () => {
          chat.sayThen('go live', 'go_live', c.action);
          go(`#/p/${p.id}`);
        } }, c.action_label)) : null)))) : null;
    mount(el,
      notice ? h('p.success-box', { role: 'status', tabindex: '-1' }, notice) : null,
      problem ? h('p.error-box', { role: 'alert', tabindex: '-1' }, problem) : null,
      h('section.panel', { 'aria-labelledby': 'live-head' },
        h('div.panel-head', h('h2#live-head', live ? 'Live mode' : 'Go live'), h(`span.mode.${live ? 'live' : 'test'}`, live ? 'LIVE' : 'TEST')),
        h('p', live
          ? 'This project takes real payments. Switch back to test mode to try things without moving money.'
          : 'Going live checks that the Stripe account can take real payments: the account is active, the catalog and the webhook exist in live mode, a statement descriptor is set and live keys are in place. The project switches only when every item passes.'),
        list ? h('h3.small-head', 'Go-live checklist') : null,
        list,
        h('div.actions', action)));
  };
  draw(project);
  return el;
}
