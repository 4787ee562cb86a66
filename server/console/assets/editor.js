// Create and edit a segment: name, kind, trigger events picked from the
// names seen (eventNames), a condition builder (nested AND/OR groups that
// can be negated, predicates with scope, a property picker from
// propertyNames/traitNames, operators by the value's type, typed values),
// the rule as readable text as it is built, a debounced live preview
// (previewSegment), the reevaluation policy on edit, and server errors
// shown at the field they name (extensions.field).
import { html, useState, useEffect, useRef, useDebounced, Field, ErrorNote, num, useId } from './ui.js';
import { gql } from './api.js';

const OPS = {
  string: ['EQ', 'NEQ', 'CONTAINS', 'NOT_CONTAINS', 'STARTS_WITH', 'ENDS_WITH', 'MATCHES', 'IN', 'NOT_IN', 'EXISTS', 'NOT_EXISTS'],
  number: ['EQ', 'NEQ', 'GT', 'GTE', 'LT', 'LTE', 'BETWEEN', 'IN', 'NOT_IN', 'EXISTS', 'NOT_EXISTS'],
  date: ['GT', 'GTE', 'LT', 'LTE', 'EQ', 'BETWEEN', 'WITHIN_LAST', 'EXISTS', 'NOT_EXISTS'],
  boolean: ['EQ', 'NEQ', 'EXISTS', 'NOT_EXISTS'],
};
const OP_TEXT = {
  EQ: '=', NEQ: '≠', GT: '>', GTE: '≥', LT: '<', LTE: '≤', CONTAINS: 'contains', NOT_CONTAINS: 'does not contain',
  STARTS_WITH: 'starts with', ENDS_WITH: 'ends with', MATCHES: 'matches', IN: 'is one of', NOT_IN: 'is none of',
  EXISTS: 'exists', NOT_EXISTS: 'does not exist', BETWEEN: 'is between', WITHIN_LAST: 'is within the last',
};
const TYPE_LABEL = { string: 'text', number: 'number', date: 'date', boolean: 'yes/no' };
const UNITS = { m: 'minutes', h: 'hours', d: 'days', w: 'weeks' };
const REEVALUATE = {
  FUTURE_ONLY: 'Keep the members; the new rules apply to events from now on.',
  BACKFILL: 'Keep the members, and replay the stored events: users they now qualify add.',
  RECONCILE: 'Replay the stored events: add new matches and remove event-sourced members who no longer match.',
};

let nextId = 0;
const group = (op = 'and', children = []) => ({ id: ++nextId, k: 'group', op, negate: false, children });
const pred = (scope = 'USER') => ({ id: ++nextId, k: 'pred', scope, property: '', type: 'string', operator: 'EQ', value: '', value2: '', unit: 'd' });
// A behaviour predicate: the event, a where group on the counted event's
// properties (EVENT scope only, as the server requires), a window, and a
// measure: a count, or an aggregate of a numeric property.
const performed = () => ({ id: ++nextId, k: 'performed', event: '', where: group('and'), within: '', measure: 'count', countOp: 'GTE', count: '1',
  aggFn: 'SUM', aggProp: '', aggOp: 'GT', aggValue: '' });
const AGG_OPS = ['GT', 'GTE', 'LT', 'LTE', 'EQ', 'NEQ'];
// How the server reads a count (trigger.writeCount), so that the preview's
// line and the saved conditionText say the same.
const COUNT_TEXT = { EQ: 'exactly', NEQ: 'not exactly', GT: 'more than', GTE: 'at least', LT: 'fewer than', LTE: 'at most' };

function conv(type, v) {
  v = String(v).trim();
  if (type === 'number') return v === '' ? null : Number(v);
  if (type === 'boolean') return v === 'true';
  return v;
}

