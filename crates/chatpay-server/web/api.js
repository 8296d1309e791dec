// The HTTP API, as any client uses it: JSON bodies, errors as {"code", "message"}. A person
// signed in with email and password is known by the session cookie (HttpOnly: this script
// never sees it; every tab shares it). An API token pasted instead lives in this tab's
// sessionStorage only and goes as `Authorization: Bearer <api token>`: never in a URL, a
// cookie or a log.

const KEY = 'chatpay.token';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body; // the whole answer (e.g. the go-live checklist of a 409 not_ready)
  }
}

export const session = {
  /** Signed in by the session cookie (known from GET /v1/session). */
  cookie: false,
  /** Who is signed in: GET /v1/session's answer. */
  me: null,
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** Calls the API; resolves to the parsed body, rejects with an ApiError. */
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (session.token) init.headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'chatpay is not reachable. Check that the server is running, then try again.');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    throw new ApiError(res.status, data?.code || 'http_' + res.status, data?.message || `The server answered ${res.status}.`, data);
  }
  return data;
}

/** A fresh idempotency key, so a retried request acts once. */
export function idempotencyKey() {
  return crypto.randomUUID();
}

/**
 * Downloads `path` (a CSV export) as `file` with this tab's API token: a link can't carry the
 * Authorization header. A tab signed in by the session cookie needs none of this: the link
 * itself works (`download.needed()` says which).
 */
export async function download(path, file) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${session.token}` } }).catch(() => null);
  if (!res) throw new ApiError(0, 'network', 'chatpay is not reachable. Check that the server is running, then try again.');
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    throw new ApiError(res.status, data?.code || 'http_' + res.status, data?.message || `The server answered ${res.status}.`, data);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = file;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

download.needed = () => Boolean(session.token);
