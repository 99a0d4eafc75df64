// The official Socket.IO client against two realtime replicas.
//
// Input (argv[2], JSON): {urls: [a, b], tokens: {sender, receiver, outsider}, forged, conversation_id}.
// It connects the sender to replica a, the receiver to b and an outsider (no
// member) to a, prints {"ready": true} once all are connected, then waits for
// the message the test sends over HTTP and the typing indicator it sends
// itself, and prints one JSON line with everything each socket received.
import { io } from "socket.io-client";

const input = JSON.parse(process.argv[2]);
const SETTLE_MS = 600;
const DEADLINE_MS = 15000;

function connect(url, token) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false, timeout: 5000 });
    socket.received = [];
    socket.onAny((event, data) => socket.received.push([event, data]));
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => reject(error));
  });
}

function refusal(url, token) {
  return connect(url, token).then(
    (socket) => { socket.close(); return null; },
    (error) => error.data || { message: error.message },
  );
}

const until = (check) => new Promise((resolve, reject) => {
  const started = Date.now();
  const timer = setInterval(() => {
    if (check()) { clearInterval(timer); resolve(); }
    else if (Date.now() - started > DEADLINE_MS) { clearInterval(timer); reject(new Error("timed out")); }
  }, 20);
});

const [a, b] = input.urls;
const sender = await connect(a, input.tokens.sender);
const receiver = await connect(b, input.tokens.receiver);
const outsider = await connect(a, input.tokens.outsider);
const forged = await refusal(b, input.forged);
console.log(JSON.stringify({ ready: true }));

const typingAck = await sender.timeout(5000).emitWithAck("typing", { conversation_id: input.conversation_id });
const outsiderAck = await outsider.timeout(5000).emitWithAck("typing", { conversation_id: input.conversation_id });
const malformedAck = await sender.timeout(5000).emitWithAck("typing", "not an object");
const got = (socket, event) => socket.received.filter(([name]) => name === event).length > 0;
await until(() => got(sender, "message:new") && got(receiver, "message:new") && got(receiver, "typing"));
await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

console.log(JSON.stringify({
  sender: sender.received,
  receiver: receiver.received,
  outsider: outsider.received,
  forged,
  acks: { typing: typingAck, outsider: outsiderAck, malformed: malformedAck },
}));
for (const socket of [sender, receiver, outsider]) socket.close();
process.exit(0);
