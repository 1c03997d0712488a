// The connection to the pool: which member the console talks to, the bearer token, fail-over
// to another member when that one stops answering, and the live stream (server-sent events
// read with fetch, because EventSource cannot send an Authorization header and the token must
// never be in a URL).

const TOKEN_KEY = 'emspool.token';
const REQUEST_TIMEOUT_MS = 8000;
const PROBE_TIMEOUT_MS = 2000;
const STREAM_SILENCE_MS = 25000; // the server sends a keep-alive every 10 s
const MAX_SSE_BUFFER = 4 << 20;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const conn = {
  base: location.origin,
  serverId: null,
  members: [], // [{id, url}] from /api/v1/pool
  onSwitch: () => {},
  onStreamState: () => {},
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// --- token prompt -----------------------------------------------------------------------

let asking = null;

// Shows the token form; resolves once the user submits one. Concurrent callers share it.
export function askToken(refused) {
  if (asking) return asking;
  const form = document.getElementById('login');
  const err = document.getElementById('login-error');
  const input = document.getElementById('token');
  err.hidden = !refused;
  err.textContent = refused ? 'The token was refused: wrong token. Try again.' : '';
  form.hidden = false;
  document.getElementById('main').hidden = true;
  input.value = '';
  input.focus();
  asking = new Promise((resolve) => {
    const submit = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      form.removeEventListener('submit', submit);
      form.hidden = true;
      document.getElementById('main').hidden = false;
      asking = null;
      resolve();
    };
    form.addEventListener('submit', submit);
  });
  return asking;
}

// --- requests with fail-over --------------------------------------------------------------

async function fetchFrom(base, path, opts, timeoutMs) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    return await fetch(base + path, {
      ...opts,
      headers: { ...(opts.headers || {}), ...authHeaders() },
      signal: ctl.signal,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } finally {
    clearTimeout(timer);
  }
}

// JSON from the API; on a network failure moves to another member and tries again there.
export async function api(path, opts = {}) {
  let switches = 0;
  for (let tries = 0; tries < 50; tries++) {
    const base = conn.base;
    let resp;
    try {
      resp = await fetchFrom(base, path, opts, REQUEST_TIMEOUT_MS);
    } catch (e) {
      if (switches++ > conn.members.length || !(await failover(base, e.name || 'error'))) {
        throw new ApiError(0, `no pool member answers (${base})`);
      }
      continue;
    }
    if (resp.status === 401) {
      await askToken(token() !== null);
      continue;
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new ApiError(resp.status, body.error || `HTTP ${resp.status}`);
    return body;
  }
  throw new ApiError(0, 'giving up');
}

export function post(path, body) {
  return api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

function sameServer(a, b) {
  return a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase();
}

function idOf(url) {
  const m = conn.members.find((x) => sameServer(x.url, url));
  return m ? m.id : '?';
}

async function answers(base) {
  try {
    const r = await fetchFrom(base, '/healthz', {}, PROBE_TIMEOUT_MS);
    return r.ok;
  } catch {
    return false;
  }
}

let switching = null;

// Moves from `dead` to a member chosen at random among those that answer. True when the
// console now talks to a live member (possibly because another caller already switched).
export function failover(dead, why) {
  if (!sameServer(conn.base, dead)) return Promise.resolve(true);
  if (switching) return switching;
  switching = (async () => {
    const others = conn.members.map((m) => m.url).filter((u) => !sameServer(u, dead));
    for (let i = others.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [others[i], others[j]] = [others[j], others[i]];
    }
    for (const url of others) {
      if (await answers(url)) {
        conn.base = url.replace(/\/+$/, '');
        conn.onSwitch(dead, idOf(dead), conn.base, idOf(conn.base), why);
        return true;
      }
    }
    return answers(dead);
  })();
  return switching.finally(() => { switching = null; });
}

export function setMembers(pool) {
  if (pool && Array.isArray(pool.members)) {
    conn.members = pool.members.map((m) => ({ id: m.id, url: String(m.url).replace(/\/+$/, '') }));
  }
}

// --- live stream --------------------------------------------------------------------------

// Calls onMessage(type, data) for each message, forever, reconnecting and failing over.
export function startStream(onMessage) {
  (async () => {
    for (let failures = 0; ; ) {
      const base = conn.base;
      const ctl = new AbortController();
      let timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
      let why = 'stream ended';
      try {
        const resp = await fetch(base + '/api/v1/stream', {
          headers: { Accept: 'text/event-stream', ...authHeaders() },
          signal: ctl.signal,
          cache: 'no-store',
          credentials: 'omit',
          referrerPolicy: 'no-referrer',
        });
        if (resp.status === 401) {
          clearTimeout(timer);
          await askToken(token() !== null);
          continue;
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        failures = 0;
        conn.onStreamState(true, base);
        const watchdog = () => {
          clearTimeout(timer);
          timer = setTimeout(() => ctl.abort(), STREAM_SILENCE_MS);
        };
        watchdog();
        await readSse(resp.body.getReader(), onMessage, watchdog);
      } catch (e) {
        why = e.name === 'AbortError' ? 'no answer' : String(e.message || e);
      } finally {
        clearTimeout(timer);
      }
      conn.onStreamState(false, base);
      if (!(await answers(base))) await failover(base, why);
      failures++;
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * failures)));
    }
  })();
}

async function readSse(reader, onMessage, onData) {
  const decoder = new TextDecoder();
  let buf = '';
  let type = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onData();
    buf += decoder.decode(value, { stream: true });
    if (buf.length > MAX_SSE_BUFFER) throw new Error('stream line too long');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length) {
          let parsed = null;
          try { parsed = JSON.parse(data.join('\n')); } catch { /* not JSON: skip */ }
          if (parsed !== null) onMessage(type, parsed);
        }
        type = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // keep-alive comment
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
}
