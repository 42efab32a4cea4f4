// LockService dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// The API key lives in sessionStorage only and travels only in the Authorization header, never in a URL.
'use strict';

(() => {
  const KEY_STORAGE = 'lockservice.apiKey';
  const REFRESH_MS = 1000;       // the contract asks for at least every 2 s; the service shares one listing among pages
  const PAGE_LIMIT = 500;
  const SHOW_MAX = 1000;          // a table of more is not readable: the prefix filter narrows it
  const MAX_PAGES = 8;            // pages fetched per refresh, so a huge keyspace cannot keep one refresh going
  const PREFIX = /^[A-Za-z0-9._:-]{0,200}$/;

  const $ = (id) => document.getElementById(id);
  const rows = new Map();         // key -> { tr, lock }
  let clockOffset = 0;            // Redis time minus this browser's time, from the last listing
  let complete = true;
  let timer = 0;
  let pending = null;             // the lock the confirmation dialog is about

  const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

  async function api(path, method = 'GET') {
    const headers = { Accept: 'application/json' };
    const key = apiKey();
    if (key) {
      headers.Authorization = 'Bearer ' + key;
    }
    const response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
    let body = null;
    if (response.status !== 204) {
      try { body = await response.json(); } catch { body = null; }
    }
    return { status: response.status, body };
  }

  // ---- listing -------------------------------------------------------------------------------

  async function listLocks(prefix) {
    const found = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = new URLSearchParams({ limit: String(PAGE_LIMIT) });
      if (prefix) query.set('prefix', prefix);
      if (cursor) query.set('cursor', cursor);
      const reply = await api('/admin/locks?' + query.toString());
      if (reply.status !== 200) {
        return { reply };
      }
      for (const lock of reply.body.locks) {
        found.set(lock.key, lock);   // a key can come twice across pages: keep the latest
      }
      cursor = reply.body.cursor;
      if (!cursor || found.size >= SHOW_MAX) break;
    }
    return { locks: [...found.values()], complete: !cursor };
  }

  async function refresh() {
    clearTimeout(timer);
    const started = performance.now();
    const prefixInput = $('prefix');
    const prefix = prefixInput.value.trim();
    if (!PREFIX.test(prefix)) {
      prefixInput.classList.add('invalid');
      setStatus('A prefix holds only A-Z a-z 0-9 . _ : -', true);
      schedule(started);
      return;
    }
    prefixInput.classList.remove('invalid');

    try {
      const [listing, stats] = await Promise.all([listLocks(prefix), api('/admin/stats')]);
      if (listing.reply) {
        handleRefusal(listing.reply);
      } else {
        showSignedIn();
        render(listing.locks, listing.complete);
        setStatus('Updated ' + new Date().toLocaleTimeString());
      }
      if (stats.status === 200) {
        renderStats(stats.body);
      }
    } catch {
      setStatus('The service cannot be reached; retrying…', true);
    }
    schedule(started);
  }

  function schedule(started) {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.max(100, REFRESH_MS - (performance.now() - started)));
  }

  function handleRefusal(reply) {
    const detail = reply.body && reply.body.detail ? reply.body.detail : 'HTTP ' + reply.status;
    if (reply.status === 401) {
      showLogin(apiKey() ? 'That API key was not accepted. Paste an admin API key.' : 'This service needs an admin API key for its operator endpoints.');
      setStatus('Waiting for an API key', true);
    } else if (reply.status === 403) {
      showLogin('This API key cannot use the operator endpoints: ' + detail);
      setStatus('Forbidden', true);
    } else {
      setStatus(detail, true);
    }
  }

  // ---- rendering -----------------------------------------------------------------------------

  function render(locks, isComplete) {
    const receivedAt = Date.now();
    if (locks.length > 0) {
      // expiresAt - ttlMs is Redis's clock when it answered: the offset keeps "held for" and the bars on Redis's time.
      clockOffset = Math.min(...locks.map((l) => Date.parse(l.expiresAt) - l.ttlMs)) - receivedAt;
    }
    complete = isComplete;
    locks.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

    const tbody = $('rows');
    const keep = new Set(locks.map((l) => l.key));
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        rows.delete(key);
      }
    }
    let previous = null;
    for (const lock of locks) {
      let row = rows.get(lock.key);
      if (!row) {
        row = { tr: newRow(lock.key), lock };
        rows.set(lock.key, row);
      }
      row.lock = lock;
      fillRow(row);
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== row.tr) {
        tbody.insertBefore(row.tr, expected);
      }
      previous = row.tr;
    }

    $('empty').hidden = locks.length > 0;
    $('empty').textContent = $('prefix').value.trim() ? 'No held lock starts with this prefix.' : 'No locks held.';
    $('more').hidden = complete;
    $('more').textContent = 'Showing the first ' + locks.length + ' locks; filter by key prefix to see others.';
    $('stat-held').textContent = locks.length + (complete ? '' : '+');
    tick();
  }

  function newRow(key) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    for (const name of ['key mono', 'owner', 'fence num mono', 'held num', 'ttl', 'cap num', 'action']) {
      const td = document.createElement('td');
      td.className = name;
      tr.appendChild(td);
    }
    tr.cells[0].textContent = key;
    tr.cells[4].innerHTML = '<div class="ttlbar"><div class="track"><div class="fill"></div></div><span class="ttltext"></span></div>';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'release';
    button.textContent = 'Force-release';
    button.addEventListener('click', () => askRelease(key));
    tr.cells[6].appendChild(button);
    return tr;
  }

  function fillRow(row) {
    const { tr, lock } = row;
    tr.cells[1].textContent = lock.owner ?? '—';
    tr.cells[1].title = lock.owner ?? '';
    tr.cells[2].textContent = String(lock.fencingToken);
    tr.cells[5].textContent = lock.maxHoldMs == null ? '—' : duration(lock.maxHoldMs);
  }

  // Runs between refreshes too, so the bars shrink smoothly.
  function tick() {
    const now = Date.now() + clockOffset;
    for (const { tr, lock } of rows.values()) {
      const acquired = Date.parse(lock.acquiredAt);
      const expires = Date.parse(lock.expiresAt);
      const left = Math.max(0, expires - now);
      const span = Math.max(1, expires - acquired);
      const fraction = Math.min(1, left / span);
      tr.cells[3].textContent = duration(Math.max(0, now - acquired));
      const fill = tr.cells[4].querySelector('.fill');
      fill.style.width = (fraction * 100).toFixed(1) + '%';
      fill.className = 'fill' + (fraction < 0.2 ? ' low' : fraction < 0.5 ? ' warn' : '');
      tr.cells[4].querySelector('.ttltext').textContent = duration(left);
    }
  }

  function renderStats(stats) {
    $('stat-waiting').textContent = String(stats.waitingRequests);
    $('stat-acquires').textContent = rate(stats.acquiresPerSecond);
    $('stat-releases').textContent = rate(stats.releasesPerSecond + stats.forcedReleasesPerSecond);
  }

  function rate(value) {
    return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  }

  function duration(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    if (h < 24) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  function setStatus(text, error = false) {
    const status = $('status');
    status.textContent = text;
    status.classList.toggle('error', error);
  }

  let toastTimer = 0;
  function toast(text, error = false) {
    const element = $('toast');
    element.textContent = text;
    element.classList.toggle('error', error);
    element.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { element.hidden = true; }, 5000);
  }

  // ---- force-release -------------------------------------------------------------------------

  function askRelease(key) {
    const row = rows.get(key);
    if (!row) return;
    pending = row.lock;
    $('confirm-key').textContent = key;
    $('confirm-what').textContent =
      'Held by ' + (pending.owner ?? 'an unnamed owner') + ', fencing token ' + pending.fencingToken + '.';
    $('confirm').showModal();
    $('confirm-cancel').focus();
  }

  async function release() {
    const lock = pending;
    $('confirm').close();
    pending = null;
    if (!lock) return;
    try {
      const reply = await api('/admin/locks/' + encodeURIComponent(lock.key), 'DELETE');
      if (reply.status === 204) {
        toast('Released ' + lock.key + ' (fencing token ' + lock.fencingToken + ').');
        const row = rows.get(lock.key);
        if (row) {
          row.tr.remove();
          rows.delete(lock.key);
        }
      } else if (reply.status === 404) {
        toast(lock.key + ' was already free.');
      } else {
        toast((reply.body && reply.body.detail) || 'Force-release failed: HTTP ' + reply.status, true);
      }
    } catch {
      toast('The service cannot be reached.', true);
    }
    refresh();
  }

  // ---- API key -------------------------------------------------------------------------------

  function showLogin(why) {
    $('login').hidden = false;
    $('login-why').textContent = why;
    $('board').hidden = true;
    $('forget').hidden = !apiKey();
    $('who').textContent = '';
  }

  function showSignedIn() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('forget').hidden = !apiKey();
    $('who').textContent = apiKey() ? 'with an API key' : 'authentication off';
  }

  function init() {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('apikey');
      const key = input.value.trim();
      input.value = '';
      if (key) {
        sessionStorage.setItem(KEY_STORAGE, key);
        refresh();
      }
    });
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      for (const row of rows.values()) row.tr.remove();
      rows.clear();
      refresh();
    });
    let debounce = 0;
    $('prefix').addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(refresh, 250);
    });
    $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
    $('confirm-release').addEventListener('click', release);
    setInterval(tick, 250);
    refresh();
  }

  init();
})();
