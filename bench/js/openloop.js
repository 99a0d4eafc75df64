// Open-loop HTTP load: every request has a scheduled send time (start + i / rate)
// and is sent then, whether earlier ones have answered or not; its latency is
// measured from the scheduled time, so a stalled server shows as latency, not
// as fewer requests (no coordinated omission).
//
// node openloop.js CONFIG.json  ->  JSON results on stdout
// CONFIG: {routes: {prefix: baseUrl}, duration_s, timeout_ms, streams: [{name, rate,
//          mix: [{kind, weight}], ...}], data: {...}}
"use strict";
const http = require("http");
const fs = require("fs");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const agent = new http.Agent({ keepAlive: true, maxSockets: config.max_sockets || 256 });
const data = config.data;
const timeoutMs = config.timeout_ms || 10000;
let counter = 0;

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function baseFor(path) {
  const prefix = "/" + path.split("/")[1].split("?")[0];
  const base = config.routes[prefix];
  if (!base) throw new Error("no route for " + path);
  return new URL(base);
}

// One request of a kind: [method, path, body, token].
const kinds = {
  feed: () => {
    const user = pick(data.load_users);
    return ["GET", "/feed?limit=20", null, user.token];
  },
  user_posts: () => {
    const user = pick(data.load_users);
    return ["GET", "/posts?limit=20&author_id=" + pick(data.authors), null, user.token];
  },
  new_post: () => {
    const user = pick(data.load_users);
    const event = pick(data.public_events);
    const body = { body: `load ${++counter}: going to ${event} with @b${pick(data.load_users).n}, who's in?` };
    if (Math.random() < 0.5) body.event_id = event;
    if (Math.random() < 0.5) body.media_ids = [user.media_id];
    return ["POST", "/posts", body, user.token];
  },
  get_event: (stream) => ["GET", "/events/" + stream.event_id, null, pick(data.load_users).token],
  feed_as: (stream) => ["GET", "/feed?limit=20", null, stream.token],
  health: () => ["GET", "/health", null, null],
  login: () => {
    const user = pick(data.login_users);
    return ["POST", "/auth/login", { login: "b" + user.n, password: data.password }, null];
  },
};

function percentile(sorted, q) {
  if (!sorted.length) return null;
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)] * 100) / 100;
}

function summary(latencies) {
  const sorted = Float64Array.from(latencies).sort();
  return {
    count: sorted.length,
    p50_ms: percentile(sorted, 0.5),
    p90_ms: percentile(sorted, 0.9),
    p99_ms: percentile(sorted, 0.99),
    p999_ms: percentile(sorted, 0.999),
    max_ms: sorted.length ? Math.round(sorted[sorted.length - 1] * 100) / 100 : null,
  };
}

function runStream(stream, start) {
  const total = Math.max(1, Math.round(stream.rate * config.duration_s));
  const weights = stream.mix.reduce((sum, entry) => sum + entry.weight, 0);
  const state = {
    latencies: [], byKind: {}, statuses: {}, lags: [], done: 0, lastDone: start, errors: 0, total,
  };
  let next = 0;
  return new Promise((resolve) => {
    function chooseKind() {
      let r = Math.random() * weights;
      for (const entry of stream.mix) {
        r -= entry.weight;
        if (r < 0) return entry.kind;
      }
      return stream.mix[stream.mix.length - 1].kind;
    }
    function finish(kind, scheduled, status) {
      const now = performance.now();
      const latency = now - scheduled;
      state.done += 1;
      state.lastDone = now;
      state.statuses[status] = (state.statuses[status] || 0) + 1;
      const ok = typeof status === "number" && status < 400;
      if (ok) {
        state.latencies.push(latency);
        (state.byKind[kind] = state.byKind[kind] || []).push(latency);
      } else {
        state.errors += 1;
      }
      if (state.done === total) resolve(state);
    }
    function send(scheduled) {
      state.lags.push(performance.now() - scheduled);
      const kind = chooseKind();
      const [method, path, body, token] = kinds[kind](stream);
      const url = baseFor(path);
      const payload = body ? JSON.stringify(body) : null;
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = "Bearer " + token;
      if (payload) {
        headers["Content-Type"] = "application/json";
        headers["Content-Length"] = Buffer.byteLength(payload);
      }
      let settled = false;
      const settle = (status) => {
        if (!settled) {
          settled = true;
          finish(kind, scheduled, status);
        }
      };
      const request = http.request(
        { host: url.hostname, port: url.port, path, method, headers, agent, timeout: timeoutMs },
        (response) => {
          response.resume();
          response.on("end", () => settle(response.statusCode));
          response.on("error", () => settle("error"));
        },
      );
      request.on("timeout", () => {
        request.destroy();
        settle("timeout");
      });
      request.on("error", (err) => settle(err.code || "error"));
      if (payload) request.write(payload);
      request.end();
    }
    function tick() {
      const now = performance.now();
      while (next < total && start + (next * 1000) / stream.rate <= now) {
        send(start + (next * 1000) / stream.rate);
        next += 1;
      }
      if (next < total) {
        const wait = start + (next * 1000) / stream.rate - performance.now();
        setTimeout(tick, Math.max(0, wait));
      }
    }
    tick();
  });
}

async function main() {
  const cpuBefore = process.cpuUsage();
  const start = performance.now() + 50;
  const hardStop = new Promise((resolve) =>
    setTimeout(() => resolve("deadline"), config.duration_s * 1000 + timeoutMs + 5000),
  );
  const states = await Promise.race([
    Promise.all(config.streams.map((stream) => runStream(stream, start))),
    hardStop.then(() => null),
  ]);
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const results = { generator_cpu_fraction: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 1000) / 1000,
    wall_s: Math.round(wall * 100) / 100, streams: {} };
  if (!states) {
    results.error = "deadline passed with requests outstanding";
  } else {
    config.streams.forEach((stream, index) => {
      const state = states[index];
      const byKind = {};
      for (const [kind, values] of Object.entries(state.byKind)) byKind[kind] = summary(values);
      const lags = summary(state.lags);
      const ok = state.latencies.length;
      results.streams[stream.name] = {
        offered_rate: stream.rate,
        requests: state.total,
        ok,
        errors: state.errors,
        statuses: state.statuses,
        throughput: Math.round((ok / Math.max(config.duration_s, (state.lastDone - start) / 1000)) * 10) / 10,
        latency: summary(state.latencies),
        by_kind: byKind,
        send_lag_p50_ms: lags.p50_ms,
        send_lag_p99_ms: lags.p99_ms,
      };
    });
  }
  process.stdout.write(JSON.stringify(results));
  agent.destroy();
  process.exit(0);
}

main();
