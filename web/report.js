// The delivery report: Push365's per-day counts (GET /send/stats?days=N) as charts and a table.
// Where Push365 is comes from the solution's environment variable p365_BaseUrl. The organization
// key is not in any web resource (every Dynamics user can read those): the administrator pastes
// it, and it is kept in this tab's sessionStorage only (gone when the tab closes, or at "Forget
// the key"), sent only to Push365 in the X-Push365-Key header, never with cookies. The report
// holds counts only; the page logs nothing.
import { Chart } from "./charts.js";
import { environmentVariable, globalContext } from "./dynamics.js";

export const KEY_STORAGE = "push365.reportKey";
const BASE_URL_VARIABLE = "p365_BaseUrl";
const COUNTS = [
  "subscriptions_active", "subscriptions_new", "notifications", "devices_sent", "delivered", "failed",
];
const COLORS = ["#0f6cbd", "#107c10", "#c50f1f", "#8764b8", "#ca5010", "#038387", "#986f0b", "#605e5c"];
// FCM's answers as Push365 records them (failed_by_reason's keys).
export const REASONS = {
  unregistered: "Browser unsubscribed",
  invalid_token: "Invalid token",
  sender_id_mismatch: "Sender ID mismatch",
  third_party_auth: "Web push auth error",
  quota_exceeded: "FCM quota exceeded",
  unavailable: "FCM unavailable",
  internal: "FCM internal error",
  timeout: "FCM timed out",
  invalid_argument: "Invalid message",
  error: "Other error",
};

const MESSAGES = {
  working: "Working…",
  "need-key": "Paste the organization's Push365 key to see what Push365 did for this organization.",
  loading: "Loading the report…",
  shown: "",
  refused: "Push365 refused the key: paste this organization's current key.",
  error: "The report could not be loaded from Push365. Try again in a minute.",
  "no-base-url": "Set the Push365 base URL environment variable (p365_BaseUrl) in the Push365 solution.",
  "no-dynamics": "Open this page from Dynamics 365.",
};

const page = { config: null, baseUrl: null, charts: [] };

export function statsUrl(baseUrl, functionPrefix, days) {
  return `${baseUrl.replace(/\/+$/, "")}/${functionPrefix}send/stats?days=${days}`;
}

// Over the period: the last day's active subscriptions, the sum of every other count, and the
// failures by reason.
export function totals(stats) {
  const days = stats.per_day;
  const sum = (name) => days.reduce((total, day) => total + day[name], 0);
  const result = Object.fromEntries(COUNTS.map((name) => [name, sum(name)]));
  result.subscriptions_active = days.length ? days[days.length - 1].subscriptions_active : 0;
  result.failed_by_reason = {};
  for (const day of days) {
    for (const [reason, count] of Object.entries(day.failed_by_reason)) {
      result.failed_by_reason[reason] = (result.failed_by_reason[reason] || 0) + count;
    }
  }
  return result;
}

export function reasonLabel(reason) {
  return REASONS[reason] ? `${REASONS[reason]} (${reason})` : reason;
}

function showState(state) {
  document.body.dataset.state = state;
  const status = document.getElementById("state");
  status.textContent = MESSAGES[state];
  status.hidden = !MESSAGES[state];
  document.getElementById("key-form").hidden = !["need-key", "refused"].includes(state);
  document.getElementById("report").hidden = !["shown", "loading"].includes(state);
}

function chart(id, type, labels, datasets, options = {}) {
  const canvas = document.getElementById(id);
  const drawn = new Chart(canvas, {
    type,
    data: {
      labels,
      datasets: datasets.map((dataset, index) => ({
        backgroundColor: dataset.color || COLORS[index % COLORS.length],
        borderColor: dataset.color || COLORS[index % COLORS.length],
        ...dataset,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      devicePixelRatio: 1,
      plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 }, ...(options.y || {}) }, ...(options.scales || {}) },
    },
  });
  page.charts.push(drawn);
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

function render(stats) {
  for (const drawn of page.charts.splice(0)) drawn.destroy();
  const days = stats.per_day;
  const labels = days.map((day) => day.date);
  const total = totals(stats);
  for (const name of COUNTS) {
    document.getElementById(`total-${name}`).textContent = String(total[name]);
  }
  document.getElementById("period").textContent = `${stats.first_day} to ${stats.last_day} (UTC)`;
  const series = (name) => days.map((day) => day[name]);

  chart("chart-subscriptions", "bar", labels, [
    { type: "line", label: "Subscribed browsers", data: series("subscriptions_active") },
    { label: "New", data: series("subscriptions_new"), color: COLORS[1] },
  ]);
  chart("chart-deliveries", "bar", labels, [
    { label: "Sent", data: series("devices_sent") },
    { label: "Shown", data: series("delivered") },
    { label: "Failed", data: series("failed") },
  ]);
  const reasons = Object.keys(total.failed_by_reason).sort();
  chart(
    "chart-failures", "bar", labels,
    reasons.map((reason, index) => ({
      label: reasonLabel(reason),
      data: days.map((day) => day.failed_by_reason[reason] || 0),
      color: COLORS[(index + 2) % COLORS.length],
    })),
    { scales: { x: { stacked: true } }, y: { stacked: true } },
  );
  chart("chart-latency", "line", labels, [
    { label: "Median seconds to delivery", data: series("median_seconds_to_delivery"), spanGaps: true },
  ], { y: { ticks: {} } });

  const body = document.querySelector("#per-day tbody");
  body.replaceChildren();
  for (const day of [...days].reverse()) {
    const row = document.createElement("tr");
    row.dataset.date = day.date;
    cell(row, day.date);
    for (const name of ["subscriptions_active", "subscriptions_new", "notifications", "devices_sent", "delivered", "failed"]) {
      cell(row, String(day[name]));
    }
    cell(row, Object.entries(day.failed_by_reason).map(([reason, count]) => `${reason} ${count}`).join(", "));
    cell(row, day.median_seconds_to_delivery === null ? "" : String(day.median_seconds_to_delivery));
    body.append(row);
  }
}

async function load() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) {
    showState("need-key");
    return;
  }
  showState("loading");
  const days = document.getElementById("days").value;
  let response;
  try {
    response = await fetch(statsUrl(page.baseUrl, page.config.functionPrefix, days), {
      headers: { "X-Push365-Key": key, Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    showState("error");
    return;
  }
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(KEY_STORAGE);
    showState("refused");
    return;
  }
  if (!response.ok) {
    showState("error");
    return;
  }
  render(await response.json());
  showState("shown");
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

export async function start() {
  page.config = self.PUSH365_CONFIG;
  const context = globalContext();
  if (!context) {
    showState("no-dynamics");
    return;
  }
  page.baseUrl = await environmentVariable(page.config, context, BASE_URL_VARIABLE);
  if (!page.baseUrl || !/^https?:\/\//.test(page.baseUrl)) {
    showState("no-base-url");
    return;
  }
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("key");
    const key = input.value.trim();
    input.value = "";
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    load();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    for (const drawn of page.charts.splice(0)) drawn.destroy();
    showState("need-key");
  });
  document.getElementById("days").addEventListener("change", () => load());
  await load();
}
