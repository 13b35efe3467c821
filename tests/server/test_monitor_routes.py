"""Monitors, alerts and channels over HTTP (server/routes_monitors.py), in-process.

Every refusal is checked by status, error code and message, and with the store unchanged.
The app runs with ``monitor_every=0`` so no background pass changes the store under a test
(tests/server/test_monitor_loop.py covers the loop).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import evalstore
from server import create_app

T0 = datetime(2024, 3, 1, tzinfo=UTC)
NAN_RULE = {"type": "fixed", "direction": "above", "value": 0}
READ = "monitor-reader-0123456789"
WRITE = "monitor-writer-0123456789"


def build(store: evalstore.Store) -> None:
    """Model ``m``: training x = 0..99; serving day 1 clean, day 2 with 2 NaN of 5 rows."""
    store.register_model("m", "v1", "binary")
    store.register_model("other", "v1", "binary")
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(100)],
                "ts": [T0 - timedelta(days=10)] * 100,
                "x": [float(i) for i in range(100)],
            }
        ),
        env="training",
    )
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)],
                "ts": [T0] * 5 + [T0 + timedelta(days=1)] * 5,
                "x": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, math.nan, 2.0, math.nan, 3.0],
            }
        ),
    )
    store.log_features("other", pa.table({"example_id": ["o"], "ts": [T0], "y": [1.0]}))


@pytest.fixture(scope="module")
def template_path(template):
    return template("monitor_routes", build)


@pytest.fixture
def store(open_copy, template_path):
    store = open_copy(template_path)
    yield store
    store.close()


@pytest.fixture
def client(store):
    with TestClient(create_app(store, monitor_every=0)) as client:
        yield client


def count(store: evalstore.Store, table: str) -> int:
    return store.sql(f"SELECT count(*) AS n FROM evalstore.{table}").to_pylist()[0]["n"]


def create(client: TestClient, name: str = "x_nan", **fields) -> dict:
    body = {"name": name, "family": "quality", "metric": "nan", "rule": NAN_RULE,
            "subjects": ["x"], **fields}  # fmt: skip
    response = client.post("/v1/models/m/monitors", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# ---------------------------------------------------------------------- monitors


def test_create_list_get_update_and_delete_a_monitor(client, store):
    created = create(client)
    assert created["definition_version"] == 1
    assert created["rule"] == {**NAN_RULE, "value": 0.0, "min_rows": 1, "wait_for_labels": True,
                               "fire_after": 1, "resolve_after": 1}  # fmt: skip
    listed = client.get("/v1/models/m/monitors").json()
    assert [(r["name"], r["family"], r["metric"], r["subjects"]) for r in listed] == [
        ("x_nan", "quality", "nan", ["x"])
    ]
    assert client.get("/v1/models/other/monitors").json() == []
    one = client.get("/v1/models/m/monitors/x_nan").json()
    assert (one["name"], one["definition_version"], one["last_run"]) == ("x_nan", 1, None)

    changed = client.patch("/v1/models/m/monitors/x_nan", json={"rule": {**NAN_RULE, "value": 1}})
    assert changed.status_code == 200
    assert (changed.json()["definition_version"], changed.json()["rule"]["value"]) == (2, 1.0)
    disabled = client.patch("/v1/models/m/monitors/x_nan", json={"enabled": False}).json()
    assert (disabled["enabled"], disabled["definition_version"]) == (False, 2)

    deleted = client.delete("/v1/models/m/monitors/x_nan")
    assert deleted.json() == {"model": "m", "deleted": "x_nan"}
    assert count(store, "monitors") == 0


def test_a_refused_definition_names_the_problem_and_stores_nothing(client, store):
    unknown_feature = client.post(
        "/v1/models/m/monitors",
        json={"name": "bad", "family": "quality", "metric": "nan", "rule": NAN_RULE,
              "subjects": ["nope"]},
    )  # fmt: skip
    assert unknown_feature.status_code == 422
    assert unknown_feature.json()["error"] == "invalid_parameter"
    assert "nope" in unknown_feature.json()["detail"]

    bad_rule = client.post(
        "/v1/models/m/monitors",
        json={"name": "bad", "family": "quality", "metric": "nan", "rule": {"type": "magic"}},
    )
    assert bad_rule.status_code == 422
    assert "magic" in bad_rule.json()["detail"]

    unknown_model = client.post(
        "/v1/models/ghost/monitors",
        json={"name": "bad", "family": "quality", "metric": "nan", "rule": NAN_RULE},
    )
    assert unknown_model.status_code == 404
    assert unknown_model.json()["error"] == "unknown_model"

    extra = client.post(
        "/v1/models/m/monitors",
        json={"name": "bad", "family": "quality", "metric": "nan", "rule": NAN_RULE,
              "model": "other"},
    )  # fmt: skip
    assert extra.status_code == 422
    assert extra.json()["error"] == "invalid_request"
    assert "model" in extra.json()["detail"]

    bad_name = client.post(
        "/v1/models/m/monitors",
        json={"name": "1; DROP", "family": "quality", "metric": "nan", "rule": NAN_RULE},
    )
    assert bad_name.status_code == 422
    assert count(store, "monitors") == 0


def test_a_monitor_is_reached_through_its_own_model_only(client, store):
    create(client)
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"enabled": False}} if method == "patch" else {}
        response = getattr(client, method)("/v1/models/other/monitors/x_nan", **kwargs)
        assert response.status_code == 404, method
        assert response.json()["error"] == "unknown_monitor"
        assert "'other' has no monitor 'x_nan'" in response.json()["detail"]
    assert client.get("/v1/models/m/monitors/x_nan").json()["enabled"] is True
    empty = client.patch("/v1/models/m/monitors/x_nan", json={})
    assert (empty.status_code, empty.json()["error"]) == (422, "invalid_parameter")


def test_run_fires_once_then_ack_and_silence(client, store):
    create(client)
    first = client.post("/v1/models/m/monitors/run")
    assert first.status_code == 200
    [row] = first.json()
    assert (row["monitor"], row["subject"], row["verdict"], row["value"]) == (
        "x_nan",
        "x",
        "breach",
        2.0,
    )
    assert (row["transitions"], row["state"]) == (["fired"], "firing")
    alert_id = row["alert_id"]

    again = client.post("/v1/models/m/monitors/run", json={"names": ["x_nan"]}).json()
    assert "fired" not in again[0]["transitions"]  # not raised again
    assert (again[0]["alert_id"], again[0]["state"]) == (alert_id, "firing")

    firing = client.get("/v1/alerts", params={"model": "m", "state": "firing"}).json()
    assert [(a["alert_id"], a["monitor"], a["value"]) for a in firing] == [(alert_id, "x_nan", 2.0)]
    assert client.get("/v1/alerts", params={"state": "resolved"}).json() == []
    assert client.get("/v1/alerts", params={"model": "other"}).json() == []

    ack = client.post(f"/v1/alerts/{alert_id}/acknowledge", json={"by": "ana"})
    assert ack.status_code == 200
    assert (ack.json()["acknowledged_by"], ack.json()["state"]) == ("ana", "firing")

    until = "2030-01-01T00:00:00+00:00"
    silenced = client.post(f"/v1/alerts/{alert_id}/silence", json={"until": until}).json()
    assert silenced["silenced_until"] == until
    stored = client.get("/v1/alerts").json()[0]
    assert (stored["acknowledged_by"], stored["silenced_until"]) == ("ana", until)
    lifted = client.post(f"/v1/alerts/{alert_id}/silence", json={"until": None}).json()
    assert lifted["silenced_until"] is None


def test_run_refuses_an_unknown_monitor_name(client, store):
    create(client)
    response = client.post("/v1/models/m/monitors/run", json={"names": ["ghost"]})
    assert response.status_code == 422
    assert "'ghost' does not exist" in response.json()["detail"]
    assert count(store, "alerts") == 0


def test_alert_routes_refuse_unknown_alerts_and_bad_bodies(client, store):
    for path, body in (("acknowledge", {"by": "ana"}), ("silence", {"until": None})):
        response = client.post(f"/v1/alerts/999/{path}", json=body)
        assert response.status_code == 404
        assert response.json() == {
            "error": "unknown_alert",
            "detail": "there is no alert 999; list them with GET /v1/alerts",
        }
    create(client)
    alert_id = client.post("/v1/models/m/monitors/run").json()[0]["alert_id"]
    naive = client.post(f"/v1/alerts/{alert_id}/silence", json={"until": "not a time"})
    assert naive.status_code == 422
    assert "until" in naive.json()["detail"]
    nobody = client.post(f"/v1/alerts/{alert_id}/acknowledge", json={"by": ""})
    assert nobody.status_code == 422
    assert client.get("/v1/alerts").json()[0]["acknowledged_by"] is None
    bad_state = client.get("/v1/alerts", params={"state": "burning"})
    assert bad_state.status_code == 422
    too_many = client.get("/v1/alerts", params={"limit": 10_001})
    assert too_many.status_code == 422


def test_backtests_write_nothing(client, store):
    create(client)
    saved = client.post("/v1/models/m/monitors/x_nan/backtest", json={})
    assert saved.status_code == 200
    [episode] = saved.json()
    assert (episode["subject"], episode["state"], episode["value"]) == ("x", "firing", 2.0)
    assert episode["first_window_start"] == (T0 + timedelta(days=1)).isoformat()

    before = client.post(
        "/v1/models/m/monitors/x_nan/backtest", json={"until": T0.isoformat()}
    ).json()
    assert before == []

    unsaved = client.post(
        "/v1/models/m/monitors/backtest",
        json={"family": "quality", "metric": "nan", "rule": {**NAN_RULE, "value": 5},
              "subjects": ["x"]},
    )  # fmt: skip
    assert (unsaved.status_code, unsaved.json()) == (200, [])
    assert count(store, "alerts") == 0
    assert count(store, "alert_cursors") == 0


# ---------------------------------------------------------------------- channels


def test_command_channels_are_refused_over_http(client, store):
    response = client.post(
        "/v1/channels",
        json={"name": "pwn", "kind": "command", "config": {"argv": ["touch", "/tmp/pwned"]}},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "command_channel_refused"
    assert "never over HTTP" in response.json()["detail"]
    assert count(store, "channels") == 0

    store.add_channel("local", "command", {"argv": ["true"]})  # the trusted, local API
    replace = client.post(
        "/v1/channels",
        json={"name": "local", "config": {"url": "https://hooks.example.com/x"}, "replace": True},
    )
    assert (replace.status_code, replace.json()["error"]) == (403, "command_channel_refused")
    delete = client.delete("/v1/channels/local")
    assert (delete.status_code, delete.json()["error"]) == (403, "command_channel_refused")
    [row] = store.channels().to_pylist()
    assert (row["name"], row["kind"]) == ("local", "command")
    listed = client.get("/v1/channels").json()
    assert listed[0]["config"]["argv"] == ["true"]


def test_webhooks_to_internal_addresses_are_refused_unless_allowed(client, store):
    for url in ("http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/x",
                "http://10.1.2.3/hook", "http://localhost/hook", "http://[::1]/hook"):  # fmt: skip
        response = client.post("/v1/channels", json={"name": "h", "config": {"url": url}})
        assert response.status_code == 403, url
        assert response.json()["error"] == "webhook_not_allowed"
        assert "--webhook-allow" in response.json()["detail"]
    scheme = client.post(
        "/v1/channels", json={"name": "h", "config": {"url": "file:///etc/passwd"}}
    )
    assert scheme.status_code == 422
    assert "config.url" in scheme.json()["detail"]
    assert count(store, "channels") == 0


def test_the_allow_list_decides_which_hosts_webhooks_reach(store):
    app = create_app(store, monitor_every=0, webhook_allow=("127.0.0.1", "*.example.com"))
    with TestClient(app) as client:
        ok = client.post(
            "/v1/channels", json={"name": "a", "config": {"url": "http://127.0.0.1:9/x"}}
        )
        assert ok.status_code == 201
        sub = client.post(
            "/v1/channels", json={"name": "b", "config": {"url": "https://hooks.example.com/x"}}
        )
        assert sub.status_code == 201
        other = client.post(
            "/v1/channels", json={"name": "c", "config": {"url": "https://hooks.slack.com/x"}}
        )
        assert other.status_code == 403
        assert (
            "not in this server's allow-list (127.0.0.1, *.example.com)" in (other.json()["detail"])
        )
    assert sorted(store.channels().column("name").to_pylist()) == ["a", "b"]


def test_webhook_channels_are_created_listed_without_secrets_and_deleted(client, store):
    config = {"url": "https://hooks.example.com/x", "secret_env": "HOOK_SECRET",
              "headers": {"Authorization": "Bearer s3cret"}}  # fmt: skip
    body = {"name": "ops", "config": config}
    created = client.post("/v1/channels", json=body)
    assert created.status_code == 201
    assert created.json()["config"]["headers"] == {"Authorization": "<hidden>"}
    listed = client.get("/v1/channels").json()
    assert [(c["name"], c["kind"], c["config"]["url"]) for c in listed] == [
        ("ops", "webhook", "https://hooks.example.com/x")
    ]
    assert "s3cret" not in str(listed)
    # the store keeps the real header for delivery
    assert "s3cret" in store.channels().to_pylist()[0]["config"]
    twice = client.post("/v1/channels", json=body)
    assert twice.status_code == 422 and "exists" in twice.json()["detail"]
    assert client.delete("/v1/channels/ops").json() == {"deleted": "ops"}
    gone = client.delete("/v1/channels/ops")
    assert (gone.status_code, gone.json()["error"]) == (404, "unknown_channel")


def test_read_tokens_read_and_backtest_but_do_not_change(store, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{READ} read\n{WRITE} write\n")
    with TestClient(create_app(store, tokens=tokens, monitor_every=0)) as client:
        reader = {"Authorization": f"Bearer {READ}"}
        writer = {"Authorization": f"Bearer {WRITE}"}
        create_body = {"name": "x_nan", "family": "quality", "metric": "nan", "rule": NAN_RULE}
        refused = client.post("/v1/models/m/monitors", json=create_body, headers=reader)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        assert (
            client.post("/v1/models/m/monitors", json=create_body, headers=writer).status_code
            == 201
        )
        assert client.get("/v1/models/m/monitors", headers=reader).status_code == 200
        assert client.post("/v1/models/m/monitors/run", headers=reader).status_code == 403
        backtest = client.post("/v1/models/m/monitors/x_nan/backtest", json={}, headers=reader)
        assert backtest.status_code == 200
        channel = {"name": "ops", "config": {"url": "https://hooks.example.com/x"}}
        assert client.post("/v1/channels", json=channel, headers=reader).status_code == 403
        assert client.get("/v1/alerts", headers={}).status_code == 401
    assert count(store, "alerts") == 0 and count(store, "channels") == 0
