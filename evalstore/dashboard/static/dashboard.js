// evalstore dashboard: renders the panels the server (or a report's embedded JSON) gives.
// Each panel is a Vega-Lite spec drawn by vegaEmbed (vendored, window.vegaEmbed), its data
// downloadable as CSV, and the Python/HTTP calls that reproduce it. The model page keeps
// its state in the URL's query string (deep links). A read token is typed once and kept
// in sessionStorage; the API refuses requests without one when the server has tokens.
// loaded as a module (after the module that defines window.vegaEmbed): strict, own scope

const TOKEN_KEY = "evalstore-token";
const STATE_KEYS = ["window", "since", "until", "metric", "method", "where", "feature", "cell", "version"];
const page = document.body.dataset.page;
const model = document.body.dataset.model;
const views = {}; // panel id -> vega view
window.evalstoreViews = views; // for tests and the console

// every panel drawn: marks the page (tests wait for it) with the time since navigation
function loaded() {
  document.body.dataset.loadedMs = String(Math.round(performance.now()));
  document.body.dataset.loaded = "true";
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function message(text) { document.getElementById("message").textContent = text || ""; }

function askToken(refused) {
  const form = document.getElementById("token-form");
  form.classList.remove("hidden");
  document.getElementById("token-why").textContent = refused
    ? "The server refused the token: type a valid read token."
    : "This server needs a read token.";
}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    askToken(Boolean(token()));
    throw new Error("token needed");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function firstDataset(spec) {
  const sets = spec.datasets || {};
  const names = Object.keys(sets);
  return names.length ? sets[names[0]] : [];
}

function csvOf(rows) {
  if (!rows.length) return "";
  const columns = Object.keys(rows[0]);
  const cell = (v) => {
    if (v === null || v === undefined) return "";
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = el("textarea", {}, text);
  document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
  return Promise.resolve();
}

function tableOf(table) {
  const copyable = new Set(["predicate", "example_id"]);
  const head = el("tr", {}, ...table.columns.map((c) => el("th", {}, c)));
  const body = table.rows.map((row) => el("tr", {}, ...row.map((value, i) => {
    const text = value === null ? "" : typeof value === "number" && !Number.isInteger(value)
      ? value.toPrecision(4) : String(value);
    const cell = el("td", {}, text);
    if (copyable.has(table.columns[i]) && value !== null) {
      const button = el("button", { type: "button", class: "copy" }, "copy");
      button.addEventListener("click", () => copyText(String(value)).then(() => { button.textContent = "copied"; }));
      cell.append(" ", button);
    }
    if (table.columns[i] === "predicate" && value !== null && page === "model") {
      const show = el("button", { type: "button", class: "show-slice" }, "show");
      show.addEventListener("click", () => showSlice(String(value)));
      cell.append(" ", show);
    }
    return cell;
  })));
  return el("table", { class: "data" }, el("thead", {}, head), el("tbody", {}, ...body));
}

function rowsOf(panel) {
  if (panel.table) return panel.table.rows.map((r) => Object.fromEntries(panel.table.columns.map((c, i) => [c, r[i]])));
  return panel.spec ? firstDataset(panel.spec) : [];
}

function showSlice(predicate) {
  const form = document.getElementById("controls");
  form.elements.where.value = predicate;
  form.requestSubmit();
  window.scrollTo(0, 0);
}

async function requestMore(panel) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(panel.request_more, { headers });
  if (response.status === 401 || response.status === 403) {
    message("Requesting labels needs a write token: this tab's token may only read.");
    return;
  }
  if (!response.ok) { message((await response.json()).detail || response.statusText); return; }
  message("Label requests recorded.");
  await loadModel(readState());
}

async function renderPanel(container, panel) {
  let section = container.querySelector(`section[data-panel="${panel.id}"]`);
  if (!section) {
    section = el("section", { class: "panel", "data-panel": panel.id });
    container.append(section);
  }
  section.replaceChildren();
  const chart = el("div", { class: "chart" });
  const rows = rowsOf(panel);
  const download = el("button", { type: "button", class: "csv" }, "Download CSV");
  download.addEventListener("click", () => {
    const blob = new Blob([csvOf(rows)], { type: "text/csv" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `${model || "evalstore"}_${panel.id}.csv` });
    document.body.append(link); link.click(); link.remove();
  });
  const calls = el("details", {}, el("summary", {}, "Reproduce this panel"),
    el("pre", { class: "python" }, panel.python), el("pre", { class: "http" }, panel.http));
  section.append(el("h2", {}, panel.title), chart, el("p", { class: "note" }, panel.note || ""));
  if (rows.length) section.append(download);
  if (panel.python) section.append(calls);
  if (panel.request_more && page !== "report") {
    const more = el("button", { type: "button", class: "request-more" }, "Request more labels");
    more.addEventListener("click", () => requestMore(panel).catch((e) => message(e.message)));
    section.append(more);
  }
  section.dataset.rows = String(rows.length);
  if (!panel.spec) {
    if (panel.table) chart.append(tableOf(panel.table));
    section.dataset.empty = panel.table ? "false" : "true";
    section.dataset.rendered = "true";
    return null;
  }
  const meta = panel.spec.usermeta || {};
  section.dataset.empty = meta.empty ? "true" : "false";
  section.dataset.series = JSON.stringify(meta.series || []);
  const result = await vegaEmbed(chart, panel.spec, { actions: false, renderer: "svg" });
  views[panel.id] = result.view;
  section.dataset.rendered = "true";
  return result.view;
}

// ------------------------------------------------------------------ model page

function readState() {
  const params = new URLSearchParams(location.search);
  const state = {};
  for (const key of STATE_KEYS) if (params.get(key)) state[key] = params.get(key);
  return state;
}

function writeState(state) {
  const params = new URLSearchParams();
  for (const key of STATE_KEYS) if (state[key]) params.set(key, state[key]);
  const query = params.toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
}

function fillControls(state, answer) {
  const form = document.getElementById("controls");
  const metric = form.elements.metric;
  if (answer && metric.options.length === 0) {
    for (const name of answer.metrics) metric.append(el("option", { value: name }, name));
  }
  form.elements.window.value = state.window || "1 day";
  form.elements.method.value = state.method || "js";
  form.elements.since.value = (state.since || "").slice(0, 10);
  form.elements.until.value = (state.until || "").slice(0, 10);
  form.elements.where.value = state.where || "";
  if (answer) metric.value = state.metric || answer.view.metric;
}

function viewQuery(state) {
  const params = new URLSearchParams();
  for (const key of ["window", "since", "until", "metric", "method", "where"]) if (state[key]) params.set(key, state[key]);
  return params.toString();
}

async function openCell(state, feature, windowStart, version) {
  const target = document.getElementById("distribution");
  const query = viewQuery(state);
  const cell = { feature, window_start: windowStart };
  if (version) cell.version = version;
  const path = `/dashboard/api/models/${encodeURIComponent(model)}/distribution?` +
    new URLSearchParams(cell).toString() + (query ? "&" + query : "");
  const panel = await api(path);
  target.classList.remove("hidden");
  await renderPanel(target, panel);
  target.scrollIntoView({ block: "nearest" });
}

function watchHeatmap(view, state) {
  view.addEventListener("click", (event, item) => {
    const datum = item && item.datum;
    if (!datum || !datum.feature || datum.window_start === undefined) return;
    const start = new Date(datum.window_start).toISOString();
    state.feature = datum.feature; state.cell = start;
    if (datum.version) state.version = datum.version; else delete state.version;
    writeState(state);
    openCell(state, datum.feature, start, datum.version).catch((e) => message(e.message));
  });
}

async function loadModel(state) {
  message("Loading… (a model's first view computes and stores its metric history: " +
    "this can take a while; later views read it back)");
  const answer = await api(`/dashboard/api/models/${encodeURIComponent(model)}?` + viewQuery(state));
  fillControls(state, answer);
  const container = document.getElementById("panels");
  for (const panel of answer.panels) {
    const view = await renderPanel(container, panel);
    if (panel.id === "drift") watchHeatmap(view, state);
  }
  if (state.feature && state.cell) await openCell(state, state.feature, state.cell, state.version);
  message("");
  loaded();
}

function startModel() {
  const state = readState();
  fillControls(state, null);
  document.getElementById("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    for (const key of ["window", "metric", "method", "since", "until", "where"]) {
      const value = form.elements[key].value;
      if (value) state[key] = value; else delete state[key];
    }
    delete state.feature; delete state.cell; delete state.version;
    document.getElementById("distribution").classList.add("hidden");
    writeState(state);
    loadModel(state).catch((e) => message(e.message));
  });
  return loadModel(state);
}

