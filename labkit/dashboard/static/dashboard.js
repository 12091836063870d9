// The lab dashboard's page: listens to GET events (Server-Sent Events) and redraws from each snapshot.
// No polling loop, no framework, no build step. Every text from the lab goes in with textContent, never
// as HTML: an event's subject is data, not markup.
"use strict";

const KEY_STORE = "lab-dashboard-key";
let apiKey = sessionStorage.getItem(KEY_STORE);
let lastSnapshot = null;

// h("td", {class: "num"}, "12") -> <td class="num">12</td>
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(value, suffix = "") {
  return value === null || value === undefined ? "–" : `${value}${suffix}`;
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)} %`;
}

function sparkline(points) {
  const width = 130, height = 30, n = 60;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const coordinates = [];
  const offset = n - points.length;
  points.forEach((rate, i) => {
    if (rate === null) return;
    const x = ((offset + i) / (n - 1)) * width;
    const y = 2 + (1 - rate) * (height - 4);
    coordinates.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (coordinates.length) {
    const line = document.createElementNS(svgNs, "polyline");
    line.setAttribute("points", coordinates.join(" "));
    svg.append(line);
  }
  return svg;
}

// --- actions (only with the key) ---------------------------------------------------------------------

async function act(path, body, label) {
  const result = document.getElementById("action-result");
  result.textContent = `${label} …`;
  const response = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": `Bearer ${apiKey}`},
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  result.textContent = response.ok ? `${label}: done` : `${label}: ${answer.error ? answer.error.message : response.status}`;
}

function actionButton(text, path, body, label, danger) {
  return h("button", {type: "button", class: danger ? "danger" : null, "data-action": path.split("/").pop(),
                      onclick: () => act(path, body, label)}, text);
}

// --- drawing -------------------------------------------------------------------------------------------

function drawServices(services, registryRead, fullTtl) {
  const cards = services.map((service) => {
    const count = service.instances.filter((i) => i.name && i.process !== "dead").length;
    const tools = apiKey ? h("span", {class: "tools"},
      actionButton("−1", "actions/scale", {service: service.name, n: Math.max(1, count - 1)}, `scale ${service.name} to ${Math.max(1, count - 1)}`),
      actionButton("+1", "actions/scale", {service: service.name, n: count + 1}, `scale ${service.name} to ${count + 1}`),
      actionButton("slow", "actions/slow", {service: service.name, delay_ms: 200}, `slow ${service.name} (+200 ms)`),
      actionButton("fast", "actions/slow", {service: service.name, delay_ms: 0, sor_ms: 0, error_rate: 0}, `undo slow ${service.name}`),
    ) : null;
    const rows = service.instances.map((i) => h("tr", {"data-name": i.name, "data-instance": i.instance, "data-health": i.health},
      h("td", {}, h("b", {}, i.name || "–"), h("span", {class: "muted addr instance-id"}, i.instance || "")),
      h("td", {class: "addr"}, (i.url || "").replace("http://", "")),
      h("td", {title: i.why}, h("span", {class: `pill ${i.health}`}, i.health)),
      h("td", {}, show(i.breaker)),
      h("td", {class: "num"}, show(i.in_flight)),
      h("td", {class: "num"}, show(i.served)),
      h("td", {class: "num", title: "seconds until the registration expires unless renewed"},
        i.ttl_s === null || i.ttl_s === undefined ? (registryRead ? "expired" : "?") :
          [h("span", {class: "ttl"}, h("span", {style: `width:${Math.min(100, (i.ttl_s / fullTtl) * 100)}%`})), `${i.ttl_s.toFixed(1)} s`]),
      apiKey && i.name ? h("td", {},
        i.process === "dead"
          ? actionButton("restart", "actions/restart", {instance: i.name}, `restart ${i.name}`)
          : actionButton("kill", "actions/kill", {instance: i.name}, `kill ${i.name}`, true)) : null,
    ));
    return h("div", {class: "card", "data-service": service.name, "data-health": service.health},
      h("div", {class: "card-head"}, h("span", {class: "name"}, service.name),
        h("span", {class: `pill ${service.health === "healthy" ? "healthy" : service.health === "down" ? "down" : "unhealthy"}`}, service.health),
        service.strategy ? h("span", {class: "muted"}, `balancer: ${service.strategy}`) : null, tools),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "instance"), h("th", {}, "address"), h("th", {}, "health"),
        h("th", {}, "breaker"), h("th", {class: "num"}, "in flight"), h("th", {class: "num"}, "served"),
        h("th", {class: "num", title: "the registration's remaining TTL"}, "registry TTL"), apiKey ? h("th", {}, "") : null)), h("tbody", {}, rows)));
  });
  document.getElementById("services").replaceChildren(...cards);
}

function drawCaches(caches) {
  const rows = Object.entries(caches.services || {}).map(([name, c]) => h("div", {class: "cache-row", "data-cache": name},
    h("b", {}, name), h("span", {class: "big"}, percent(c.hit_rate_1m)), sparkline(c.line),
    h("span", {class: "muted detail"}, `${c.reads_1m} reads in the last minute · system of record since start: ${c.sor_loads} loads, ${c.sor_queries} queries`)));
  const g = caches.gateway;
  if (g) {
    rows.push(h("div", {class: "cache-row", "data-cache": "gateway"}, h("b", {}, "gateway"), h("span", {class: "big"}, percent(g.hit_rate)),
      h("span", {class: "muted"}, `response cache, TTL ${g.ttl_s} s`),
      h("span", {class: "muted detail"}, ` ${g.entries} answers kept · ${g.hits} hits, ${g.misses} misses, ${g.bypassed} bypassed, ${g.dropped_by_events} dropped by events (since start)`)));
  }
  document.getElementById("caches").replaceChildren(...rows);
}

function drawEvents(events) {
  const rows = [];
  for (const s of events.streams || []) {
    const groups = s.groups.length ? s.groups : [{name: "–", lag: null, pending: null, consumers: null}];
    groups.forEach((g, i) => rows.push(h("tr", {"data-stream": s.topic},
      h("td", {}, i === 0 ? s.topic : ""), h("td", {class: "num"}, i === 0 ? s.length : ""),
      h("td", {}, g.name), h("td", {class: "num"}, show(g.lag)), h("td", {class: "num"}, show(g.pending)),
      h("td", {class: "num"}, i === 0 ? s.dead_lettered : ""))));
  }
  document.getElementById("streams").replaceChildren(h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "stream"), h("th", {class: "num"}, "length"), h("th", {}, "consumer group"),
      h("th", {class: "num"}, "lag"), h("th", {class: "num"}, "pending"), h("th", {class: "num"}, "dead-lettered"))),
    h("tbody", {}, rows)));
  document.getElementById("recent-events").replaceChildren(...(events.recent || []).map(eventItem));
}

function eventItem(e, fresh) {
  const time = (e.time || "").slice(11, 23);
  return h("li", {class: fresh ? "fresh" : null}, h("span", {class: "muted"}, time), h("b", {}, e.type), h("span", {}, `${e.subject}  ·  ${e.source}`));
}

function drawAccess(access) {
  const number = (label, value, key) => h("div", {class: "number", "data-number": key}, h("div", {class: "big"}, show(value)), h("div", {class: "label"}, label));
  const limit = access.rate_limit ? `${access.rate_limit.requests} per ${access.rate_limit.window_s} s` : "off";
  document.getElementById("access").replaceChildren(
    number("sessions active", access.sessions_active, "sessions"),
    number("logins refused by the guard", access.logins_locked_out, "locked-out"),
    number("failed logins", access.logins_failed, "failed-logins"),
    number(`refused by the rate limiter (${limit})`, access.rate_limited, "rate-limited"));
}

function drawRedis(redis) {
  const box = document.getElementById("redis");
  if (!redis || !redis.ok) {
    box.replaceChildren(h("div", {class: "card", "data-health": "down"}, h("span", {class: "pill down"}, "not answering"),
      " Redis did not answer this second (frozen? restarting?)"));
    return;
  }
  const tools = apiKey ? h("div", {}, actionButton("freeze Redis for 5 s", "actions/freeze-redis", {seconds: 5}, "freeze Redis for 5 s", true)) : null;
  const nodes = redis.nodes && redis.nodes.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "node"), h("th", {}, "address"), h("th", {}, "role"), h("th", {}, "state"))),
    h("tbody", {}, redis.nodes.map((n) => h("tr", {}, h("td", {class: "addr"}, n.id), h("td", {class: "addr"}, n.address), h("td", {}, n.role), h("td", {}, n.state))))) : null;
  box.replaceChildren(h("div", {class: "card", "data-health": "healthy"},
    h("div", {class: "card-head"}, h("span", {class: "name"}, `${redis.server} ${redis.version}`), h("span", {class: "muted"}, redis.mode)),
    h("div", {class: "numbers"},
      h("div", {class: "number"}, h("div", {class: "big"}, show(redis.ops_per_sec)), h("div", {class: "label"}, "ops/s")),
      h("div", {class: "number"}, h("div", {class: "big"}, show(redis.memory)), h("div", {class: "label"}, "memory")),
      h("div", {class: "number"}, h("div", {class: "big"}, show(redis.clients)), h("div", {class: "label"}, "connected clients")),
      h("div", {class: "number"}, h("div", {class: "big"}, show(redis.keys)), h("div", {class: "label"}, "keys"))),
    nodes, tools));
}

function draw(snapshot) {
  lastSnapshot = snapshot;
  const registryRead = !(snapshot.errors || []).some((e) => e.startsWith("registry"));
  if (snapshot.services) drawServices(snapshot.services, registryRead, snapshot.registry_ttl_s || 3);
  if (snapshot.caches) drawCaches(snapshot.caches);
  if (snapshot.events) drawEvents(snapshot.events);
  if (snapshot.access) drawAccess(snapshot.access);
  drawRedis(snapshot.redis);
  document.getElementById("errors").textContent = (snapshot.errors || []).join(" · ");
  document.getElementById("updated").textContent = snapshot.time ? `updated ${snapshot.time}` : "";
}

// --- the key -------------------------------------------------------------------------------------------

function showKeyState(who) {
  document.getElementById("unlock").hidden = Boolean(apiKey);
  document.getElementById("who").hidden = !apiKey;
  document.getElementById("who-text").textContent = who || "actions unlocked";
  if (lastSnapshot) draw(lastSnapshot);
}

async function tryKey(candidate) {
  const response = await fetch("actions/whoami", {headers: {"Authorization": `Bearer ${candidate}`}});
  if (!response.ok) return null;
  return (await response.json()).who;
}

document.getElementById("unlock").addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = document.getElementById("api-key").value.trim();
  const who = candidate ? await tryKey(candidate) : null;
  if (!who) {
    document.getElementById("unlock-message").textContent = "not the lab's key";
    return;
  }
  apiKey = candidate;
  sessionStorage.setItem(KEY_STORE, apiKey);
  document.getElementById("unlock-message").textContent = "";
  showKeyState(who);
});

document.getElementById("lock").addEventListener("click", () => {
  apiKey = null;
  sessionStorage.removeItem(KEY_STORE);
  showKeyState();
});

// lab.dashboard(actions=True) passes the key in the fragment (never sent to a server); keep it, then drop it.
if (location.hash.startsWith("#key=")) {
  apiKey = decodeURIComponent(location.hash.slice(5));
  sessionStorage.setItem(KEY_STORE, apiKey);
  history.replaceState(null, "", location.pathname + location.search);
}
showKeyState();

// --- the stream ----------------------------------------------------------------------------------------

const connection = document.getElementById("connection");
const stream = new EventSource("events");
stream.addEventListener("open", () => {
  connection.dataset.state = "live";
  document.getElementById("connection-text").textContent = "live";
});
stream.addEventListener("error", () => {  // EventSource reconnects by itself
  connection.dataset.state = "lost";
  document.getElementById("connection-text").textContent = "reconnecting…";
});
stream.addEventListener("snapshot", (message) => draw(JSON.parse(message.data)));
stream.addEventListener("lab-event", (message) => {
  const list = document.getElementById("recent-events");
  list.prepend(eventItem(JSON.parse(message.data), true));
  while (list.children.length > 25) list.lastChild.remove();
});
