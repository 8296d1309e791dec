// Small DOM helpers: build elements without innerHTML (text is always text, never markup).

/** h('button#id.primary', {onclick, type: 'button'}, 'Label', child…): `tag.class#id` (the id anywhere). */
export function h(spec, attrs, ...children) {
  const id = spec.match(/#([\w-]+)/)?.[1];
  const [tag, ...classes] = spec.replace(/#[\w-]+/, '').split('.');
  const el = document.createElement(tag || 'div');
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A unique element id with a readable prefix. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** How many decimals a currency's minor unit has (2 for USD, 0 for JPY). */
export function minorDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency: currency.toUpperCase() }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** Minor units and a currency as people read them ("$113.00"). */
export function money(amount, currency) {
  if (amount === null || amount === undefined || !currency) return '';
  const code = currency.toUpperCase();
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency: code }).format(amount / 10 ** minorDigits(code));
  } catch {
    return `${amount} ${code}`;
  }
}

/** An RFC 3339 time as a date and time in UTC, saying so. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toLocaleString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' })} UTC`;
}

/** Words from a snake_case code ("partially_refunded" → "Partially refunded"). */
export function words(code) {
  const s = String(code || '').replaceAll('_', ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** An RFC 3339 time as a date in UTC ("1 Jan 2027"). */
export function day(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric' });
}

/** Text with its web addresses as links, opening in a new tab (a buy link in a reply or a card). */
export function linked(text) {
  const out = [];
  let at = 0;
  for (const m of String(text).matchAll(/https?:\/\/[^\s<>"]+[^\s<>".,;:!?)]/g)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    out.push(h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer' }, m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}
