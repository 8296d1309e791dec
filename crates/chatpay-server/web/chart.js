// The small revenue and MRR chart of Balance & payouts: revenue per month over the last six
// months (paid orders, less refunds, by when they were paid) as bars, and monthly recurring
// revenue now as a line across them. Plain SVG, hidden from screen readers, which read the same
// figures as a table instead. From the API's answers: the orders list and
// GET …/metrics/subscriptions.

import { h, money } from './dom.js';
import { api } from './api.js';

const MONTHS = 6;
const SVG = 'http://www.w3.org/2000/svg';
const PAID = ['paid', 'partially_refunded', 'refunded'];

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/** The first instants (UTC) of the last `MONTHS` months, oldest first, and the next month's. */
function monthStarts(now) {
  const out = [];
  for (let i = MONTHS - 1; i >= -1; i -= 1) out.push(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1));
  return out;
}

const label = (t) => new Date(t).toLocaleDateString('en-US', { month: 'short', year: 'numeric', timeZone: 'UTC' });

export async function revenueChart(project) {
  const starts = monthStarts(new Date());
  const since = new Date(starts[0]).toISOString().slice(0, 10);
  const orders = [];
  let after = null;
  do {
    const page = await api('GET', `/v1/projects/${project.id}/orders?limit=100&since=${since}${after ? `&starting_after=${after}` : ''}`);
    orders.push(...(page.data || []));
    after = page.has_more ? page.next_starting_after : null;
  } while (after && orders.length < 5000);
  const metrics = await api('GET', `/v1/projects/${project.id}/metrics/subscriptions`).catch(() => null);
  // Revenue per currency and month.
  const revenue = new Map();
  for (const o of orders.filter((x) => PAID.includes(x.status))) {
    const at = Date.parse(o.paid_at || o.created_at);
    const m = starts.findIndex((s, i) => i < MONTHS && at >= s && at < starts[i + 1]);
    if (m < 0) continue;
    if (!revenue.has(o.currency)) revenue.set(o.currency, new Array(MONTHS).fill(0));
    revenue.get(o.currency)[m] += o.amount_total - (o.amount_refunded || 0);
  }
  const mrr = metrics?.mrr || [];
  // The chart shows one currency: the one with the most revenue (else MRR's); the table all.
  const totals = [...revenue.entries()].map(([c, xs]) => [c, xs.reduce((a, b) => a + b, 0)]).sort((a, b) => b[1] - a[1]);
  const currency = totals[0]?.[0] || mrr[0]?.currency || 'usd';
  const bars = revenue.get(currency) || new Array(MONTHS).fill(0);
  const mrrNow = mrr.find((a) => a.currency === currency)?.amount || 0;
  const top = Math.max(...bars, mrrNow, 1);
  const [W, H, pad, foot] = [560, 170, 8, 22];
  const slot = (W - 2 * pad) / MONTHS;
  const y = (v) => pad + (H - pad - foot) * (1 - v / top);
  const chart = svg('svg', { class: 'revenue-chart', viewBox: `0 0 ${W} ${H}`, 'aria-hidden': 'true', focusable: 'false' },
    svg('line', { class: 'axis', x1: pad, x2: W - pad, y1: H - foot, y2: H - foot }),
    ...bars.flatMap((v, i) => [
      svg('rect', { class: 'bar', x: pad + i * slot + slot * 0.2, width: slot * 0.6, y: y(v), height: Math.max(H - foot - y(v), 0) }),
      svg('text', { class: 'tick', x: pad + i * slot + slot / 2, y: H - 6, 'text-anchor': 'middle' }, label(starts[i]).replace(/ \d+$/, '')),
    ]),
    mrrNow ? svg('line', { class: 'mrr', x1: pad, x2: W - pad, y1: y(mrrNow), y2: y(mrrNow) }) : '',
    mrrNow ? svg('text', { class: 'mrr-label', x: W - pad, y: y(mrrNow) - 4, 'text-anchor': 'end' }, `MRR now ${money(mrrNow, currency)}`) : '');
  const currencies = [...new Set([...revenue.keys(), ...mrr.map((a) => a.currency)])];
  const shownCurrencies = currencies.length ? currencies : [currency];
  const table = h('table.table.chart-table',
    h('caption', `Revenue per month (paid orders less refunds, by payment date, UTC) and monthly recurring revenue now${shownCurrencies.length > 1 ? '' : ` (${currency.toUpperCase()})`}`),
    h('thead', h('tr', h('th', { scope: 'col' }, 'Month'), ...shownCurrencies.map((c) => h('th.num', { scope: 'col' }, `Revenue (${c.toUpperCase()})`)))),
    h('tbody',
      ...starts.slice(0, MONTHS).map((s, i) => h('tr', { dataset: { month: new Date(s).toISOString().slice(0, 7) } },
        h('th', { scope: 'row' }, label(s)),
        ...shownCurrencies.map((c) => h('td.num', money((revenue.get(c) || [])[i] || 0, c))))),
      h('tr', { dataset: { month: 'mrr' } },
        h('th', { scope: 'row' }, 'MRR now'),
        ...shownCurrencies.map((c) => h('td.num', money(mrr.find((a) => a.currency === c)?.amount || 0, c))))));
  return h('section.panel', { 'aria-labelledby': 'chart-head' },
    h('h2#chart-head.section-title', 'Revenue and MRR'),
    h('p.muted.small', `Bars: revenue per month in ${currency.toUpperCase()}. Line: what subscriptions bring in per month now (MRR). The figures are in the table below.`),
    h('figure.chart', chart),
    table);
}