// toInput turns the tree into a ConditionInput, noting each node's input
// path (input.condition.and[1].value's node is the one at input.condition.and[1]).
function toInput(n, path, paths) {
  paths.set(path, n.id);
  if (n.k === 'group') {
    const kids = n.children.filter((c) => c.k !== 'group' || c.children.length);
    if (!kids.length) return null;
    const inner = n.negate ? path + '.not' : path;
    const list = kids.map((c, i) => toInput(c, `${inner}.${n.op}[${i}]`, paths));
    const g = { [n.op]: list };
    return n.negate ? { not: g } : g;
  }
  if (n.k === 'performed') {
    const p = { event: n.event };
    const wn = whereNode(n.where);
    const where = wn && toInput(wn, path + '.performed.where', paths);
    paths.set(path, n.id); // the where group's own path is the node's too
    if (where) p.where = where;
    if (n.within) p.within = n.within;
    if (n.measure === 'aggregate') p.aggregate = { function: n.aggFn, property: n.aggProp, operator: n.aggOp, value: String(n.aggValue).trim() === '' ? '' : Number(n.aggValue) }; // '' is refused at its field; null would break the request
    else if (n.count !== '') p.count = { operator: n.countOp, value: Number(n.count) };
    return { performed: p };
  }
  const c = { scope: n.scope, property: n.property, operator: n.operator };
  if (n.operator === 'EXISTS' || n.operator === 'NOT_EXISTS') return c;
  if (n.operator === 'IN' || n.operator === 'NOT_IN') c.value = n.value.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => conv(n.type, s));
  else if (n.operator === 'BETWEEN') c.value = [conv(n.type, n.value), conv(n.type, n.value2)];
  else if (n.operator === 'WITHIN_LAST') c.value = String(n.value).trim() + n.unit;
  else c.value = conv(n.type, n.value);
  return c;
}

const q = (s) => JSON.stringify(s);
function valueText(n) {
  switch (n.operator) {
    case 'EXISTS': case 'NOT_EXISTS': return '';
    case 'IN': case 'NOT_IN': return '[' + n.value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => (n.type === 'string' ? q(s) : s)).join(', ') + ']';
    case 'BETWEEN': return `${fmtV(n, n.value)} and ${fmtV(n, n.value2)}`;
    case 'WITHIN_LAST': return `${n.value} ${UNITS[n.unit]}`;
    default: return fmtV(n, n.value);
  }
}
function fmtV(n, v) { return n.type === 'string' || n.type === 'date' ? q(v) : String(v); }

// ruleText renders the tree as one readable line, as it is built.
export function ruleText(n, top = true) {
  if (n.k === 'group') {
    const kids = n.children.filter((c) => c.k !== 'group' || c.children.length);
    if (!kids.length) return '';
    let t = kids.map((c) => ruleText(c, false)).join(n.op === 'and' ? ' AND ' : ' OR ');
    if (n.negate) return 'NOT (' + t + ')';
    return !top && kids.length > 1 ? '(' + t + ')' : t;
  }
  if (n.k === 'performed') {
    // As the server writes it: an AND or OR group in parentheses.
    const wn = whereNode(n.where);
    const w = wn ? ruleText(wn, true) : '';
    const where = w ? ' where ' + (wn.k === 'group' && !wn.negate ? '(' + w + ')' : w) : '';
    const measure = n.measure === 'aggregate' ? ` ${n.aggFn} of ${q(n.aggProp || '…')} ${OP_TEXT[n.aggOp]} ${n.aggValue || '…'}`
      : n.count === '' ? ' at least 1 time' : n.countOp === 'EQ' && Number(n.count) === 0 ? ' 0 times' : ` ${COUNT_TEXT[n.countOp]} ${n.count} time${Number(n.count) === 1 ? '' : 's'}`;
    return `performed ${q(n.event || '…')}${where}${measure}${n.within ? ' within ' + n.within : ''}`;
  }
  return `${n.scope === 'EVENT' ? 'event' : 'user'}.${q(n.property || '…')} ${OP_TEXT[n.operator]} ${valueText(n)}`.trim();
}

function typeOf(v) {
  if (Array.isArray(v)) return v.length ? typeOf(v[0]) : 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'string' && (/^\d{4}-\d{2}-\d{2}/.test(v))) return 'date';
  return 'string';
}

