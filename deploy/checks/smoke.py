#!/usr/bin/env python3
"""The smoke flow against a deployed LifyTP, as a phone does it, through the
public base URL (the Ingress, the compose edge):

    python3 deploy/checks/smoke.py http://lifytp.localhost [--json result.json]

Registers two users and logs them in, creates an event, uploads a PNG and
loads it through the URL the API gave (following the redirect to the media
store as a phone would), writes a post, and sends a chat message that the
other user receives live on a Socket.IO client. One line per step; exit
status 0 when every step worked. --json writes what it made (users, event,
media) for checks that come after. Needs requests and python-socketio with
websocket-client (the development virtualenv has them).
"""
import argparse
import base64
import hashlib
import json
import sys
import time
import uuid

import requests
import socketio

PASSWORD = "correct horse battery"
TIMEOUT = 20


class StepFailed(Exception):
    pass


# A 1x1 PNG, as a phone would upload a photo.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


def expect(response, *statuses):
    if response.status_code not in statuses:
        raise StepFailed(f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}")
    return response


class Phone:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.http = requests.Session()

    def call(self, method, path, token=None, **kwargs):
        headers = {"Authorization": "Bearer " + token} if token else {}
        return self.http.request(method, self.base + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def register(self):
        username = "s" + uuid.uuid4().hex[:12]
        answer = expect(self.call("POST", "/auth/register", json={
            "email": username + "@example.com", "username": username, "password": PASSWORD}), 201)
        return {"username": username, "password": PASSWORD, "id": answer.json()["user"]["id"]}

    def login(self, user):
        answer = expect(self.call("POST", "/auth/login", json={"login": user["username"], "password": PASSWORD}), 200)
        return answer.json()["access_token"]

    def load_media(self, media):
        """The media store's URL behind the API's, and the bytes loaded from it."""
        url = media["url"] if media["url"].startswith("http") else self.base + media["url"]
        redirect = self.http.get(url, allow_redirects=False, timeout=TIMEOUT)
        if redirect.status_code != 302:  # local storage answers with the bytes themselves
            return url, expect(redirect, 200)
        location = redirect.headers["Location"]
        if not location.startswith(self.base + "/"):
            raise StepFailed(f"media is signed for {location.split('?')[0]}, not for the public base URL {self.base}")
        return location, expect(self.http.get(location, timeout=TIMEOUT), 200)


def live_message(phone, sender_token, receiver, receiver_token):
    """A chat message from sender to receiver, received on the receiver's socket."""
    received = []
    socket = socketio.Client(reconnection=False)
    socket.on("message:new", lambda data: received.append(data["message"]["body"]))
    socket.connect(phone.base, auth={"token": receiver_token}, transports=["websocket"], wait_timeout=TIMEOUT)
    try:
        chat = expect(phone.call("POST", "/messages/conversations", sender_token,
                                 json={"member_ids": [receiver["id"]]}), 200, 201)
        body = "see you there " + uuid.uuid4().hex[:6]
        expect(phone.call("POST", "/messages", sender_token, json={"conversation_id": chat.json()["id"],
                                                                  "body": body}), 201)
        deadline = time.monotonic() + TIMEOUT
        while body not in received and time.monotonic() < deadline:
            time.sleep(0.1)
        if body not in received:
            raise StepFailed(f"the message was not delivered on the socket within {TIMEOUT}s (got {received})")
    finally:
        socket.disconnect()


def smoke(base, say=print):
    phone = Phone(base)
    ann, bob = phone.register(), phone.register()
    ann_token, bob_token = phone.login(ann), phone.login(bob)
    say(f"ok   registered and logged in {ann['username']} and {bob['username']}")
    event = expect(phone.call("POST", "/events", ann_token, json={
        "title": "Smoke launch", "starts_at": "2030-05-01T18:00:00Z", "visibility": "public"}), 201).json()
    say(f"ok   event {event['id']}")
    media = expect(phone.call("POST", "/media", ann_token,
                              files={"file": ("photo.png", PNG, "image/png")}), 201).json()
    location, loaded = phone.load_media(media)
    if loaded.headers.get("Content-Type") != "image/png" or not loaded.content.startswith(b"\x89PNG"):
        raise StepFailed(f"the media URL gave {loaded.headers.get('Content-Type')}, {loaded.content[:16]!r}")
    say(f"ok   PNG uploaded and loaded from {location.split('?')[0]}")
    post = expect(phone.call("POST", "/posts", ann_token, json={
        "body": "Doors at six", "event_id": event["id"], "media_ids": [media["id"]]}), 201).json()
    say(f"ok   post {post['id']}")
    live_message(phone, ann_token, bob, bob_token)
    say("ok   chat message delivered live on Socket.IO")
    return {"users": [ann, bob], "event_id": event["id"], "post_id": post["id"], "media": media,
            "media_location": location, "media_sha256": hashlib.sha256(loaded.content).hexdigest()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--json", help="write what the flow made to this file")
    args = parser.parse_args(argv)
    try:
        made = smoke(args.base_url)
    except (StepFailed, requests.RequestException, socketio.exceptions.SocketIOError) as failure:
        print(f"FAIL {failure}")
        return 1
    if args.json:
        with open(args.json, "w") as out:
            json.dump(made, out, indent=1)
    print("smoke flow passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
