// The official Socket.IO client, reconnection on (as an app has it), through a
// balancer in front of two realtime replicas.
//
// Input (argv[2], JSON): {url, token}. Prints one JSON line per happening:
// {"connected": n} on each connection, {"disconnected": reason} when the
// connection drops, {"message": id} for each message:new. Runs until killed.
import { io } from "socket.io-client";

const input = JSON.parse(process.argv[2]);
const print = (line) => console.log(JSON.stringify(line));

let connects = 0;
const socket = io(input.url, {
  auth: { token: input.token },
  transports: ["websocket"],
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  timeout: 5000,
});
socket.on("connect", () => print({ connected: ++connects }));
socket.on("disconnect", (reason) => print({ disconnected: reason }));
socket.on("message:new", (data) => print({ message: data.message.id }));
setTimeout(() => process.exit(1), 60000);