// fromCondition reads a stored Condition back into the builder's tree.
function fromCondition(c) {
  if (!c) return group('and');
  if (c.kind === 'AND' || c.kind === 'OR') return group(c.kind.toLowerCase(), c.children.map(fromCondition));
  if (c.kind === 'NOT') {
    const inner = fromCondition(c.children[0]);
    const g = inner.k === 'group' ? inner : group('and', [inner]);
    g.negate = true;
    return g;
  }
  if (c.kind === 'PERFORMED') {
    const p = performed();
    p.event = c.performed.event;
    p.within = c.performed.within || '';
    if (c.performed.where) p.where = asGroup(fromCondition(c.performed.where));
    if (c.performed.count) { p.countOp = c.performed.count.operator; p.count = String(c.performed.count.value); }
    const a = c.performed.aggregate;
    if (a) Object.assign(p, { measure: 'aggregate', aggFn: a.function, aggProp: a.property, aggOp: a.operator, aggValue: String(a.value) });
    return p;
  }
  const p = pred(c.scope);
  p.property = c.property;
  p.operator = c.operator;
  p.type = typeOf(c.value);
  const v = c.value;
  if (c.operator === 'BETWEEN' && Array.isArray(v)) { p.value = String(v[0]); p.value2 = String(v[1]); } else if (Array.isArray(v)) p.value = v.join(', ');
  else if (c.operator === 'WITHIN_LAST' && typeof v === 'string') { p.value = v.slice(0, -1); p.unit = v.slice(-1); p.type = 'date'; } else if (v != null) p.value = String(v);
  return p;
}

// whereNode is what a behaviour's where group sends: nothing when empty,
// its only predicate alone (so the rule reads "where event.total > 10",
// not "where (event.total > 10)"), else the group.
function whereNode(g) {
  const kids = g.children.filter((c) => c.k !== 'group' || c.children.length);
  if (!kids.length) return null;
  return kids.length === 1 && !g.negate ? kids[0] : g;
}

// asGroup makes a read-back tree a group, the builder's root shape.
const asGroup = (n) => (n.k === 'group' ? n : group('and', [n]));

// A behaviour's where holds predicates and groups only (no behaviour).
function plainFields(depth) {
  const base = 'kind scope property operator value';
  return depth === 0 ? base : `${base} children { ${plainFields(depth - 1)} }`;
}
// A behaviour's where is read as its root only: its children nested in the
// tree's children would multiply the query's estimated cost past the
// server's limit (a tree counts as up to 200 nodes, and so would each
// where in it). fillWheres reads the where groups afterwards, each by its
// node ID, in one query.
function condFields(depth) {
  const base = `kind scope property operator value performed { event within count { operator value }
    aggregate { function property operator value } where { id ${plainFields(0)} } }`;
  return depth === 0 ? base : `${base} children { ${condFields(depth - 1)} }`;
}
async function fillWheres(roots) {
  const need = [];
  const walk = (c) => {
    if (!c) return;
    if (c.performed?.where && ['AND', 'OR', 'NOT'].includes(c.performed.where.kind)) need.push(c.performed);
    (c.children || []).forEach(walk);
  };
  roots.forEach(walk);
  if (!need.length) return;
  const vars = Object.fromEntries(need.map((p, i) => ['w' + i, p.where.id]));
  const d = await gql(`query(${need.map((_, i) => `$w${i}: ID!`).join(', ')}) { ${need.map((_, i) => `w${i}: node(id: $w${i}) { ... on Condition { ${plainFields(6)} } }`).join(' ')} }`, vars);
  need.forEach((p, i) => { p.where = d['w' + i]; });
}
const LOAD = `query($id: ID!) { node(id: $id) { ... on Segment { id name description kind triggerEvents
  exitRules { whenConditionFails onEvents after onEventCondition { ${condFields(4)} } } condition { ${condFields(6)} } } } }`;

