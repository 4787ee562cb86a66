// The audience list and a segment's details: figures and chart that move
// live (segmentStats, membershipChanged), members, "why is this user (not)
// in?", test users, CSV import with its progress, and export.
import { html, useState, useEffect, useRef, useQuery, useSubscription, useDebounced, usePaging, Pager, Field, ErrorNote, num, when, useId } from './ui.js';
import { gql, upload, subscribe, download } from './api.js';

export const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

const STATS = 'totalUsers newThisWeek newThisMonth newLast7Days newLast30Days';

const SORTS = {
  size: ['TOTAL_USERS', 'DESC', 'Size (members)'],
  growth: ['NEW_LAST_7_DAYS', 'DESC', 'Growth (entered in the last 7 days)'],
  name: ['NAME', 'ASC', 'Name'],
  newest: ['CREATED_AT', 'DESC', 'Newest'],
};

const LIST = `query($first: Int, $after: Cursor, $last: Int, $before: Cursor, $where: SegmentWhereInput, $order: SegmentOrder, $tz: String) {
  segments(first: $first, after: $after, last: $last, before: $before, where: $where, orderBy: $order) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { id name kind stats(timeZone: $tz) { ${STATS} } campaigns { id name status } } }
  }
}`;

// LiveStats follows one segment's figures: the value at once, then each change.
function useLiveStats(id, tz, initial) {
  const [stats, setStats] = useState(initial);
  useEffect(() => setStats(initial), [initial]);
  const error = useSubscription(`subscription($id: ID!, $tz: String) { segmentStats(segmentId: $id, timeZone: $tz) { ${STATS} } }`,
    { id, tz }, (d) => setStats(d.segmentStats), [id, tz]);
  return [stats, error];
}

function SegmentRow({ seg, tz }) {
  const [s] = useLiveStats(seg.id, tz, seg.stats);
  return html`<tr data-segment=${seg.id}>
    <th scope="row"><a href=${'#/segments/' + seg.id}>${seg.name}</a></th>
    <td class="opt"><span class="kind">${seg.kind.replace('_', ' ').toLowerCase()}</span></td>
    <td class="num" data-col="total">${num(s.totalUsers)}</td>
    <td class="num" data-col="week">${num(s.newThisWeek)}</td>
    <td class="num" data-col="month">${num(s.newThisMonth)}</td>
    <td class="opt">${seg.campaigns.length ? seg.campaigns.map((c) => html`<span class=${'badge st-' + c.status}>${c.name}</span> `) : html`<span class="muted">none</span>`}</td>
  </tr>`;
}

// useListRefresh re-reads the list so that segments created, renamed or
// deleted elsewhere (another tab, the API) show up without a reload. The
// API has no subscription for segment changes, and membershipChanged or
// segmentStats fire only when a segment has members, which a new segment has
// not; so the list polls, every 3 s and only while the tab is visible (a
// hidden tab costs nothing, and catches up as soon as it is shown again).
// The rows' figures move live on their own subscriptions meanwhile; a
// re-read keeps each row (keyed by ID) and its subscription.
const LIST_POLL_MS = 3000;
function useListRefresh(reload) {
  useEffect(() => {
    let timer = 0;
    const arm = () => { clearTimeout(timer); if (document.visibilityState === 'visible') timer = setTimeout(tick, LIST_POLL_MS); };
    const tick = () => { reload(); arm(); };
    const onVisible = () => { if (document.visibilityState === 'visible') tick(); else clearTimeout(timer); };
    document.addEventListener('visibilitychange', onVisible);
    arm();
    return () => { clearTimeout(timer); document.removeEventListener('visibilitychange', onVisible); };
  }, [reload]);
}

