// The shell: sign-in, the project sidebar, the top bar (mode badge, connection state,
// Integrations), and the hash routes. Routes are fragments (#/p/prj_…/orders) so the server
// serves one page and no route ever carries a secret.

import { h, mount } from './dom.js';
import { api, session, ApiError } from './api.js';
import { ChatSocket } from './socket.js';
import { ChatView } from './chat.js';
import * as views from './views.js';
import * as billing from './billing.js';
import * as customers from './customers.js';

const root = document.getElementById('app');
const state = {
  projects: [],
  project: null, // the open project
  socket: null,
  chat: null,
  mode: null,
  connection: 'connecting',
  route: null,
};

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------- sign-in ----------

/** Whether the session cookie signs this browser in (every tab shares it). */
async function checkSession() {
  try {
    // 204 (null): no cookie at all, signed out.
    session.me = await api('GET', '/v1/session');
    session.cookie = session.me?.kind === 'session';
    return session.cookie;
  } catch {
    session.cookie = false;
    session.me = null;
    return false;
  }
}

async function checkToken(token) {
  session.token = token;
  try {
    state.projects = (await api('GET', '/v1/projects')).data;
    session.me = await api('GET', '/v1/session').catch(() => null);
    return null;
  } catch (e) {
    session.token = null;
    if (e instanceof ApiError && e.status === 401) {
      return 'That API token was not accepted: it is wrong, or it has been revoked. Check it, or create a new one with `chatpay token create --name NAME`.';
    }
    return e.message;
  }
}

function field(id, label, attrs, help) {
  const input = h(`input#${id}`, { name: id, 'aria-describedby': `${id}-error${help ? ` ${id}-help` : ''}`, ...attrs });
  const err = h(`p.field-error#${id}-error`, { hidden: true });
  return { input, err, el: h('div.field', h('label', { for: id }, label), input, help ? h(`p.field-help#${id}-help`, help) : null, err) };
}

function showError(f, message) {
  f.err.textContent = message || '';
  f.err.hidden = !message;
  f.input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** The first-run link's page: the owner's sign-in (email and password) is made here, once. */
/** What the sign-in creation page says and where it sends the code: the owner's first run, or a teammate's invite. */
const OWNER = { path: '/v1/session/owner', title: 'Create your sign-in', text: 'You are the first person here: choose the email and password you will sign in with, in any tab or browser.' };
const INVITE = { path: '/v1/session/invite', title: 'Join the workspace', text: 'You were invited: choose the email and password you will sign in with, in any tab or browser. The link works once.' };

function ownerPage(code, kind = OWNER) {
  teardown();
  const email = field('email', 'Email', { type: 'email', autocomplete: 'username', required: true });
  const password = field('password', 'Password', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }, 'At least 10 characters.');
  const problem = h('p.error-box#owner-error', { role: 'alert', hidden: true });
  const submit = h('button.btn.primary.wide', { type: 'submit' }, 'Create sign-in');
  const form = h('form.owner-form', { novalidate: true }, email.el, password.el, problem, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(email, '');
    showError(password, '');
    problem.hidden = true;
    submit.disabled = true;
    try {
      await api('POST', kind.path, { code, email: email.input.value, password: password.input.value });
      await checkSession();
      route();
    } catch (e) {
      submit.disabled = false;
      const fields = e.body?.fields || {};
      if (fields.email) showError(email, fields.email);
      if (fields.password) showError(password, fields.password);
      if (!fields.email && !fields.password) {
        problem.textContent = e.message;
        problem.hidden = false;
      }
      (fields.email ? email.input : password.input).focus();
    }
  });
  mount(root, h('main#main.signin', { tabindex: '-1' },
    h('div.signin-card',
      h('div.brand.big', h('img', { src: views.asset('icon.svg'), alt: '', width: 36, height: 36 }), h('span', 'chatpay')),
      h('h1', kind.title),
      h('p.muted', kind.text),
      form)));
  root.className = 'signed-out';
  email.input.focus();
}