export function SegmentEditor({ id }) {
  const editing = !!id;
  const [, setVersion] = useState(0);
  const root = useRef(group('and'));
  const exitRoot = useRef(group('and')); // exitRules.onEventCondition
  const [form, setForm] = useState({ name: '', description: '', kind: 'EVENT_TRIGGERED', triggerEvents: [], exitWhenFails: false, exitAfter: '', exitOn: '' });
  const [loaded, setLoaded] = useState(!editing);
  const [names, setNames] = useState({ events: [], traits: [], props: {} });
  const [preview, setPreview] = useState(null);
  const [err, setErr] = useState(null);
  const [saving, setSaving] = useState(false);
  const [reevaluate, setReevaluate] = useState('FUTURE_ONLY');
  const paths = useRef(new Map());
  const changed = () => { setVersion((v) => v + 1); previewSoon(); };

  useEffect(() => {
    gql('{ eventNames(first: 100) { name count } traitNames(first: 200) }')
      .then((d) => setNames((n) => ({ ...n, events: d.eventNames, traits: d.traitNames })), setErr);
    if (editing) {
      gql(LOAD, { id }).then(async (d) => {
        const s = d.node;
        await fillWheres([s.condition, s.exitRules?.onEventCondition]);
        root.current = s.condition && (s.condition.kind === 'AND' || s.condition.kind === 'OR' || s.condition.kind === 'NOT') ? fromCondition(s.condition) : group('and', s.condition ? [fromCondition(s.condition)] : []);
        exitRoot.current = s.exitRules?.onEventCondition ? asGroup(fromCondition(s.exitRules.onEventCondition)) : group('and');
        setForm({ name: s.name, description: s.description || '', kind: s.kind, triggerEvents: s.triggerEvents,
          exitWhenFails: !!s.exitRules?.whenConditionFails, exitAfter: s.exitRules?.after || '', exitOn: (s.exitRules?.onEvents || []).join(', ') });
        setLoaded(true);
      }).catch(setErr);
    }
  }, [id]);

  // Property names of an event (the trigger events', a behaviour's counted
  // event's, the exit events'), fetched once each, for the EVENT scope.
  const asked = useRef(new Set());
  const loadProps = (evs) => {
    for (const ev of evs) {
      if (!ev || asked.current.has(ev)) continue;
      asked.current.add(ev);
      gql('query($e: String!) { propertyNames(event: $e, first: 200) }', { e: ev })
        .then((d) => setNames((n) => ({ ...n, props: { ...n.props, [ev]: d.propertyNames } })), () => asked.current.delete(ev));
    }
  };
  const exitEvents = form.exitOn.split(',').map((x) => x.trim()).filter(Boolean);
  useEffect(() => loadProps(form.triggerEvents), [form.triggerEvents.join('\n')]);
  const loadPropsSoon = useDebounced(loadProps, 400); // not at each key typed
  useEffect(() => loadPropsSoon(exitEvents), [exitEvents.join('\n')]);

  const input = () => {
    paths.current = new Map();
    const cond = toInput(root.current, 'input.condition', paths.current);
    const i = { name: form.name, kind: form.kind };
    if (form.description) i.description = form.description;
    if (form.kind !== 'STATIC') i.triggerEvents = form.kind === 'EVENT_TRIGGERED' ? form.triggerEvents : [];
    if (form.kind === 'DYNAMIC') delete i.triggerEvents;
    if (cond) i.condition = cond;
    const exitOn = form.exitOn.split(',').map((x) => x.trim()).filter(Boolean);
    const exitCond = toInput(exitRoot.current, 'input.exitRules.onEventCondition', paths.current);
    if (form.exitWhenFails || form.exitAfter || exitOn.length || exitCond) {
      i.exitRules = { whenConditionFails: form.exitWhenFails, ...(form.exitAfter ? { after: form.exitAfter } : {}), ...(exitOn.length ? { onEvents: exitOn } : {}),
        ...(exitCond ? { onEventCondition: exitCond } : {}) };
    }
    return i;
  };

  const runPreview = async () => {
    if (form.kind === 'STATIC') { setPreview(null); return; }
    if (form.kind === 'EVENT_TRIGGERED' && !form.triggerEvents.length) { setPreview({ hint: 'Pick a trigger event to see how many users would match.' }); return; }
    const i = input();
    if (!i.name) i.name = 'preview';
    try {
      const d = await gql('query($in: CreateSegmentInput!) { previewSegment(input: $in) { matchingUsers sample(first: 5) { userId } } }', { in: i });
      setPreview({ ok: d.previewSegment });
      setErr((e) => (e && e.fromPreview ? null : e));
    } catch (e) {
      e.fromPreview = true;
      setPreview({ error: e });
      if (e.field) setErr(e);
    }
  };
  const previewSoon = useDebounced(runPreview, 400);
  useEffect(() => { if (loaded) previewSoon(); }, [loaded, form]);

  const set = (k) => (e) => setForm((f) => ({ ...f, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value }));

  const save = async (e) => {
    e.preventDefault();
    setSaving(true);
    setErr(null);
    const i = input();
    try {
      let newId = id;
      if (editing) {
        const u = { name: i.name, description: i.description ?? null, triggerEvents: form.kind === 'EVENT_TRIGGERED' ? form.triggerEvents : undefined };
        if (i.condition) u.condition = i.condition; else u.clearCondition = true;
        if (i.exitRules) u.exitRules = i.exitRules; else u.clearExitRules = true;
        await gql('mutation($id: ID!, $in: UpdateSegmentInput!, $r: ReevaluationPolicy) { updateSegment(id: $id, input: $in, reevaluate: $r) { id } }', { id, in: u, r: reevaluate });
      } else {
        const d = await gql('mutation($in: CreateSegmentInput!) { createSegment(input: $in) { id } }', { in: i });
        newId = d.createSegment.id;
      }
      location.hash = '#/segments/' + newId;
    } catch (er) { setErr(er); } finally { setSaving(false); }
  };

  if (!loaded) return html`<p class="loading">Loading…</p><${ErrorNote} error=${err} />`;
  // The field an error names, and the builder node it falls in.
  const field = err?.field || '';
  const at = (name) => (field === 'input.' + name || field.startsWith('input.' + name + '.') || field.startsWith('input.' + name + '[') ? err.message : null);
  let errNode = null;
  if (field.startsWith('input.condition') || field.startsWith('input.exitRules.onEventCondition')) {
    let best = '';
    for (const [p, nid] of paths.current) if ((field === p || field.startsWith(p + '.') || field.startsWith(p + '[')) && p.length > best.length) { best = p; errNode = nid; }
  }
  const text = ruleText(root.current);
  const propNames = [...new Set(form.triggerEvents.flatMap((ev) => names.props[ev] || []))];
  const ctx = { changed, errNode, err, props: names.props, loadProps, list: 'dl-props' };
  const exitCtx = { ...ctx, list: 'dl-exit-props' };
  const exitProps = [...new Set(exitEvents.flatMap((ev) => names.props[ev] || []))];
  const exitErr = errNode == null ? at('exitRules') : null;
  const shownErr = err && !err.field ? err : err && errNode == null && !['name', 'description', 'kind', 'triggerEvents', 'exitRules'].some((f) => at(f)) ? err : null;

  return html`<form class="editor" onSubmit=${save} aria-labelledby="editor-title" novalidate>
    <p><a href=${editing ? '#/segments/' + id : '#/segments'}>← ${editing ? 'Segment' : 'Audiences'}</a></p>
    <h1 id="editor-title">${editing ? 'Edit segment' : 'Create segment'}</h1>
    <datalist id="dl-events">${names.events.map((n) => html`<option value=${n.name}>${n.count} events</option>`)}</datalist>
    <datalist id="dl-props">${propNames.map((n) => html`<option value=${n} />`)}</datalist>
    <datalist id="dl-exit-props">${exitProps.map((n) => html`<option value=${n} />`)}</datalist>
    <datalist id="dl-traits">${names.traits.map((n) => html`<option value=${n} />`)}</datalist>
    <div class="card">
      <${Field} label="Segment name" id="seg-name" error=${at('name')}><input id="seg-name" value=${form.name} onInput=${set('name')} placeholder="Activation Experiment - New Users" aria-invalid=${!!at('name')} /><//>
      <${Field} label="Description" id="seg-desc" error=${at('description')}><input id="seg-desc" value=${form.description} onInput=${set('description')} /><//>
      <${Field} label="Kind" id="seg-kind" error=${at('kind')} hint=${editing ? 'The kind of a segment is fixed once created.' : {
        EVENT_TRIGGERED: 'Users enter when a trigger event arrives and the conditions hold.',
        STATIC: 'Users are added by hand or by CSV import.',
        DYNAMIC: 'Users are members exactly while the conditions hold (no trigger events).' }[form.kind]}>
        <select id="seg-kind" value=${form.kind} onChange=${set('kind')} disabled=${editing}>
          <option value="EVENT_TRIGGERED">Event-triggered</option><option value="STATIC">Static</option><option value="DYNAMIC">Dynamic</option></select>
      <//>
      ${form.kind === 'EVENT_TRIGGERED' && html`<${Triggers} value=${form.triggerEvents} error=${at('triggerEvents')}
        onChange=${(v) => setForm((f) => ({ ...f, triggerEvents: v }))} />`}
    </div>
    ${form.kind !== 'STATIC' && html`<div class="card"><h2>Conditions</h2>
      <${Group} node=${root.current} ctx=${ctx} path="Conditions" top=${true} />
      <p class="rule-text" aria-live="polite" data-testid="rule-text"><span class="muted">Rule: </span>${text || 'no conditions (every trigger event enters its user)'}</p>
      <div class="preview" aria-live="polite" data-testid="preview">${preview?.ok ? html`<strong>${num(preview.ok.matchingUsers)}</strong> user${preview.ok.matchingUsers === 1 ? '' : 's'} would match over the stored data${preview.ok.sample.length ? ' (e.g. ' + preview.ok.sample.map((u) => u.userId).join(', ') + ')' : ''}.`
        : preview?.error ? html`<span class="muted">Preview: ${preview.error.message}</span>` : preview?.hint ? html`<span class="muted">${preview.hint}</span>` : html`<span class="muted">Preview…</span>`}</div>
    </div>
    <div class="card"><h2>Exit rules</h2>
      <div class="check"><input id="exit-fails" type="checkbox" checked=${form.exitWhenFails} onChange=${set('exitWhenFails')} /><label for="exit-fails">Leave once the condition no longer holds</label></div>
      <${Field} label="Leave when one of these events arrives (comma-separated)" id="exit-on"><input id="exit-on" list="dl-events" value=${form.exitOn} onInput=${set('exitOn')} placeholder="Account Closed" /><//>
      <div class="exit-cond"><p class="label-like">Only when the exit event meets (empty: any of them is enough)</p>
        <${Group} node=${exitRoot.current} ctx=${exitCtx} path="Exit condition" top=${true} />
        ${exitRoot.current.children.length > 0 && html`<p class="rule-text" data-testid="exit-rule-text"><span class="muted">Exit condition: </span>${ruleText(exitRoot.current) || '…'}</p>`}</div>
      <${Field} label="Leave this long after entering (e.g. 30d, 12h; empty: never)" id="exit-after" error=${exitErr}><input id="exit-after" value=${form.exitAfter} onInput=${set('exitAfter')} /><//>
    </div>`}
    ${editing && html`<fieldset class="card"><legend>When the rules change</legend>
      ${Object.entries(REEVALUATE).map(([k, v]) => html`<div class="check"><input type="radio" name="reevaluate" id=${'re-' + k} value=${k} checked=${reevaluate === k} onChange=${() => setReevaluate(k)} />
        <label for=${'re-' + k}><strong>${k.replace('_', ' ').toLowerCase()}</strong>: ${v}</label></div>`)}
    </fieldset>`}
    <${ErrorNote} error=${shownErr} />
    <div class="buttons"><button type="submit" class="primary" disabled=${saving}>Save</button><a class="button" href=${editing ? '#/segments/' + id : '#/segments'}>Cancel</a></div>
  </form>`;
}