export function AudienceList({ admin }) {
  const [search, setSearch] = useState('');
  const [term, setTerm] = useState('');
  const [sort, setSort] = useState('size');
  const paging = usePaging(20);
  const setTermSoon = useDebounced((v) => { setTerm(v); paging.reset(); }, 250);
  const [field, direction] = SORTS[sort];
  const vars = { ...paging.vars, where: term ? { nameContainsFold: term } : null, order: { field, direction }, tz: browserZone };
  const q = useQuery(LIST, vars, [JSON.stringify(vars)]);
  useListRefresh(q.reload);
  const conn = q.data?.segments;
  return html`<section aria-labelledby="list-title">
    <div class="title-row"><h1 id="list-title">Audiences</h1>
      ${admin && html`<a class="button primary" href="#/segments/new">Create segment</a>`}</div>
    <div class="toolbar">
      <${Field} label="Search by name" id="seg-search">
        <input id="seg-search" type="search" value=${search} placeholder="e.g. sign-ups"
          onInput=${(e) => { setSearch(e.target.value); setTermSoon(e.target.value); }} />
      <//>
      <${Field} label="Sort by" id="seg-sort">
        <select id="seg-sort" value=${sort} onChange=${(e) => { setSort(e.target.value); paging.reset(); }}>
          ${Object.entries(SORTS).map(([k, v]) => html`<option value=${k}>${v[2]}</option>`)}
        </select>
      <//>
    </div>
    <${ErrorNote} error=${q.error} />
    ${conn && html`<p class="muted" aria-live="polite">${num(conn.totalCount)} segment${conn.totalCount === 1 ? '' : 's'}${term ? ' matching “' + term + '”' : ''}; figures update live (week and month in ${browserZone}).</p>
    <div class="table-wrap"><table class="list">
      <thead><tr><th scope="col">Name</th><th scope="col" class="opt">Kind</th><th scope="col" class="num">Total users</th>
        <th scope="col" class="num">New this week</th><th scope="col" class="num">New this month</th><th scope="col" class="opt">Campaigns</th></tr></thead>
      <tbody>${conn.edges.map((e) => html`<${SegmentRow} key=${e.node.id} seg=${e.node} tz=${browserZone} />`)}</tbody>
    </table></div>
    ${conn.edges.length === 0 && html`<p>No segments yet.${admin ? ' Create one to start.' : ''}</p>`}
    <${Pager} label="Segment pages" pageInfo=${conn.pageInfo} onNext=${() => paging.next(conn.pageInfo)} onPrev=${() => paging.prev(conn.pageInfo)} />`}
  </section>`;
}

const SEGMENT = `query($id: ID!) { node(id: $id) { ... on Segment {
  id name description kind triggerEvents conditionText createdAt updatedAt
  exitRules { whenConditionFails onEvents onEventConditionText after }
  campaigns { id name status }
} } }`;

const ZONES = ['UTC', 'Europe/London', 'Europe/Paris', 'America/New_York', 'America/Los_Angeles', 'Asia/Kolkata', 'Asia/Tokyo', 'Australia/Sydney'];

export function SegmentDetails({ id, admin }) {
  const q = useQuery(SEGMENT, { id }, [id]);
  const [tz, setTz] = useState(browserZone);
  const [tick, setTick] = useState(0); // bumps on each membership change
  const bump = useDebounced(() => setTick((t) => t + 1), 250);
  useSubscription(`subscription($id: ID) { membershipChanged(segmentId: $id) { cursor kind } }`, { id }, bump, [id]);
  const seg = q.data?.node;
  if (q.error) return html`<${ErrorNote} error=${q.error} />`;
  if (!seg) return html`<p class="loading">Loading…</p>`;
  const zones = ZONES.includes(browserZone) ? ZONES : [browserZone, ...ZONES];
  return html`<section aria-labelledby="seg-title" class="details">
    <p><a href="#/segments">← Audiences</a></p>
    <div class="title-row"><h1 id="seg-title">${seg.name}</h1>
      ${admin && html`<a class="button" href=${'#/segments/' + id + '/edit'}>Edit segment</a>`}</div>
    <p class="muted"><span class="kind">${seg.kind.replace('_', ' ').toLowerCase()}</span>
      ${seg.triggerEvents.length ? html` · triggered by ${seg.triggerEvents.map((t) => html`<code>${t}</code> `)}` : ''}
      ${seg.description ? ' · ' + seg.description : ''}</p>
    <div class="card rules"><h2>Rules</h2>
      <p class="rule-text" data-testid="condition-text">${seg.conditionText || 'No conditions: every trigger event enters its user.'}</p>
      ${seg.exitRules && html`<p class="muted">Exit: ${[
        seg.exitRules.whenConditionFails && 'when the condition no longer holds',
        seg.exitRules.onEvents.length && 'on ' + seg.exitRules.onEvents.join(', ') + (seg.exitRules.onEventConditionText ? ' when ' + seg.exitRules.onEventConditionText : ''),
        seg.exitRules.after && 'after ' + seg.exitRules.after].filter(Boolean).join('; ')}</p>`}
      <p class="muted">Campaigns: ${seg.campaigns.length ? seg.campaigns.map((c) => html`<span class=${'badge st-' + c.status}>${c.name} (${c.status.toLowerCase()})</span> `) : 'none'}</p>
    </div>
    <div class="toolbar"><${Field} label="Time zone (weeks, months, chart)" id="tz">
      <select id="tz" value=${tz} onChange=${(e) => setTz(e.target.value)}>${zones.map((z) => html`<option value=${z}>${z}${z === browserZone ? ' (this browser)' : ''}</option>`)}</select>
    <//></div>
    <${Figures} id=${id} tz=${tz} />
    <${Growth} id=${id} tz=${tz} tick=${tick} />
    <div class="columns">
      <${Members} id=${id} tick=${tick} />
      <div>
        <${Explain} id=${id} />
        ${admin && html`<${TestUser} id=${id} />`}
        ${admin && html`<${Import} id=${id} />`}
        <div class="card"><h2>Export</h2><${Export} id=${id} /></div>
      </div>
    </div>
  </section>`;
}

