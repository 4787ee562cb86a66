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
const performed = () => ({ id: ++nextId, k: 'performed', event: '', countOp: 'GTE', count: '1', within: '' });

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
    if (n.within) p.within = n.within;
    if (n.count !== '') p.count = { operator: n.countOp, value: Number(n.count) };
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
    return `performed ${q(n.event || '…')}${n.count !== '' ? ` ${OP_TEXT[n.countOp]} ${n.count} times` : ''}${n.within ? ' within ' + n.within : ''}`;
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
    if (c.performed.count) { p.countOp = c.performed.count.operator; p.count = String(c.performed.count.value); }
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

function condFields(depth) {
  const base = 'kind scope property operator value performed { event within count { operator value } }';
  return depth === 0 ? base : `${base} children { ${condFields(depth - 1)} }`;
}
const LOAD = `query($id: ID!) { node(id: $id) { ... on Segment { id name description kind triggerEvents
  exitRules { whenConditionFails onEvents after } condition { ${condFields(6)} } } } }`;

export function SegmentEditor({ id }) {
  const editing = !!id;
  const [, setVersion] = useState(0);
  const root = useRef(group('and'));
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
      gql(LOAD, { id }).then((d) => {
        const s = d.node;
        root.current = s.condition && (s.condition.kind === 'AND' || s.condition.kind === 'OR' || s.condition.kind === 'NOT') ? fromCondition(s.condition) : group('and', s.condition ? [fromCondition(s.condition)] : []);
        setForm({ name: s.name, description: s.description || '', kind: s.kind, triggerEvents: s.triggerEvents,
          exitWhenFails: !!s.exitRules?.whenConditionFails, exitAfter: s.exitRules?.after || '', exitOn: (s.exitRules?.onEvents || []).join(', ') });
        setLoaded(true);
      }, setErr);
    }
  }, [id]);

  // Property names of the chosen trigger events, for the EVENT scope.
  useEffect(() => {
    for (const ev of form.triggerEvents) {
      if (names.props[ev]) continue;
      gql('query($e: String!) { propertyNames(event: $e, first: 200) }', { e: ev })
        .then((d) => setNames((n) => ({ ...n, props: { ...n.props, [ev]: d.propertyNames } })), () => {});
    }
  }, [form.triggerEvents.join('\n')]);

  const input = () => {
    paths.current = new Map();
    const cond = toInput(root.current, 'input.condition', paths.current);
    const i = { name: form.name, kind: form.kind };
    if (form.description) i.description = form.description;
    if (form.kind !== 'STATIC') i.triggerEvents = form.kind === 'EVENT_TRIGGERED' ? form.triggerEvents : [];
    if (form.kind === 'DYNAMIC') delete i.triggerEvents;
    if (cond) i.condition = cond;
    const exitOn = form.exitOn.split(',').map((x) => x.trim()).filter(Boolean);
    if (form.exitWhenFails || form.exitAfter || exitOn.length) i.exitRules = { whenConditionFails: form.exitWhenFails, ...(form.exitAfter ? { after: form.exitAfter } : {}), ...(exitOn.length ? { onEvents: exitOn } : {}) };
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
  if (field.startsWith('input.condition')) {
    let best = '';
    for (const [p, nid] of paths.current) if ((field === p || field.startsWith(p + '.') || field.startsWith(p + '[')) && p.length > best.length) { best = p; errNode = nid; }
  }
  const text = ruleText(root.current);
  const propNames = [...new Set(form.triggerEvents.flatMap((ev) => names.props[ev] || []))];
  const ctx = { changed, errNode, err, propNames, traits: names.traits, events: names.events.map((n) => n.name) };
  const shownErr = err && !err.field ? err : err && errNode == null && !['name', 'description', 'kind', 'triggerEvents', 'exitRules'].some((f) => at(f)) ? err : null;

  return html`<form class="editor" onSubmit=${save} aria-labelledby="editor-title" novalidate>
    <p><a href=${editing ? '#/segments/' + id : '#/segments'}>← ${editing ? 'Segment' : 'Audiences'}</a></p>
    <h1 id="editor-title">${editing ? 'Edit segment' : 'Create segment'}</h1>
    <datalist id="dl-events">${names.events.map((n) => html`<option value=${n.name}>${n.count} events</option>`)}</datalist>
    <datalist id="dl-props">${propNames.map((n) => html`<option value=${n} />`)}</datalist>
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
      <${Field} label="Leave this long after entering (e.g. 30d, 12h; empty: never)" id="exit-after" error=${at('exitRules')}><input id="exit-after" value=${form.exitAfter} onInput=${set('exitAfter')} /><//>
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
      <button type="button" onClick=${() => add(pred('USER'))}>+ User trait</button>
      <button type="button" onClick=${() => add(performed())}>+ Behaviour</button>
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
    <select aria-label=${label + ' scope'} value=${node.scope} onChange=${(e) => set('scope', e.target.value)}>
      <option value="EVENT">event property</option><option value="USER">user trait</option></select>
    <input aria-label=${label + ' property'} class="prop" list=${node.scope === 'EVENT' ? 'dl-props' : 'dl-traits'} value=${node.property} placeholder="property" onInput=${(e) => set('property', e.target.value)} />
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
  return html`<div class=${'pred inline' + (bad ? ' has-error' : '')} data-node=${node.id} role="group" aria-label=${label}>
    <span>performed</span>
    <input aria-label=${label + ' event'} list="dl-events" value=${node.event} placeholder="event name" onInput=${(e) => set('event', e.target.value)} />
    <select aria-label=${label + ' count operator'} value=${node.countOp} onChange=${(e) => set('countOp', e.target.value)}>
      ${['GTE', 'GT', 'EQ', 'LT', 'LTE'].map((o) => html`<option value=${o}>${OP_TEXT[o]}</option>`)}</select>
    <input type="number" min="0" aria-label=${label + ' times'} value=${node.count} onInput=${(e) => set('count', e.target.value)} /><span>times within</span>
    <input aria-label=${label + ' window (e.g. 7d; empty: all time)'} value=${node.within} placeholder="7d" onInput=${(e) => set('within', e.target.value)} />
    ${bad && html`<small class="field-error" role="alert">${ctx.err.message}</small>`}
  </div>`;
}
