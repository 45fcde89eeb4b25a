//! deploy/monitoring: every metric the alert rules and the Grafana dashboard
//! name is one the gateway exports, so neither can silently watch nothing.

use crate::support::*;

fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("minigate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let mut name = &text[start..end];
        for suffix in ["_bucket", "_count", "_sum"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn alerts_and_dashboard_use_only_exported_metrics() {
    // Decisions are exported only for routes with `allow` rules; the user
    // service's series always are, but are watched for `[enrich]`: a
    // gateway with both, exercised, as the alerts and dashboard expect.
    let users = user_service(Answer::Json(serde_json::json!({"roles": ["user"]}))).await;
    let gw = start(
        Setup::default()
            .route(Route::new("/ruled/").allow(vec![roles(["user"])]))
            .enrich(enrich(users.url())),
    )
    .await;
    let t = gw.login("monitoring").await;
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    assert_eq!(
        gw.get("/ruled/x", Some(&t.access_token)).await.status(),
        200
    );
    let exposition = gw.get("/metrics", None).await.text().await.unwrap();
    let exported: Vec<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitoring/");
    let alerts = std::fs::read_to_string(format!("{root}alerts.yaml")).unwrap();
    let dashboard = std::fs::read_to_string(format!("{root}grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 6));
    for (file, text) in [
        ("alerts.yaml", &alerts),
        ("grafana-dashboard.json", &dashboard),
    ] {
        let names = metric_names(text);
        assert!(names.len() >= 6, "{file} names only {names:?}");
        for name in names {
            assert!(
                exported.contains(&name.as_str()),
                "{file} uses {name}, which /metrics does not export:\n{exposition}"
            );
        }
    }
}