function Figures({ id, tz }) {
  const [s, error] = useLiveStats(id, tz, null);
  const cards = [['totalUsers', 'Total users'], ['newThisWeek', 'New this week'], ['newThisMonth', 'New this month'], ['newLast7Days', 'Last 7 days'], ['newLast30Days', 'Last 30 days']];
  return html`<div class="figures" aria-live="polite">
    ${cards.map(([k, label]) => html`<div class="figure" data-figure=${k}><span class="value">${s ? num(s[k]) : '…'}</span><span class="label">${label}</span></div>`)}
    ${error && html`<p class="error">live figures: ${error.message}</p>`}
  </div>`;
}

const RANGES = { HOUR: [48, 3600e3, 'last 48 hours'], DAY: [30, 86400e3, 'last 30 days'], WEEK: [26, 7 * 86400e3, 'last 26 weeks'] };

function Growth({ id, tz, tick }) {
  const [interval, setInterval_] = useState('DAY');
  const [points, setPoints] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const [n, step] = RANGES[interval];
    const to = new Date(); // the last interval is the one that holds now
    const from = new Date(Date.now() - (n - 1) * step);
    gql(`query($id: ID!, $i: GrowthInterval!, $from: Time!, $to: Time!, $tz: String) { node(id: $id) { ... on Segment {
      growth(interval: $i, from: $from, to: $to, timeZone: $tz) { start entered exited total } } } }`,
    { id, i: interval, from: from.toISOString(), to: to.toISOString(), tz })
      .then((d) => { setPoints(d.node.growth); setError(null); }, setError);
  }, [id, tz, interval, tick]);
  const last = points && points.length ? points[points.length - 1] : null;
  return html`<div class="card"><div class="title-row"><h2>Growth</h2>
    <div class="segmented" role="radiogroup" aria-label="Chart interval">
      ${Object.keys(RANGES).map((k) => html`<button type="button" role="radio" aria-checked=${interval === k} onClick=${() => setInterval_(k)}>${k.toLowerCase()}</button>`)}
    </div></div>
    <${ErrorNote} error=${error} />
    ${points && html`<${Chart} points=${points} tz=${tz} label=${'Members by ' + interval.toLowerCase() + ', ' + RANGES[interval][2] + (last ? ': ' + last.total + ' now' : '')} />`}
  </div>`;
}

