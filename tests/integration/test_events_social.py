"""Media, posts and the feed over real HTTP, against the whole running system."""
import time

import pytest

from tests.fixtures.events.media_samples import decoded, mp4_lasting, phone_photo, png_bytes, webm_lasting

pytestmark = pytest.mark.integration


def upload(api, user, data, name="picture.png"):
    return api.post("/media", user=user, files={"file": (name, data, "application/octet-stream")})


def new_event(api, user, **fields):
    body = {"title": "Picnic", "starts_at": "2027-06-01T12:00:00Z", "visibility": "public", **fields}
    response = api.post("/events", user=user, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_media_upload_serve_and_avatar(api):
    ann = api.register()
    picture = png_bytes()
    uploaded = upload(api, ann, picture, name="holiday.exe")
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    served = api.get(media["url"])
    assert served.status_code == 200 and decoded(served.content) == decoded(picture)
    assert media["content_type"] == "image/png" and media["size"] == len(served.content)
    assert served.headers["Content-Type"] == "image/png"
    # auth validates avatars with the events service's get_media RPC.
    profile = api.patch("/users/me", user=ann, json={"avatar_media_id": media["id"]})
    assert profile.status_code == 200, profile.text
    assert profile.json()["avatar_url"] == media["url"]
    bob = api.register()
    assert api.patch("/users/me", user=bob, json={"avatar_media_id": media["id"]}).status_code == 422
    # An event cover must be an image of the organizer's too.
    assert new_event(api, ann, cover_media_id=media["id"])["cover_url"] == media["url"]
    stolen = api.post("/events", user=bob, json={"title": "x", "starts_at": "2027-06-01T12:00:00Z",
                                                 "visibility": "public", "cover_media_id": media["id"]})
    assert stolen.status_code == 422 and stolen.json()["error"]["code"] == "INVALID_MEDIA"


def test_phone_photos_upload_every_time_upright_and_without_their_location(api):
    """2-5 MB photos (binary bytes, full of CR and LF) used to fail with 413 at
    random, and were published with their EXIF, GPS coordinates included."""
    ann = api.register()
    photos = [((width, height), phone_photo(width, height, seed=width))
              for width, height in ((1600, 1200), (2000, 1500), (2200, 1650))]
    for attempt in range(20):
        (width, height), photo = photos[attempt % len(photos)]
        assert 2_000_000 <= len(photo) <= 5_500_000, len(photo)
        assert 0x8825 in decoded(photo)[2]  # GPS, as sent
        uploaded = upload(api, ann, photo, name=f"IMG_{attempt}.jpg")
        assert uploaded.status_code == 201, (attempt, uploaded.text)
        assert uploaded.json()["content_type"] == "image/jpeg"
        published = api.get(uploaded.json()["url"]).content
        # No GPS, no camera, no EXIF at all; turned upright as Orientation 6 said.
        assert decoded(published) == ("JPEG", (height, width), {}, {})
        assert uploaded.json()["size"] == len(published)


def test_short_videos_are_accepted(api):
    ann = api.register()
    for name, data, content_type in (("clip.mp4", mp4_lasting(20), "video/mp4"),
                                     ("clip.webm", webm_lasting(9), "video/webm")):
        uploaded = upload(api, ann, data, name=name)
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["content_type"] == content_type
        assert api.get(uploaded.json()["url"]).content == data


def test_posts_on_events_and_deletion(api):
    ann, bob = api.register(), api.register()
    event = new_event(api, ann)
    media = upload(api, ann, png_bytes()).json()
    created = api.post("/posts", user=ann, json={"body": "See you there!", "event_id": event["id"],
                                                 "media_ids": [media["id"]]})
    assert created.status_code == 201, created.text
    post = created.json()
    assert post["author"]["id"] == ann["id"] and post["media"][0]["id"] == media["id"]
    second = api.post("/posts", user=ann, json={"body": "Bring a hat"}).json()
    listed = api.get("/posts", user=bob, params={"author_id": ann["id"]}).json()
    assert [item["id"] for item in listed["items"]] == [second["id"], post["id"]]
    on_event = api.get("/posts", user=bob, params={"event_id": event["id"]}).json()
    assert [item["id"] for item in on_event["items"]] == [post["id"]]
    # Media of someone else cannot be attached.
    assert api.post("/posts", user=bob, json={"body": "mine", "media_ids": [media["id"]]}).status_code == 422
    assert api.delete("/posts/" + post["id"], user=bob).status_code == 403
    assert api.delete("/posts/" + post["id"], user=ann).status_code == 204
    assert api.get("/posts/" + post["id"], user=ann).status_code == 404


def test_posts_on_private_events_stay_private(api):
    ann, bob = api.register(), api.register()
    secret = new_event(api, ann, visibility="private")
    post = api.post("/posts", user=ann, json={"body": "psst", "event_id": secret["id"]}).json()
    assert api.get("/posts/" + post["id"], user=bob).status_code == 404
    assert api.get("/posts", user=bob, params={"author_id": ann["id"]}).json()["items"] == []
    assert api.post("/posts", user=bob, json={"body": "hi", "event_id": secret["id"]}).status_code == 422


def test_feed_is_newest_first_and_stable(api):
    ann, bob, carl = api.register(), api.register(), api.register()
    assert api.post("/users/{}/follow".format(bob["id"]), user=ann).status_code == 204
    own = api.post("/posts", user=ann, json={"body": "mine"}).json()
    bobs_event = new_event(api, bob, visibility="followers")
    bobs_post = api.post("/posts", user=bob, json={"body": "from bob"}).json()
    api.post("/posts", user=carl, json={"body": "not followed"})
    first = api.get("/feed", user=ann, params={"limit": 2}).json()
    assert [(item["type"], item["id"]) for item in first["items"]] == [
        ("post", bobs_post["id"]), ("event", bobs_event["id"])]
    # Something new arrives: the next page goes on where the first stopped.
    newer = api.post("/posts", user=bob, json={"body": "newer"}).json()
    second = api.get("/feed", user=ann, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in second["items"]] == [own["id"]]
    assert second["next_cursor"] is None
    assert api.get("/feed", user=ann).json()["items"][0]["id"] == newer["id"]


def test_feed_follows_new_follows(api):
    ann, dora = api.register(), api.register()
    api.get("/feed", user=ann)  # the follow list is copied now...
    post = api.post("/posts", user=dora, json={"body": "hello"}).json()
    assert api.post("/users/{}/follow".format(dora["id"]), user=ann).status_code == 204
    deadline = time.monotonic() + 5  # ...and kept fresh by auth's user_followed event
    while post["id"] not in [item["id"] for item in api.get("/feed", user=ann).json()["items"]]:
        assert time.monotonic() < deadline, "user_followed never reached the feed"
        time.sleep(0.1)