function Triggers({ value, onChange, error }) {
  const [text, setText] = useState('');
  const add = () => { const t = text.trim(); if (t && !value.includes(t)) onChange([...value, t]); setText(''); };
  return html`<div class=${'field' + (error ? ' has-error' : '')}>
    <label for="trigger-input">Event trigger</label>
    <div class="chips" aria-label="Trigger events">${value.map((t) => html`<span class="chip">${t}<button type="button" aria-label=${'Remove trigger ' + t} onClick=${() => onChange(value.filter((x) => x !== t))}>×</button></span>`)}</div>
    <div class="inline"><input id="trigger-input" list="dl-events" value=${text} placeholder="Sign Up" onInput=${(e) => setText(e.target.value)}
      onKeyDown=${(e) => { if (e.key === 'Enter') { e.preventDefault(); add(); } }} />
      <button type="button" onClick=${add}>Add trigger</button></div>
    <small class="hint">Names seen so far are offered; a new name works too.</small>
    ${error && html`<small class="field-error" role="alert">${error}</small>`}
  </div>`;
}

function Group({ node, ctx, path, top }) {
  const add = (n) => { node.children.push(n); ctx.changed(); };
  return html`<fieldset class=${'group' + (ctx.errNode === node.id ? ' has-error' : '')} data-node=${node.id}>
    <legend>${path}</legend>
    <div class="inline group-head">
      <label for=${'op-' + node.id}>Match</label>
      <select id=${'op-' + node.id} value=${node.op} onChange=${(e) => { node.op = e.target.value; ctx.changed(); }}>
        <option value="and">all of (AND)</option><option value="or">any of (OR)</option></select>
      <div class="check"><input type="checkbox" id=${'not-' + node.id} checked=${node.negate} onChange=${(e) => { node.negate = e.target.checked; ctx.changed(); }} /><label for=${'not-' + node.id}>NOT (negate the group)</label></div>
    </div>
    <ol class="conds">${node.children.map((c, i) => html`<li key=${c.id}>
      ${c.k === 'group' ? html`<${Group} node=${c} ctx=${ctx} path=${path + ' › group ' + (i + 1)} />` : c.k === 'performed' ? html`<${Performed} node=${c} ctx=${ctx} label=${path + ' › ' + (i + 1)} />` : html`<${Pred} node=${c} ctx=${ctx} label=${path + ' › ' + (i + 1)} />`}
      <button type="button" class="remove" aria-label=${'Remove ' + path + ' › ' + (i + 1)} onClick=${() => { node.children.splice(i, 1); ctx.changed(); }}>Remove</button>
    </li>`)}</ol>
    ${ctx.errNode === node.id && html`<small class="field-error" role="alert">${ctx.err.message}</small>`}
    <div class="buttons">
      <button type="button" onClick=${() => add(pred('EVENT'))}>+ Event property</button>
      ${!ctx.eventOnly && html`<button type="button" onClick=${() => add(pred('USER'))}>+ User trait</button>
      <button type="button" onClick=${() => add(performed())}>+ Behaviour</button>`}
      <button type="button" onClick=${() => add(group(node.op === 'and' ? 'or' : 'and'))}>+ Group</button>
    </div>
  </fieldset>`;
}