function Chart({ points, tz, label }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const data = [points.map((p) => Date.parse(p.start) / 1000), points.map((p) => p.total), points.map((p) => p.entered), points.map((p) => p.exited)];
    if (plot.current) { plot.current.setData(data); return; }
    const opts = {
      width: Math.max(240, el.current.clientWidth), height: 220,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), tz),
      series: [{}, { label: 'Members', stroke: '#2454c5', width: 2, fill: 'rgba(36,84,197,0.08)' },
        { label: 'Entered', stroke: '#1a7f37' }, { label: 'Exited', stroke: '#c62828' }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    };
    plot.current = new window.uPlot(opts, data, el.current);
  }, [points]);
  useEffect(() => () => { plot.current?.destroy(); plot.current = null; }, [tz]);
  useEffect(() => {
    const ro = new ResizeObserver(() => plot.current && el.current && plot.current.setSize({ width: Math.max(240, el.current.clientWidth), height: 220 }));
    ro.observe(el.current);
    return () => ro.disconnect();
  }, []);
  return html`<div class="chart" ref=${el} role="img" aria-label=${label} data-testid="growth-chart" data-total=${points.length ? points[points.length - 1].total : 0}></div>`;
}

function Members({ id, tick }) {
  const paging = usePaging(10);
  const vars = { id, ...paging.vars };
  const q = useQuery(`query($id: ID!, $first: Int, $after: Cursor, $last: Int, $before: Cursor) { node(id: $id) { ... on Segment {
    members(first: $first, after: $after, last: $last, before: $before) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { id enteredAt source reason user { userId } event { name } } } } } } }`, vars, [JSON.stringify(vars), tick]);
  const conn = q.data?.node?.members;
  return html`<div class="card"><h2>Members ${conn && html`<span class="muted">(${num(conn.totalCount)})</span>`}</h2>
    <${ErrorNote} error=${q.error} />
    ${conn && html`<div class="table-wrap"><table class="list" data-testid="members">
      <thead><tr><th scope="col">User</th><th scope="col">Entered</th><th scope="col">Source</th><th scope="col">Reason</th></tr></thead>
      <tbody>${conn.edges.map(({ node: m }) => html`<tr><th scope="row">${m.user.userId}</th><td>${when(m.enteredAt)}</td>
        <td><span class="badge">${m.source}</span></td><td class="reason">${m.reason}${m.event ? html` <span class="muted">(${m.event.name})</span>` : ''}</td></tr>`)}</tbody>
    </table></div>
    <${Pager} label="Member pages" pageInfo=${conn.pageInfo} onNext=${() => paging.next(conn.pageInfo)} onPrev=${() => paging.prev(conn.pageInfo)} />`}
  </div>`;
}

function Explain({ id }) {
  const [user, setUser] = useState('');
  const [out, setOut] = useState(null);
  const [error, setError] = useState(null);
  const ask = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const d = await gql(`query($id: ID!, $u: String!) { explainMembership(segmentId: $id, userId: $u) {
        member reason user { userId } membership { source enteredAt } lastEvaluatedEvent { name timestamp } } }`, { id, u: user });
      setOut(d.explainMembership);
    } catch (err) { setError(err); setOut(null); }
  };
  return html`<form class="card" onSubmit=${ask}><h2>Why is this user (not) in?</h2>
    <${Field} label="User ID" id="explain-user"><input id="explain-user" required value=${user} onInput=${(e) => setUser(e.target.value)} /><//>
    <button type="submit">Explain</button>
    <${ErrorNote} error=${error} />
    ${out && html`<div class="explain" role="status" data-testid="explanation">
      <p><strong>${out.user ? out.user.userId : user}</strong> ${out.member ? 'is a member' : 'is not a member'}${out.membership ? ' since ' + when(out.membership.enteredAt) + ' (' + out.membership.source + ')' : ''}.</p>
      <p>${out.user ? out.reason : 'segmentd has never seen this user.'}</p>
      ${out.lastEvaluatedEvent && html`<p class="muted">Last evaluated event: ${out.lastEvaluatedEvent.name} at ${when(out.lastEvaluatedEvent.timestamp)}</p>`}
    </div>`}
  </form>`;
}

function TestUser({ id }) {
  const [user, setUser] = useState('');
  const [msg, setMsg] = useState(null);
  const [error, setError] = useState(null);
  const act = async (op) => {
    setError(null);
    setMsg(null);
    if (!user.trim()) { setError({ message: 'enter a user ID' }); return; }
    try {
      const d = await gql(`mutation($id: ID!, $u: [String!]!) { r: ${op}(segmentId: $id, userIds: $u) { added removed unchanged } }`, { id, u: [user.trim()] });
      const r = d.r;
      setMsg(r.added ? `${user} added` : r.removed ? `${user} removed` : `${user} unchanged`);
    } catch (err) { setError(err); }
  };
  return html`<form class="card" onSubmit=${(e) => { e.preventDefault(); act('addUsersToSegment'); }}><h2>Test user</h2>
    <${Field} label="User ID to add or remove" id="test-user"><input id="test-user" value=${user} onInput=${(e) => setUser(e.target.value)} /><//>
    <div class="buttons"><button type="submit">Add user</button><button type="button" onClick=${() => act('removeUsersFromSegment')}>Remove user</button></div>
    ${msg && html`<p role="status">${msg}</p>`}<${ErrorNote} error=${error} />
  </form>`;
}