// ------------------------------------------------------------------ overview

function fmt(value, digits) { return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits); }

async function startOverview() {
  message("Loading…");
  const answer = await api("/dashboard/api/overview");
  const body = document.querySelector("table.models tbody");
  body.replaceChildren();
  for (const entry of answer.models) {
    const spark = el("div", { class: "spark" });
    const perf = entry.performance.map((p) =>
      `${p.version}: ${p.metric} ${fmt(p.value, 3)} [${fmt(p.ci_low, 3)}, ${fmt(p.ci_high, 3)}] (${p.window_start.slice(0, 10)})`).join("; ");
    const fresh = Object.entries(entry.freshness).map(([s, h]) => `${s} ${fmt(h, 1)} h`).join("; ");
    const row = el("tr", { "data-model": entry.model },
      el("td", {}, el("a", { href: `/dashboard/models/${encodeURIComponent(entry.model)}` }, entry.model)),
      el("td", {}, el("span", { class: `status status-${entry.status}` }, entry.status)),
      el("td", {}, entry.versions.map((v) => `${v.version} (${v.stage || "no stage"})`).join(", ")),
      el("td", {}, spark),
      el("td", {}, entry.coverage === null ? "n/a" : (100 * entry.coverage).toFixed(1) + "%"),
      el("td", {}, perf || "not enough labels"),
      el("td", {}, `${entry.firing} firing, ${entry.pending} pending (${entry.monitors} monitors)`),
      el("td", {}, fresh || "no batch"));
    body.append(row);
    await vegaEmbed(spark, entry.sparkline, { actions: false, renderer: "svg" });
  }
  message(answer.models.length ? "" : "No model is registered in this store.");
  loaded();
}

// ------------------------------------------------------------------ report (offline)

async function startReport() {
  const data = JSON.parse(document.getElementById("evalstore-data").textContent);
  const container = document.getElementById("panels");
  for (const panel of data.panels) await renderPanel(container, panel);
  const cells = document.getElementById("distribution");
  for (const panel of data.distributions) await renderPanel(cells, panel);
  loaded();
}

if (page === "report") startReport().catch((e) => message(e.message));
else {
  const form = document.getElementById("token-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, form.elements.token.value.trim());
    form.classList.add("hidden");
    (page === "model" ? loadModel(readState()) : startOverview())
      .catch((e) => { if (e.message !== "token needed") message(e.message); });
  });
  (page === "model" ? startModel() : startOverview())
    .catch((e) => { if (e.message !== "token needed") message(e.message); });
}
