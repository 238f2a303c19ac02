// The mesh dashboard: renders the snapshots a node streams at /events.
// Plain JS, no dependencies, no build step. Every value from the node is
// written with textContent, never parsed as HTML.
"use strict";

const HISTORY = 120;          // chart points: two minutes at one snapshot a second
const MAX_TASK_ROWS = 50;     // rows kept in the task stream
const rates = [];             // [time, tasks/s over the mesh]
const taskRows = [];          // newest first
const sectionRenderers = {};  // later layers (datasets, shuffles, actors) register here

window.mesh = {
  // registerSection("datasets", (element, data) => {...}) draws snapshot.sections.datasets
  registerSection(name, render) { sectionRenderers[name] = render; },
};

function $(sel) { return document.querySelector(sel); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    if (c.tagName === "TD") { tr.appendChild(c); continue; }
    const td = document.createElement("td");
    td.appendChild(c);
    tr.appendChild(td);
  }
  return tr;
}

function num(v) { return el("td", v, "num"); }

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function status(s) { return el("span", s, "status " + s); }

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderMembers(snap) {
  const rows = snap.members.map((m) => {
    const tr = row([el("td", m.name), status(m.status), num(m.incarnation), el("td", m.address),
      num((100 * (m.share || 0)).toFixed(1) + "%")]);
    tr.dataset.member = m.name;
    tr.dataset.status = m.status;
    if (m.name === snap.self) tr.classList.add("self");
    return tr;
  });
  fill($("#members tbody"), rows);
  const counts = $("#counts");
  counts.replaceChildren(...Object.entries(snap.counts).filter(([, n]) => n > 0)
    .map(([s, n]) => el("span", n + " " + s, "status " + s)));
}

function renderNodes(snap) {
  const rows = [];
  for (const m of snap.members) {
    const f = snap.nodes[m.name];
    if (!f) {
      const td = el("td", m.status + ": no figures", "muted");
      td.colSpan = 8;
      const tr = row([el("td", m.name), td]);
      tr.dataset.gone = m.name;
      rows.push(tr);
      continue;
    }
    if (f.error) {
      const td = el("td", "unreachable: " + f.error, "error");
      td.colSpan = 8;
      rows.push(row([el("td", m.name), td]));
      continue;
    }
    const tr = row([el("td", m.name), num(f.workers), num(f.queued), num(f.running),
      num(f.rate.toFixed(1)), num(f.completed), num(f.stolen), num(f.values), num(bytes(f.bytes))]);
    tr.dataset.node = m.name;
    rows.push(tr);
  }
  fill($("#nodes tbody"), rows);
  const unasked = $("#unasked");
  unasked.hidden = !snap.unasked;
  unasked.textContent = snap.unasked ? snap.unasked + " more nodes not shown (bounded fan-out)" : "";
}

function renderTasks(snap) {
  const fresh = [];
  for (const [name, f] of Object.entries(snap.nodes)) {
    const clock = Date.now() / 1000 - (f.now || 0);  // the node's clock to ours
    for (const t of f.recent || []) {
      fresh.push({ node: name, key: t[1], outcome: t[2], at: clock + t[3], dur: t[4] });
    }
  }
  fresh.sort((a, b) => a.at - b.at);
  for (const t of fresh) taskRows.unshift(t);
  taskRows.length = Math.min(taskRows.length, MAX_TASK_ROWS);
  fill($("#tasks tbody"), taskRows.map((t) => row([
    el("td", new Date(t.at * 1000).toLocaleTimeString()), el("td", t.node), el("td", t.key),
    el("td", t.outcome, "outcome-" + t.outcome), num(formatDuration(t.dur)),
  ])));
}

function formatDuration(s) {
  if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(1) + " ms";
  return s.toFixed(2) + " s";
}

function renderChart(snap) {
  let total = 0;
  for (const f of Object.values(snap.nodes)) total += f.rate || 0;
  rates.push([Date.now(), total]);
  if (rates.length > HISTORY) rates.shift();
  $("#rate-now").textContent = total.toFixed(1) + " tasks/s";
  const canvas = $("#chart");
  const w = canvas.clientWidth || canvas.width, h = canvas.height;
  canvas.width = w;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...rates.map((r) => r[1]));
  ctx.strokeStyle = "#dde1e8";
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = 10 + (h - 30) * i / 4;
    ctx.beginPath(); ctx.moveTo(40, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText((max * (4 - i) / 4).toFixed(max < 10 ? 1 : 0), 2, y + 4);
  }
  ctx.fillText("last " + HISTORY + " s", w - 70, h - 4);
  if (rates.length < 2) return;
  ctx.strokeStyle = "#3b6fd8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  rates.forEach(([, v], i) => {
    const x = 40 + (w - 40) * (i + HISTORY - rates.length) / (HISTORY - 1);
    const y = 10 + (h - 30) * (1 - v / max);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function renderSections(snap) {
  const box = $("#sections");
  for (const [name, data] of Object.entries(snap.sections || {})) {
    let sec = box.querySelector("section[data-section='" + CSS.escape(name) + "']");
    if (!sec) {
      sec = el("section");
      sec.dataset.section = name;
      sec.appendChild(el("h2", name));
      sec.appendChild(el("div"));
      box.appendChild(sec);
    }
    const body = sec.lastChild;
    if (sectionRenderers[name]) sectionRenderers[name](body, data);
    else body.textContent = JSON.stringify(data);
  }
}

function render(snap) {
  $("#self").textContent = "seen from " + snap.self;
  document.title = "mesh: " + snap.self;
  renderMembers(snap);
  renderNodes(snap);
  renderChart(snap);
  renderTasks(snap);
  renderSections(snap);
}

function connect() {
  const conn = $("#conn");
  const source = new EventSource("/events" + window.location.search);
  source.addEventListener("snapshot", (ev) => {
    conn.dataset.state = "live";
    conn.textContent = "live";
    render(JSON.parse(ev.data));
  });
  source.onerror = () => {
    conn.dataset.state = "lost";
    conn.textContent = "reconnecting";
  };
}

connect();