function signInPage(message) {
  teardown();
  const email = field('email', 'Email', { type: 'email', autocomplete: 'username' });
  const password = field('password', 'Password', { type: 'password', autocomplete: 'current-password' });
  const pwError = h('p.error-box#signin-error', { role: 'alert', hidden: !message }, message || '');
  const pwSubmit = h('button.btn.primary.wide#signin-submit', { type: 'submit' }, 'Sign in');
  const pwForm = h('form.password-form', { novalidate: true }, email.el, password.el, pwError, pwSubmit);
  pwForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    pwSubmit.disabled = true;
    try {
      await api('POST', '/v1/session', { email: email.input.value, password: password.input.value });
      session.token = null;
      await checkSession();
      go('#/');
    } catch (e) {
      pwSubmit.disabled = false;
      pwError.textContent = e.message;
      pwError.hidden = false;
      password.input.value = '';
      password.input.focus();
    }
  });

  const input = h('input#token', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', placeholder: 'cpk_…', 'aria-describedby': 'token-help token-error' });
  const err = h('p.field-error#token-error', { hidden: true });
  const submit = h('button.btn.secondary.wide', { type: 'submit' }, 'Sign in with the token');
  const form = h('form.signin-form', { novalidate: true },
    h('div.field', h('label', { for: 'token' }, 'API token'), input,
      h('p.field-help#token-help', 'Or run ', h('code', 'chatpay token create --name me'), ' and paste what it prints (this tab only).'),
      err),
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      err.textContent = 'Paste your API token first.';
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    const problem = await checkToken(token);
    if (problem) {
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
      err.textContent = problem;
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else go('#/');
  });
  mount(root, h('main#main.signin', { tabindex: '-1' },
    h('div.signin-card',
      h('div.brand.big', h('img', { src: views.asset('icon.svg'), alt: '', width: 36, height: 36 }), h('span', 'chatpay')),
      h('h1', 'Sign in'),
      h('p.muted', 'Add payments to your app by chatting.'),
      pwForm,
      h('div.or', h('span', 'or')),
      form)));
  root.className = 'signed-out';
  (message ? password.input : email.input).focus();
}

async function signOut() {
  if (session.cookie) await api('DELETE', '/v1/session').catch(() => {});
  session.token = null;
  session.cookie = false;
  session.me = null;
  teardown();
  signInPage();
}

/** Signed out by the server (a revoked token, a session ended in another tab). */
function signedOut() {
  const had = session.cookie ? 'You are signed out (the session ended). Sign in again.' : 'Your API token is no longer accepted (it may have been revoked). Sign in again.';
  session.token = null;
  session.cookie = false;
  session.me = null;
  return signInPage(had);
}

function signedIn() {
  return Boolean(session.token || session.cookie);
}

// ---------- the project and its socket ----------

function teardown() {
  state.socket?.stop();
  state.socket = null;
  state.chat = null;
  state.project = null;
}

function openProject(project) {
  if (state.project?.id === project.id && state.socket) {
    state.project = project;
    state.mode = project.mode;
    return;
  }
  teardown();
  state.project = project;
  state.mode = project.mode;
  state.connection = 'connecting';
  const socket = new ChatSocket(project.id, session.token);
  state.socket = socket;
  state.chat = new ChatView({
    project,
    socket,
    orderHref: (n) => `#/p/${project.id}/orders/${n}`,
    onFlow: (f, backlog) => {
      if (backlog) return;
      views.flowChanged(f);
      // Going live (or back to test) from the chat: the badge follows the project's mode.
      if (f.flow === 'go_live') api('GET', `/v1/projects/${project.id}`).then(modeChanged, () => {});
    },
  });
  socket.addEventListener('state', (ev) => {
    const { state: s, welcome, error } = ev.detail;
    if (s === 'refused') {
      // Refused at hello: the token no longer works (revoked), or the project is not this
      // token's any more. The API tells which.
      api('GET', '/v1/projects').then(
        () => {
          const conn = document.getElementById('conn');
          if (conn) conn.textContent = `Not connected: ${error?.message || 'refused'}`;
        },
        (e) => {
          if (e instanceof ApiError && e.status === 401) signedOut();
        },
      );
    }
    if (welcome) state.mode = welcome.mode;
    state.connection = s;
    renderStatus();
  });
  socket.start();
}

