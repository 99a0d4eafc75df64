"""The figures of a run as markdown, written between two markers of a file."""
import re

START = "<!-- figures:start -->"
END = "<!-- figures:end -->"


def render(figures):
    lines = [
        f"Profile `{figures.get('profile')}`, finished {figures.get('finished_at')}, "
        f"{figures.get('total_seconds', '?')} s in all (system up in {figures.get('setup_seconds')} s); "
        f"services {', '.join(figures.get('services', []))}, two replicas each; "
        f"{figures.get('users')} users, {figures.get('conversations')} conversations; "
        f"nginx reloaded {figures.get('nginx_reloads')} times. Reproduce with `{figures.get('command')}`.",
        "",
        "| scenario | seconds | requests sent | failed | retried by the client | retried by nginx "
        "| never succeeded | messages acknowledged | stored | stored twice | deliveries expected "
        "| delivered | lost | missed while reconnecting | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in figures.get("scenarios", []):
        lines.append("| " + " | ".join(str(value) for value in (
            result["scenario"], result["seconds"], result["requests_sent"], result["requests_failed"],
            result["requests_retried"], result["load_balancer"]["retried_by_nginx"], result["requests_lost"],
            result["messages_acknowledged"], result["messages_stored"], result["messages_duplicated"],
            result["deliveries_expected"], result["deliveries_received"], result["deliveries_lost"],
            result["missed_while_reconnecting"],
            "pass" if result["passed"] else "FAIL: " + "; ".join(result["problems"]),
        )) + " |")
    lines.append("")
    for result in figures.get("scenarios", []):
        failed = {status: count for status, count in result["statuses"].items() if not status.startswith("2")}
        lines.append(f"- **{result['scenario']}** ({result['title']}): answers other than 2xx seen by the "
                     f"clients {failed or 'none'}; outbox rows left unpublished {result['outbox_pending_after']}; "
                     f"socket (re)connections {result['sockets']['connects']}, of which after a server-side "
                     f"disconnect {result['sockets']['server_disconnects']}; {_details(result['details'])}.")
    idempotence = figures.get("idempotence") or {}
    if idempotence:
        lines += ["", f"After all scenarios: {idempotence.get('event_participants')} participant rows for the drill "
                      f"event joined again and again by {idempotence.get('users')} users; "
                      f"{idempotence.get('auth_follows')} follow rows for the follows repeated by the load."]
    return "\n".join(lines) + "\n"


def _details(details):
    if "stopped" in details:
        return "stopped " + ", ".join(f"{stop['replica']} (exit {stop['exit_code']} in {stop['stop_seconds']} s)"
                                      for stop in details["stopped"])
    if "killed" in details:
        return "killed " + ", ".join(details["killed"])
    if "replaced" in details:
        return "replaced " + ", ".join(f"{step['old']} by {step['new']} (ready in {step['new_ready_seconds']} s)"
                                       for step in details["replaced"])
    stores = [details] if "store" in details else [value for value in details.values() if isinstance(value, dict)]
    text = "; ".join(f"{store['store']} down {store['down_seconds']} s, every replica ready again "
                     f"{store['all_ready_after_seconds']} s after it was back, no replica restarted: "
                     f"{store['no_replica_restarted']}" for store in stores) or "no details"
    if "users_deleted" in details:
        text += (f"; {details['users_deleted']} users deleted and {details['follows_made']} follows made while "
                 f"events and messages were frozen, {details['events_requeued_while_down']} of their events "
                 f"requeued while PostgreSQL was down, left after the cascade {details['left_after_cascade']}")
    return text


def write_report(path, figures):
    with open(path) as handle:
        text = handle.read()
    block = f"{START}\n{render(figures)}{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as handle:
        handle.write(text)
