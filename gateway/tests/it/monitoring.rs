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

/// deploy/monitoring, where the rule files live.
fn monitoring_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

/// The alert names of alerts.yaml, in order.
fn alert_names() -> Vec<String> {
    std::fs::read_to_string(monitoring_dir().join("alerts.yaml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_owned())
        .collect()
}

/// Runs `promtool` with `args` in deploy/monitoring; its output, or the
/// test fails.
fn promtool(args: &[&str]) -> String {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .expect("promtool is not installed (apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The rule file loads in Prometheus's own checker, and each alert's unit
/// tests in alerts.test.yaml pass: `promtool test rules` compares the whole
/// list of firing alerts at each evaluation, so a test that expects one
/// series to fire also proves that the series beside it (below a threshold,
/// another label value, not yet past `for`) do not.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs promtool (Debian's prometheus); ./test installs it"
)]
async fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let names = alert_names();
    assert!(names.len() >= 10, "{names:?}");
    let checked = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{checked}"
    );
    let tested = promtool(&["test", "rules", "alerts.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a test in which it fires (an `exp_alerts` list with
    // an entry), and one in which it stays silent (an empty list, or
    // series beside the firing ones).
    let tests = std::fs::read_to_string(monitoring_dir().join("alerts.test.yaml")).unwrap();
    for name in &names {
        let fires = tests
            .split(&format!("alertname: {name}\n"))
            .skip(1)
            .any(|rest| {
                rest.trim_start()
                    .strip_prefix("exp_alerts:")
                    .is_some_and(|r| r.trim_start().starts_with("- exp_labels"))
            });
        assert!(fires, "alerts.test.yaml never shows {name} firing");
    }
}

/// A real Prometheus, on a free port, scraping `target` every second as
/// job `minigate` and evaluating alerts.yaml; killed when dropped.
struct Prometheus {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            monitoring_dir().join("alerts.yaml"),
            dir.path().join("alerts.yaml"),
        )
        .unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [alerts.yaml]\n\
             scrape_configs:\n  - job_name: minigate\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is not installed (apt-get install prometheus)");
        let mut prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let http = client();
        for _ in 0..400 {
            if let Ok(res) = http.get(format!("{}/-/ready", prometheus.url)).send().await {
                if res.status() == 200 {
                    return prometheus;
                }
            }
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}): {}", prometheus.log());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("prometheus did not become ready: {}", prometheus.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}`: the `data` of a successful answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let res = client()
            .get(format!("{}/api/v1/{path}?{query}", self.url))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// Asks `api` until `done` holds of its data (scrapes and evaluations
    /// come each second); the last data.
    async fn until(
        &self,
        path: &str,
        query: &[(&str, &str)],
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut data = serde_json::Value::Null;
        for _ in 0..300 {
            data = self.api(path, query).await;
            if done(&data) {
                return data;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{path} {query:?} never came to pass: {data}\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Prometheus scrapes a running gateway: the target is up, a query
/// the dashboard is built on answers the requests just made, every
/// dashboard query is valid PromQL there, and every alert rule loads and
/// evaluates without error.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs Debian's prometheus; ./test installs it"
)]
async fn a_real_prometheus_scrapes_the_gateway() {
    let gw = start(Setup::default()).await;
    let t = gw.login("prometheus").await;
    for _ in 0..3 {
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    }
    let prometheus = Prometheus::start(gw.running.addr).await;

    let up = prometheus
        .until("query", &[("query", "up{job=\"minigate\"}")], |d| {
            d["result"][0]["value"][1] == "1"
        })
        .await;
    assert_eq!(up["result"].as_array().unwrap().len(), 1, "{up}");

    // The dashboard's first panel, without its rate: the three proxied
    // requests (2xx on /api/).
    let query = "sum by (route, class) (minigate_requests_total{route=\"/api/\"})";
    let answered = prometheus
        .until("query", &[("query", query)], |d| {
            d["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["metric"]["class"] == "2xx"))
        })
        .await;
    let twos: Vec<&serde_json::Value> = answered["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"]["class"] == "2xx")
        .collect();
    assert_eq!(twos.len(), 1, "{answered}");
    assert_eq!(twos[0]["value"][1], "3", "{answered}");

    // Every dashboard query parses and runs in this Prometheus.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            prometheus.api("query", &[("query", &expr)]).await;
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "{exprs} queries");

    // Every alert rule is loaded and, once evaluated, healthy.
    let names = alert_names();
    let rules = prometheus
        .until("rules", &[("type", "alert")], |d| {
            let rules: Vec<&serde_json::Value> = d["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            rules.len() == names.len() && rules.iter().all(|r| r["health"] != "unknown")
        })
        .await;
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert!(names.iter().any(|n| rule["name"] == n.as_str()), "{rule}");
    }
}
