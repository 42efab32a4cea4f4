// LockService dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// The API key lives in sessionStorage only and travels only in the Authorization header, never in a URL.
'use strict';

(() => {
  const KEY_STORAGE = 'lockservice.apiKey';
  const REFRESH_MS = 1000;       // the contract asks for at least every 2 s; the service shares one listing among pages
  const SHOW_MAX = 1000;          // rows: a table of more is not readable, the prefix filter narrows it
  // Pages read per refresh at most. A page reads at most 10,000 keys of Redis, so a prefix that matches few keys of a
  // large keyspace takes many pages: the walk goes on at the next refresh from its cursor instead of starting again, and
  // an open page costs the tenant's operator rate limit at most this many listing requests and the stats a second. A 429
  // halves the pages of the next refreshes (a refresh without one adds one back), so that a page under a small
  // RateLimit:PermitsPerSecond settles at what the limit allows instead of being refused every second.
  const PAGES_PER_REFRESH = 4;
  const MAX_BACKOFF_MS = 60000;   // the longest a Retry-After keeps the page waiting, whatever a proxy says
  const PREFIX = /^[A-Za-z0-9._:-]{0,200}$/;

  const $ = (id) => document.getElementById(id);

  // ---- views ---------------------------------------------------------------------------------
  // Each view is a listing under /admin shown as rows, one per lease (a lock, or one permit of a semaphore): what
  // differs between them is said here, and the listing, the rendering, the refresh and the force-release are one code.

  // A column: its header, its cells' classes, and the text a row shows in it (null: filled by tick() or by newRow()).
  const column = (head, classes, text) => ({ head, classes, text });
  const KEY = column('Key', 'key mono', (r) => r.key);
  const OWNER = column('Owner', 'owner', (r) => r.owner ?? '—');
  const FENCE = column('Fencing token', 'fence num mono', (r) => String(r.fencingToken));
  const HELD = column('Held for', 'held num', null);
  const TTL = column('TTL left', 'ttl', null);
  const CAP = column('Hold cap', 'cap num', (r) => (r.maxHoldMs == null ? '—' : duration(r.maxHoldMs)));
  const ACTION = column('', 'action', null);

  const VIEWS = {
    locks: {
      title: 'held locks',
      heldLabel: 'locks held',
      path: '/admin/locks',
      pageLimit: 500,
      columns: [KEY, OWNER, FENCE, HELD, TTL, CAP, ACTION],
      entries: (body) => body.locks,
      rowsOf: (lock) => [{ ...lock, id: lock.key }],
      without: () => null,        // what is left of a listed lock once it is force-released: nothing
      incomplete: () => false,
      releasePath: (lock) => '/admin/locks/' + encodeURIComponent(lock.key),
      label: (lock) => lock.key,
      which: () => '',
      noun: 'lock',
      gets: 'it',
      unit: 'locks',
      none: 'No locks held.',
      noneWithPrefix: 'No held lock starts with this prefix.',
    },
    semaphores: {
      title: 'held semaphores',
      heldLabel: 'permits held',
      path: '/admin/semaphores',
      pageLimit: 100,           // each semaphore on a page costs the service an inspection of its permits
      columns: [KEY, column('Slot', 'slot num mono', (r) => String(r.slot)), OWNER, FENCE, column('Limit', 'limit num', (r) => String(r.limit)), HELD, TTL, CAP, ACTION],
      entries: (body) => body.semaphores,
      rowsOf: (semaphore) => semaphore.permits.map((permit) => ({ ...permit, key: semaphore.key, id: semaphore.key + '/' + permit.slot })),
      without: (semaphore, permit) => {
        const permits = semaphore.permits.filter((p) => p.slot !== permit.slot);
        return permits.length > 0 ? { ...semaphore, permits } : null;
      },
      incomplete: (semaphore) => semaphore.truncated,   // more than 1000 permits held: inspection shows the first
      releasePath: (permit) => '/admin/semaphores/' + encodeURIComponent(permit.key) + '/' + permit.slot,
      label: (permit) => permit.key + ' slot ' + permit.slot,
      which: (permit) => 'slot ' + permit.slot + ' of ',
      noun: 'permit',
      gets: 'its place',
      unit: 'permits',
      none: 'No semaphore has a permit held.',
      noneWithPrefix: 'No semaphore with a permit held starts with this prefix.',
    },
    rwlocks: {
      title: 'held read/write locks',
      heldLabel: 'leases held',
      path: '/admin/rwlocks',
      pageLimit: 100,           // each read/write lock on a page costs the service an inspection of its holders
      columns: [KEY, column('Mode', 'mode', (r) => r.mode), OWNER, FENCE, column('Writers waiting', 'waiting num', (r) => String(r.writersWaiting)), HELD, TTL, CAP, ACTION],
      entries: (body) => body.rwlocks,
      rowsOf: (rwlock) => rwlock.holders.map((holder) => ({
        ...holder, key: rwlock.key, writersWaiting: rwlock.writersWaiting, id: rwlock.key + '/' + holder.fencingToken,
      })),
      without: (rwlock, lease) => {
        const holders = rwlock.holders.filter((h) => h.fencingToken !== lease.fencingToken);
        return holders.length > 0 ? { ...rwlock, holders } : null;
      },
      incomplete: (rwlock) => rwlock.truncated,
      // One lease, by its fencing token: the other readers keep theirs.
      releasePath: (lease) => '/admin/rwlocks/' + encodeURIComponent(lease.key) + '?fencingToken=' + lease.fencingToken,
      label: (lease) => lease.key + ' (' + lease.mode + ')',
      which: (lease) => 'the ' + lease.mode + ' lease of ',
      noun: 'lease',
      gets: 'its place',
      unit: 'leases',
      none: 'No read/write lock is held.',
      noneWithPrefix: 'No held read/write lock starts with this prefix.',
    },
    elections: {
      title: 'elections with a leader',
      heldLabel: 'leaders',
      path: '/admin/elections',
      pageLimit: 500,
      columns: [column('Election', 'key mono', (r) => r.key), column('Value', 'owner', (r) => r.value || '—'), column('Term', 'fence num mono', (r) => String(r.term)), HELD, TTL, ACTION],
      entries: (body) => body.elections,
      // The leader's term is its fencing token, its value what the dialog and the rows show as its owner.
      rowsOf: (election) => [{ ...election, key: election.name, owner: election.value || null, fencingToken: election.term, id: election.name }],
      without: () => null,
      incomplete: () => false,
      releasePath: (leader) => '/admin/elections/' + encodeURIComponent(leader.key),
      label: (leader) => leader.key,
      which: () => 'the leader of ',
      noun: 'leader',
      gets: 'the leadership',
      unit: 'elections',
      none: 'No election has a leader.',
      noneWithPrefix: 'No election with a leader starts with this prefix.',
    },
  };

  let view = VIEWS.locks;
  const rows = new Map();         // row id (a lock's key, or a semaphore's key/slot) -> { tr, item, held, fill, ttltext }
  let clockOffset = 0;            // Redis time minus this browser's time, from the last listing
  let complete = true;
  let walk = newWalk(view, '');   // the listing under way
  let pageBudget = PAGES_PER_REFRESH;
  let updatedAt = null;           // when the rows shown were listed
  let timer = 0;
  let generation = 0;             // a refresh that a newer one (a view switch, a new prefix) overtook shows nothing
  let pending = null;             // the row the confirmation dialog is about

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
    // Retry-After is whole seconds (the service's 429 and 503 carry it); without it, a 429 waits one refresh.
    const seconds = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
    const retryAfterMs = Math.min(MAX_BACKOFF_MS, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : REFRESH_MS);
    return { status: response.status, body, retryAfterMs };
  }

  // ---- listing -------------------------------------------------------------------------------

  // A walk of the view's listing under the prefix: the cursor of its next page (null: from the start), the entries it
  // found so far by key (a key can come twice across pages: the latest is kept), and the entries of the last walk that
  // reached its end (and whether they were all it found), shown until this one does.
  function newWalk(shown, prefix, last = null, lastComplete = false) {
    return { shown, prefix, cursor: null, found: new Map(), pages: 0, last, lastComplete };
  }

  const rowsOf = (shown, entries) => [...entries.values()].flatMap(shown.rowsOf);

  // The walk carried on for up to pageBudget pages, on a copy (a refresh that a newer one overtook changes
  // nothing): the walk as it then stands, and the answer that stopped it when it was not a page.
  async function list(from) {
    const { shown, prefix } = from;
    const next = { ...from, found: new Map(from.found) };
    let clock = null;
    for (let page = 0; page < pageBudget; page++) {
      const query = new URLSearchParams({ limit: String(shown.pageLimit) });
      if (prefix) query.set('prefix', prefix);
      if (next.cursor) query.set('cursor', next.cursor);
      const reply = await api(shown.path + '?' + query.toString());
      if (reply.status !== 200) {
        return { next, clock, reply };
      }
      const receivedAt = Date.now();
      const entries = shown.entries(reply.body).map((e) => (e.key === undefined && e.name !== undefined ? { ...e, key: e.name } : e));
      const listed = entries.flatMap(shown.rowsOf);
      if (listed.length > 0) {
        // expiresAt - ttlMs is Redis's clock when it answered: the offset keeps "held for" and the bars on Redis's time.
        clock = Math.min(...listed.map((r) => Date.parse(r.expiresAt) - r.ttlMs)) - receivedAt;
      }
      for (const entry of entries) {
        next.found.set(entry.key, entry);
      }
      next.cursor = reply.body.cursor;
      next.pages++;
      if (!next.cursor || rowsOf(shown, next.found).length >= SHOW_MAX) break;
    }
    return { next, clock, reply: null };
  }

  // What a walk shows: at its end (or at SHOW_MAX rows) what it found, and the next refresh starts another; under way,
  // what the last walk found, updated by what this one found so far (a lock freed meanwhile stays until this one ends).
  function display(at) {
    const done = !at.cursor || rowsOf(at.shown, at.found).length >= SHOW_MAX;
    if (done) {
      const items = rowsOf(at.shown, at.found);
      const complete = !at.cursor && ![...at.found.values()].some(at.shown.incomplete) && items.length <= SHOW_MAX;
      return { items: items.slice(0, SHOW_MAX), complete, note: null, after: newWalk(at.shown, at.prefix, at.found, complete) };
    }
    const items = rowsOf(at.shown, new Map([...(at.last ?? new Map()), ...at.found])).slice(0, SHOW_MAX);
    const note = at.last ? null : 'Still listing (' + at.pages + ' pages read so far): more rows may follow.';
    return { items, complete: at.last !== null && at.lastComplete, note, after: at };
  }

  async function refresh() {
    clearTimeout(timer);
    const started = performance.now();
    const current = ++generation;
    const prefixInput = $('prefix');
    const prefix = prefixInput.value.trim();
    if (!PREFIX.test(prefix)) {
      prefixInput.classList.add('invalid');
      setStatus('A prefix holds only A-Z a-z 0-9 . _ : -', true);
      schedule(started);
      return;
    }
    prefixInput.classList.remove('invalid');
    if (walk.shown !== view || walk.prefix !== prefix) {
      walk = newWalk(view, prefix);
    }

    try {
      // The stats after the listing, and not once it is refused: under a rate limit too small for both, the walk goes on.
      const listing = await list(walk);
      const stats = listing.reply && listing.reply.status === 429 ? null : await api('/admin/stats');
      if (current !== generation) {
        return;                   // a newer refresh is under way: it shows its own listing and schedules the next
      }
      walk = listing.next;        // what was read is kept, whatever stopped the walk
      if (listing.clock !== null) {
        clockOffset = listing.clock;
      }
      const reply = listing.reply;
      if (!reply) {
        const { items, complete: isComplete, note, after } = display(walk);
        walk = after;
        showSignedIn();
        render(items, isComplete, note);
        updatedAt = new Date();
        setStatus('Updated ' + updatedAt.toLocaleTimeString() + (walk.cursor ? ' · listing, page ' + (walk.pages + 1) + '…' : ''));
      } else if (reply.status === 400 && walk.cursor && reply.body && reply.body.errors && reply.body.errors.cursor) {
        // The cursor cannot be followed (a failover or a reshard since): the walk starts again, the rows stay.
        walk = newWalk(walk.shown, walk.prefix, walk.last, walk.lastComplete);
        setStatus('The listing starts again: ' + (reply.body.detail ?? 'its cursor cannot be followed'), true);
      } else if (reply.status !== 429) {
        handleRefusal(reply);
      }
      if (stats && stats.status === 200) {
        renderStats(stats.body);
      }
      // Over the tenant's operator rate limit: the rows stay, and the page asks again once Retry-After has passed.
      const limited = [reply, stats].filter((r) => r && r.status === 429);
      pageBudget = limited.length > 0 ? Math.max(1, Math.floor(pageBudget / 2)) : Math.min(PAGES_PER_REFRESH, pageBudget + 1);
      if (limited.length > 0) {
        showSignedIn();           // the rate limit comes after the key is accepted
        const wait = Math.max(...limited.map((r) => r.retryAfterMs));
        setStatus('Over the operator rate limit (RateLimit:PermitsPerSecond)' + (updatedAt ? ': rows as of ' + updatedAt.toLocaleTimeString() : '') +
          '; next try in ' + Math.ceil(wait / 1000) + ' s', true);
        schedule(started, wait);
        return;
      }
    } catch {
      if (current !== generation) return;
      setStatus('The service cannot be reached; retrying…', true);
    }
    schedule(started);
  }

  function schedule(started, wait = REFRESH_MS) {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.max(100, wait - (performance.now() - started)));
  }

  function handleRefusal(reply) {
    const detail = reply.body && reply.body.detail ? reply.body.detail : 'HTTP ' + reply.status;
    if (reply.status === 401 || reply.status === 403) {
      walk = newWalk(view, walk.prefix);   // another key may be another tenant: nothing of this walk is its
    }
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

  // ---- views ---------------------------------------------------------------------------------

  function viewNamed(hash) {
    const name = hash.replace(/^#/, '');
    return Object.hasOwn(VIEWS, name) ? VIEWS[name] : VIEWS.locks;
  }

  // Shows another view: its tab, its columns, none of the other view's rows; then lists it at once.
  function switchTo(next) {
    view = next;
    for (const [name, shown] of Object.entries(VIEWS)) {
      $('tab-' + name).setAttribute('aria-pressed', String(shown === view));
    }
    document.title = 'LockService · ' + view.title;
    $('subtitle').textContent = view.title;
    $('stat-held-label').textContent = view.heldLabel;
    $('stat-held').textContent = '–';
    clearRows();
    const head = $('head');
    head.replaceChildren(...view.columns.map((c) => {
      const th = document.createElement('th');
      th.className = c.classes.split(' ').filter((name) => name === 'num' || name === 'ttl').join(' ');
      if (c.head) {
        th.textContent = c.head;
      } else {
        th.innerHTML = '<span class="visually-hidden">Actions</span>';
      }
      return th;
    }));
    $('empty').hidden = true;
    $('more').hidden = true;
  }

  function clearRows() {
    for (const row of rows.values()) row.tr.remove();
    rows.clear();
  }

  // ---- rendering -----------------------------------------------------------------------------

  function render(items, isComplete, note) {
    complete = isComplete;
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : (a.slot ?? 0) - (b.slot ?? 0)));

    const tbody = $('rows');
    const keep = new Set(items.map((r) => r.id));
    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    let previous = null;
    for (const item of items) {
      let row = rows.get(item.id);
      if (!row) {
        row = newRow(item);
        rows.set(item.id, row);
      }
      row.item = item;
      fillRow(row);
      // The permits of one semaphore follow each other: their key is said once, in the first.
      row.tr.classList.toggle('continued', previous !== null && previous.dataset.key === item.key);
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== row.tr) {
        tbody.insertBefore(row.tr, expected);
      }
      previous = row.tr;
    }

    $('empty').hidden = items.length > 0 || note != null;   // none found so far is not none held
    $('empty').textContent = $('prefix').value.trim() ? view.noneWithPrefix : view.none;
    $('more').hidden = complete;
    $('more').textContent = note ?? 'Showing the first ' + items.length + ' ' + view.unit + '; filter by key prefix to see others.';
    $('stat-held').textContent = items.length + (complete ? '' : '+');
    tick();
  }

  function newRow(item) {
    const tr = document.createElement('tr');
    tr.dataset.key = item.key;
    if (item.slot != null) {
      tr.dataset.slot = String(item.slot);
    }
    tr.dataset.fence = String(item.fencingToken);   // the lease a row stands for (a read/write lock has several per key)
    for (const c of view.columns) {
      const td = document.createElement('td');
      td.className = c.classes;
      tr.appendChild(td);
    }
    const cell = (name) => tr.querySelector('td.' + name);
    cell('ttl').innerHTML = '<div class="ttlbar"><div class="track"><div class="fill"></div></div><span class="ttltext"></span></div>';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'release';
    button.textContent = 'Force-release';
    button.addEventListener('click', () => askRelease(item.id));
    cell('action').appendChild(button);
    return { tr, item, held: cell('held'), fill: cell('ttl').querySelector('.fill'), ttltext: cell('ttl').querySelector('.ttltext') };
  }

  function fillRow(row) {
    view.columns.forEach((c, i) => {
      if (c.text) {
        row.tr.cells[i].textContent = c.text(row.item);
      }
    });
    const owner = row.tr.querySelector('td.owner');
    owner.title = row.item.owner ?? '';
  }

  // Runs between refreshes too, so the bars shrink smoothly.
  function tick() {
    const now = Date.now() + clockOffset;
    for (const { item, held, fill, ttltext } of rows.values()) {
      const acquired = Date.parse(item.acquiredAt);
      const expires = Date.parse(item.expiresAt);
      const left = Math.max(0, expires - now);
      const span = Math.max(1, expires - acquired);
      const fraction = Math.min(1, left / span);
      held.textContent = duration(Math.max(0, now - acquired));
      fill.style.width = (fraction * 100).toFixed(1) + '%';
      fill.className = 'fill' + (fraction < 0.2 ? ' low' : fraction < 0.5 ? ' warn' : '');
      ttltext.textContent = duration(left);
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

  function askRelease(id) {
    const row = rows.get(id);
    if (!row) return;
    const item = row.item;
    pending = { shown: view, item };
    $('confirm-which').textContent = view.which(item);
    $('confirm-key').textContent = item.key;
    $('confirm-what').textContent =
      'Held by ' + (item.owner ?? 'an unnamed owner') + ', fencing token ' + item.fencingToken + (item.limit == null ? '' : ', limit ' + item.limit) + '.';
    $('confirm-noun').textContent = view.noun;
    $('confirm-gets').textContent = view.gets;
    $('confirm').showModal();
    $('confirm-cancel').focus();
  }

  async function release() {
    const asked = pending;
    $('confirm').close();
    pending = null;
    if (!asked) return;
    const { shown, item } = asked;
    const label = shown.label(item);
    try {
      const reply = await api(shown.releasePath(item), 'DELETE');
      if (reply.status === 204) {
        toast('Released ' + label + ' (fencing token ' + item.fencingToken + ').');
        const row = rows.get(item.id);
        if (row && shown === view) {
          row.tr.remove();
          rows.delete(item.id);
        }
        forget(shown, item);
      } else if (reply.status === 404) {
        toast(label + ' was already free.');
      } else {
        toast((reply.body && reply.body.detail) || 'Force-release failed: HTTP ' + reply.status, true);
      }
    } catch {
      toast('The service cannot be reached.', true);
    }
    refresh();
  }

  // A released lock or permit leaves what the walk found and what it shows meanwhile, so that it does not come back from them.
  function forget(shown, item) {
    if (walk.shown !== shown) return;
    for (const entries of [walk.found, walk.last]) {
      const entry = entries && entries.get(item.key);
      if (!entry) continue;
      const left = shown.without(entry, item);
      if (left) {
        entries.set(item.key, left);
      } else {
        entries.delete(item.key);
      }
    }
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
        walk = newWalk(view, walk.prefix);
        refresh();
      }
    });
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORAGE);
      walk = newWalk(view, walk.prefix);
      updatedAt = null;
      clearRows();
      refresh();
    });
    let debounce = 0;
    $('prefix').addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(refresh, 250);
    });
    // The view is in the URL's fragment (#semaphores), so a reload or a bookmark opens it again; the fragment never
    // leaves the browser.
    for (const name of Object.keys(VIEWS)) {
      $('tab-' + name).addEventListener('click', () => { location.hash = name; });
    }
    window.addEventListener('hashchange', () => {
      const next = viewNamed(location.hash);
      if (next !== view) {
        switchTo(next);
        refresh();
      }
    });
    $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
    $('confirm-release').addEventListener('click', release);
    switchTo(viewNamed(location.hash));
    setInterval(tick, 250);
    refresh();
  }

  init();
})();
