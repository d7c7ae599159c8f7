//! The intention API over real sockets: exact upsert/read/delete on top of `service-intentions` config
//! entries, list and filter, match order and its blocking query, check, validation errors, and the
//! legacy ID endpoints.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn exact(source: &str, destination: &str) -> String {
    format!(
        "/v1/connect/intentions/exact?source={}&destination={}",
        source.replace('*', "%2A"),
        destination.replace('*', "%2A")
    )
}

async fn upsert(addr: SocketAddr, source: &str, destination: &str, body: Value) {
    let r = put_json(addr, &exact(source, destination), &body).await;
    assert_eq!(r.status, 200, "{source} => {destination}: {}", r.text());
    assert_eq!(r.json(), Value::Bool(true));
}

async fn check(addr: SocketAddr, source: &str, destination: &str) -> bool {
    let r = get(
        addr,
        &format!("/v1/connect/intentions/check?source={source}&destination={destination}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Allowed"].as_bool().unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}=>{}",
                i["SourceName"].as_str().unwrap(),
                i["DestinationName"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn exact_upsert_read_and_delete_live_in_the_config_entry() {
    let server = start().await;
    let addr = server.http_addr();
    assert_eq!(get(addr, &exact("web", "db")).await.status, 404);
    assert_eq!(
        get(addr, &exact("web", "db")).await.text(),
        "Intention not found"
    );

    upsert(
        addr,
        "web",
        "db",
        json!({"SourceType": "consul", "Action": "allow", "Description": "web may"}),
    )
    .await;
    let r = get(addr, &exact("web", "db")).await;
    assert_eq!(r.status, 200);
    let ixn = r.json();
    assert_eq!(ixn["SourceName"], "web");
    assert_eq!(ixn["SourceNS"], "default");
    assert_eq!(ixn["DestinationName"], "db");
    assert_eq!(ixn["DestinationNS"], "default");
    assert_eq!(ixn["SourceType"], "consul");
    assert_eq!(ixn["Action"], "allow");
    assert_eq!(ixn["Description"], "web may");
    assert_eq!(ixn["Meta"], json!({}));
    assert_eq!(ixn["Precedence"], 9);
    assert_eq!(ixn["ModifyIndex"], r.index());
    assert!(ixn.get("ID").is_none(), "no legacy ID");

    // The storage is the destination's service-intentions entry.
    let entry = get(addr, "/v1/config/service-intentions/db").await.json();
    assert_eq!(entry["Sources"][0]["Name"], "web");
    assert_eq!(entry["Sources"][0]["Action"], "allow");
    assert_eq!(entry["Sources"][0]["Precedence"], 9);

    // Upsert replaces the source in place and adds others beside it.
    upsert(addr, "web", "db", json!({"Action": "deny"})).await;
    upsert(addr, "api", "db", json!({"Action": "allow"})).await;
    let entry = get(addr, "/v1/config/service-intentions/db").await.json();
    assert_eq!(entry["Sources"].as_array().unwrap().len(), 2);
    assert_eq!(
        get(addr, &exact("web", "db")).await.json()["Action"],
        "deny"
    );
    assert_eq!(
        get(addr, &exact("web", "db")).await.json()["Description"],
        ""
    );

    // Delete removes the source, and the entry with its last source; deleting again is fine.
    let r = delete(addr, &exact("web", "db")).await;
    assert_eq!((r.status, r.json()), (200, Value::Bool(true)));
    assert_eq!(get(addr, &exact("web", "db")).await.status, 404);
    assert_eq!(get(addr, &exact("api", "db")).await.status, 200);
    assert_eq!(delete(addr, &exact("api", "db")).await.status, 200);
    assert_eq!(
        get(addr, "/v1/config/service-intentions/db").await.status,
        404
    );
    assert_eq!(delete(addr, &exact("api", "db")).await.status, 200);

    // An L7 intention.
    upsert(
        addr,
        "web",
        "db",
        json!({"Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["get"]}}]}),
    )
    .await;
    let ixn = get(addr, &exact("web", "db")).await.json();
    assert!(ixn.get("Action").is_none());
    assert_eq!(ixn["Permissions"][0]["HTTP"]["Methods"], json!(["GET"]));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_consuls_messages() {
    let server = start().await;
    let addr = server.http_addr();
    let cases = [
        (
            exact("web", "db"),
            json!({"Action": "maybe"}),
            "Sources[0].Action must be set to 'allow' or 'deny'",
        ),
        (
            exact("web", "db"),
            json!({}),
            "Sources[0].Action must be set to 'allow' or 'deny'",
        ),
        (
            exact("web", "db"),
            json!({"Action": "allow", "SourceType": "ldap"}),
            "Sources[0].Type must be set to 'consul'",
        ),
        (
            exact("web", "db"),
            json!({"Action": "allow", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}),
            "Sources[0].Action must be omitted if Permissions are specified",
        ),
        (
            exact("web", "*"),
            json!({"Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}),
            "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations",
        ),
        (
            exact("we*", "db"),
            json!({"Action": "allow"}),
            "Sources[0].Name: wildcard character '*' cannot be used with partial values",
        ),
        (
            exact("web", "db"),
            json!({"Action": "allow", "Meta": {"a": "b"}}),
            "Meta must not be specified",
        ),
        (
            exact("peer:east/web", "db"),
            json!({"Action": "allow"}),
            "source \"peer:east/web\" is invalid: cannot specify a peer here",
        ),
        (
            exact("team/web", "db"),
            json!({"Action": "allow"}),
            "Namespaces is a Consul Enterprise feature",
        ),
        (
            "/v1/connect/intentions/exact?destination=db".into(),
            json!({"Action": "allow"}),
            "required query parameter 'source' not set",
        ),
        (
            "/v1/connect/intentions/exact?source=web".into(),
            json!({"Action": "allow"}),
            "required query parameter 'destination' not set",
        ),
    ];
    for (path, body, msg) in cases {
        let r = put_json(addr, &path, &body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert!(r.text().contains(msg), "{msg:?} not in {:?}", r.text());
    }
    let r = put(addr, &exact("web", "db"), "{").await;
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Request decode failed"));
    // Nothing was stored.
    assert_eq!(get(addr, "/v1/connect/intentions").await.json(), json!([]));

    // Meta may be sent back unchanged on an existing entry, not changed.
    assert_eq!(
        put_json(
            addr,
            "/v1/config",
            &json!({"Kind": "service-intentions", "Name": "db", "Meta": {"team": "data"}, "Sources": [{"Name": "api", "Action": "allow"}]}),
        )
        .await
        .status,
        200
    );
    upsert(
        addr,
        "web",
        "db",
        json!({"Action": "allow", "Meta": {"team": "data"}}),
    )
    .await;
    let r = put_json(
        addr,
        &exact("web", "db"),
        &json!({"Action": "allow", "Meta": {"team": "x"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            "Meta must not be specified, or should be unchanged during an update."
        )
    );
    assert_eq!(
        get(addr, &exact("web", "db")).await.json()["Meta"],
        json!({"team": "data"})
    );

    for (path, msg) in [
        (
            "/v1/connect/intentions/match?name=db",
            "required query parameter 'by' not set",
        ),
        (
            "/v1/connect/intentions/match?by=both&name=db",
            "'by' parameter must be one of 'source' or 'destination'",
        ),
        (
            "/v1/connect/intentions/match?by=source",
            "required query parameter 'name' not set",
        ),
        (
            "/v1/connect/intentions/check?source=web",
            "required query parameter 'destination' not set",
        ),
        (
            "/v1/connect/intentions/check?source=web&destination=db&source-type=ldap",
            "unsupported SourceType: \"ldap\"",
        ),
    ] {
        let r = get(addr, path).await;
        assert_eq!((r.status, r.text().as_str()), (400, msg), "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn list_match_and_check_follow_precedence() {
    let server = start().await;
    let addr = server.http_addr();
    upsert(addr, "*", "db", json!({"Action": "deny"})).await;
    upsert(addr, "web", "db", json!({"Action": "allow"})).await;
    upsert(addr, "web", "*", json!({"Action": "deny"})).await;
    upsert(addr, "*", "cache", json!({"Action": "allow"})).await;
    upsert(
        addr,
        "admin",
        "db",
        json!({"Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}),
    )
    .await;

    let list = get(addr, "/v1/connect/intentions").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        names(&list.json()),
        ["admin=>db", "web=>db", "*=>cache", "*=>db", "web=>*"],
        "highest precedence first"
    );
    let filtered = get(
        addr,
        "/v1/connect/intentions?filter=SourceName%20%3D%3D%20web",
    )
    .await
    .json();
    assert_eq!(names(&filtered), ["web=>db", "web=>*"]);

    // Match by destination: exact source before the wildcard, the wildcard destination last.
    let r = get(addr, "/v1/connect/intentions/match?by=destination&name=db").await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(names(&m["db"]), ["admin=>db", "web=>db", "*=>db", "web=>*"]);
    assert_eq!(
        m["db"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["Precedence"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [9, 9, 8, 6]
    );
    // Several names at once; a name nothing matches gets null.
    let m = get(
        addr,
        "/v1/connect/intentions/match?by=source&name=web&name=nobody",
    )
    .await
    .json();
    assert_eq!(names(&m["web"]), ["web=>db", "*=>cache", "*=>db", "web=>*"]);
    assert_eq!(
        names(&m["nobody"]),
        ["*=>cache", "*=>db"],
        "wildcard sources match anyone"
    );
    let m = get(
        addr,
        "/v1/connect/intentions/match?by=destination&name=nothing-here",
    )
    .await
    .json();
    assert_eq!(names(&m["nothing-here"]), ["web=>*"]);

    // Check: the exact intention beats the wildcard, L7 counts as deny, no match falls to the default.
    assert!(check(addr, "web", "db").await);
    assert!(!check(addr, "api", "db").await);
    assert!(!check(addr, "admin", "db").await);
    assert!(check(addr, "api", "cache").await);
    assert!(!check(addr, "web", "search").await);
    assert!(
        check(addr, "api", "search").await,
        "no intention: ACLs disabled allow"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_match_query_wakes_only_for_a_relevant_change() {
    let server = start().await;
    let addr = server.http_addr();
    upsert(addr, "web", "db", json!({"Action": "allow"})).await;
    let first = get(addr, "/v1/connect/intentions/match?by=destination&name=db").await;
    let index = first.index();

    // Changes to other destinations do not wake it.
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/connect/intentions/match?by=destination&name=db&index={index}&wait=1s"),
        )
        .await
    });
    upsert(addr, "web", "cache", json!({"Action": "deny"})).await;
    upsert(addr, "api", "search", json!({"Action": "allow"})).await;
    let r = waiter.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "woke on an unrelated change"
    );
    assert_eq!(r.index(), index);
    assert_eq!(r.json(), first.json());

    // A change to an intention of db wakes it.
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/connect/intentions/match?by=destination&name=db&index={index}&wait=5m"),
        )
        .await
    });
    upsert(addr, "api", "db", json!({"Action": "deny"})).await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    assert_eq!(names(&r.json()["db"]), ["api=>db", "web=>db"]);

    // So does a new wildcard-destination intention, and a delete.
    let index = r.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/connect/intentions/match?by=destination&name=db&index={index}&wait=5m"),
        )
        .await
    });
    upsert(addr, "ops", "*", json!({"Action": "allow"})).await;
    let r = waiter.await.unwrap();
    assert_eq!(names(&r.json()["db"]), ["api=>db", "web=>db", "ops=>*"]);
    let index = r.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/connect/intentions/match?by=destination&name=db&index={index}&wait=5m"),
        )
        .await
    });
    assert_eq!(delete(addr, &exact("web", "db")).await.status, 200);
    let r = waiter.await.unwrap();
    assert_eq!(names(&r.json()["db"]), ["api=>db", "ops=>*"]);

    // By source: a change to an intention of that source wakes it. (That writes which leave the
    // answer as it was keep it waiting is covered by the unit tests of `blocking_on_change`: over HTTP
    // the order of the write and the query's first read cannot be controlled.)
    let first = get(addr, "/v1/connect/intentions/match?by=source&name=api").await;
    let index = first.index();
    let waiter = tokio::spawn(async move {
        get(
            addr,
            &format!("/v1/connect/intentions/match?by=source&name=api&index={index}&wait=5m"),
        )
        .await
    });
    assert_eq!(names(&first.json()["api"]), ["api=>db", "api=>search"]);
    upsert(addr, "api", "billing", json!({"Action": "allow"})).await;
    let r = waiter.await.unwrap();
    assert!(r.index() > index);
    assert_eq!(
        names(&r.json()["api"]),
        ["api=>billing", "api=>db", "api=>search"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn legacy_id_endpoints_say_they_are_not_supported() {
    let server = start().await;
    let addr = server.http_addr();
    let r = post_json(
        addr,
        "/v1/connect/intentions",
        &json!({"SourceName": "web", "DestinationName": "db", "Action": "allow"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("/v1/connect/intentions/exact"),
        "{}",
        r.text()
    );
    let id = "e9ebc19f-d481-42b1-4871-4d298d3acd5c";
    let r = get(addr, &format!("/v1/connect/intentions/{id}")).await;
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("Intention not found"));
    assert_eq!(
        delete(addr, &format!("/v1/connect/intentions/{id}"))
            .await
            .status,
        400
    );
    assert_eq!(
        put_json(addr, &format!("/v1/connect/intentions/{id}"), &json!({}))
            .await
            .status,
        400
    );
    server.shutdown().await;
}