function Pred({ node, ctx, label }) {
  const set = (k, v) => { node[k] = v; ctx.changed(); };
  const ops = OPS[node.type];
  const id = 'c' + node.id;
  const bad = ctx.errNode === node.id;
  const valueInput = (k, lab) => {
    const common = { id: id + '-' + k, 'aria-label': label + ' ' + lab, value: node[k], onInput: (e) => set(k, e.target.value), 'aria-invalid': bad };
    if (node.type === 'boolean') return html`<select ...${common} onChange=${(e) => set(k, e.target.value)}><option value="">choose</option><option value="true">true</option><option value="false">false</option></select>`;
    if (node.type === 'date') return html`<input type="date" ...${common} />`;
    if (node.type === 'number') return html`<input type="number" step="any" ...${common} />`;
    return html`<input type="text" ...${common} />`;
  };
  let value = null;
  if (node.operator === 'EXISTS' || node.operator === 'NOT_EXISTS') value = null;
  else if (node.operator === 'IN' || node.operator === 'NOT_IN') value = html`<input type="text" id=${id + '-value'} aria-label=${label + ' values, comma-separated'} placeholder="a, b, c" value=${node.value} onInput=${(e) => set('value', e.target.value)} />`;
  else if (node.operator === 'BETWEEN') value = html`${valueInput('value', 'low')}<span>and</span>${valueInput('value2', 'high')}`;
  else if (node.operator === 'WITHIN_LAST') value = html`<input type="number" min="1" id=${id + '-value'} aria-label=${label + ' how many'} value=${node.value} onInput=${(e) => set('value', e.target.value)} />
    <select aria-label=${label + ' unit'} value=${node.unit} onChange=${(e) => set('unit', e.target.value)}>${Object.entries(UNITS).map(([u, t]) => html`<option value=${u}>${t}</option>`)}</select>`;
  else value = valueInput('value', 'value');
  return html`<div class=${'pred inline' + (bad ? ' has-error' : '')} data-node=${node.id} role="group" aria-label=${label}>
    ${ctx.eventOnly ? html`<span>event property</span>` : html`<select aria-label=${label + ' scope'} value=${node.scope} onChange=${(e) => set('scope', e.target.value)}>
      <option value="EVENT">event property</option><option value="USER">user trait</option></select>`}
    <input aria-label=${label + ' property'} class="prop" list=${node.scope === 'EVENT' ? ctx.list : 'dl-traits'} value=${node.property} placeholder="property" onInput=${(e) => set('property', e.target.value)} />
    <select aria-label=${label + ' type'} value=${node.type} onChange=${(e) => { node.type = e.target.value; if (!OPS[node.type].includes(node.operator)) node.operator = OPS[node.type][0]; ctx.changed(); }}>
      ${Object.entries(TYPE_LABEL).map(([t, l]) => html`<option value=${t}>${l}</option>`)}</select>
    <select aria-label=${label + ' operator'} value=${node.operator} onChange=${(e) => set('operator', e.target.value)}>
      ${ops.map((o) => html`<option value=${o}>${OP_TEXT[o]}</option>`)}</select>
    ${value}
    ${bad && html`<small class="field-error" role="alert">${ctx.err.message}</small>`}
  </div>`;
}

