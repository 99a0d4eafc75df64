// Real-time delivery: N Socket.IO clients spread over the realtime replicas;
// senders POST /messages at a fixed rate (open loop); every recipient's socket
// records when `message:new` arrives. Latency = receipt - the POST's answer
// (also reported from the POST's send).
//
// node sockets.js CONFIG.json  ->  JSON results on stdout
// CONFIG: {realtime_urls: [...], messages_url, users: [{id, token}], conversations:
//          [{id, members: [ids], sender}], rate, count, settle_s, connect_timeout_s}
"use strict";
const fs = require("fs");
const http = require("http");
const { io } = require("socket.io-client");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const receipts = new Map(); // message id -> [{user, at}]
const sockets = [];

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return Math.round(sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1))] * 100) / 100;
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  return { count: sorted.length, p50_ms: percentile(sorted, 0.5), p90_ms: percentile(sorted, 0.9),
    p99_ms: percentile(sorted, 0.99), max_ms: sorted.length ? Math.round(sorted[sorted.length - 1] * 100) / 100 : null };
}

function connectOne(user, index, attempt) {
  return new Promise((resolve, reject) => {
    const socket = io(config.realtime_urls[index % config.realtime_urls.length], {
      transports: ["websocket"], auth: { token: user.token }, reconnection: false, forceNew: true,
      timeout: config.connect_timeout_s * 1000,
    });
    socket.on("connect", () => {
      sockets.push(socket);
      resolve();
    });
    socket.on("connect_error", (err) => {
      socket.close();
      if (attempt < 3) {
        setTimeout(() => connectOne(user, index, attempt + 1).then(resolve, reject), 500 * attempt);
      } else {
        reject(new Error("connect: " + err.message));
      }
    });
    socket.on("message:new", (payload) => {
      const at = performance.now();
      const id = payload && payload.message && payload.message.id;
      if (!id) return;
      if (!receipts.has(id)) receipts.set(id, []);
      receipts.get(id).push({ user: user.id, at });
    });
  });
}

// In batches, as clients arrive in life: a thousand handshakes at once only
// measures the accept queue.
async function connectAll() {
  const started = performance.now();
  const batch = config.connect_batch || 100;
  for (let first = 0; first < config.users.length; first += batch) {
    await Promise.all(config.users.slice(first, first + batch).map((user, offset) => connectOne(user, first + offset, 1)));
  }
  return (performance.now() - started) / 1000;
}

function post(conversation, index) {
  const sender = config.users_by_id[conversation.sender];
  const body = JSON.stringify({ conversation_id: conversation.id, body: "bench " + index, client_id: "bench-" + index + "-" + Date.now() });
  const url = new URL(config.messages_url);
  return new Promise((resolve) => {
    const sent = performance.now();
    const request = http.request({ host: url.hostname, port: url.port, path: "/messages", method: "POST", agent,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body),
        Authorization: "Bearer " + sender.token }, timeout: 10000 }, (response) => {
      const chunks = [];
      response.on("data", (chunk) => chunks.push(chunk));
      response.on("end", () => {
        const answered = performance.now();
        let id = null;
        try { id = JSON.parse(Buffer.concat(chunks).toString()).id; } catch (err) { /* not JSON */ }
        resolve({ status: response.statusCode, id, sent, answered, conversation });
      });
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve({ status: "error", sent, answered: performance.now(), conversation }));
    request.write(body);
    request.end();
  });
}

async function main() {
  config.users_by_id = Object.fromEntries(config.users.map((user) => [user.id, user]));
  const results = { sockets: config.users.length, replicas: config.realtime_urls.length };
  const hardStop = setTimeout(() => {
    process.stdout.write(JSON.stringify(Object.assign(results, { error: "deadline" })));
    process.exit(0);
  }, (config.connect_timeout_s + config.count / config.rate + config.settle_s + 30) * 1000);
  try {
    results.connect_s = Math.round((await connectAll()) * 100) / 100;
  } catch (err) {
    results.error = String(err);
  }
  if (!results.error) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const posts = [];
    const start = performance.now();
    for (let i = 0; i < config.count; i += 1) {
      const due = start + (i * 1000) / config.rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      posts.push(post(config.conversations[i % config.conversations.length], i));
    }
    const answers = await Promise.all(posts);
    await new Promise((resolve) => setTimeout(resolve, config.settle_s * 1000));
    const fromAnswer = [];
    const fromSend = [];
    let expected = 0;
    let delivered = 0;
    let duplicates = 0;
    const statuses = {};
    for (const answer of answers) {
      statuses[answer.status] = (statuses[answer.status] || 0) + 1;
      if (!answer.id) continue;
      const recipients = new Set(answer.conversation.members.filter((id) => id !== answer.conversation.sender));
      expected += recipients.size;
      const seen = new Set();
      for (const receipt of receipts.get(answer.id) || []) {
        if (!recipients.has(receipt.user)) continue;
        if (seen.has(receipt.user)) { duplicates += 1; continue; }
        seen.add(receipt.user);
        delivered += 1;
        fromAnswer.push(receipt.at - answer.answered);
        fromSend.push(receipt.at - answer.sent);
      }
    }
    Object.assign(results, {
      messages: answers.length, statuses, expected_deliveries: expected, delivered, duplicates,
      before_answer: fromAnswer.filter((value) => value < 0).length,
      from_answer: summary(fromAnswer), from_send: summary(fromSend),
      post: summary(answers.filter((a) => a.id).map((a) => a.answered - a.sent)),
    });
  }
  clearTimeout(hardStop);
  sockets.forEach((socket) => socket.close());
  process.stdout.write(JSON.stringify(results));
  agent.destroy();
  process.exit(0);
}

main();
