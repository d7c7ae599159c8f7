//! Health: passing/tag/filter selection, node checks deciding service health, checks by state.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn q(s: &str) -> String {
    s.replace('%', "%25")
        .replace(' ', "%20")
        .replace('"', "%22")
        .replace('=', "%3D")
        .replace('!', "%21")
        .replace('[', "%5B")
        .replace(']', "%5D")
        .replace('`', "%60")
        .replace('(', "%28")
        .replace(')', "%29")
}

async fn seed(addr: std::net::SocketAddr) {
    for (node, ip, id, tags, status, zone) in [
        (
            "n1",
            "10.0.0.1",
            "web-1",
            json!(["v1", "primary"]),
            "passing",
            "a",
        ),
        ("n2", "10.0.0.2", "web-2", json!(["v2"]), "critical", "b"),
        ("n3", "10.0.0.3", "web-3", json!(["v2"]), "warning", "a b"),
    ] {
        register(
            addr,
            &json!({"Node": node, "Address": ip, "Service": {"ID": id, "Service": "web", "Port": 80, "Tags": tags, "Meta": {"zone": zone}},
                "Check": {"CheckID": format!("{id}-check"), "Name": "web check", "Status": status, "ServiceID": id}}),
        )
        .await;
    }
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn passing_tag_and_filter_select_instances() {
    let server = start().await;
    let addr = server.http_addr();
    seed(addr).await;
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web").await.json()),
        ["web-1", "web-2", "web-3"]
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?passing").await.json()),
        ["web-1"]
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?passing=true")
            .await
            .json()),
        ["web-1"]
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?passing=false")
            .await
            .json()),
        ["web-1", "web-2", "web-3"]
    );
    assert_eq!(
        get(addr, "/v1/health/service/web?passing=maybe")
            .await
            .status,
        400
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?tag=v2").await.json()),
        ["web-2", "web-3"]
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?tag=v2&passing")
            .await
            .json()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/WEB?near=_agent").await.json()),
        ["web-1", "web-2", "web-3"]
    );

    let cases = [
        ("Service.ID == \"web-2\"", vec!["web-2"]),
        ("Service.ID != `web-2`", vec!["web-1", "web-3"]),
        ("v1 in Service.Tags", vec!["web-1"]),
        (
            "Service.Tags contains v2 and Node.Address == \"10.0.0.3\"",
            vec!["web-3"],
        ),
        ("Checks.Status == critical", vec!["web-2"]),
        (
            "Service.Meta.zone == a or Service.Meta[\"zone\"] == \"a b\"",
            vec!["web-1", "web-3"],
        ),
        ("not (Service.Meta.zone == a)", vec!["web-2", "web-3"]),
        ("Service.ID matches \"-[12]$\"", vec!["web-1", "web-2"]),
        ("Service.Meta is not empty", vec!["web-1", "web-2", "web-3"]),
        ("Service.Port == 80", vec!["web-1", "web-2", "web-3"]),
        ("Node.Node == n1", vec!["web-1"]),
    ];
    for (expr, want) in cases {
        let r = get(addr, &format!("/v1/health/service/web?filter={}", q(expr))).await;
        assert_eq!(r.status, 200, "{expr}: {}", r.text());
        assert_eq!(ids(&r.json()), want, "{expr}");
    }
}

#[tokio::test]
async fn bad_filters_are_400_with_a_position() {
    let server = start().await;
    let addr = server.http_addr();
    for (expr, pos) in [
        ("Service.ID ==", "1:14"),
        ("Service.ID = x", "1:12"),
        ("(Service.ID == x", "1:17"),
        ("Service.ID matches \"(\"", "1:20"),
    ] {
        for path in [
            "/v1/health/service/web",
            "/v1/catalog/service/web",
            "/v1/health/checks/web",
            "/v1/catalog/nodes",
        ] {
            let r = get(addr, &format!("{path}?filter={}", q(expr))).await;
            assert_eq!(r.status, 400, "{path} {expr}");
            assert!(
                r.text()
                    .starts_with("Failed to create boolean expression evaluator: "),
                "{}",
                r.text()
            );
            assert!(r.text().contains(pos), "{expr}: {}", r.text());
        }
    }
}

#[tokio::test]
async fn failing_node_check_makes_services_unhealthy() {
    let server = start().await;
    let addr = server.http_addr();
    seed(addr).await;
    register(addr, &json!({"Node": "n1", "Address": "10.0.0.1", "SkipNodeUpdate": true, "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "critical"}})).await;
    let entries = get(addr, "/v1/health/service/web").await.json();
    let web1 = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Service"]["ID"] == "web-1")
        .unwrap();
    let checks: Vec<&str> = web1["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"serfHealth") && checks.contains(&"web-1-check"),
        "{checks:?}"
    );
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?passing").await.json()),
        Vec::<String>::new()
    );
    let node_checks = get(addr, "/v1/health/node/n1").await.json();
    assert_eq!(node_checks.as_array().unwrap().len(), 2);
    let serf = node_checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .unwrap();
    assert_eq!(serf["ServiceID"], "");
    assert_eq!(serf["ServiceName"], "");
    // Back to passing: the instance is healthy again.
    register(addr, &json!({"Node": "n1", "SkipNodeUpdate": true, "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing"}})).await;
    assert_eq!(
        ids(&get(addr, "/v1/health/service/web?passing").await.json()),
        ["web-1"]
    );
}

#[tokio::test]
async fn checks_by_state_and_by_service() {
    let server = start().await;
    let addr = server.http_addr();
    seed(addr).await;
    let critical = get(addr, "/v1/health/state/critical").await.json();
    assert_eq!(critical.as_array().unwrap().len(), 1);
    assert_eq!(critical[0]["CheckID"], "web-2-check");
    let any = get(addr, "/v1/health/state/any").await.json();
    assert_eq!(
        any.as_array().unwrap().len(),
        4,
        "three service checks and the server's serfHealth"
    );
    let passing = get(addr, "/v1/health/state/passing").await.json();
    assert_eq!(passing.as_array().unwrap().len(), 2);
    let r = get(addr, "/v1/health/state/bogus").await;
    assert_eq!(r.status, 400);
    let r = get(
        addr,
        &format!(
            "/v1/health/state/any?filter={}",
            q("ServiceName == web and Status != passing")
        ),
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let checks = get(addr, "/v1/health/checks/web").await.json();
    assert_eq!(checks.as_array().unwrap().len(), 3);
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ServiceName"] == "web")
    );
    assert_eq!(
        get(addr, "/v1/health/checks/nothing").await.json(),
        json!([])
    );
    assert_eq!(
        get(addr, "/v1/health/service/nothing").await.json(),
        json!([])
    );
}