function Performed({ node, ctx, label }) {
  const set = (k, v) => { node[k] = v; ctx.changed(); };
  const bad = ctx.errNode === node.id;
  const list = 'dl-pp-' + node.id;
  useEffect(() => ctx.loadProps([node.event]), []); // then on each committed change
  const props = ctx.props[node.event] || [];
  // The counted event's where: its own properties only.
  const whereCtx = { ...ctx, eventOnly: true, list };
  return html`<div class=${'pred performed' + (bad ? ' has-error' : '')} data-node=${node.id} role="group" aria-label=${label}>
    <datalist id=${list}>${props.map((n) => html`<option value=${n} />`)}</datalist>
    <div class="inline">
      <span>performed</span>
      <input aria-label=${label + ' event'} list="dl-events" value=${node.event} placeholder="event name" onInput=${(e) => set('event', e.target.value)}
        onChange=${() => ctx.loadProps([node.event])} />
      <select aria-label=${label + ' measure'} value=${node.measure} onChange=${(e) => set('measure', e.target.value)}>
        <option value="count">a count</option><option value="aggregate">an aggregate</option></select>
      ${node.measure === 'aggregate' ? html`
        <select aria-label=${label + ' function'} value=${node.aggFn} onChange=${(e) => set('aggFn', e.target.value)}>${['SUM', 'AVG', 'MIN', 'MAX'].map((f) => html`<option value=${f}>${f}</option>`)}</select>
        <span>of</span>
        <input aria-label=${label + ' numeric property'} class="prop" list=${list} value=${node.aggProp} placeholder="total" onInput=${(e) => set('aggProp', e.target.value)} />
        <select aria-label=${label + ' aggregate operator'} value=${node.aggOp} onChange=${(e) => set('aggOp', e.target.value)}>${AGG_OPS.map((o) => html`<option value=${o}>${OP_TEXT[o]}</option>`)}</select>
        <input type="number" step="any" aria-label=${label + ' aggregate value'} value=${node.aggValue} onInput=${(e) => set('aggValue', e.target.value)} />`
      : html`
        <select aria-label=${label + ' count operator'} value=${node.countOp} onChange=${(e) => set('countOp', e.target.value)}>
          ${['GTE', 'GT', 'EQ', 'NEQ', 'LT', 'LTE'].map((o) => html`<option value=${o}>${COUNT_TEXT[o]}</option>`)}</select>
        <input type="number" min="0" aria-label=${label + ' times'} value=${node.count} onInput=${(e) => set('count', e.target.value)} /><span>times</span>`}
      <span>within</span>
      <input class="dur" aria-label=${label + ' window (e.g. 7d; empty: all time)'} value=${node.within} placeholder="7d (empty: all time)" onInput=${(e) => set('within', e.target.value)} />
    </div>
    <${Group} node=${node.where} ctx=${whereCtx} path=${label + ' where'} />
    ${bad && html`<small class="field-error" role="alert">${ctx.err.message}</small>`}
  </div>`;
}