function renderStatus() {
  const badge = document.getElementById('mode-badge');
  if (badge) {
    const live = state.mode === 'live';
    badge.textContent = live ? 'LIVE' : 'TEST';
    badge.className = `mode ${live ? 'live' : 'test'}`;
    badge.title = live ? 'Live mode: real money moves' : 'Test mode: no real money moves';
  }
  const liveLink = document.getElementById('live-link');
  if (liveLink) liveLink.textContent = state.mode === 'live' ? 'Live mode' : 'Go live';
  const conn = document.getElementById('conn');
  if (conn) {
    const s = state.connection;
    const text = { open: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…', refused: 'Not connected' }[s] || s;
    conn.textContent = text;
    conn.className = `conn ${s}`;
    // Only a project's page has a connection to show.
    conn.hidden = !state.socket || s === 'open';
  }
}

// ---------- layout ----------

function sidebar(current, section) {
  const list = h('ul.projects', state.projects.map((p) =>
    h('li', h('a', { href: `#/p/${p.id}`, 'aria-current': current?.id === p.id ? 'page' : null },
      h('span.dot', { class: p.backend ? 'on' : 'off', 'aria-hidden': 'true' }), h('span.pname', p.name),
      p.backend ? null : h('span.sr-only', ' (no backend)')))));
  let nav = null;
  if (current) {
    const plus = h('button.icon-btn#plus', { type: 'button', 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-controls': 'plus-menu', title: 'Add to this project' }, h('span', { 'aria-hidden': 'true' }, '+'), h('span.sr-only', 'Add to this project'));
    const menu = views.plusMenu(current, plus, go);
    const item = (id, label, href) => h('li', h('a', { href, 'aria-current': section === id ? 'page' : null, dataset: { nav: id } }, label));
    nav = h('nav.project-nav', { 'aria-label': current.name },
      h('div.nav-head', h('span.nav-title', current.name), h('div.plus-wrap', plus, menu)),
      h('ul',
        item('chat', 'Chat', `#/p/${current.id}`),
        item('orders', 'Orders', `#/p/${current.id}/orders`),
        item('customers', 'Customers', `#/p/${current.id}/customers`),
        item('subscriptions', 'Subscriptions', `#/p/${current.id}/subscriptions`),
        item('payouts', 'Balance & payouts', `#/p/${current.id}/payouts`),
        item('catalog', 'Product catalog', `#/p/${current.id}/settings/stripe`),
        item('integrations', 'Integrations', `#/p/${current.id}/integrations`),
        current.backend ? item('live', 'Go live', `#/p/${current.id}/live`) : null));
  }
  return h('aside.sidebar#sidebar', { 'aria-label': 'Projects' },
    h('a.brand', { href: '#/' }, h('img', { src: views.asset('icon.svg'), alt: '', width: 24, height: 24 }), h('span', 'chatpay')),
    nav,
    h('div.side-section',
      h('div.side-head', h('h2', 'Projects'), h('a.small-link', { href: '#/new' }, 'New')),
      state.projects.length ? list : h('p.muted.small', 'No projects yet.')),
    h('div.side-foot',
      session.me?.email ? h('p.muted.small.who', session.me.email) : null,
      h('a.small-link#tokens-link', { href: '#/settings/tokens', 'aria-current': section === 'tokens' ? 'page' : null }, 'Settings → API tokens'),
      h('button.link-btn', { type: 'button', onclick: signOut }, 'Sign out')));
}

function topbar(project, title) {
  const menuBtn = h('button.icon-btn.menu-btn', { type: 'button', 'aria-controls': 'sidebar', 'aria-expanded': 'false', onclick: (ev) => {
    const open = root.classList.toggle('nav-open');
    ev.currentTarget.setAttribute('aria-expanded', String(open));
  } }, h('span', { 'aria-hidden': 'true' }, '☰'), h('span.sr-only', 'Menu'));
  return h('header.topbar',
    menuBtn,
    h('div.top-title', h('h1', title), project && !project.backend ? h('span.pill.muted-pill', 'No backend') : null),
    h('span#conn.conn', { role: 'status', hidden: true }),
    h('div.top-right',
      project ? h('span#mode-badge.mode.test', 'TEST') : null,
      project?.backend ? h('a.btn.secondary.small#live-link', { href: `#/p/${project.id}/live` }, state.mode === 'live' ? 'Live mode' : 'Go live') : null,
      project ? h('a.btn.secondary.small#integrations-link', { href: `#/p/${project.id}/integrations` }, 'Integrations') : null));
}

function layout(project, section, title, content) {
  root.className = 'signed-in';
  const main = h('main#main', { tabindex: '-1' }, content);
  mount(root, sidebar(project, section), h('div.column', topbar(project, title), main));
  renderStatus();
  return main;
}

// ---------- routes ----------

async function route() {
  // A sign-in link opened in a tab that already has the page (only the fragment changed).
  if (/^#(signin|invite)=/.test(location.hash)) return start();
  if (!signedIn()) return signInPage();
  root.classList.remove('nav-open');
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  try {
    if (parts[0] === 'settings' && parts[1] === 'tokens') {
      teardown();
      await loadProjects();
      layout(null, 'tokens', 'API tokens', await views.apiTokens());
      return focusMain();
    }
    if (parts[0] === 'new') {
      teardown();
      layout(null, null, 'New project', views.newProject({ go, refresh: loadProjects }));
      return focusMain();
    }
    if (parts[0] !== 'p' || !parts[1]) {
      teardown();
      await loadProjects();
      layout(null, null, 'Projects', views.projectList(state.projects));
      return focusMain();
    }
    const id = parts[1];
    let project = state.projects.find((p) => p.id === id);
    if (!project) {
      await loadProjects();
      project = state.projects.find((p) => p.id === id);
    }
    if (!project) {
      layout(null, null, 'Not found', h('div.page', h('p', 'There is no such project in your workspace. '), h('a', { href: '#/' }, 'See your projects')));
      return focusMain();
    }
    openProject(project);
    const ctx = { project, go, chat: state.chat, socket: state.socket };
    const section = parts[2] || 'chat';
    if (section === 'chat') {
      const main = layout(project, 'chat', project.name, views.chatPage(ctx));
      main.classList.add('chat-main');
      state.chat.scroll();
      state.chat.focus();
    } else if (section === 'integrations') {
      layout(project, 'integrations', 'Integrations', await views.integrations(ctx));
      focusMain();
    } else if (section === 'settings') {
      layout(project, 'catalog', 'Product catalog', await views.stripeDetails(ctx));
      focusMain();
    } else if (section === 'subscriptions' && parts[3]) {
      layout(project, 'subscriptions', 'Subscription', await billing.subscription(ctx, decodeURIComponent(parts[3])));
      focusMain();
    } else if (section === 'subscriptions') {
      layout(project, 'subscriptions', 'Subscriptions', await billing.subscriptions(ctx));
      focusMain();
    } else if (section === 'payouts') {
      layout(project, 'payouts', 'Balance & payouts', await billing.payouts(ctx));
      focusMain();
    } else if (section === 'live') {
      layout(project, 'live', 'Go live', await billing.goLive(ctx, modeChanged));
      focusMain();
    } else if (section === 'customers' && parts[3]) {
      const email = decodeURIComponent(parts[3]);
      layout(project, 'customers', email, await customers.customer(ctx, email));
      focusMain();
    } else if (section === 'customers') {
      layout(project, 'customers', 'Customers', await customers.customers(ctx));
      focusMain();
    } else if (section === 'orders' && parts[3]) {
      layout(project, 'orders', `Order #${parts[3]}`, await views.order(ctx, parts[3]));
      focusMain();
    } else if (section === 'orders') {
      layout(project, 'orders', 'Orders', await views.orders(ctx));
      focusMain();
    } else {
      go(`#/p/${id}`);
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signedOut();
    layout(state.project, null, 'Something went wrong', h('div.page', h('p.error-box', { role: 'alert' }, e.message)));
  } finally {
    state.routedOnce = true;
  }
}

/** The project's mode changed (going live, or back to test): the badge and the lists follow. */
function modeChanged(p) {
  state.projects = state.projects.map((x) => (x.id === p.id ? { ...x, ...p } : x));
  if (state.project?.id === p.id) state.project = { ...state.project, ...p };
  state.mode = p.mode;
  renderStatus();
}

function focusMain() {
  if (state.routedOnce) document.getElementById('main')?.focus({ preventScroll: true });
}

async function loadProjects() {
  state.projects = (await api('GET', '/v1/projects')).data;
}

// ---------- start ----------

window.addEventListener('hashchange', route);
document.addEventListener('click', (ev) => {
  if (!ev.target.closest?.('.plus-wrap')) views.closeMenus();
  // At phone width, a tap beside the open sidebar closes it.
  if (root.classList.contains('nav-open') && !ev.target.closest?.('#sidebar, .menu-btn')) {
    root.classList.remove('nav-open');
    document.querySelector('.menu-btn')?.setAttribute('aria-expanded', 'false');
  }
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') {
    root.classList.remove('nav-open');
    views.closeMenus();
  }
});

async function start() {
  const m = location.hash.match(/^#signin=([A-Za-z0-9_]+)$/);
  if (m) {
    // Out of the address bar and the history before anything else.
    history.replaceState(null, '', location.pathname);
    return ownerPage(m[1]);
  }
  const invite = location.hash.match(/^#invite=([A-Za-z0-9_]+)$/);
  if (invite) {
    history.replaceState(null, '', location.pathname);
    return ownerPage(invite[1], INVITE);
  }
  if (session.token) {
    const problem = await checkToken(session.token);
    if (problem) return signInPage(problem);
  } else {
    await checkSession();
  }
  route();
}

start();