const JOB = 'id status dryRun totalRows processedRows added removed unchanged invalidRows errors(first: 50) { line value reason }';

function Import({ id }) {
  const [file, setFile] = useState(null);
  const [mode, setMode] = useState('ADD');
  const [dry, setDry] = useState(false);
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const stop = useRef(null);
  useEffect(() => () => stop.current && stop.current(), []);
  const start = async (e) => {
    e.preventDefault();
    setError(null);
    if (!file) { setError({ message: 'choose a CSV file' }); return; }
    try {
      const d = await upload(`mutation($id: ID!, $file: Upload!, $mode: ImportMode, $dry: Boolean) {
        importSegmentUsers(segmentId: $id, file: $file, mode: $mode, dryRun: $dry) { ${JOB} } }`, { id, mode, dry }, 'file', file);
      setJob(d.importSegmentUsers);
      stop.current && stop.current();
      stop.current = subscribe(`subscription($id: ID!) { importJobProgress(id: $id) { ${JOB} } }`, { id: d.importSegmentUsers.id },
        (p) => setJob(p.importJobProgress), setError);
    } catch (err) { setError(err); }
  };
  const done = job && (job.status === 'SUCCEEDED' || job.status === 'FAILED');
  return html`<form class="card" onSubmit=${start}><h2>Import users from CSV</h2>
    <${Field} label="CSV file (one user ID a row, or a userId column)" id="csv-file"><input id="csv-file" type="file" accept=".csv,text/csv" onChange=${(e) => setFile(e.target.files[0] || null)} /><//>
    <${Field} label="Mode" id="csv-mode"><select id="csv-mode" value=${mode} onChange=${(e) => setMode(e.target.value)}>
      <option value="ADD">Add the listed users</option><option value="REMOVE">Remove the listed users</option><option value="REPLACE">Replace the members with the list</option></select><//>
    <div class="check"><input id="csv-dry" type="checkbox" checked=${dry} onChange=${(e) => setDry(e.target.checked)} /><label for="csv-dry">Dry run (count, change nothing)</label></div>
    <button type="submit">Upload and import</button>
    <${ErrorNote} error=${error} />
    ${job && html`<div class="job" data-testid="import-job" data-status=${job.status}>
      <label for="csv-progress">${job.status.toLowerCase()}${job.dryRun ? ' (dry run)' : ''}: ${num(job.processedRows)} of ${num(job.totalRows)} rows</label>
      <progress id="csv-progress" max=${Math.max(1, job.totalRows)} value=${job.processedRows}></progress>
      ${done && html`<p role="status">${job.status === 'SUCCEEDED' ? 'Done' : 'Failed'}: ${num(job.added)} added, ${num(job.removed)} removed, ${num(job.unchanged)} unchanged, ${num(job.invalidRows)} bad row${job.invalidRows === 1 ? '' : 's'}.</p>`}
      ${job.errors.length > 0 && html`<table class="list" data-testid="bad-rows"><caption>Bad rows</caption><thead><tr><th scope="col">Line</th><th scope="col">Value</th><th scope="col">Reason</th></tr></thead>
        <tbody>${job.errors.map((r) => html`<tr><td>${r.line}</td><td><code>${r.value}</code></td><td>${r.reason}</td></tr>`)}</tbody></table>`}
    </div>`}
  </form>`;
}

function Export({ id }) {
  const [error, setError] = useState(null);
  return html`<p><button type="button" onClick=${() => download('/segments/' + encodeURIComponent(id) + '/members.csv', id + '-members.csv').catch(setError)}>Export members (CSV)</button></p>
    <${ErrorNote} error=${error} />`;
}
